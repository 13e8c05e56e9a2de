"""Signal storm: the API and N workers under a paced burst of signals, then exactly-once and ledger checks.

    uv run python bench/signal_storm.py                                   # 2-core defaults (~1 min)
    uv run python bench/signal_storm.py --signals 5000 --duration 60      # the issue's figure

Starts ``nexgent serve`` and ``--workers`` ``nexgent worker`` processes against a fresh database (a new database
on ``--admin-url``, default the local server, or ``--private-cluster``), creates ``--users`` x
``--agents-per-user`` funded simulation agents and signal-scoped API keys, and posts ``--signals`` signals
over ``--duration`` seconds (open loop: each is sent at its scheduled time whatever the server's speed),
round-robin over users and keys (the per-key limit is 120/min, so keys are sized to stay under it).

Prints: intake throughput and latency (p50/p99) next to a baseline (``GET /api/v1/health/live`` at the
same rate, measured in the same run just before), worker lag and queue depth sampled from ``/metrics`` every
second, the time to drain, signal-to-fill latency, executions by status, the exactly-once check (one
execution row per signal and agent of the signal's owner) and ``nexgent audit``. Exit code 1 if any check
fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    DEFAULT_ADMIN_URL,
    JWT_SECRET,
    PrivateCluster,
    Sent,
    Stack,
    banner,
    create_database,
    database_name,
    drop_database,
    exactly_once_report,
    migrate,
    percentile,
    populate,
    run_audit,
    scrape,
    signal_plan,
    signal_to_fill,
    summary_ms,
    timed_get,
    top_execution_errors,
    write_price_file,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, default=1200)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds over which the signals are sent")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--agents-per-user", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=40, help="distinct tokens in the generated price file")
    parser.add_argument("--deposit", type=Decimal, default=Decimal(200), help="SOL per agent")
    parser.add_argument("--concurrency", type=int, default=64, help="HTTP connections of the sender")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--private-cluster", action="store_true", help="run a throwaway PostgreSQL for the run")
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    return parser.parse_args(argv)


async def post_signals(
    base_url: str, plan: list[tuple[int, str, dict]], duration: float, concurrency: int
) -> tuple[list[Sent], float]:
    sent: list[Sent] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(at: float, tenant: int, key: str, body: dict) -> None:
            started = time.perf_counter()
            signal_id = None
            status = 0
            try:
                async with session.post(
                    f"{base_url}/api/v1/trading-signals", json=body, headers={"X-API-Key": key}
                ) as response:
                    status = response.status
                    payload = await response.json(content_type=None)
                    if status == 201:
                        signal_id = payload.get("id")
            except (TimeoutError, aiohttp.ClientError, OSError):
                status = -1
            sent.append(Sent(at, time.perf_counter() - started, status, signal_id, tenant))

        start = time.monotonic()
        tasks = []
        rate = len(plan) / duration
        for i, (tenant, key, body) in enumerate(plan):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(time.monotonic() - start, tenant, key, body)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    return sent, elapsed


async def watch_sockets(base_url: str, tenant, stop: asyncio.Event, counts: dict[str, dict[str, int]]) -> None:
    """One WebSocket per agent of the first user, as a dashboard would hold them, counting what arrives."""
    from app.api.auth import issue_access_token

    token = issue_access_token(JWT_SECRET, tenant.user_id, "bench@example.com")
    ws_url = base_url.replace("http://", "ws://")

    async def one(session: aiohttp.ClientSession, agent_id) -> None:
        seen = counts.setdefault(str(agent_id), {})
        async with session.ws_connect(f"{ws_url}/ws?token={token}&agentId={agent_id}", heartbeat=None) as ws:
            while not stop.is_set():
                try:
                    message = await ws.receive_json(timeout=0.5)
                except TimeoutError:
                    continue
                kind = message["type"]
                if kind == "position_update":
                    kind = message["data"]["eventType"]
                elif kind == "ping":
                    await ws.send_json({"type": "pong"})
                seen[kind] = seen.get(kind, 0) + 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, agent_id) for agent_id in tenant.agent_ids))


async def sample_lag(base_url: str, stop: asyncio.Event, samples: list[tuple[float, float, float]]) -> None:
    start = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, OSError, KeyError):
                values = await scrape(session, base_url)
                samples.append(
                    (
                        time.monotonic() - start,
                        values["worker_lag_seconds"],
                        values["queue_depth{queue_name=trading_signals}"],
                    )
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def run(args: argparse.Namespace) -> int:
    cluster = None
    admin_url = args.admin_url
    if args.private_cluster:
        cluster = PrivateCluster()
        cluster.init()
        cluster.start()
        admin_url = cluster.admin_url
    database_url = await create_database(admin_url)
    stack = None
    failures: list[str] = []
    price_file = Path(tempfile.gettempdir()) / f"{database_name(database_url)}-prices.jsonl"
    try:
        migrate(database_url)
        mints = write_price_file(price_file, args.tokens)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        keys_per_user = max(1, -(-int(args.signals / args.users / (args.duration / 60)) // 100))
        tenants = await populate(pool, args.users, args.agents_per_user, keys_per_user, args.deposit)
        plan = list(signal_plan(tenants, mints, args.signals))

        stack = Stack(database_url, workers=args.workers, extra_env={"PRICE_REPLAY_FILE": str(price_file)})
        stack.start()
        await stack.wait_ready()
        banner("set-up")
        print(
            f"database {database_name(database_url)}; {args.users} users x {args.agents_per_user} agents "
            f"= {args.users * args.agents_per_user} agents, {keys_per_user} API keys per user, {args.tokens} tokens, "
            f"{args.workers} workers; logs in {stack.log_dir}"
        )

        rate = args.signals / args.duration
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as session:
            await timed_get(session, f"{stack.base_url}/api/v1/health/live", 50, rate)  # warm-up
            baseline = await timed_get(
                session, f"{stack.base_url}/api/v1/health/live", min(args.signals, int(rate * 10)), rate
            )

        stop = asyncio.Event()
        lag_samples: list[tuple[float, float, float]] = []
        sampler = asyncio.create_task(sample_lag(stack.base_url, stop, lag_samples))
        socket_counts: dict[str, dict[str, int]] = {}
        watcher = asyncio.create_task(watch_sockets(stack.base_url, tenants[0], stop, socket_counts))
        for _ in range(100):  # every socket has its snapshot before the first signal is sent
            if sum(c.get("initial_data", 0) for c in socket_counts.values()) == len(tenants[0].agent_ids):
                break
            await asyncio.sleep(0.1)
        storm_started = time.monotonic()
        sent, send_elapsed = await post_signals(stack.base_url, plan, args.duration, args.concurrency)
        drained_at = None
        while time.monotonic() - storm_started < args.duration + args.drain_timeout:
            if not await pool.fetchval("SELECT count(*) FROM trading_signals WHERE processed_at IS NULL"):
                drained_at = time.monotonic() - storm_started
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)  # the last commits' NOTIFYs reach the sockets
        stop.set()
        await sampler
        with contextlib.suppress(aiohttp.ClientError):
            await watcher

        accepted = [s for s in sent if s.status == 201]
        statuses: dict[int, int] = {}
        for s in sent:
            statuses[s.status] = statuses.get(s.status, 0) + 1
        intake = [s.latency for s in accepted]

        banner("intake")
        print(f"sent {len(sent)} signals in {send_elapsed:.1f} s (target {rate:.1f}/s): statuses {statuses}")
        print(f"accepted throughput {len(accepted) / send_elapsed:.1f} signals/s")
        print(f"intake latency   {summary_ms(intake)}")
        print(f"baseline (live)  {summary_ms(baseline)}")
        if intake and baseline:
            print(
                f"ratio intake/baseline: p50 x{percentile(intake, 50) / percentile(baseline, 50):.1f}, "
                f"p99 x{percentile(intake, 99) / percentile(baseline, 99):.1f}"
            )

        banner("worker lag (from /metrics, every ~1 s)")
        peak_lag = max((lag for _, lag, _ in lag_samples), default=0.0)
        peak_depth = max((depth for _, _, depth in lag_samples), default=0.0)
        step = max(1, len(lag_samples) // 15)
        for t, lag, depth in lag_samples[::step]:
            print(f"  t={t:6.1f}s  lag={lag:7.2f}s  queue={int(depth)}")
        print(f"peak lag {peak_lag:.2f} s, peak queue depth {int(peak_depth)}")
        if drained_at is None:
            failures.append("queue not drained")
            print("queue NOT drained within the timeout")
        else:
            print(
                f"all signals processed {drained_at:.1f} s after the storm began ({drained_at - send_elapsed:.1f} s after the last send)"
            )

        fills = await signal_to_fill(pool)
        report = await exactly_once_report(pool)
        executions = sum(v for k, v in report.items() if k.startswith("executions_"))
        banner("execution")
        print(f"signal-to-fill   {summary_ms(fills)}")
        if drained_at:
            print(f"executions {executions} in {drained_at:.1f} s = {executions / drained_at:.0f} agent-executions/s")
        for key, value in report.items():
            print(f"  {key}: {value}")
        for status, reason, n in await top_execution_errors(pool):
            print(f"  {status} x{n}: {reason[:120]}")
        if report["signals"] != len(accepted):
            failures.append(f"{len(accepted)} signals accepted but {report['signals']} stored")
        for key in ("missing_executions", "duplicate_executions", "transactions_shared_by_two_executions"):
            if report[key]:
                failures.append(f"{key}={report[key]}")
        if report["expected_executions"] != executions:
            failures.append(f"{executions} executions for {report['expected_executions']} expected")

        banner("live updates (WebSocket, one socket per agent of the first user)")
        created = {
            str(row["agent_id"]): row["n"]
            for row in await pool.fetch(
                "SELECT agent_id, count(*) AS n FROM signal_executions WHERE status = 'success' AND agent_id = ANY($1)"
                " GROUP BY agent_id",
                tenants[0].agent_ids,
            )
        }
        received = sum(c.get("position_created", 0) for c in socket_counts.values())
        expected = sum(created.values())
        kinds: dict[str, int] = {}
        for c in socket_counts.values():
            for kind, n in c.items():
                kinds[kind] = kinds.get(kind, 0) + n
        print(f"{len(socket_counts)} sockets; position_created received {received} of {expected} buys; by type {kinds}")
        if received != expected:
            failures.append(f"WebSocket delivered {received} position_created events for {expected} buys")

        banner("nexgent audit")
        code, output = run_audit(database_url)
        print(output[-3000:])
        if code != 0:
            failures.append(f"audit exit code {code}")
        await pool.close()
    finally:
        if stack is not None:
            stack.stop()
        if not args.keep:
            price_file.unlink(missing_ok=True)
            with contextlib.suppress(Exception):
                await drop_database(admin_url, database_url)
        if cluster is not None:
            cluster.destroy()

    banner("verdict")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("OK: every accepted signal executed exactly once per agent; audit clean")
    return 0


def main() -> int:
    return asyncio.run(run(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
