"""Shared plumbing of the operations benchmarks: databases, service processes, population, and reporting.

Everything runs on this machine's loopback interface: the API and the workers are ``python -m app.cli``
subprocesses of this checkout, the database is either a fresh database on a local server or a private
throwaway PostgreSQL cluster (initdb/pg_ctl as the ``postgres`` user, its own port and directory) that the
script may restart without touching the machine's shared cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.auth.keys import generate_api_key  # noqa: E402
from app.db.migrate import apply_migrations  # noqa: E402
from app.trading.units import SOL_MINT  # noqa: E402

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DEFAULT_ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
JWT_SECRET = "bench-" + secrets.token_hex(24)
SIGNAL_TYPES = (
    "Velocity (Dormant Explosion)",
    "Velocity (Dex Boost Detection)",
    "Velocity (Hyper Surge Detection)",
    "Velocity (Price Reversal Detection)",
    "Velocity (Breakout Confirmation)",
    "Ignition Beta (Microcap Revival)",
    "Ignition Beta (ML Graduation)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (
        f"n={len(values)} p50={percentile(values, 50) * 1000:.1f} ms p99={percentile(values, 99) * 1000:.1f} ms "
        f"max={max(values) * 1000:.1f} ms mean={statistics.fmean(values) * 1000:.1f} ms"
    )


def banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


# --- databases ---------------------------------------------------------------------------------------------


class PrivateCluster:
    """A throwaway PostgreSQL cluster owned by this script (stack.md §2a option B)."""

    def __init__(self, port: int | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="nx-bench-pg-"))
        self.port = port or free_port()
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        (self.root / "sock").mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.root / "sock", "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c shared_buffers=256MB -c fsync=on -c synchronous_commit=on"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start", "-o", options
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """The same server URL naming another database (query strings such as ``?host=/socket/dir`` kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def create_database(admin_url: str) -> str:
    name = f"nx_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    name = database_name(url)
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(url: str) -> None:
    apply_migrations(url)


# --- service processes ---------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    command: str  # serve | worker
    env: dict[str, str]
    log_dir: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    metrics_port: int | None = None  # workers: their own Prometheus listener on 127.0.0.1

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", self.command],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no commit of anything in flight."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def service_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PG"))}
    env.update(
        {
            "APP_ENV": "production",
            "JWT_SECRET": JWT_SECRET,
            "DATABASE_URL": database_url,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "SIM_RANDOM_SEED": "7",
            "WORKER_HEARTBEAT_S": "1",
            "WORKER_SIGNAL_POLL_MS": "500",
        }
    )
    env.update(extra)
    return env


@dataclass
class Stack:
    """The API and N workers against one database."""

    database_url: str
    workers: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nx-bench-logs-")))
    api: Service | None = None
    worker_services: list[Service] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = service_env(self.database_url, self.port, **self.extra_env)
        self.api = Service("api", "serve", env, self.log_dir)
        self.api.start()
        for _ in range(self.workers):
            self.add_worker()

    def add_worker(self) -> Service:
        port = free_port()
        env = service_env(self.database_url, self.port, WORKER_METRICS_PORT=str(port), **self.extra_env)
        worker = Service(f"worker-{len(self.worker_services) + 1}", "worker", env, self.log_dir, metrics_port=port)
        worker.start()
        self.worker_services.append(worker)
        return worker

    async def supervise(self, stop: asyncio.Event, events: list[str]) -> None:
        """What `nexgent up` or a restart policy does: start a worker again when it died with a non-zero status.
        A worker that exits 0 said it was asked to stop; it stays down (and the run reports it)."""
        while not stop.is_set():
            for worker in self.worker_services:
                if worker.proc is None or worker.proc.poll() is None or worker.proc.returncode == 0:
                    continue
                events.append(f"{worker.name} exited with status {worker.proc.returncode}; restarting it")
                worker.restarts += 1
                worker.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def stop(self) -> None:
        for service in [*self.worker_services, self.api]:
            if service is not None:
                service.stop()

    async def wait_ready(self, within_s: float = 60.0) -> None:
        deadline = time.monotonic() + within_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.base_url}/api/v1/health/ready") as response:
                        if response.status == 200:
                            return
                if self.api is not None and not self.api.alive():
                    raise RuntimeError(f"API exited; see {self.api.log_path}")
                await asyncio.sleep(0.2)
        raise TimeoutError(f"service not ready after {within_s}s; logs in {self.log_dir}")


