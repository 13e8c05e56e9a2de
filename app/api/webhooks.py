"""``POST /api/v1/webhooks/test``: an echo for someone wiring up a signal sender (api.md §14.3).

Off unless ``ENABLE_TEST_WEBHOOK=true`` (then a 404 like any unknown route). The reference served it in every
non-production environment and echoed every header, API keys included (api.md §25.5, item 23); here credential
headers come back as ``[redacted]`` (the sender sees that they arrived, not their value), nothing of the
request is logged beyond its size and user agent, and the caller's IP has a budget like any public route.

Besides the echo, a JSON object body is validated as ``POST /api/v1/trading-signals`` validates its body, so a
sender can test its payload without an API key and without storing anything.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import NotFoundException

from app.api.deps import SettingsDep
from app.api.errors import ApiError
from app.api.serialization import error_responses, now_iso
from app.api.signals import SignalCreate, clean_create
from app.auth.ratelimit import RateLimit, rate_limit_guard

log = logging.getLogger(__name__)

WEBHOOK_TEST = RateLimit("webhook_test", 30, 60, "Too many requests. Please try again later.")
REDACTED = "[redacted]"
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})

# Numbers come back exactly as sent: decoded to Decimal, encoded as JSON numbers.
_decode = msgspec.json.Decoder(float_hook=Decimal)
_encode = msgspec.json.Encoder(decimal_format="number")


class SignalCheck(msgspec.Struct, rename="camel", omit_defaults=True):
    valid: bool
    error: str | None = None


class Received(msgspec.Struct, rename="camel"):
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, list[str]]
    body: Any


class WebhookEcho(msgspec.Struct, rename="camel"):
    success: bool
    message: str
    timestamp: str
    received: Received
    signal_check: SignalCheck | None


def redacted_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; credential values replaced; repeated headers joined as HTTP allows."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        shown = REDACTED if key in CREDENTIAL_HEADERS else value
        out[key] = f"{out[key]}, {shown}" if key in out else shown
    return out


def parse_body(raw: bytes) -> Any:
    """JSON when the body is JSON (numbers kept exact), else its text; None when empty."""
    if not raw.strip():
        return None
    try:
        return _decode.decode(raw)
    except msgspec.DecodeError:
        return raw.decode("utf-8", errors="replace")


def check_signal(body: Any) -> SignalCheck | None:
    """What ``POST /api/v1/trading-signals`` would say of this body's content; None unless it is a JSON object."""
    if not isinstance(body, dict):
        return None
    try:
        clean_create(msgspec.convert(body, SignalCreate))
    except msgspec.ValidationError as exc:
        return SignalCheck(valid=False, error=str(exc))
    except ApiError as exc:
        return SignalCheck(valid=False, error=exc.error)
    return SignalCheck(valid=True)


@post(
    "/api/v1/webhooks/test",
    guards=[rate_limit_guard(WEBHOOK_TEST)],
    status_code=200,
    summary="Echo a webhook call, credentials redacted (only when ENABLE_TEST_WEBHOOK=true)",
    description="Answers what arrived: method, path, headers (Authorization, Proxy-Authorization, Cookie and "
    "X-API-Key redacted), query and body (JSON numbers echoed exactly). A JSON object body is also checked as "
    "a trading signal (`signalCheck`), nothing is stored. Unauthenticated; 30 requests per minute per IP; "
    "404 unless the server runs with ENABLE_TEST_WEBHOOK=true.",
    tags=["Signals"],
    responses=error_responses(404, 413, 429),
)
async def webhook_test(request: Request, settings: SettingsDep) -> Response[bytes]:
    if not settings.enable_test_webhook:
        raise NotFoundException()
    raw = await request.body()
    body = parse_body(raw)
    echo = WebhookEcho(
        success=True,
        message="Webhook received successfully",
        timestamp=now_iso(),
        received=Received(
            method=request.method,
            path="/test",
            headers=redacted_headers(request.headers.multi_items()),
            query={key: request.query_params.getall(key) for key in request.query_params},
            body=body,
        ),
        signal_check=check_signal(body),
    )
    log.info("test webhook", extra={"fields": {"bytes": len(raw), "user_agent": request.headers.get("user-agent")}})
    return Response(content=_encode.encode(echo), media_type="application/json")


ROUTES = [webhook_test]
