"""List endpoints of the resource API over a large agent (issue 4).

    uv run python bench/resource_lists.py                        # 100k transactions, 10k swaps, ~1 min
    uv run python bench/resource_lists.py --transactions 300000 --seconds 30 --concurrency 64

Creates a throwaway database (``--admin-url``, default ``$BENCH_ADMIN_URL`` or the local server) holding one
agent with ``--transactions`` ledger rows and ``--swaps`` closed trades, plus as many rows again spread over
``--noise-agents`` other agents, each with a quarter of that volume (so the planner sees a shared table, as in
production), then:

1. **Plans**: ``EXPLAIN`` of every list/export query the routes run, with the filter combinations the routes
   pass, both as a custom plan and as the generic plan asyncpg's prepared statements switch to after five
   executions. Any ``Seq Scan`` on a resource table fails the run (exit code 1).
2. **Latency under load**: the API (``nexgent serve``) as a subprocess (no worker, which would start managing
   the synthetic positions); ``--concurrency``
   clients request the list endpoints (first page, a deep page, filtered pages) for ``--seconds``, while the
   same clients interleave ``GET /api/v1/health/live``. p50/p99 of each are reported side by side, so the
   list p99 reads against the cost of a request that touches no table, in the same run and load.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    DEFAULT_ADMIN_URL,
    JWT_SECRET,
    Stack,
    banner,
    create_database,
    drop_database,
    migrate,
    percentile,
    populate,
)

from app.api.auth import issue_access_token
from app.db import Q
from app.trading.units import SOL_MINT

TOKEN = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
POSITIONS_PER_AGENT = 20
RESOURCE_TABLES = {
    "agent_transactions",
    "agent_historical_swaps",
    "trading_signals",
    "agent_balances",
    "agent_positions",
}


async def fill(pool: asyncpg.Pool, agent_id: uuid.UUID, wallet: str, transactions: int, swaps: int) -> None:
    await pool.execute(
        """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
               transaction_time, input_mint, input_symbol, input_amount, output_mint, output_symbol, output_amount,
               is_dca, signal_id)
           SELECT $1, $2, (CASE WHEN g % 10 = 0 THEN 'DEPOSIT' ELSE 'SWAP' END)::"TransactionType", 1,
                  timestamp '2025-01-01' + g * interval '7 seconds', $3, 'SOL', 0.01, $4, 'USDC', 1, g % 7 = 0, NULL
           FROM generate_series(1, $5) g""",
        agent_id,
        wallet,
        SOL_MINT,
        TOKEN,
        transactions,
    )
    # Token balances and open positions (each backed by one of the agent's swaps), as a busy agent has.
    await pool.execute(
        """INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
           SELECT $1, $2, 'BenchToken' || g, 'TOK', '100' FROM generate_series(1, $3) g""",
        agent_id,
        wallet,
        POSITIONS_PER_AGENT,
    )
    await pool.execute(
        """INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_transaction_id,
               purchase_price, purchase_amount, total_invested_sol)
           SELECT $1, $2, 'BenchToken' || n, 'TOK', id, 0.001, 100, 0.1
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM agent_transactions
                 WHERE agent_id = $1 AND transaction_type = 'SWAP' LIMIT $3) t""",
        agent_id,
        wallet,
        POSITIONS_PER_AGENT,
    )
    await pool.execute(
        """INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount,
               purchase_price, sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time)
           SELECT $1, $2, CASE WHEN g % 3 = 0 THEN $3 ELSE $4 END, 'TOK', 1, 0.001, 0.0011, 10, (g % 41) - 20, 0.0001,
                  timestamp '2025-01-01' + g * interval '1 minute', timestamp '2025-01-01' + g * interval '1 minute' + interval '5 minutes'
           FROM generate_series(1, $5) g""",
        agent_id,
        wallet,
        TOKEN,
        SOL_MINT,
        swaps,
    )


def seq_scans(plan: dict[str, Any]) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in RESOURCE_TABLES:
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", []):
        found.extend(seq_scans(child))
    return found


def plan_cases(agent_id: uuid.UUID, user_id: uuid.UUID, wallet: str) -> list[tuple[str, str, tuple[Any, ...]]]:
    none12 = (None,) * 12
    return [
        (
            "transactions: first page",
            "api_list_transactions",
            (agent_id, None, None, None, None, None, None, None, 100, 0),
        ),
        (
            "transactions: deep page",
            "api_list_transactions",
            (agent_id, None, None, None, None, None, None, None, 100, 50_000),
        ),
        (
            "transactions: wallet + type + window",
            "api_list_transactions",
            (agent_id, wallet, "SWAP", None, None, None, None, None, 100, 0),
        ),
        ("transactions: isDca", "api_list_transactions", (agent_id, None, None, None, None, None, True, None, 100, 0)),
        ("swaps: first page", "api_list_swaps", (agent_id, *none12, 100, 0)),
        ("swaps: deep page", "api_list_swaps", (agent_id, *none12, 100, 9_000)),
        ("swaps: token filter", "api_list_swaps", (agent_id, None, TOKEN, *(None,) * 10, 100, 0)),
        ("swaps: export batch", "api_export_swaps", (agent_id, *none12, None, None, 1000)),
        ("signals: first page", "api_list_signals", (user_id, None, None, None, None, 100, 0)),
        ("signals: export batch", "api_export_signals", (user_id, None, None, None, None, 0, 1000)),
        ("balances", "api_list_balances", (agent_id, None)),
        ("positions", "api_open_positions", (agent_id, None)),
    ]


async def check_plans(pool: asyncpg.Pool, cases: list[tuple[str, str, tuple[Any, ...]]]) -> bool:
    banner("plans (custom and generic)")
    ok = True
    async with pool.acquire() as conn:
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            for label, name, args in cases:
                plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {getattr(Q, name).sql}", *args)
                root = (plan if isinstance(plan, list) else __import__("json").loads(plan))[0]["Plan"]
                scans = seq_scans(root)
                status = "SEQ SCAN on " + ",".join(scans) if scans else "index"
                ok = ok and not scans
                print(f"  [{mode.split('_')[1]:7}] {label:40} {status:24} cost={root['Total Cost']:.0f}")
    return ok


async def load(base_url: str, headers: dict[str, str], paths: list[str], seconds: float, concurrency: int) -> None:
    banner(f"load: {concurrency} clients, {seconds:.0f} s")
    lists: list[float] = []
    health: list[float] = []
    per_path: dict[str, list[float]] = {path: [] for path in paths}
    errors = 0
    cycle = itertools.cycle([*paths, "/api/v1/health/live"])
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            path = next(cycle)
            started = time.perf_counter()
            async with session.get(base_url + path, headers=headers) as response:
                await response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    errors += 1
            (health if path.endswith("/health/live") else lists).append(elapsed)
            if path in per_path:
                per_path[path].append(elapsed)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    for label, values in (("list endpoints", lists), ("health/live", health)):
        print(
            f"  {label:15} n={len(values):6}  p50={percentile(values, 50) * 1000:7.1f} ms  "
            f"p99={percentile(values, 99) * 1000:7.1f} ms"
        )
    for path, values in per_path.items():
        print(
            f"    {path.split('?')[0]:34} {path.partition('?')[2][47:][:50]:50} p99={percentile(values, 99) * 1000:7.1f} ms"
        )
    ratio = percentile(lists, 99) / percentile(health, 99)
    print(f"  list p99 / health p99 = {ratio:.2f}   non-200 answers: {errors}")


async def wait_live(stack: Stack, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{stack.base_url}/api/v1/health/live") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"API not live after {within_s}s; logs in {stack.log_dir}")


async def main(args: argparse.Namespace) -> int:
    database_url = await create_database(args.admin_url)
    stack: Stack | None = None
    try:
        migrate(database_url)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        assert pool is not None
        try:
            banner("population")
            started = time.monotonic()
            tenants = await populate(
                pool, users=1 + args.noise_agents, agents_per_user=1, keys_per_user=1, deposit_sol=1
            )
            target = tenants[0]
            agent_id = target.agent_ids[0]
            wallet = await pool.fetchval("SELECT wallet_address FROM agent_wallets WHERE agent_id = $1", agent_id)
            await fill(pool, agent_id, wallet, args.transactions, args.swaps)
            for tenant in tenants[1:]:
                other = tenant.agent_ids[0]
                other_wallet = await pool.fetchval(
                    "SELECT wallet_address FROM agent_wallets WHERE agent_id = $1", other
                )
                await fill(pool, other, other_wallet, args.transactions // 4, args.swaps // 4)
            await pool.execute(
                "INSERT INTO trading_signals (token_address, signal_type, signal_strength, user_id, processed_at)"
                " SELECT $1, 'bench', 1 + g % 5, $2, now() FROM generate_series(1, $3) g",
                TOKEN,
                target.user_id,
                args.swaps,
            )
            await pool.execute("ANALYZE")
            print(
                f"  {args.transactions} transactions and {args.swaps} swaps for the agent (+ noise) in {time.monotonic() - started:.1f} s"
            )
            plans_ok = await check_plans(pool, plan_cases(agent_id, target.user_id, wallet))
        finally:
            await pool.close()

        # No worker: it would start managing the synthetic positions (unpriced tokens get written off) while
        # the load runs; the list endpoints need only the API and the database.
        stack = Stack(database_url, workers=0)
        stack.start()
        await wait_live(stack)
        email = "bench@example.com"
        headers = {"Authorization": f"Bearer {issue_access_token(JWT_SECRET, target.user_id, email)}"}
        a = f"agentId={agent_id}"
        paths = [
            f"/api/v1/agent-transactions?{a}",
            f"/api/v1/agent-transactions?{a}&offset=50000",
            f"/api/v1/agent-transactions?{a}&transactionType=SWAP&limit=50",
            f"/api/v1/agent-historical-swaps?{a}",
            f"/api/v1/agent-historical-swaps?{a}&offset=9000",
            f"/api/v1/agent-historical-swaps?{a}&tokenAddress={TOKEN}&minProfitLossUsd=0",
            "/api/v1/trading-signals?limit=100",
            f"/api/v1/agent-balances?{a}",
        ]
        await load(stack.base_url, headers, paths, args.seconds, args.concurrency)
        return 0 if plans_ok else 1
    finally:
        if stack is not None:
            stack.stop()
        await drop_database(args.admin_url, database_url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--swaps", type=int, default=10_000)
    parser.add_argument("--noise-agents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    sys.exit(asyncio.run(main(parser.parse_args())))
