"""POST /api/v1/trading-signals/webhook: signals from senders that cannot set headers (TradingView alerts)."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec

from app.auth.ratelimit import SIGNAL_INGEST
from tests.api.helpers import api_key_headers

URL = "/api/v1/trading-signals/webhook"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


async def key_for(pool, user, scopes=("signals:write",)) -> str:
    return (await api_key_headers(pool, user.id, list(scopes)))["X-API-Key"]


def alert(key: str, **overrides) -> dict:
    body = {"apiKey": key, "tokenAddress": USDC, "signalType": "Breakout", "signalStrength": 4, "source": "TradingView"}
    body.update(overrides)
    return body


async def test_a_tradingview_alert_is_stored_for_the_keys_owner_and_wakes_the_worker(
    client, pool, user, database_url
) -> None:
    key = await key_for(pool, user)
    listener = await asyncpg.connect(database_url)
    woken: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("signal_created", lambda *args: woken.put_nowait(args[3]))
    try:
        # Senders label what they post as they please (TradingView: text/plain unless it judges the message JSON).
        response = await client.post(
            URL, content=msgspec.json.encode(alert(key)), headers={"Content-Type": "text/plain; charset=utf-8"}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert await asyncio.wait_for(woken.get(), 5) == str(body["id"])
    finally:
        await listener.close()
    assert key not in response.text and "apiKey" not in body
    assert (body["tokenAddress"], body["signalType"], body["signalStrength"], body["source"]) == (
        USDC,
        "Breakout",
        4,
        "TradingView",
    )
    row = await pool.fetchrow("SELECT user_id, processed_at FROM trading_signals WHERE id = $1", body["id"])
    assert row["user_id"] == user.id and row["processed_at"] is None


async def test_alert_id_makes_redelivery_idempotent(client, pool, user) -> None:
    key = await key_for(pool, user)
    first = await client.post(URL, json=alert(key, alertId="BTC-1733526000"))
    again = await client.post(URL, json=alert(key, alertId="BTC-1733526000"))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert await pool.fetchval("SELECT count(*) FROM trading_signals WHERE user_id = $1", user.id) == 1
    reused = await client.post(URL, json=alert(key, alertId="BTC-1733526000", signalStrength=5))
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    # Without an alertId, the same alert inside the duplicate window is the main route's 409.
    assert (await client.post(URL, json=alert(key, tokenAddress=USDC, signalType="Dip"))).status_code == 201
    duplicate = await client.post(URL, json=alert(key, tokenAddress=USDC, signalType="Dip"))
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "SIGNAL_DUPLICATE"


async def test_credentials_come_from_the_body_only(client, pool, user) -> None:
    key = await key_for(pool, user)
    body = alert(key)
    del body["apiKey"]
    missing = await client.post(URL, json=body, headers={"X-API-Key": key})
    assert missing.status_code == 401 and missing.json()["error"] == "apiKey is required in the body"
    wrong = await client.post(URL, json=alert("nx_" + "0" * 40))
    assert wrong.status_code == 401 and wrong.json()["error"] == "Invalid API key"
    read_only = await key_for(pool, user, scopes=("agents",))
    forbidden = await client.post(URL, json=alert(read_only))
    assert forbidden.status_code == 403 and "signals:write" in forbidden.json()["error"]
    assert await pool.fetchval("SELECT count(*) FROM trading_signals WHERE user_id = $1", user.id) == 0


async def test_bad_bodies_are_400_before_anything_is_stored(client, pool, user) -> None:
    key = await key_for(pool, user)
    cases = [  # (body, text the 400 must contain)
        (b"{not json", "Malformed JSON body"),
        (b"[1, 2]", "Body must be a JSON object"),
        (msgspec.json.encode(alert(key, signalStrength=9)), "signalStrength must be an integer between 1 and 5"),
        (msgspec.json.encode(alert(key, tokenAddress="not-a-mint")), "base58"),
        (msgspec.json.encode(alert(key, alertId=["x"])), '"field":"alertId"'),
        (msgspec.json.encode({"apiKey": key, "signalStrength": 3}), "tokenAddress"),
    ]
    for raw, expected in cases:
        response = await client.post(URL, content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (raw, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR" and expected in response.text, (raw, response.text)
    assert await pool.fetchval("SELECT count(*) FROM trading_signals WHERE user_id = $1", user.id) == 0


async def test_the_body_schema_is_documented(client) -> None:
    schema = (await client.get("/api/v1/docs/openapi.json")).json()
    body = schema["paths"]["/api/v1/trading-signals/webhook"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = schema["components"]["schemas"][ref]["properties"]
    assert {"apiKey", "alertId", "tokenAddress", "signalType", "signalStrength"} <= set(properties)


async def test_shares_the_ingest_rate_limit_per_key(client, pool, user) -> None:
    key = await key_for(pool, user)
    for i in range(SIGNAL_INGEST.limit):
        response = await client.post(URL, json=alert(key, signalType=f"t{i}"))
        assert response.status_code == 201, response.text
    refused = await client.post(URL, json=alert(key, signalType="one too many"))
    assert refused.status_code == 429


async def test_a_key_tied_to_addresses_is_refused_from_elsewhere(client, pool, user) -> None:
    key = await key_for(pool, user)
    assert (await client.post(URL, json=alert(key, signalType="before"))).status_code == 201  # now cached
    # Tied to an address by hand: the revocation notice (migration 0074) evicts the cached key everywhere.
    await pool.execute(
        "UPDATE api_keys SET allowed_ips = ARRAY['52.89.214.238/32']::cidr[] WHERE user_id = $1", user.id
    )
    deadline = asyncio.get_running_loop().time() + 2
    for attempt in range(1000):  # until the notice has arrived (each attempt a distinct signal: no 409)
        refused = await client.post(URL, json=alert(key, signalType=f"after-{attempt}"))
        if refused.status_code != 201 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert refused.status_code == 403 and refused.json()["code"] == "IP_NOT_ALLOWED"  # the client is no such address
    stored = await pool.fetchval(
        "SELECT count(*) FROM trading_signals WHERE user_id = $1 AND signal_type = $2", user.id, f"after-{attempt}"
    )
    assert stored == 0
