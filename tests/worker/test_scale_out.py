"""Scale-out: three worker processes share one queue of 50 signals × 200 agents, exactly once, ledger intact."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

from app.audit import run_audit
from app.market.replay import write_jsonl
from app.trading.units import SOL_MINT
from tests.dbutil import PROJECT_ROOT
from tests.factories import create_user
from tests.worker.helpers import extra_mint, insert_signal, records, wait_until

AGENTS = 200
SIGNALS = 50
WORKERS = 3


async def _create_funded_agents(pool, user: uuid.UUID, count: int) -> list[uuid.UUID]:
    async with pool.acquire() as conn, conn.transaction():
        agents = [r["id"] for r in await conn.fetch(
            "INSERT INTO agents (user_id, name) SELECT $1, 'scale ' || g FROM generate_series(1, $2) g RETURNING id",
            user, count,
        )]  # fmt: skip
        await conn.executemany(
            "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'simulation')",
            [(f"sim_{uuid.uuid4().hex}", agent) for agent in agents],
        )
        await conn.execute(
            """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                   transaction_time, input_mint, input_symbol, input_amount, input_price)
               SELECT agent_id, wallet_address, 'DEPOSIT', 0, now(), $2, 'SOL', 3, 0
               FROM agent_wallets WHERE agent_id = ANY($1::uuid[])""",
            agents,
            SOL_MINT,
        )
        await conn.execute(
            """INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
               SELECT agent_id, wallet_address, $2, 'SOL', '3' FROM agent_wallets WHERE agent_id = ANY($1::uuid[])""",
            agents,
            SOL_MINT,
        )
    return agents


async def test_three_workers_two_hundred_agents_fifty_signals(pool, database_url, tmp_path):
    replay_file = tmp_path / "prices.jsonl"
    write_jsonl(records(extra_tokens=SIGNALS), replay_file)
    user = await create_user(pool)
    agents = await _create_funded_agents(pool, user, AGENTS)
    signal_ids = [await insert_signal(pool, user, extra_mint(i), symbol=f"T{i}") for i in range(SIGNALS // 2)]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_ENV": "test",
        "PRICE_SOURCE": "replay",
        "PRICE_REPLAY_FILE": str(replay_file),
        "SIM_RANDOM_SEED": "5",
        "WORKER_CONCURRENCY": "4",
        "WORKER_SIGNAL_POLL_MS": "500",
        "LOG_LEVEL": "WARNING",
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.worker.slow_worker",
            cwd=PROJECT_ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(WORKERS)
    ]
    try:
        # The second half arrives while the workers are busy with the first.
        signal_ids += [
            await insert_signal(pool, user, extra_mint(i), symbol=f"T{i}") for i in range(SIGNALS // 2, SIGNALS)
        ]

        async def drained() -> bool:
            return await pool.fetchval(
                "SELECT bool_and(processed_at IS NOT NULL) FROM trading_signals WHERE id = ANY($1::int[])", signal_ids
            )

        await wait_until(drained, within_s=240, step=0.5)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
        outputs = [await asyncio.wait_for(worker.communicate(), timeout=30) for worker in workers]
    assert [w.returncode for w in workers] == [0] * WORKERS, [err.decode()[-2000:] for _, err in outputs]

    counts = await pool.fetchrow(
        """SELECT count(*) AS rows, count(DISTINCT (signal_id, agent_id)) AS pairs,
                  count(*) FILTER (WHERE status = 'success') AS successes
           FROM signal_executions WHERE signal_id = ANY($1::int[])""",
        signal_ids,
    )
    assert counts["rows"] == counts["pairs"] == AGENTS * SIGNALS
    buys = await pool.fetchval(
        "SELECT count(*) FROM agent_transactions WHERE signal_id = ANY($1::int[]) AND transaction_type = 'SWAP'",
        signal_ids,
    )
    assert buys == counts["successes"] > 0
    claimed_by = await pool.fetchval(
        "SELECT count(DISTINCT worker_id) FROM signal_claims WHERE signal_id = ANY($1::int[])", signal_ids
    )
    assert claimed_by >= 2  # the queue was shared, not drained by one process
    open_positions = await pool.fetchval(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM agent_positions WHERE agent_id = ANY($1::uuid[]) "
        "GROUP BY agent_id) t",
        agents,
    )
    assert open_positions <= 25
    assert await run_audit(pool) == []
