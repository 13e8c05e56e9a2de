"""Request id, access log and security headers for every HTTP response."""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import bind

log = logging.getLogger("app.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-permitted-cross-domain-policies", b"none"),
    (b"x-dns-prefetch-control", b"off"),
    (b"origin-agent-cluster", b"?1"),
    (b"x-xss-protection", b"0"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'self'; object-src 'none'"),
]


def request_id_for(scope: Scope) -> str:
    """The request's id: set by the middleware, or derived here for responses that never reach a route."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        state["request_id"] = incoming if _REQUEST_ID.match(incoming) else str(uuid.uuid4())
    return state["request_id"]


async def add_response_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: runs for every response, including 404/405 that no middleware sees."""
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", []))
        headers.append((b"x-request-id", request_id_for(scope).encode()))
        headers.extend(SECURITY_HEADERS)
        message["headers"] = headers


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Give every request an id (a sane incoming ``x-request-id`` or a new UUID), log it, echo it back."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = request_id_for(scope)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with bind(request_id=request_id):
            try:
                await app(scope, receive, send_wrapper)
            finally:
                duration_ms = round((time.perf_counter() - started) * 1000, 2)
                log.info(
                    "request completed",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": status,
                            "duration_ms": duration_ms,
                        }
                    },
                )

    return middleware
