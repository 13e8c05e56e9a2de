"""Trading worker benchmark (issue 5): signal-to-fill latency for one agent, and fan-out to many agents.

    uv run python bench/worker_fanout.py                      # 200 latency samples, fan-out to 1,000 agents
    uv run python bench/worker_fanout.py --signals 500 --agents 2000 --concurrency 4

Runs the real intake in this process (``signal_intake_service``: LISTEN wake-up, claim, eligibility, the buy
path with its lock order and ledger writes, replay market with the simulated quoter) against a fresh database
on ``--admin-url``, and prints each figure next to its floor measured in the same run:

* **signal-to-fill latency, 1 agent**: from the signal's INSERT having committed (its statement returned:
  where the API answers 201, "accepted") to the buy's ``trade`` event arriving (NOTIFY after the fill's
  commit), p50/p99. Floor: the same NOTIFY round trip around one bare asyncpg transaction writing the same
  rows (transaction, two balances, position, execution row), also timed after its signal row is stored.
  Engine and floor samples alternate, after ``--warmup`` pairs left out of the percentiles (the first
  signal of a fresh worker prepares its statements on each pooled connection: it is printed on its own).
* **fan-out, 1 signal → N agents**: from sending the signal's INSERT to ``processed_at`` being set (every
  agent has its row), on ``--concurrency`` lanes (default: the worker's own ``WORKER_CONCURRENCY`` default).
  Floor: N bare transactions writing the same rows, on the same number of connections. ``--rounds`` rounds
  (fresh agents each), engine and floor alternating which goes first; the median ratio is reported.

Alternating matters on a shared machine: its load drifts within a run, and two phases measured one after the
other can differ by more than the engine's overhead.

The goals (p99 < 10 ms; 1,000 agents < 1 s on 2 cores) are only meaningful next to the floor: on a loaded
or small machine the floor itself can exceed them, and the ratio is the figure that travels.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from uvloop import new_event_loop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.config import Settings, load_settings  # noqa: E402
from app.db import create_pool  # noqa: E402
from app.db.migrate import apply_migrations  # noqa: E402
from app.market.replay import ReplayMarket, SimulatedQuoter, sample_mint  # noqa: E402
from app.trading.config import config_to_json, default_config  # noqa: E402
from app.trading.units import SOL_MINT  # noqa: E402
from app.worker.execution import ExecutionContext, build_execution_context  # noqa: E402
from app.worker.intake import signal_intake_service  # noqa: E402
from app.worker.main import WorkerContext, freeze_startup_heap  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
STORED_CONFIG = config_to_json(default_config())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def line(label: str, values: list[float], floor: list[float]) -> None:
    p50, p99, f50, f99 = pct(values, 50), pct(values, 99), pct(floor, 50), pct(floor, 99)
    print(
        f"{label}: p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  |  floor p50 {f50 * 1000:.2f} ms  "
        f"p99 {f99 * 1000:.2f} ms  |  ratio p50 {p50 / f50:.2f}x  p99 {p99 / f99:.2f}x  (n={len(values)})"
    )


def postgres_cpu_seconds() -> float | None:
    """CPU (user + system) spent so far by every process named ``postgres`` on this machine, or None.

    Read from /proc, so only when the database runs here; the bench's own database is the only busy one
    while it measures, so the difference over a phase is that phase's database CPU.
    """
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone, or not ours to read
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if name == "postgres":
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks if total else None


def cpu_line(label: str, agents: int, ours: float | None, floor: float | None) -> str:
    if ours is None or floor is None or floor <= 0:
        return f"{label}: n/a"
    return (f"{label}: {ours / agents * 1000:.2f} ms/agent  |  floor {floor / agents * 1000:.2f} ms/agent  |  "
            f"ratio {ours / floor:.2f}x")  # fmt: skip


def elapsed(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


class GcPauses:
    """Garbage-collector pauses of this process by generation (``gc.callbacks``): a full collection over a big
    heap stalls every trade in flight, so the bench prints them beside the latency."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def summary(self) -> str:
        return "  ".join(
            f"gen{g} {len(p)} x max {max(p, default=0) * 1000:.2f} ms" for g, p in sorted(self.pauses.items())
        )


class Market:
    """Constant prices for ``tokens`` generated mints (the shape of ``app.market.Market``)."""

    def __init__(self, tokens: int) -> None:
        self.mints = [sample_mint("bench", f"B{i}") for i in range(tokens)]
        rows = [{"t": 0, "mint": SOL_MINT, "priceUsd": "150"}]
        rows += [{"t": 0, "mint": m, "symbol": f"B{i}", "decimals": 6, "priceSol": "0.00001", "liquidityUsd": "1e9"}
                 for i, m in enumerate(self.mints)]  # fmt: skip
        self.replay = ReplayMarket(rows, manual=True)
        self.price_source = self.sol_usd = self.liquidity = self.metrics = self.replay
        self.quoter = SimulatedQuoter(self.replay)
        self.rpc = None


