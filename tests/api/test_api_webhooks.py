"""POST /api/v1/webhooks/test: off by default, an echo with credentials redacted when on (api.md §14.3)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.api.app import create_app
from app.api.webhooks import REDACTED, WEBHOOK_TEST, check_signal, parse_body, redacted_headers
from app.auth.runtime import auth_runtime
from app.config import Settings

URL = "/api/v1/webhooks/test"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
SIGNAL = {"tokenAddress": USDC, "signalType": "Breakout", "signalStrength": 4}


@pytest.fixture(scope="module")
async def enabled(settings: Settings, database_url: str) -> AsyncIterator[AsyncTestClient]:
    app = create_app(msgspec.structs.replace(settings, enable_test_webhook=True), database_url)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _fresh_limiter(enabled: AsyncTestClient) -> None:
    auth_runtime(enabled.app.state).limiter.reset()


async def test_off_by_default_answers_404_like_an_unknown_route(client) -> None:
    response = await client.post(URL, json=SIGNAL)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert "received" not in response.json()


async def test_echo_redacts_credentials_and_keeps_the_rest(enabled, pool) -> None:
    signals_before = await pool.fetchval("SELECT count(*) FROM trading_signals")
    response = await enabled.post(
        URL + "?source=tv&source=bot&x=1",
        content=b'{"price": 0.000012345678901234567890, "note": "hi"}',
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer secret-token",
            "X-API-Key": "nx_secret",
            "Cookie": "session=secret",
            "X-Signal-Source": "tradingview",
        },
    )
    assert response.status_code == 200, response.text
    assert "secret" not in response.text
    body = response.json()
    assert body["success"] is True and body["message"] == "Webhook received successfully"
    assert body["timestamp"].endswith("Z")
    received = body["received"]
    assert received["method"] == "POST" and received["path"] == "/test"
    headers = received["headers"]
    assert headers["authorization"] == headers["x-api-key"] == headers["cookie"] == REDACTED
    assert headers["x-signal-source"] == "tradingview"
    assert received["query"] == {"source": ["tv", "bot"], "x": ["1"]}
    # The number comes back digit for digit, not rounded through a float.
    assert '"price":0.000012345678901234567890' in response.text
    assert received["body"]["note"] == "hi"
    # Not a signal: the check says why; nothing was stored.
    assert body["signalCheck"]["valid"] is False
    assert await pool.fetchval("SELECT count(*) FROM trading_signals") == signals_before


async def test_signal_check_matches_the_signal_route(enabled) -> None:
    ok = (await enabled.post(URL, json=SIGNAL)).json()
    assert ok["signalCheck"] == {"valid": True}
    weak = (await enabled.post(URL, json={**SIGNAL, "signalStrength": 9})).json()
    assert weak["signalCheck"] == {"valid": False, "error": "signalStrength must be an integer between 1 and 5"}
    bad_mint = (await enabled.post(URL, json={**SIGNAL, "tokenAddress": "not-a-mint"})).json()
    assert bad_mint["signalCheck"]["valid"] is False and "base58" in bad_mint["signalCheck"]["error"]


async def test_text_and_empty_bodies_are_echoed_without_a_signal_check(enabled) -> None:
    text = (await enabled.post(URL, content=b"ping {", headers={"Content-Type": "text/plain"})).json()
    assert text["received"]["body"] == "ping {" and text["signalCheck"] is None
    empty = (await enabled.post(URL)).json()
    assert empty["received"]["body"] is None and empty["signalCheck"] is None


async def test_other_methods_are_refused(enabled) -> None:
    response = await enabled.get(URL)
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_per_ip_budget(enabled) -> None:
    for _ in range(WEBHOOK_TEST.limit):
        assert (await enabled.post(URL, json={})).status_code == 200
    refused = await enabled.post(URL, json={})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1


def test_helpers() -> None:
    assert redacted_headers([("Authorization", "a"), ("X-Tag", "1"), ("x-tag", "2"), ("Proxy-Authorization", "b")]) == {
        "authorization": REDACTED,
        "x-tag": "1, 2",
        "proxy-authorization": REDACTED,
    }
    assert parse_body(b"  \n") is None
    assert parse_body(b"\xff{") == "\ufffd{"
    assert check_signal([SIGNAL]) is None
    assert check_signal({"signalType": "x"}).valid is False
