"""Price-monitor benchmark: the cost of one tick over many open positions, and tick-to-sale latency.

    uv run python bench/monitor_tick.py                                  # 100k positions, 30 sales
    uv run python bench/monitor_tick.py --positions 20000 --samples 10   # quicker
    uv run python bench/monitor_tick.py --no-db                          # in-memory part only

1. **In memory**: ``--memory-positions`` settled rows in the monitor's position store; a bare loop over
   them (row access + price lookup + one comparison: the floor) against the monitor's evaluation pass
   (``PriceMonitor.decide``) on a quiet tick, same rows, same run; and the first pass, which evaluates
   every position in full (``evaluate_position`` plus the quiet-band computation).
2. **Database** (a fresh database on ``--admin-url``): ``--positions`` settled positions over ``--tokens``
   tokens, each token's price moving inside ±0.5 % per tick. Whole ticks (prices fetched, stored and
   broadcast, the store synced, positions evaluated in memory) are timed: the first one loads the store
   and evaluates every position, the following ones evaluate only positions out of their quiet band. In
   the same run: a bare loop over the store's rows and a bare read of the same positions from PostgreSQL
   (``monitor_open_positions``, what every tick used to pay). The issue's goal is under 50 ms at 100k.
3. **Latency** from the start of the tick that sees a price under a position's stop to the commit of its
   stop-loss sale, with the background positions in place: p50/p99 over ``--samples`` sales.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import types
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DEFAULT_ADMIN_URL, banner, create_database, drop_database, migrate, summary_ms

from app.config import load_settings
from app.db import Q, create_pool
from app.market.replay import ReplayMarket, SimulatedQuoter
from app.market.types import SOL_MINT
from app.worker.execution import execute_buy
from app.worker.main import WorkerContext
from app.worker.monitor import PriceMonitor

D = Decimal
POSITIONS_PER_AGENT = 25
AVERAGE = D("0.001")
SETTINGS = load_settings({"APP_ENV": "test", "LOG_LEVEL": "WARNING", "JWT_SECRET": "bench-" + "x" * 40})


def mint(i: int) -> str:
    return f"Bench{i:039d}"


# --- 1. in memory ---------------------------------------------------------------------------------------------


def settled_rows(n: int, tokens: int, now: datetime) -> list[dict]:
    """Rows as the position store holds them, settled at the average price (peak +10 %,
    lowest −10 %, default stop −32 %, held 10 minutes, default config)."""
    agents = [uuid.uuid4() for _ in range(max(1, n // POSITIONS_PER_AGENT))]
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": uuid.uuid4(), "agent_id": agents[i % len(agents)], "wallet_address": f"sim_{i % len(agents)}",
                "token_address": mint(i % tokens), "token_symbol": "BNCH", "purchase_transaction_id": None,
                "purchase_price": AVERAGE, "purchase_amount": D(1000), "current_stop_loss_percentage": D("-32.00"),
                "peak_price": D("0.0011"), "lowest_price": D("0.0009"), "last_stop_loss_update": now,
                "dca_count": 0, "dca_transaction_ids": [], "last_dca_time": None, "total_invested_sol": D(1),
                "created_at": now - timedelta(minutes=10), "updated_at": now, "remaining_amount": None,
                "take_profit_levels_hit": 0, "take_profit_transaction_ids": [], "last_take_profit_time": None,
                "moon_bag_activated": False, "moon_bag_amount": None, "realized_profit_sol": D(0),
                "tp_batch_start_level": 0, "total_take_profit_levels": None, "wallet_type": "simulation",
            }
        )  # fmt: skip
    return rows


def tick_prices(rng: random.Random, tokens: int) -> dict[str, Decimal]:
    return {mint(t): (AVERAGE * (1 + D(rng.randint(-50, 50)) / 10_000)) for t in range(tokens)}


def in_memory(n: int, tokens: int, ticks: int) -> None:
    banner(f"in memory: {n} positions, {tokens} tokens, {ticks} ticks")
    now = datetime.now(UTC)
    rows = settled_rows(n, tokens, now)
    rng = random.Random(7)
    monitor = PriceMonitor(types.SimpleNamespace(settings=SETTINGS, pool=None), market=None)  # type: ignore[arg-type]
    for row in rows:
        monitor.store.upsert(row)
    for agent_id in {row["agent_id"] for row in rows}:
        monitor.store.set_agent({"id": agent_id, "trading_config": None, "automated_trading_simulation": True,
                                 "automated_trading_live": False, "updated_at": now})  # fmt: skip

    started = time.perf_counter()
    _, evaluated, _ = monitor.decide(tick_prices(rng, tokens), now)
    first = time.perf_counter() - started
    print(f"first pass (every position evaluated in full): {first * 1000:,.0f} ms, {evaluated} evaluated, "
          f"{first / n * 1e6:,.1f} µs/position")  # fmt: skip

    def timed(fn) -> list[float]:
        out = []
        for _ in range(ticks):
            prices = tick_prices(rng, tokens)
            started = time.perf_counter()
            fn(prices)
            out.append(time.perf_counter() - started)
        return out

    def bare(prices: dict[str, Decimal]) -> None:
        for row in rows:
            _ = prices[row["token_address"]] > row["purchase_price"]

    steady_evaluated: list[int] = []

    def steady(prices: dict[str, Decimal]) -> None:
        steady_evaluated.append(monitor.decide(prices, now)[1])

    results = {"bare loop": timed(bare), "evaluation pass (decide), quiet": timed(steady)}
    report(results, n)
    print(f"positions evaluated in full per quiet pass: max {max(steady_evaluated)}")


def report(results: dict[str, list[float]], n: int) -> None:
    floor = min(next(iter(results.values())))
    for name, values in results.items():
        best = min(values)
        print(f"{name:34s} {summary_ms(values)}  {best / n * 1e9:,.0f} ns/position  ×{best / floor:.1f} baseline")


# --- 2. database ----------------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def with_database(admin_url: str, positions: int, tokens: int, ticks: int, samples: int) -> None:
    banner(f"database: {positions} positions on {tokens} tokens, {ticks} ticks, {samples} stop-loss sales")
    url = await create_database(admin_url)
    try:
        await asyncio.to_thread(migrate, url)
        pool = await create_pool(url, min_size=2, max_size=10)
        try:
            await _run_db(pool, url, positions, tokens, ticks, samples)
        finally:
            await pool.close()
    finally:
        await drop_database(admin_url, url)


def _records(tokens: int, ticks: int, samples: int) -> list[dict]:
    rng = random.Random(11)
    records: list[dict] = [{"t": 0, "mint": SOL_MINT, "priceUsd": "150"}]
    for tick in range(ticks + 2):  # background tokens wander inside ±0.5 % around 0.001, one step per second
        records += [{"t": tick, "mint": mint(t), "priceSol": str(AVERAGE * (1 + D(rng.randint(-50, 50)) / 10_000)),
                     "decimals": 6} for t in range(tokens)]  # fmt: skip
    for i in range(samples):  # sample token i: 0.001 until t = 1000 + 10 i + 5, then under its −32 % stop
        token = f"Drop{i:040d}"
        records += [{"t": 0, "mint": token, "priceSol": "0.001", "decimals": 6},
                    {"t": 1000 + 10 * i + 5, "mint": token, "priceSol": "0.0005"},
                    {"t": 1000 + 10 * i + 10, "mint": token, "priceSol": None}]  # fmt: skip
    return records


async def _run_db(pool, url: str, positions: int, tokens: int, ticks: int, samples: int) -> None:
    clock = _Clock()
    replay = ReplayMarket(_records(tokens, ticks, samples), manual=True, loop=False, now=clock)
    market = types.SimpleNamespace(replay=replay, price_source=replay, sol_usd=replay, liquidity=replay,
                                   metrics=replay, quoter=SimulatedQuoter(replay), executor=None, rpc=None)  # fmt: skip
    ctx = WorkerContext(settings=SETTINGS, pool=pool, database_url=url, worker_id="bench-monitor")
    ctx.components["market"] = market
    monitor = PriceMonitor(ctx, market, now=clock)

    user = await pool.fetchval("INSERT INTO users (email) VALUES ('bench-monitor@example.com') RETURNING id")
    agent = await pool.fetchval("INSERT INTO agents (user_id, name) VALUES ($1, 'bench') RETURNING id", user)
    await pool.execute("INSERT INTO agent_wallets VALUES ('sim_bench_monitor', $1, 'simulation')", agent)
    await pool.execute(
        "INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)"
        " VALUES ($1, 'sim_bench_monitor', $2, 'SOL', '1000000')",
        agent, SOL_MINT,
    )  # fmt: skip
    await _background_positions(pool, user, positions, [mint(t) for t in range(tokens)])
    await pool.execute("ANALYZE")
    mints = [mint(t) for t in range(tokens)]

    async def bare_read() -> None:
        await Q.monitor_open_positions.fetch_all(pool, mints)

    async def bare_loop() -> None:
        prices = {m: AVERAGE for m in mints}
        for row in monitor.store.rows.values():
            _ = prices[row["token_address"]] > row["purchase_price"]

    evaluated: list[int] = []
    evaluation_s: list[float] = []

    async def one_tick() -> None:
        replay.step()
        clock.now = datetime.now(UTC)
        tick_report = await monitor.tick()
        evaluated.append(tick_report.evaluated)
        evaluation_s.append(tick_report.evaluation_s)

    started = time.perf_counter()
    first = await monitor.tick()
    first_s = time.perf_counter() - started
    print(f"first tick: {first_s * 1000:.0f} ms, {first.evaluated} positions evaluated in full")
    steps = (("bare loop over the store's rows", bare_loop), ("steady tick (whole)", one_tick),
             ("bare read of the positions (SQL)", bare_read))  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(ticks):
        for name, fn in steps:
            started = time.perf_counter()
            await fn()
            results[name].append(time.perf_counter() - started)
    results["  of which evaluation (decide)"] = evaluation_s
    print("steady ticks (ms):", " ".join(f"{v * 1000:.0f}" for v in results["steady tick (whole)"]))
    report(results, positions)
    best = min(results["steady tick (whole)"])
    print(f"positions in the store: {len(monitor.store.rows)}; evaluated in full per steady tick: max {max(evaluated)}")
    print(
        f"goal < 50 ms per tick for {positions} positions: {'met' if best < 0.05 else 'missed'} (best {best * 1000:.0f} ms)"
    )

    await monitor.start_listening()  # a bought position's event adds its token to the tracking set at once
    latencies = []
    for i in range(samples):
        replay.seek(1000 + 10 * i)
        clock.now = datetime.now(UTC)
        await execute_buy(ctx, agent_id=agent, token_address=f"Drop{i:040d}", position_size=D("0.1"))
        for _ in range(200):  # the position_created event reaches the listener
            if f"Drop{i:040d}" in monitor.tracked:
                break
            await asyncio.sleep(0.005)
        replay.seek(1000 + 10 * i + 5)
        clock.now = datetime.now(UTC)
        started = time.perf_counter()
        tick_report = await monitor.tick()
        await monitor.drain()
        latencies.append(time.perf_counter() - started)
        assert any(kind == "stop_loss" for _, kind in tick_report.actions), tick_report
    await monitor.stop_listening()
    sold = await pool.fetchval("SELECT count(*) FROM agent_historical_swaps WHERE close_reason = 'stop_loss'")
    print(f"tick → stop-loss sale committed: {summary_ms(latencies)} ({sold} sales)")


async def _background_positions(pool, user: uuid.UUID, count: int, tokens: list[str]) -> None:
    """``count`` settled positions on the steady tokens, 25 per agent (the per-agent cap), via plain SQL."""
    await pool.execute(
        """WITH a AS (
               INSERT INTO agents (user_id, name) SELECT $1, 'bg ' || g FROM generate_series(1, $2) g RETURNING id
           ), w AS (
               INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type)
               SELECT 'sim_bg_' || replace(id::text, '-', ''), id, 'simulation' FROM a RETURNING agent_id, wallet_address
           )
           INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_price,
                                        purchase_amount, total_invested_sol, current_stop_loss_percentage,
                                        peak_price, lowest_price)
           SELECT w.agent_id, w.wallet_address, ($3::text[])[1 + (n + k) % cardinality($3::text[])], 'BG',
                  0.001, 1000, 1, -32, 0.0011, 0.0009
           FROM w, generate_series(1, 25) AS k, LATERAL (SELECT abs(hashtext(w.wallet_address)) AS n) h
           ON CONFLICT DO NOTHING""",
        user, max(1, count // POSITIONS_PER_AGENT), tokens,
    )  # fmt: skip
    print(f"background positions: {await pool.fetchval('SELECT count(*) FROM agent_positions')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--memory-positions", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--no-db", action="store_true")
    args = parser.parse_args()
    in_memory(args.memory_positions, args.tokens, max(1, args.ticks // 3))
    if not args.no_db:
        asyncio.run(with_database(args.admin_url, args.positions, args.tokens, args.ticks, args.samples))


if __name__ == "__main__":
    main()