async def fresh_database(admin_url: str) -> tuple[str, str]:
    name = f"nx_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    await asyncio.to_thread(apply_migrations, url)
    return name, url


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def funded_agents(pool: asyncpg.Pool, users: int, per_user: int) -> list[tuple[uuid.UUID, list[uuid.UUID]]]:
    out = []
    async with pool.acquire() as conn, conn.transaction():
        for _ in range(users):
            user = await conn.fetchval("INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4().hex}@b.io")
            # A stored config, as every agent whose config was ever saved through the API has one.
            agents = [r["id"] for r in await conn.fetch(
                "INSERT INTO agents (user_id, name, trading_config) "
                "SELECT $1, 'bench ' || g, $3 FROM generate_series(1, $2) g RETURNING id",
                user, per_user, STORED_CONFIG)]  # fmt: skip
            await conn.executemany(
                "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'simulation')",
                [(f"sim_{uuid.uuid4().hex}", a) for a in agents],
            )
            out.append((user, agents))
        created = [a for _, agents in out for a in agents]
        await conn.execute(
            """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                   transaction_time, input_mint, input_symbol, input_amount, input_price)
               SELECT agent_id, wallet_address, 'DEPOSIT', 0, now(), $1, 'SOL', 5, 0
               FROM agent_wallets WHERE agent_id = ANY($2::uuid[])""",
            SOL_MINT,
            created,
        )
        await conn.execute(
            """INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
               SELECT agent_id, wallet_address, $1, 'SOL', '5' FROM agent_wallets WHERE agent_id = ANY($2::uuid[])""",
            SOL_MINT,
            created,
        )
    return out