# --- population ----------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    user_id: uuid.UUID
    agent_ids: list[uuid.UUID]
    api_keys: list[str]


async def populate(
    pool: asyncpg.Pool, users: int, agents_per_user: int, keys_per_user: int, deposit_sol: Decimal
) -> list[Tenant]:
    """Users with funded simulation agents and signal-scoped API keys, written directly (no login limits)."""
    tenants = []
    async with pool.acquire() as conn, conn.transaction():
        for u in range(users):
            user_id = await conn.fetchval(
                "INSERT INTO users (email) VALUES ($1) RETURNING id", f"bench-{u}-{uuid.uuid4().hex[:6]}@example.com"
            )
            agent_ids = []
            for a in range(agents_per_user):
                agent_id = await conn.fetchval(
                    "INSERT INTO agents (user_id, name) VALUES ($1, $2) RETURNING id", user_id, f"bench agent {u}-{a}"
                )
                wallet = "sim_" + secrets.token_hex(16)
                await conn.execute(
                    "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'simulation')",
                    wallet,
                    agent_id,
                )
                await conn.execute(
                    """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                           transaction_time, input_mint, input_symbol, input_amount, input_price)
                       VALUES ($1, $2, 'DEPOSIT', 0, now(), $3, 'SOL', $4, 0)""",
                    agent_id,
                    wallet,
                    SOL_MINT,
                    deposit_sol,
                )
                await conn.execute(
                    """INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
                       VALUES ($1, $2, $3, 'SOL', $4)""",
                    agent_id,
                    wallet,
                    SOL_MINT,
                    format(deposit_sol, "f"),
                )
                agent_ids.append(agent_id)
            keys = []
            for k in range(keys_per_user):
                raw, key_hash, prefix = generate_api_key()
                await conn.execute(
                    """INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes)
                       VALUES ($1, $2, $3, $4, ARRAY['signals'])""",
                    user_id,
                    f"bench key {k}",
                    key_hash,
                    prefix,
                )
                keys.append(raw)
            tenants.append(Tenant(user_id, agent_ids, keys))
    return tenants


def write_price_file(path: Path, tokens: int, seed: int = 1) -> list[str]:
    """A replay file: SOL/USD and ``tokens`` liquid tokens with gently moving prices for ten minutes (looped)."""
    import random

    from solders.keypair import Keypair

    rng = random.Random(seed)
    mints = [str(Keypair().pubkey()) for _ in range(tokens)]
    lines = []
    bases = {mint: Decimal(rng.randint(10, 5000)) / Decimal(10**7) for mint in mints}
    for t in range(0, 600, 5):
        lines.append(f'{{"t":{t},"mint":"{SOL_MINT}","priceUsd":"{150 + rng.randint(-100, 100) / 100}"}}')
        for i, mint in enumerate(mints):
            drift = Decimal(1000 + rng.randint(-15, 15)) / Decimal(1000)
            bases[mint] = (bases[mint] * drift).quantize(Decimal("1e-12"))
            extra = ""
            if t == 0:
                extra = f',"symbol":"B{i:03d}","decimals":6,"liquidityUsd":"500000","mcap":"5000000","holders":5000'
            lines.append(f'{{"t":{t},"mint":"{mint}","priceSol":"{bases[mint]}"{extra}}}')
    path.write_text("\n".join(lines) + "\n")
    return mints


# --- load --------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    at: float  # monotonic send time
    latency: float
    status: int
    signal_id: int | None
    user_index: int


