"""Trading signals: ingestion, duplicate window, Idempotency-Key, CRUD, delete-all, CSV export (api.md §14, §17.2)."""

from __future__ import annotations

import asyncio
import csv
import io

from tests.api.helpers import api_key_headers

SOL = "So11111111111111111111111111111111111111112"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def signal(**overrides):
    body = {
        "tokenAddress": SOL,
        "symbol": "SOL",
        "signalType": "Hypersurge",
        "activationReason": "Strong bullish momentum detected",
        "signalStrength": 4,
        "source": "Nexgent AI",
    }
    body.update(overrides)
    return body


async def test_create_with_api_key_stores_user_and_wakes_the_worker(client, pool, user, database_url) -> None:
    import asyncpg

    key = await api_key_headers(pool, user.id, ["signals"])
    listener = await asyncpg.connect(database_url)
    woken: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("signal_created", lambda *args: woken.put_nowait(args[3]))
    try:
        response = await client.post(
            "/api/v1/trading-signals",
            json=signal(tokenAddress=f"  {USDC} ", symbol="  ", source="", signalType=" Breakout "),
            headers=key,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["tokenAddress"] == USDC and body["signalType"] == "Breakout"
        assert body["symbol"] is None and body["source"] is None
        assert isinstance(body["id"], int)
        assert await asyncio.wait_for(woken.get(), 5) == str(body["id"])
    finally:
        await listener.close()
    row = await pool.fetchrow("SELECT user_id, processed_at FROM trading_signals WHERE id = $1", body["id"])
    assert row["user_id"] == user.id and row["processed_at"] is None


async def test_validation(client, pool, user) -> None:
    cases = [
        signal(tokenAddress="   "),
        signal(tokenAddress="not-base58-0OIl-address-xxxxxxxxxxxxxxxx"),
        signal(tokenAddress="abc"),
        signal(signalType=""),
        signal(signalType="x" * 51),
        signal(signalStrength=0),
        signal(signalStrength=6),
        signal(signalStrength="4"),
        signal(signalStrength=4.5),
        signal(symbol="s" * 51),
        signal(source="s" * 101),
        {"tokenAddress": SOL, "signalType": "x"},
    ]
    for body in cases:
        response = await client.post("/api/v1/trading-signals", json=body, headers=user.headers)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]
    assert await pool.fetchval("SELECT count(*) FROM trading_signals WHERE user_id = $1", user.id) == 0
    no_scope = await api_key_headers(pool, user.id, ["agents"])
    assert (await client.post("/api/v1/trading-signals", json=signal(), headers=no_scope)).status_code == 403
    assert (await client.post("/api/v1/trading-signals", json=signal())).status_code == 401


async def test_duplicate_window(client, pool, user, other) -> None:
    first = await client.post("/api/v1/trading-signals", json=signal(signalType="Dup"), headers=user.headers)
    assert first.status_code == 201
    again = await client.post("/api/v1/trading-signals", json=signal(signalType="Dup"), headers=user.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "SIGNAL_DUPLICATE"
    assert again.json()["error"].startswith("A signal for this token was already created recently")
    # Different strength, different type, or another user: not duplicates.
    assert (
        await client.post(
            "/api/v1/trading-signals", json=signal(signalType="Dup", signalStrength=5), headers=user.headers
        )
    ).status_code == 201
    assert (
        await client.post("/api/v1/trading-signals", json=signal(signalType="Dup2"), headers=user.headers)
    ).status_code == 201
    assert (
        await client.post("/api/v1/trading-signals", json=signal(signalType="Dup"), headers=other.headers)
    ).status_code == 201
    # Once the window has passed the same signal is accepted again.
    await pool.execute(
        "UPDATE signal_dedupe SET created_at = created_at - interval '61 seconds' WHERE user_id = $1", user.id
    )
    assert (
        await client.post("/api/v1/trading-signals", json=signal(signalType="Dup"), headers=user.headers)
    ).status_code == 201
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM trading_signals WHERE user_id = $1 AND signal_type = 'Dup' AND signal_strength = 4",
            user.id,
        )
        == 2
    )


