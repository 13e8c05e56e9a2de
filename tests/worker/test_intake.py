"""Signal intake: fan-out with reasons, exactly once across racing workers and a SIGKILL, catch-up, wake-up."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from decimal import Decimal

import msgspec
import pytest

from app.audit import run_audit
from app.db import Q, create_pool
from app.market.replay import write_jsonl
from app.metrics import REGISTRY
from app.worker.intake import drain_signals, signal_intake_service
from app.worker.main import WorkerContext
from tests.dbutil import PROJECT_ROOT
from tests.factories import create_agent, create_user, deposit_sol
from tests.worker.helpers import (
    METRICS,
    STEADY,
    MarketBundle,
    execution_context,
    extra_mint,
    insert_signal,
    no_randomization,
    records,
    replay_market,
    wait_until,
)

UNKNOWN = "Unkn1111111111111111111111111111111111111111"


def counted(status: str) -> float:
    return REGISTRY.get_sample_value("signal_processing_total", {"status": status}) or 0.0


async def agent_for(pool, user, *, fund: str | None = "3", config: dict | None = None, automated: bool = True):
    agent, wallet = await create_agent(pool, user, trading_config=config)
    if fund:
        await deposit_sol(pool, agent, wallet, fund)
    if not automated:
        await pool.execute("UPDATE agents SET automated_trading_simulation = false WHERE id = $1", agent)
    return agent


async def executions(pool, signal_id: int) -> dict[uuid.UUID, tuple[str, str | None, uuid.UUID | None]]:
    rows = await pool.fetch(
        "SELECT agent_id, status, error, transaction_id FROM signal_executions WHERE signal_id = $1", signal_id
    )
    return {r["agent_id"]: (r["status"], r["error"], r["transaction_id"]) for r in rows}


@pytest.fixture(scope="module")
def ctx(pool, settings):
    return execution_context(pool, settings, MarketBundle(replay_market(extra_tokens=40)))


async def test_every_agent_of_the_owner_gets_exactly_one_row(pool, settings, ctx):
    user = await create_user(pool)
    buyer = await agent_for(pool, user)
    picky = await agent_for(pool, user, config={"signals": {"minScore": 5}})
    paused = await agent_for(pool, user, automated=False)
    broke = await agent_for(pool, user, fund=None)
    whitelist = await agent_for(
        pool, user, config={"signals": {"tokenFilterMode": "whitelist", "tokenList": [METRICS]}}
    )
    blacklist = await agent_for(pool, user, config={"signals": {"tokenFilterMode": "blacklist", "tokenList": [STEADY]}})
    typed = await agent_for(pool, user, config={"signals": {"allowedSignalTypes": ["buy"]}})
    walletless = await pool.fetchval("INSERT INTO agents (user_id, name) VALUES ($1, 'bare') RETURNING id", user)
    stranger = await agent_for(pool, await create_user(pool))
    signal_id = await insert_signal(pool, user, STEADY, strength=3)
    before = {status: counted(status) for status in ("success", "failed", "skipped")}

    assert await drain_signals(ctx, settings, "w1") >= 1

    rows = await executions(pool, signal_id)
    assert stranger not in rows and len(rows) == 8
    status, error, tx_id = rows[buyer]
    assert (status, error) == ("success", None)
    assert await pool.fetchval("SELECT signal_id FROM agent_transactions WHERE id = $1", tx_id) == signal_id
    assert rows[picky][:2] == ("skipped", "Signal strength 3 < minScore 5")
    assert rows[paused][:2] == ("skipped", "Automated trading is disabled for simulation mode")
    assert rows[broke][:2] == ("failed", "Insufficient SOL balance")
    assert rows[whitelist][:2] == ("skipped", f"Token {STEADY} not in whitelist")
    assert rows[blacklist][:2] == ("skipped", f"Token {STEADY} is blacklisted")
    assert rows[typed][:2] == ("skipped", "Signal type 'Hypersurge' not in allowed types [buy]")
    assert rows[walletless][:2] == ("failed", "No wallet found for agent")
    processed = await pool.fetchrow("SELECT processed_at, attempts FROM trading_signals WHERE id = $1", signal_id)
    assert processed["processed_at"] is not None and processed["attempts"] == 1
    assert {status: counted(status) - before[status] for status in before} == {"success": 1, "failed": 2, "skipped": 5}
    assert REGISTRY.get_sample_value("worker_lag_seconds") is not None


async def test_token_metric_bounds_are_checked_with_metrics_fetched_once(pool, settings, ctx):
    user = await create_user(pool)
    bounds = {"marketCapMin": 500000, "marketCapMax": 2000000, "liquidityMin": 100000, "holderCountMin": 500}
    within = await agent_for(pool, user, config={"signals": bounds})
    too_small = await agent_for(
        pool, user, config={"signals": {**bounds, "marketCapMin": 5000000, "marketCapMax": None}}
    )
    known = await insert_signal(pool, user, METRICS, symbol="MTRC")
    unknown = await insert_signal(pool, user, UNKNOWN, symbol="UNK")
    no_bounds = await agent_for(pool, user)

    await drain_signals(ctx, settings, "w1")

    rows = await executions(pool, known)
    assert rows[within][0] == "success"
    assert rows[too_small][:2] == ("skipped", "Token market cap 1000000 < min 5000000")
    assert rows[no_bounds][0] == "success"
    rows = await executions(pool, unknown)
    reason = "Token metrics unavailable (Jupiter API); agent has token metrics bounds set"
    assert rows[within][:2] == rows[too_small][:2] == ("skipped", reason)
    assert rows[no_bounds][:2] == (
        "failed",
        f"Trade execution failed: Jupiter API error: No routes found for {UNKNOWN}",
    )


async def test_signals_without_an_owner_are_marked_processed(pool, settings, ctx):
    signal_id = await insert_signal(pool, None)

    await drain_signals(ctx, settings, "w1")

    assert await pool.fetchval("SELECT processed_at IS NOT NULL FROM trading_signals WHERE id = $1", signal_id)
    assert await executions(pool, signal_id) == {}


async def test_a_worker_that_was_down_catches_up_in_order(pool, settings, ctx):
    user = await create_user(pool)
    agent = await agent_for(pool, user, fund="20", config=no_randomization())
    signal_ids = [await insert_signal(pool, user, extra_mint(i), symbol=f"T{i}") for i in range(5)]

    await drain_signals(ctx, settings, "w1")

    buys = await pool.fetch(
        "SELECT signal_id FROM agent_transactions WHERE agent_id = $1 AND transaction_type = 'SWAP' "
        "ORDER BY transaction_time",
        agent,
    )
    assert [r["signal_id"] for r in buys] == signal_ids
    processed = await pool.fetch(
        "SELECT id FROM trading_signals WHERE id = ANY($1::int[]) ORDER BY processed_at", signal_ids
    )
    assert [r["id"] for r in processed] == signal_ids


async def test_two_workers_racing_on_one_queue_execute_each_pair_once(pool, settings, database_url):
    user = await create_user(pool)
    agents = [await agent_for(pool, user, fund="30") for _ in range(6)]
    signal_ids = [await insert_signal(pool, user, extra_mint(10 + i), symbol=f"T{10 + i}") for i in range(12)]
    pools = [await create_pool(database_url, min_size=1, max_size=6) for _ in range(2)]
    try:
        contexts = [execution_context(p, settings, MarketBundle(replay_market(extra_tokens=40))) for p in pools]
        done = await asyncio.gather(*(drain_signals(c, settings, f"racer-{i}") for i, c in enumerate(contexts)))
    finally:
        for p in pools:
            await p.close()

    assert sum(done) >= len(signal_ids)
    pairs = await pool.fetch(
        "SELECT signal_id, agent_id, status FROM signal_executions WHERE signal_id = ANY($1::int[])", signal_ids
    )
    assert len(pairs) == len(signal_ids) * len(agents)
    assert {r["status"] for r in pairs} == {"success"}
    trades = await pool.fetchval(
        "SELECT count(*) FROM agent_transactions WHERE signal_id = ANY($1::int[]) AND transaction_type = 'SWAP'",
        signal_ids,
    )
    assert trades == len(pairs)
    assert await run_audit(pool) == []


async def test_the_claim_count_commits_asynchronously_without_changing_its_connection(pool):
    # The count is on every signal's latency path, so it does not wait for the WAL flush; the connection goes
    # back to the pool, where trades must keep synchronous commits.
    user = await create_user(pool)
    signal_id = await insert_signal(pool, user)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        first = await Q.worker_count_claim.fetch_val(conn, signal_id, "w1")
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        # Inside a transaction the setting is visible until its commit: the statement's own commit is the one
        # that does not wait.
        async with conn.transaction():
            second = await Q.worker_count_claim.fetch_val(conn, signal_id, "w2")
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    assert (first, second) == (1, 2)
    assert await pool.fetchval("SELECT worker_id FROM signal_claims WHERE signal_id = $1", signal_id) == "w2"


async def test_a_poison_signal_is_written_off_and_does_not_block_the_queue(pool, settings, ctx):
    class ExplodingMetrics:
        async def token_metrics(self, mint: str):
            if mint == METRICS:
                raise RuntimeError("boom")
            return None

    poison_settings = msgspec.structs.replace(settings, worker_signal_max_attempts=2, worker_signal_retry_base_s=0.0)
    user = await create_user(pool)
    agent = await agent_for(pool, user, config={"signals": {"holderCountMin": 1}})
    plain = await agent_for(pool, user)
    poison = await insert_signal(pool, user, METRICS, symbol="MTRC")
    after = await insert_signal(pool, user, STEADY)
    original, ctx.metrics = ctx.metrics, ExplodingMetrics()
    try:
        await drain_signals(ctx, poison_settings, "w1")
    finally:
        ctx.metrics = original

    rows = await executions(pool, poison)
    message = "Signal processing abandoned after 2 attempts: RuntimeError: boom"
    assert rows[agent][:2] == rows[plain][:2] == ("failed", message)
    assert await pool.fetchval("SELECT processed_at IS NOT NULL FROM trading_signals WHERE id = $1", poison)
    assert await pool.fetchval("SELECT attempts FROM signal_claims WHERE signal_id = $1", poison) == 3
    assert (await executions(pool, after))[plain][0] == "success"


async def test_listen_wakes_the_worker_and_reconnects_after_the_connection_drops(pool, settings, database_url, ctx):
    slow_poll = msgspec.structs.replace(settings, worker_signal_poll_ms=600_000)  # only NOTIFY can wake it
    worker = WorkerContext(settings=slow_poll, pool=pool, database_url=database_url, worker_id="listener-test")
    worker.components["execution"] = ctx
    user = await create_user(pool)
    await agent_for(pool, user)

    async def listener_pid() -> int | None:
        return await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%signal_created%'"
        )

    async def processed(signal_id: int) -> bool:
        return await pool.fetchval("SELECT processed_at IS NOT NULL FROM trading_signals WHERE id = $1", signal_id)

    async def listening() -> bool:
        return await listener_pid() is not None

    service = asyncio.create_task(signal_intake_service(worker))
    try:
        await wait_until(listening, within_s=10)
        first = await insert_signal(pool, user)
        await wait_until(lambda: processed(first), within_s=5)

        old = await listener_pid()
        await pool.execute("SELECT pg_terminate_backend($1)", old)

        async def new_listener() -> bool:
            pid = await listener_pid()
            return pid is not None and pid != old

        await wait_until(new_listener, within_s=10)
        second = await insert_signal(pool, user, extra_mint(30), symbol="T30")
        await wait_until(lambda: processed(second), within_s=5)
    finally:
        worker.stopping.set()
        await asyncio.wait_for(service, timeout=10)


# --------------------------------------------------------------------------------------------------
# A real worker process killed mid-signal


async def _start_worker(database_url: str, replay_file: str, delay_s: float) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_ENV": "test",
        "PRICE_SOURCE": "replay",
        "PRICE_REPLAY_FILE": replay_file,
        "SIM_RANDOM_SEED": "11",
        "WORKER_CONCURRENCY": "2",
        "WORKER_SIGNAL_POLL_MS": "200",
        "WORKER_HEARTBEAT_S": "0.5",
        "LOG_LEVEL": "WARNING",
        "TEST_QUOTE_DELAY_S": str(delay_s),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.worker.slow_worker", cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_worker_killed_mid_signal_loses_nothing_and_duplicates_nothing(pool, database_url, tmp_path):
    replay_file = tmp_path / "prices.jsonl"
    write_jsonl(records(extra_tokens=40), replay_file)
    user = await create_user(pool)
    agents = [await agent_for(pool, user, fund="10") for _ in range(6)]
    signal_ids = [await insert_signal(pool, user, extra_mint(20 + i), symbol=f"T{20 + i}") for i in range(3)]

    async def successes(signal_id: int) -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM signal_executions WHERE signal_id = $1 AND status = 'success'", signal_id
        )

    slow = await _start_worker(database_url, str(replay_file), delay_s=0.4)
    try:
        await wait_until(lambda: _at_least(successes(signal_ids[0]), 2), within_s=30)
    finally:
        slow.send_signal(signal.SIGKILL)
        await slow.wait()
    assert slow.returncode == -signal.SIGKILL
    assert not await pool.fetchval("SELECT processed_at IS NOT NULL FROM trading_signals WHERE id = $1", signal_ids[0])
    assert 2 <= await successes(signal_ids[0]) < len(agents)

    restarted = await _start_worker(database_url, str(replay_file), delay_s=0)
    try:

        async def all_processed() -> bool:
            return await pool.fetchval(
                "SELECT bool_and(processed_at IS NOT NULL) FROM trading_signals WHERE id = ANY($1::int[])", signal_ids
            )

        await wait_until(all_processed, within_s=30)
    finally:
        restarted.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(restarted.communicate(), timeout=20)
    assert restarted.returncode == 0, stderr.decode()

    for signal_id in signal_ids:
        rows = await executions(pool, signal_id)
        assert set(rows) == set(agents) and {status for status, _, _ in rows.values()} == {"success"}
        buys = await pool.fetch(
            "SELECT agent_id, count(*) AS n FROM agent_transactions WHERE signal_id = $1 GROUP BY agent_id", signal_id
        )
        assert {r["agent_id"]: r["n"] for r in buys} == dict.fromkeys(agents, 1)
    assert await pool.fetchval("SELECT attempts FROM signal_claims WHERE signal_id = $1", signal_ids[0]) == 2
    balances = await pool.fetch(
        "SELECT balance FROM agent_balances WHERE agent_id = ANY($1::uuid[]) AND token_address = $2",
        agents,
        "So11111111111111111111111111111111111111112",
    )
    assert all(Decimal(r["balance"]) >= Decimal("0.5") for r in balances)
    assert await run_audit(pool) == []


async def _at_least(count, n: int) -> bool:
    return await count >= n
