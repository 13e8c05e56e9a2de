"""Faults under load: PostgreSQL restarted mid-storm, a worker SIGKILLed, the price source failing and lying.

    uv run python bench/faults.py                    # ~90 s on 2 cores
    uv run python bench/faults.py --duration 120 --signals 2000

Runs everything against a private throwaway PostgreSQL cluster (initdb/pg_ctl as the postgres user, its own
port and directory: the machine's shared cluster is never touched) and local fakes of Jupiter, DexScreener,
Pyth Hermes and Solana RPC (tests/fakes), with ``PRICE_SOURCE=jupiter`` pointed at them. While signals are
sent at a steady rate by a sender that retries like a real integration (a 409 duplicate after a retry means
"already stored"), the script:

1. restarts PostgreSQL (``pg_ctl restart -m fast``) at 25 % of the run;
2. SIGKILLs worker 1 at 45 %; a supervisor in this script restarts any worker that exits non-zero (what
   ``nexgent up`` or a container restart policy does) and reports every exit;
3. from 60 % makes the price source fail: Jupiter's price API answers 500, then malformed JSON, then
   garbage prices (zero, negative, absurdly large), and Hermes answers malformed JSON; all cleared at 80 %.

Checks afterwards: every signal the sender saw stored is in the database; exactly one execution per signal
and agent of its owner; no execution or trade duplicated; no sale at all (the fake market is flat, so any
sale would have been triggered by a garbage price); every process that should run is running; the service
answers ready; the price feed is fresh again; ``nexgent audit`` is clean. Exit code 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    REPO,
    PrivateCluster,
    Stack,
    banner,
    create_database,
    exactly_once_report,
    migrate,
    populate,
    run_audit,
    scrape,
    signal_plan,
    signal_to_fill,
    summary_ms,
    top_execution_errors,
)

sys.path.insert(0, str(REPO))

from app.trading.units import SOL_MINT
from tests.fakes.dexscreener import FakeDexScreener
from tests.fakes.hermes import FakeHermes
from tests.fakes.jupiter import FakeJupiter
from tests.fakes.solana_rpc import FakeSolanaRpc

API_KEY = "bench-jupiter-key"
SOL_USD = Decimal(150)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, default=900)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--agents-per-user", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    return parser.parse_args()


class Market:
    """The fakes, priced flat: a sale can only come from a bad price."""

    def __init__(self, mints: list[str]) -> None:
        self.mints = mints
        self.rpc = FakeSolanaRpc()
        self.jupiter = FakeJupiter(api_key=API_KEY, rpc=self.rpc)
        self.dex = FakeDexScreener()
        self.hermes = FakeHermes()
        self.sol_prices = {mint: Decimal(1 + i) / Decimal(10_000) for i, mint in enumerate(mints)}

    async def start(self) -> None:
        for fake in (self.rpc, self.jupiter, self.dex, self.hermes):
            await fake.start()
        self.hermes.set_price(int(SOL_USD * 10**8), expo=-8)
        self.jupiter.usd_prices[SOL_MINT] = SOL_USD
        for i, mint in enumerate(self.mints):
            price = self.sol_prices[mint]
            self.jupiter.sol_per_token[mint] = price
            self.rpc.mint_decimals[mint] = 6
            self.jupiter.usd_prices[mint] = price * SOL_USD
            self.jupiter.token_info[mint] = {
                "id": mint, "name": f"Bench {i}", "symbol": f"B{i:03d}", "decimals": 6,
                "mcap": 5_000_000, "liquidity": 500_000, "holderCount": 5000, "usdPrice": price * SOL_USD,
            }  # fmt: skip
            self.dex.add_pair(
                mint,
                price_native=str(price),
                price_usd=str(price * SOL_USD),
                liquidity_usd="500000",
                symbol=f"B{i:03d}",
            )

    async def stop(self) -> None:
        for fake in (self.rpc, self.jupiter, self.dex, self.hermes):
            await fake.stop()

    def env(self) -> dict[str, str]:
        return {
            "PRICE_SOURCE": "jupiter",
            "JUPITER_API_KEY": API_KEY,
            "JUPITER_BASE_URL": self.jupiter.url,
            "JUPITER_PRICE_URL": self.jupiter.price_url,
            "DEXSCREENER_URL": self.dex.url,
            "PYTH_HERMES_URL": self.hermes.url,
            "SOLANA_RPC_URL": self.rpc.url,
        }

    def set_garbage(self, value: Decimal) -> None:
        for mint in self.mints:
            self.jupiter.usd_prices[mint] = value

    def restore(self) -> None:
        self.jupiter.clear_faults()
        self.hermes.clear_faults()
        for mint in self.mints:
            self.jupiter.usd_prices[mint] = self.sol_prices[mint] * SOL_USD


class Sender:
    """Sends the plan at a steady rate; retries what was not acknowledged, like a real integration."""

    def __init__(self, base_url: str, plan: list[tuple[int, str, dict]], duration: float) -> None:
        self.base_url, self.plan, self.duration = base_url, plan, duration
        self.stored: set[int] = set()  # plan indexes the API acknowledged (201, or 409 after a retry)
        self.first_try_statuses: dict[int, int] = {}
        self.retries = 0
        self.latencies: list[float] = []
        self.lost: list[int] = []

    async def _send(self, session: aiohttp.ClientSession, index: int, key: str, body: dict) -> None:
        delay = 0.25
        for attempt in range(40):
            status = -1
            started = time.perf_counter()
            try:
                async with session.post(
                    f"{self.base_url}/api/v1/trading-signals", json=body, headers={"X-API-Key": key}
                ) as response:
                    status = response.status
                    await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                status = -1
            if attempt == 0:
                self.first_try_statuses[status] = self.first_try_statuses.get(status, 0) + 1
            if status == 201 or (status == 409 and attempt > 0):
                self.latencies.append(time.perf_counter() - started)
                self.stored.add(index)
                return
            if 400 <= status < 500 and status not in (408, 429):
                self.lost.append(index)  # a client error is not retried: it would fail again
                return
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)
        self.lost.append(index)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), timeout=timeout) as session:
            start = time.monotonic()
            rate = len(self.plan) / self.duration
            tasks = []
            for i, (_tenant, key, body) in enumerate(self.plan):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._send(session, i, key, body)))
            await asyncio.gather(*tasks)


async def fault_timeline(args, stack: Stack, cluster: PrivateCluster, market: Market, log: list[str]) -> None:
    started = time.monotonic()

    async def at(fraction: float) -> None:
        delay = started + args.duration * fraction - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def note(text: str) -> None:
        line = f"t={time.monotonic() - started:6.1f}s  {text}"
        log.append(line)
        print("  " + line, flush=True)

    await at(0.25)
    note("PostgreSQL restart (pg_ctl -m fast) ...")
    t0 = time.monotonic()
    await asyncio.to_thread(cluster.restart, "fast")
    note(f"PostgreSQL back after {time.monotonic() - t0:.2f} s")

    await at(0.45)
    victim = stack.worker_services[0]
    note(f"SIGKILL {victim.name} (pid {victim.pid}); the supervisor restarts it")
    victim.kill()

    await at(0.60)
    note("price source: Jupiter price API answers 500")
    market.jupiter.fail("price", status=500, times=None)
    market.hermes.malformed("latest", times=None)
    await at(0.65)
    market.jupiter.clear_faults()
    note("price source: malformed JSON")
    market.jupiter.malformed("price", times=None)
    await at(0.70)
    market.jupiter.clear_faults()
    note("price source: garbage prices (0, then negative, then 1e30)")
    for value in (Decimal(0), Decimal(-5), Decimal("1e30")):
        market.set_garbage(value)
        await asyncio.sleep(args.duration * 0.1 / 3)
    await at(0.80)
    market.restore()
    note("price source healthy again")


async def run(args: argparse.Namespace) -> int:
    cluster = PrivateCluster()
    cluster.init()
    cluster.start()
    failures: list[str] = []
    stack = None
    market = None
    try:
        database_url = await create_database(cluster.admin_url)
        migrate(database_url)
        from solders.keypair import Keypair

        mints = [str(Keypair().pubkey()) for _ in range(args.tokens)]
        market = Market(mints)
        await market.start()
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        keys_per_user = max(1, -(-int(args.signals / args.users / (args.duration / 60)) // 100))
        tenants = await populate(pool, args.users, args.agents_per_user, keys_per_user, Decimal(200))
        await pool.close()
        plan = list(signal_plan(tenants, mints, args.signals))
        stack = Stack(database_url, workers=2, extra_env=market.env())
        stack.start()
        await stack.wait_ready()
        banner("set-up")
        print(
            f"private PostgreSQL on port {cluster.port}; {len(tenants)} users x {args.agents_per_user} agents, "
            f"{args.signals} signals over {args.duration:.0f} s, {args.tokens} tokens; logs in {stack.log_dir}"
        )

        banner("timeline")
        log: list[str] = []
        sender = Sender(stack.base_url, plan, args.duration)
        supervisor_stop = asyncio.Event()
        exits: list[str] = []
        supervisor = asyncio.create_task(stack.supervise(supervisor_stop, exits))
        await asyncio.gather(sender.run(), fault_timeline(args, stack, cluster, market, log))

        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        drained = None
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < args.drain_timeout:
            if not await pool.fetchval("SELECT count(*) FROM trading_signals WHERE processed_at IS NULL"):
                drained = time.monotonic() - drain_started
                break
            await asyncio.sleep(0.5)

        supervisor_stop.set()
        await supervisor
        banner("intake")
        print(f"first-try statuses {sender.first_try_statuses}; retries {sender.retries}")
        print(f"acknowledged {len(sender.stored)}/{len(plan)}; given up {len(sender.lost)}")
        print(f"acknowledged-request latency {summary_ms(sender.latencies)}")
        if sender.lost:
            failures.append(f"{len(sender.lost)} signals never acknowledged")

        banner("recovery")
        print(f"queue drained {drained:.1f} s after the last send" if drained is not None else "queue NOT drained")
        if drained is None:
            failures.append("queue not drained")
        for line in exits:
            print(f"  supervisor: {line}")
        unexpected = [line for line in exits if "SIGKILL" not in line and "status -9" not in line]
        running = [w.name for w in stack.worker_services if w.alive()]
        print(f"workers running: {running}; API running: {stack.api.alive()}")
        if len(running) != len(stack.worker_services) or not stack.api.alive():
            failures.append("a process that should run is not running")
        if unexpected:
            failures.append(f"{len(unexpected)} unexpected worker exit(s): the faults crashed a worker")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{stack.base_url}/api/v1/health/ready") as response:
                ready = response.status
            await asyncio.sleep(3)  # let a price poll happen after the faults cleared
            metrics = await scrape(session, stack.base_url)
            seen: dict[str, float] = {}
            for worker in stack.worker_services:
                if worker.alive() and worker.metrics_port:
                    for key, value in (await scrape(session, f"http://127.0.0.1:{worker.metrics_port}")).items():
                        if key.startswith(("price_update_total", "prices_rejected_total", "errors_total")) and value:
                            seen[key] = seen.get(key, 0) + value
        print("price faults as the surviving workers counted them:")
        for key, value in sorted(seen.items()):
            print(f"  {key} = {value:g}")
        staleness = {k: v for k, v in metrics.items() if k.startswith("price_feed_staleness_seconds")}
        print(f"/health/ready {ready}; price feed staleness now {staleness}")
        if ready != 200:
            failures.append(f"/health/ready answered {ready}")

        banner("exactly once, no bad trade")
        report = await exactly_once_report(pool)
        for key, value in report.items():
            print(f"  {key}: {value}")
        stored = await pool.fetchval("SELECT count(*) FROM trading_signals")
        if stored != len(sender.stored):
            failures.append(f"sender saw {len(sender.stored)} stored, database holds {stored}")
        for key in ("missing_executions", "duplicate_executions", "transactions_shared_by_two_executions"):
            if report[key]:
                failures.append(f"{key}={report[key]}")
        sales = await pool.fetchval(
            "SELECT count(*) FROM agent_transactions WHERE transaction_type = 'SWAP' AND output_mint = $1", SOL_MINT
        )
        bad_prices = await pool.fetchval(
            """SELECT count(*) FROM agent_transactions WHERE transaction_type = 'SWAP'
               AND (coalesce(input_price, 1) <= 0 OR coalesce(output_price, 1) <= 0
                    OR coalesce(input_price, 0) > 1e6 OR coalesce(output_price, 0) > 1e6)"""
        )
        print(f"sales (flat market, so any sale came from a bad price): {sales}; trades at absurd prices: {bad_prices}")
        if sales or bad_prices:
            failures.append(f"{sales} sales, {bad_prices} trades at absurd prices")
        for status, reason, n in await top_execution_errors(pool):
            print(f"  {status} x{n}: {reason[:120]}")
        print(f"signal-to-fill {summary_ms(await signal_to_fill(pool))}")
        await pool.close()

        banner("nexgent audit")
        code, output = run_audit(database_url)
        print(output[-2000:])
        if code != 0:
            failures.append(f"audit exit code {code}")
    finally:
        if stack is not None:
            stack.stop()
        if market is not None:
            await market.stop()
        cluster.destroy()

    banner("verdict")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("OK: recovered from every fault by itself; nothing lost, nothing executed twice, no trade on a bad price")
    return 0


def main() -> int:
    # The fake Hermes stream logs a traceback each time a worker drops its connection (e.g. when SIGKILLed).
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    return asyncio.run(run(parse_args()))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