async def wallets_of(pool: asyncpg.Pool, agents: list[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
    rows = await pool.fetch(
        "SELECT agent_id, wallet_address FROM agent_wallets WHERE agent_id = ANY($1::uuid[])", agents
    )
    return [(r["agent_id"], r["wallet_address"]) for r in rows]


# --- floors: the same rows written by bare transactions --------------------------------------------------


async def bare_trade(conn: asyncpg.Connection, agent: uuid.UUID, wallet: str, token: str, signal_id: int) -> None:
    async with conn.transaction():
        tx = await conn.fetchval(
            """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                   transaction_time, input_mint, input_amount, output_mint, output_amount, signal_id)
               VALUES ($1, $2, 'SWAP', 0, now(), $3, 0.1, $4, 10000, $5) RETURNING id""",
            agent, wallet, SOL_MINT, token, signal_id,
        )  # fmt: skip
        await conn.execute(
            """INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
               VALUES ($1, $2, $3, 'SOL', '4.9'), ($1, $2, $4, 'T', '10000')
               ON CONFLICT (wallet_address, token_address) DO UPDATE SET balance = EXCLUDED.balance""",
            agent, wallet, SOL_MINT, token,
        )  # fmt: skip
        await conn.execute(
            """INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol,
                   purchase_transaction_id, purchase_price, purchase_amount) VALUES ($1, $2, $3, 'T', $4, 1, 1)""",
            agent, wallet, token, tx,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO signal_executions (signal_id, agent_id, status, transaction_id) VALUES ($1, $2, 'success', $3)",
            signal_id, agent, tx,
        )  # fmt: skip
        await conn.execute("SELECT pg_notify('bench_floor', $1)", str(tx))


class FloorLatency:
    """The floor of one latency sample: the NOTIFY round trip around one bare transaction writing a buy's rows."""

    def __init__(self, pool: asyncpg.Pool, url: str, token: str) -> None:
        self.pool, self.url, self.token = pool, url, token
        self.got: asyncio.Queue[float] = asyncio.Queue()

    async def __aenter__(self) -> FloorLatency:
        self.listener = await asyncpg.connect(self.url)
        await self.listener.add_listener("bench_floor", lambda *_: self.got.put_nowait(time.perf_counter()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.listener.close()

    async def sample(self, agent: uuid.UUID, wallet: str) -> float:
        user = await self.pool.fetchval("SELECT user_id FROM agents WHERE id = $1", agent)
        signal_id = await self.pool.fetchval(
            "INSERT INTO trading_signals (token_address, signal_type, signal_strength, user_id, processed_at) "
            "VALUES ($1, 'floor', 3, $2, now()) RETURNING id", self.token, user,
        )  # fmt: skip
        start = time.perf_counter()
        async with self.pool.acquire() as conn:
            await bare_trade(conn, agent, wallet, self.token, signal_id)
        return await self.got.get() - start


async def floor_fan_out(pool: asyncpg.Pool, rows: list[tuple[uuid.UUID, str]], token: str, lanes: int) -> float:
    user = await pool.fetchval("SELECT user_id FROM agents WHERE id = $1", rows[0][0])
    signal_id = await pool.fetchval(
        "INSERT INTO trading_signals (token_address, signal_type, signal_strength, user_id, processed_at) "
        "VALUES ($1, 'floor', 3, $2, now()) RETURNING id", token, user,
    )  # fmt: skip
    queue = iter(rows)

    async def lane() -> None:
        async with pool.acquire() as conn:
            for agent, wallet in queue:
                await bare_trade(conn, agent, wallet, token, signal_id)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return time.perf_counter() - start


async def processed(pool: asyncpg.Pool, signal_id: int, every: float = 0.001) -> None:
    """Return once the intake has marked the signal processed (polled: the column is the truth)."""
    query = "SELECT processed_at IS NOT NULL FROM trading_signals WHERE id = $1"
    while not await pool.fetchval(query, signal_id):  # noqa: ASYNC110
        await asyncio.sleep(every)


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float  # this process
    pg: float | None  # every PostgreSQL process (/proc), None when not readable
    buys: int


@dataclass(frozen=True)
class FanOutRound:
    engine: Measured
    floor: Measured


async def engine_fan_out(pool: asyncpg.Pool, market: Market, args: argparse.Namespace) -> Measured:
    """One signal to ``args.agents`` fresh agents, through the intake running in this process."""
    ((user, _),) = await funded_agents(pool, 1, args.agents)
    start, cpu_start, pg_start = time.perf_counter(), time.process_time(), postgres_cpu_seconds()
    signal_id = await pool.fetchval(
        "INSERT INTO trading_signals (token_address, symbol, signal_type, signal_strength, user_id) "
        "VALUES ($1, 'B', 'bench', 3, $2) RETURNING id", market.mints[1], user,
    )  # fmt: skip
    # Polling processed_at is the measurement itself (every agent has its row once it is set).
    await processed(pool, signal_id, every=0.005)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    pg = elapsed(pg_start, postgres_cpu_seconds())
    buys = await pool.fetchval(
        "SELECT count(*) FILTER (WHERE status = 'success') FROM signal_executions WHERE signal_id = $1", signal_id
    )
    return Measured(wall, cpu, pg, buys)


async def floor_fan_out_round(pool: asyncpg.Pool, market: Market, args: argparse.Namespace) -> Measured:
    ((_, agents),) = await funded_agents(pool, 1, args.agents)
    rows = await wallets_of(pool, agents)
    cpu_start, pg_start = time.process_time(), postgres_cpu_seconds()
    wall = await floor_fan_out(pool, rows, market.mints[2], args.concurrency)
    return Measured(wall, time.process_time() - cpu_start, elapsed(pg_start, postgres_cpu_seconds()), len(rows))


def print_fan_out(rounds: list[FanOutRound], agents: int) -> None:
    ratios = [r.engine.wall / r.floor.wall for r in rounds]
    walls, floors = [r.engine.wall for r in rounds], [r.floor.wall for r in rounds]
    print(
        f"fan-out, 1 signal -> {agents} agents: median {statistics.median(walls):.3f} s (best {min(walls):.3f}, "
        f"{rounds[-1].engine.buys} buys per round)  |  floor median {statistics.median(floors):.3f} s (best "
        f"{min(floors):.3f})  |  ratio median {statistics.median(ratios):.2f}x "
        f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
    )
    n = agents * len(rounds)
    # One Python process drives every lane: when its CPU per buy nears the wall time per agent, the fan-out
    # is bound by this process, not by the database.
    print(cpu_line("fan-out CPU of this process", n, sum(r.engine.cpu for r in rounds),
                   sum(r.floor.cpu for r in rounds)))  # fmt: skip
    # Two cores run both sides: the sum of the two CPU figures per agent bounds the fan-out's speed.
    print(cpu_line("fan-out CPU of PostgreSQL (/proc)", n, total(r.engine.pg for r in rounds),
                   total(r.floor.pg for r in rounds)))  # fmt: skip


def total(values: Iterable[float | None]) -> float | None:
    """The sum, or None when any value is unknown."""
    known = list(values)
    return None if any(v is None for v in known) else sum(v for v in known if v is not None)


# --- the real thing ----------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    name, url = await fresh_database(args.admin_url)
    settings = load_settings({"APP_ENV": "test", "JWT_SECRET": "b" * 40, "SIM_RANDOM_SEED": "1",
                              "WORKER_CONCURRENCY": str(args.concurrency), "WORKER_SIGNAL_POLL_MS": "60000"})  # fmt: skip
    pool = await create_pool(url, min_size=2, max_size=args.concurrency + 4)
    samples = args.warmup + args.signals
    market = Market(tokens=max(samples, 4))
    execution: ExecutionContext = await build_execution_context(settings, pool, market)
    worker = WorkerContext(settings=settings, pool=pool, database_url=url, worker_id="bench")
    worker.components["execution"] = execution
    listener = await asyncpg.connect(url)
    fills: dict[int, float] = {}
    waiting: dict[int, asyncio.Event] = {}

    def on_event(_c: object, _p: int, _ch: str, payload: str) -> None:
        now = time.perf_counter()
        if '"type":"trade"' in payload and '"signalId":' in payload:
            signal_id = int(payload.split('"signalId":', 1)[1].split("}", 1)[0].split(",", 1)[0])
            fills[signal_id] = now
            if signal_id in waiting:
                waiting[signal_id].set()

    await listener.add_listener("nexgent_events", on_event)
    service = asyncio.create_task(signal_intake_service(worker))
    try:
        print(f"database {name}; concurrency {args.concurrency}; {args.signals} latency samples after "
              f"{args.warmup} warm-up ones; fan-out to {args.agents} agents, {args.rounds} rounds")  # fmt: skip
        singles = await funded_agents(pool, samples, 1)
        ((_, floor_agents),) = await funded_agents(pool, 1, samples)
        floor_rows = await wallets_of(pool, floor_agents)
        await asyncio.sleep(0.5)  # the intake's LISTEN is up
        # Engine and floor samples alternate, so a change in the machine's load between them hits both alike.
        latencies, floor = [], []
        async with FloorLatency(pool, url, market.mints[0]) as floor_probe:
            for i, ((user, _), row) in enumerate(zip(singles, floor_rows, strict=True)):
                event = asyncio.Event()
                signal_id = await pool.fetchval(
                    "INSERT INTO trading_signals (token_address, symbol, signal_type, signal_strength, user_id) "
                    "VALUES ($1, 'B', 'bench', 3, $2) RETURNING id", market.mints[i], user,
                )  # fmt: skip
                # Accepted = the INSERT has committed and returned (the API answers 201 here); the floor's
                # sample likewise starts after its signal row is stored.
                start = time.perf_counter()
                waiting[signal_id] = event
                if signal_id in fills:
                    event.set()
                await asyncio.wait_for(event.wait(), timeout=30)
                latencies.append(fills[signal_id] - start)
                # The intake finishes the signal after its fill (marks it processed, commits): let it, so that
                # work does not land inside the floor's sample.
                await processed(pool, signal_id)
                floor.append(await floor_probe.sample(*row))
        warm, latencies = latencies[: args.warmup], latencies[args.warmup :]
        floor = floor[args.warmup :]
        line("signal-to-fill latency, 1 agent", latencies, floor)
        if warm:
            print(f"warm-up (not counted above): first signal {warm[0] * 1000:.2f} ms, slowest of {len(warm)} "
                  f"{max(warm) * 1000:.2f} ms (first-use costs: statements prepared per pooled connection, caches filled)")  # fmt: skip

        rounds: list[FanOutRound] = []
        for r in range(args.rounds):
            # Alternate which side goes first, for the same reason.
            order = (engine_fan_out, floor_fan_out_round) if r % 2 == 0 else (floor_fan_out_round, engine_fan_out)
            measured = {}
            for measure in order:
                measured[measure] = await measure(pool, market, args)
            rounds.append(FanOutRound(engine=measured[engine_fan_out], floor=measured[floor_fan_out_round]))
        print_fan_out(rounds, args.agents)
        print(f"python: {sys.version.split()[0]}; mean latency {statistics.fmean(latencies) * 1000:.2f} ms")
    finally:
        worker.stopping.set()
        await asyncio.wait_for(service, timeout=30)
        await listener.close()
        await pool.close()
        await drop_database(args.admin_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--signals", type=int, default=200, help="latency samples (one agent each)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="latency samples run first and left out of the percentiles (engine and floor alike): "
                             "a long-running worker pays its first-use costs once")  # fmt: skip
    parser.add_argument("--agents", type=int, default=1000, help="agents of the fan-out signal")
    parser.add_argument("--concurrency", type=int, default=Settings().worker_concurrency,
                        help="WORKER_CONCURRENCY (fan-out lanes); default: the worker's own default")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3,
                        help="fan-out rounds, engine and floor alternating (the median ratio is reported)")  # fmt: skip
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="event loop (the worker runs on uvloop; asyncio = the standard library's)")  # fmt: skip
    args = parser.parse_args()
    freeze_startup_heap()  # as `nexgent worker` does before it starts its loop
    pauses = GcPauses()
    with asyncio.Runner(loop_factory=new_event_loop if args.loop == "uvloop" else None) as runner:
        print(f"event loop: {args.loop}")
        runner.run(run(args))
    print(f"gc pauses over the whole run: {pauses.summary()}")


if __name__ == "__main__":
    main()