def signal_plan(tenants: list[Tenant], mints: list[str], count: int, seed: int = 3) -> Iterator[tuple[int, str, dict]]:
    """(tenant index, api key, body): round-robin over tenants and keys; each tenant's (token, type, strength)
    combinations are unique within a run so the 60 s duplicate guard never answers 409."""
    import random

    rng = random.Random(seed)
    combos = [(m, t, s) for m in mints for t in SIGNAL_TYPES for s in range(1, 6)]
    per_tenant = [rng.sample(combos, len(combos)) for _ in tenants]
    cursors = [0] * len(tenants)
    for i in range(count):
        t = i % len(tenants)
        tenant = tenants[t]
        mint, kind, strength = per_tenant[t][cursors[t] % len(combos)]
        cursors[t] += 1
        key = tenant.api_keys[(i // len(tenants)) % len(tenant.api_keys)]
        body = {
            "tokenAddress": mint,
            "symbol": "BENCH",
            "signalType": kind,
            "activationReason": "bench",
            "signalStrength": strength,
            "source": "bench",
        }
        yield t, key, body


async def timed_get(session: aiohttp.ClientSession, url: str, count: int, rate: float) -> list[float]:
    """``count`` GETs paced at ``rate`` per second (the same open-loop pacing as the storm)."""
    latencies: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
        latencies.append(time.perf_counter() - started)

    start = time.monotonic()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies


async def scrape(session: aiohttp.ClientSession, base_url: str, path: str = "/metrics") -> dict[str, float]:
    """Every sample of a Prometheus endpoint as ``name{label=value,...}`` (loopback scrape, no token)."""
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(f"{base_url}{path}") as response:
        text = await response.text()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{label}}}" if label else sample.name] = sample.value
    return values


# --- verification ----------------------------------------------------------------------------------------------


async def exactly_once_report(pool: asyncpg.Pool) -> dict[str, int]:
    """Every stored signal has exactly one execution row for each agent of its owner, and no trade twice."""
    async with pool.acquire() as conn:
        signals = await conn.fetchval("SELECT count(*) FROM trading_signals")
        expected = await conn.fetchval("SELECT count(*) FROM trading_signals s JOIN agents a ON a.user_id = s.user_id")
        missing = await conn.fetchval(
            """SELECT count(*) FROM trading_signals s JOIN agents a ON a.user_id = s.user_id
               WHERE NOT EXISTS (SELECT 1 FROM signal_executions e WHERE e.signal_id = s.id AND e.agent_id = a.id)"""
        )
        duplicated = await conn.fetchval(
            """SELECT count(*) FROM (SELECT 1 FROM signal_executions GROUP BY signal_id, agent_id
                                     HAVING count(*) > 1) d"""
        )
        shared_tx = await conn.fetchval(
            """SELECT count(*) FROM (SELECT 1 FROM signal_executions WHERE transaction_id IS NOT NULL
                                     GROUP BY transaction_id HAVING count(*) > 1) d"""
        )
        unprocessed = await conn.fetchval("SELECT count(*) FROM trading_signals WHERE processed_at IS NULL")
        by_status = {
            row["status"]: row["n"]
            for row in await conn.fetch("SELECT status, count(*) AS n FROM signal_executions GROUP BY status")
        }
    return {
        "signals": signals,
        "expected_executions": expected,
        "missing_executions": missing,
        "duplicate_executions": duplicated,
        "transactions_shared_by_two_executions": shared_tx,
        "unprocessed_signals": unprocessed,
        **{f"executions_{k}": v for k, v in sorted(by_status.items())},
    }


async def signal_to_fill(pool: asyncpg.Pool) -> list[float]:
    """Seconds from a signal's creation to the commit time of each buy it caused (the execution row)."""
    rows = await pool.fetch(
        """SELECT extract(epoch FROM e.executed_at - s.created_at)::float8 AS s
           FROM signal_executions e JOIN trading_signals s ON s.id = e.signal_id
           WHERE e.status = 'success' AND e.transaction_id IS NOT NULL"""
    )
    return [row["s"] for row in rows]


def run_audit(database_url: str) -> tuple[int, str]:
    env = service_env(database_url, 0)
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


async def top_execution_errors(pool: asyncpg.Pool, limit: int = 5) -> list[tuple[str, str, int]]:
    """The most frequent (status, reason) pairs of failed or skipped executions, reasons cut at the first ':'."""
    rows = await pool.fetch(
        """SELECT status, split_part(coalesce(error, ''), ':', 1) AS reason, count(*) AS n
           FROM signal_executions WHERE status <> 'success' GROUP BY 1, 2 ORDER BY n DESC LIMIT $1""",
        limit,
    )
    return [(row["status"], row["reason"], row["n"]) for row in rows]
