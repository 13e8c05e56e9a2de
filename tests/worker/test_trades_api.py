"""Manual buy and close over HTTP, executed by a worker task running next to the app in the same event loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.api.app import create_app
from app.audit import run_audit
from app.db import create_pool
from app.worker.main import WorkerContext
from app.worker.trade_requests import drain_requests, trade_requests_service
from tests.factories import access_headers, create_agent, create_user, deposit_sol
from tests.worker.helpers import STEADY, MarketBundle, execution_context, insert_signal, replay_market

D = Decimal
decode = msgspec.json.Decoder(float_hook=Decimal).decode


@pytest.fixture(scope="module")
def ctx(pool, settings):
    return execution_context(pool, settings, MarketBundle(replay_market(extra_tokens=5)))


@pytest.fixture
async def worker(settings, database_url) -> AsyncIterator[None]:
    """The manual-trade service as a task of the test's loop, on a pool of its own like a separate worker process.

    It runs alongside the app of ``in_loop_client`` (which serves requests in this same loop): with Litestar's
    ``client`` the loop would be blocked for the whole of each request and the service could never answer it."""
    pool = await create_pool(database_url, min_size=1, max_size=4)
    context = WorkerContext(settings=settings, pool=pool, database_url=database_url, worker_id="api-test")
    context.components["execution"] = execution_context(pool, settings, MarketBundle(replay_market()))
    service = asyncio.create_task(trade_requests_service(context))
    try:
        yield
    finally:
        context.stopping.set()
        try:
            await asyncio.wait_for(service, timeout=10)
        finally:
            await pool.close()


async def owner(pool, settings, fund: str = "3") -> tuple[uuid.UUID, uuid.UUID, str, dict[str, str]]:
    user = await create_user(pool)
    agent, wallet = await create_agent(pool, user)
    await deposit_sol(pool, agent, wallet, fund)
    return user, agent, wallet, access_headers(settings, user)


async def buy(client, headers, agent, **extra):
    body = {"agentId": str(agent), "tokenAddress": STEADY, "tokenSymbol": "STEADY", **extra}
    return await client.post("/api/v1/trades/execute", json=body, headers=headers)


async def test_manual_buy_and_close(in_loop_client, pool, settings, worker):
    user, agent, _, headers = await owner(pool, settings)
    signal_id = await insert_signal(pool, user)

    response = await buy(in_loop_client, headers, agent, positionSize=0.5, signalId=signal_id)

    assert response.status_code == 200, response.text
    body = decode(response.content)
    assert body["success"] is True and body["signalId"] == signal_id
    assert body["inputAmount"] == D("0.5005") and body["stopLossInitialized"] is True
    assert body["stopLossPercentage"] == D("-32") and body["transactionHash"] is None
    tx = await pool.fetchrow("SELECT * FROM agent_transactions WHERE id = $1", uuid.UUID(body["transactionId"]))
    assert tx["agent_id"] == agent and tx["output_amount"] == body["outputAmount"]
    assert tx["output_price"] == body["purchasePrice"]  # exact digits, through jsonb and back

    close = await in_loop_client.post(
        f"/api/v1/agent-positions/{agent}/{body['positionId']}/close", json={"reason": "stop_loss"}, headers=headers
    )

    assert close.status_code == 200, close.text
    sale = decode(close.content)
    assert sale["positionId"] == body["positionId"] and sale["success"] is True
    history = await pool.fetchrow(
        "SELECT * FROM agent_historical_swaps WHERE id = $1", uuid.UUID(sale["historicalSwapId"])
    )
    assert history["close_reason"] == "stop_loss" and history["profit_loss_sol"] == sale["profitLossSol"]
    assert sale["changePercent"] == history["change_percent"]
    again = await in_loop_client.post(f"/api/v1/agent-positions/{agent}/{body['positionId']}/close", headers=headers)
    assert again.status_code == 404 and again.json()["code"] == "POSITION_NOT_FOUND"


async def test_idempotent_retries_trade_once(in_loop_client, pool, settings, worker):
    _, agent, _, headers = await owner(pool, settings)
    keyed = {**headers, "Idempotency-Key": "buy-steady-1"}

    first = await buy(in_loop_client, keyed, agent, positionSize=0.25)
    second = await buy(in_loop_client, keyed, agent, positionSize=0.25)

    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert decode(first.content) == decode(second.content)
    buys = await pool.fetchval(
        "SELECT count(*) FROM agent_transactions WHERE agent_id = $1 AND transaction_type = 'SWAP'", agent
    )
    assert buys == 1
    reused = await buy(in_loop_client, keyed, agent, positionSize=0.3)
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"

    position_id = decode(first.content)["positionId"]
    close_key = {**headers, "Idempotency-Key": "close-steady-1"}
    closes = [
        await in_loop_client.post(f"/api/v1/agent-positions/{agent}/{position_id}/close", headers=close_key)
        for _ in range(2)
    ]
    assert [c.status_code for c in closes] == [200, 200]
    assert decode(closes[0].content) == decode(closes[1].content)
    sells = await pool.fetchval(
        "SELECT count(*) FROM agent_transactions WHERE agent_id = $1 AND input_mint = $2", agent, STEADY
    )
    assert sells == 1


async def test_racing_close_requests_sell_once(in_loop_client, pool, settings, database_url, worker):
    _, agent, _, headers = await owner(pool, settings)
    position_id = decode((await buy(in_loop_client, headers, agent)).content)["positionId"]
    user = await pool.fetchval("SELECT user_id FROM agents WHERE id = $1", agent)
    requests = [
        await pool.fetchval(
            """INSERT INTO trade_requests (user_id, agent_id, kind, params, request_hash)
               VALUES ($1, $2, 'close', $3, $4) RETURNING id""",
            user,
            agent,
            {"positionId": position_id, "reason": "manual"},
            f"race-{i}",
        )
        for i in range(3)
    ]
    pools = [await create_pool(database_url, min_size=1, max_size=4) for _ in range(2)]
    try:
        contexts = [execution_context(p, settings, MarketBundle(replay_market())) for p in pools]
        await asyncio.gather(*(drain_requests(c, settings) for c in contexts))
    finally:
        for p in pools:
            await p.close()

    answers = [await in_loop_client.get(f"/api/v1/trades/requests/{r}", headers=headers) for r in requests]
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"POSITION_ALREADY_CLOSED"}
    sells = await pool.fetchval(
        "SELECT count(*) FROM agent_transactions WHERE agent_id = $1 AND input_mint = $2", agent, STEADY
    )
    assert sells == 1


async def test_concurrent_close_requests_over_http_sell_once(in_loop_client, pool, settings, worker):
    """Three closes of one position sent at once, all waiting on the app's shared listener: one sale; every
    other answer says the position is closed (409) or, for a request that arrived after the sale committed,
    gone (404)."""
    _, agent, _, headers = await owner(pool, settings)
    position_id = decode((await buy(in_loop_client, headers, agent)).content)["positionId"]
    url = f"/api/v1/agent-positions/{agent}/{position_id}/close"

    answers = await asyncio.gather(*(in_loop_client.post(url, headers=headers) for _ in range(3)))

    assert [a.status_code for a in answers].count(200) == 1, [a.text for a in answers]
    refused = {(a.status_code, a.json()["code"]) for a in answers if a.status_code != 200}
    assert refused <= {(409, "POSITION_ALREADY_CLOSED"), (404, "POSITION_NOT_FOUND")}, refused
    sells = await pool.fetchval(
        "SELECT count(*) FROM agent_transactions WHERE agent_id = $1 AND input_mint = $2", agent, STEADY
    )
    assert sells == 1


async def test_trade_errors_map_to_http(in_loop_client, pool, settings, worker):
    user, agent, _, headers = await owner(pool, settings)
    _, foreign_agent, _, _ = await owner(pool, settings)
    foreign_signal = await insert_signal(pool, await create_user(pool))

    assert (await buy(in_loop_client, headers, foreign_agent)).status_code == 404
    assert (await buy(in_loop_client, headers, "not-a-uuid")).json()["error"] == "Invalid agent ID format"
    missing = await in_loop_client.post("/api/v1/trades/execute", json={"agentId": str(agent)}, headers=headers)
    assert missing.status_code == 400 and missing.json()["error"] == "tokenAddress is required"
    for bad in (-1, 0, "abc", True):
        assert (await buy(in_loop_client, headers, agent, positionSize=bad)).status_code == 400, bad
    assert (await buy(in_loop_client, headers, agent, signalId=foreign_signal)).status_code == 404
    malformed = await in_loop_client.post("/api/v1/trades/execute", content=b"{nope", headers=headers)
    assert malformed.status_code == 400
    assert (
        await in_loop_client.post("/api/v1/trades/execute", json={"agentId": str(agent), "tokenAddress": STEADY})
    ).status_code == 401

    too_big = await buy(in_loop_client, headers, agent, positionSize=2.5)
    assert too_big.status_code == 400 and too_big.json()["code"] == "EXCEEDS_MAX_PURCHASE"
    assert (await buy(in_loop_client, headers, agent)).status_code == 200
    exists = await buy(in_loop_client, headers, agent)
    assert exists.status_code == 409 and exists.json() == {
        "error": f"Position already exists for token: {STEADY}",
        "code": "POSITION_EXISTS",
        "details": None,
    }
    position_id = await pool.fetchval("SELECT id FROM agent_positions WHERE agent_id = $1", agent)
    bad_reason = await in_loop_client.post(
        f"/api/v1/agent-positions/{agent}/{position_id}/close", json={"reason": "take_profit"}, headers=headers
    )
    assert bad_reason.status_code == 400
    assert (
        await in_loop_client.post(f"/api/v1/agent-positions/{agent}/nope/close", headers=headers)
    ).status_code == 400
    foreign = await in_loop_client.post(f"/api/v1/agent-positions/{foreign_agent}/{position_id}/close", headers=headers)
    assert foreign.status_code == 404 and foreign.json()["error"] == "Agent not found"
    unknown = await in_loop_client.post(f"/api/v1/agent-positions/{agent}/{uuid.uuid4()}/close", headers=headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "POSITION_NOT_FOUND"
    del user


async def test_slow_worker_gets_202_then_the_result(pool, settings, database_url, ctx):
    quick = msgspec.structs.replace(settings, trade_request_wait_s=0.3)
    _, agent, _, headers = await owner(pool, settings)
    async with AsyncTestClient(app=create_app(quick, database_url)) as client:
        accepted = await buy(client, headers, agent)
        assert accepted.status_code == 202
        request_id = accepted.json()["requestId"]
        assert accepted.headers["Location"] == f"/api/v1/trades/requests/{request_id}"
        assert (await client.get(accepted.headers["Location"], headers=headers)).status_code == 202

        assert await drain_requests(ctx, settings) >= 1

        done = await client.get(accepted.headers["Location"], headers=headers)
        assert done.status_code == 200 and decode(done.content)["success"] is True
        stranger = access_headers(settings, await create_user(pool))
        assert (await client.get(accepted.headers["Location"], headers=stranger)).status_code == 404


async def test_an_unclaimed_request_expires_instead_of_trading_late(client, pool, settings, ctx):
    user, agent, _, headers = await owner(pool, settings)
    request_id = await pool.fetchval(
        """INSERT INTO trade_requests (user_id, agent_id, kind, params, request_hash, created_at)
           VALUES ($1, $2, 'buy', $3, 'h', now() - interval '1 hour') RETURNING id""",
        user,
        agent,
        {"tokenAddress": STEADY},
    )

    await drain_requests(ctx, settings)

    answer = await client.get(f"/api/v1/trades/requests/{request_id}", headers=headers)
    assert answer.status_code == 503 and answer.json()["code"] == "REQUEST_EXPIRED"
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE agent_id = $1", agent) == 0


async def test_a_request_executed_before_its_worker_died_is_answered_not_repeated(pool, settings, ctx):
    user, agent, _, _ = await owner(pool, settings)
    request_id = await pool.fetchval(
        """INSERT INTO trade_requests (user_id, agent_id, kind, params, request_hash)
           VALUES ($1, $2, 'buy', $3, 'h') RETURNING id""",
        user,
        agent,
        {"tokenAddress": STEADY},
    )
    await pool.execute(
        "INSERT INTO trade_request_outcomes (request_id, result) VALUES ($1, $2)", request_id, {"success": True}
    )

    await drain_requests(ctx, settings)

    row = await pool.fetchrow("SELECT status, result FROM trade_requests WHERE id = $1", request_id)
    assert (row["status"], row["result"]) == ("succeeded", {"success": True})
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE agent_id = $1", agent) == 0


async def test_the_ledger_is_consistent_after_the_api_scenarios(pool):
    assert await run_audit(pool) == []