async def test_concurrent_identical_posts_store_one_row(in_loop_client, pool, user) -> None:
    body = signal(signalType="Race")
    responses = await asyncio.gather(
        *(in_loop_client.post("/api/v1/trading-signals", json=body, headers=user.headers) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, statuses
    assert (
        await pool.fetchval("SELECT count(*) FROM trading_signals WHERE user_id = $1 AND signal_type = 'Race'", user.id)
        == 1
    )


async def test_idempotency_key_replays_the_original_response(in_loop_client, pool, user) -> None:
    headers = {**user.headers, "Idempotency-Key": "alert-123"}
    first = await in_loop_client.post("/api/v1/trading-signals", json=signal(signalType="Idem"), headers=headers)
    assert first.status_code == 201
    retry = await in_loop_client.post("/api/v1/trading-signals", json=signal(signalType="Idem"), headers=headers)
    assert retry.status_code == 201 and retry.content == first.content
    assert retry.headers.get("idempotent-replayed") == "true"
    # Same key, different request: refused; a new key is subject to the duplicate window.
    changed = await in_loop_client.post(
        "/api/v1/trading-signals", json=signal(signalType="Idem", signalStrength=2), headers=headers
    )
    assert changed.status_code == 422 and changed.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    other_key = {**user.headers, "Idempotency-Key": "alert-124"}
    assert (
        await in_loop_client.post("/api/v1/trading-signals", json=signal(signalType="Idem"), headers=other_key)
    ).status_code == 409
    assert await pool.fetchval("SELECT count(*) FROM trading_signals WHERE signal_type = 'Idem'") == 1
    # Concurrent retries with one key: one row, every answer the original.
    key = {**user.headers, "Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(
            in_loop_client.post("/api/v1/trading-signals", json=signal(signalType="Burst"), headers=key)
            for _ in range(6)
        )
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1
    assert await pool.fetchval("SELECT count(*) FROM trading_signals WHERE signal_type = 'Burst'") == 1
    bad = await in_loop_client.post(
        "/api/v1/trading-signals", json=signal(), headers={**user.headers, "Idempotency-Key": "k" * 256}
    )
    assert bad.status_code == 400


async def test_idempotency_keys_are_per_user(client, user, other) -> None:
    mine = await client.post(
        "/api/v1/trading-signals",
        json=signal(signalType="PerUser"),
        headers={**user.headers, "Idempotency-Key": "same"},
    )
    theirs = await client.post(
        "/api/v1/trading-signals",
        json=signal(signalType="PerUser"),
        headers={**other.headers, "Idempotency-Key": "same"},
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


async def test_list_get_update_delete_and_isolation(client, user, other) -> None:
    created = [
        (
            await client.post(
                "/api/v1/trading-signals", json=signal(signalType=f"T{i}", tokenAddress=USDC), headers=user.headers
            )
        ).json()
        for i in range(3)
    ]
    theirs = (await client.post("/api/v1/trading-signals", json=signal(signalType="T0"), headers=other.headers)).json()
    listed = (await client.get(f"/api/v1/trading-signals?tokenAddress={USDC}", headers=user.headers)).json()
    assert [s["id"] for s in listed] == [c["id"] for c in reversed(created)]
    page = (await client.get("/api/v1/trading-signals?limit=1&offset=1&signalType=T1", headers=user.headers)).json()
    assert page == []
    page = (await client.get(f"/api/v1/trading-signals?limit=2&tokenAddress={USDC}", headers=user.headers)).json()
    assert len(page) == 2
    for query in ("limit=0", "limit=abc", "limit=12abc", "offset=-1", "startDate=yesterday", "endDate=2025-13-01"):
        assert (await client.get(f"/api/v1/trading-signals?{query}", headers=user.headers)).status_code == 400, query
    big = await client.get("/api/v1/trading-signals?limit=5000", headers=user.headers)
    assert big.status_code == 200  # clamped to 1000 as upstream

    sid = created[0]["id"]
    assert (await client.get(f"/api/v1/trading-signals/{sid}", headers=user.headers)).json()["signalType"] == "T0"
    assert (await client.get("/api/v1/trading-signals/abc", headers=user.headers)).json()[
        "error"
    ] == "Signal ID must be a valid integer"
    assert (await client.get("/api/v1/trading-signals/99999999999", headers=user.headers)).status_code == 400
    for method, body in (("GET", None), ("PUT", {"signalStrength": 1}), ("DELETE", None)):
        foreign = await client.request(
            method, f"/api/v1/trading-signals/{theirs['id']}", json=body, headers=user.headers
        )
        assert foreign.status_code == 404, (method, foreign.text)

    updated = await client.put(
        f"/api/v1/trading-signals/{sid}",
        json={"signalStrength": 5, "symbol": None, "source": "DexScreener"},
        headers=user.headers,
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["signalStrength"], updated.json()["symbol"], updated.json()["source"]) == (
        5,
        None,
        "DexScreener",
    )
    for body in ({"signalStrength": 9}, {"tokenAddress": " "}, {"symbol": "  "}, {"signalType": ""}):
        assert (await client.put(f"/api/v1/trading-signals/{sid}", json=body, headers=user.headers)).status_code == 400

    assert (await client.delete(f"/api/v1/trading-signals/{sid}", headers=user.headers)).status_code == 204
    assert (await client.get(f"/api/v1/trading-signals/{sid}", headers=user.headers)).status_code == 404
    assert (await client.delete(f"/api/v1/trading-signals/{sid}", headers=user.headers)).status_code == 404


async def test_delete_all_needs_confirmation_and_a_user_token(client, pool, user, other) -> None:
    await client.post("/api/v1/trading-signals", json=signal(signalType="A1"), headers=user.headers)
    await client.post("/api/v1/trading-signals", json=signal(signalType="A2"), headers=user.headers)
    await client.post("/api/v1/trading-signals", json=signal(signalType="A1"), headers=other.headers)
    unconfirmed = await client.delete("/api/v1/trading-signals/all", headers=user.headers)
    assert unconfirmed.status_code == 400 and unconfirmed.json()["error"] == "Confirmation required"
    key = await api_key_headers(pool, user.id, ["signals"])
    assert (await client.delete("/api/v1/trading-signals/all?confirm=true", headers=key)).status_code == 401
    done = await client.delete("/api/v1/trading-signals/all?confirm=true", headers=user.headers)
    assert done.status_code == 200
    assert done.json() == {"success": True, "deletedCount": 2, "message": "All trading signals deleted successfully"}
    assert await pool.fetchval("SELECT count(*) FROM trading_signals WHERE user_id = $1", user.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM trading_signals WHERE user_id = $1", other.id) == 1
    again = await client.delete("/api/v1/trading-signals?confirm=true", headers=other.headers)
    assert again.json()["deletedCount"] == 1


async def test_csv_export_escapes_and_neutralises(client, pool, user, other) -> None:
    await client.post(
        "/api/v1/trading-signals",
        json=signal(signalType='=HYPERLINK("http://x")', activationReason='line1\nsaid "hi", then', symbol="@SUM"),
        headers=user.headers,
    )
    await client.post("/api/v1/trading-signals", json=signal(signalType="Plain", symbol=None), headers=user.headers)
    await client.post("/api/v1/trading-signals", json=signal(signalType="Theirs"), headers=other.headers)
    response = await client.get("/api/v1/trading-signals/export?timezone=America/New_York", headers=user.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="trading-signals-' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "Signal ID",
        "Created At",
        "Signal Strength",
        "Token Symbol",
        "Token Address",
        "Trading Strategy",
        "Activation Reason",
        "Source",
        "Updated At",
    ]
    assert len(rows) == 3
    assert rows[1][5] == '\'=HYPERLINK("http://x")'
    assert rows[1][3] == "'@SUM"
    assert rows[1][6] == 'line1\nsaid "hi", then'
    assert rows[2][3] == "N/A" and rows[2][5] == "Plain"
    assert "Theirs" not in response.text
    assert (await client.get("/api/v1/trading-signals/export?startDate=nope", headers=user.headers)).status_code == 400
