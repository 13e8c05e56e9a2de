"""The trading worker process: a set of long-running services sharing one pool, stopped by SIGTERM/SIGINT.

Each service is an ``async def service(ctx: WorkerContext) -> None`` that loops until ``ctx.stopping`` is
set. The heartbeat service records liveness for ``/api/v1/health/ready``; the trading services (signal
intake, price monitoring, snapshots, settlement) register themselves in ``SERVICES``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import uvloop

from app.auth.housekeeping import prune_auth_state
from app.config import Settings
from app.db import Q, create_pool
from app.live.services import live_reconciliation_service, live_settlement_service
from app.worker.intake import signal_intake_service
from app.worker.metrics_server import metrics_server_service
from app.worker.monitor import price_monitor_service
from app.worker.snapshots import snapshot_service
from app.worker.trade_requests import trade_requests_service

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    settings: Settings
    pool: asyncpg.Pool
    database_url: str
    worker_id: str
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Shared components created by services at start (market adapters, caches); keyed by name.
    components: dict[str, Any] = field(default_factory=dict)

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; returns True when stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


Service = Callable[[WorkerContext], Awaitable[None]]


async def heartbeat_service(ctx: WorkerContext) -> None:
    hostname, pid = socket.gethostname(), os.getpid()
    while True:
        try:
            await Q.upsert_worker_heartbeat.execute(ctx.pool, ctx.worker_id, hostname, pid)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # The database being away must not kill the worker: the pool reconnects when it returns. asyncpg
            # raises InternalClientError when a connection dies mid-reset (seen on a PostgreSQL restart).
            log.warning("heartbeat failed", extra={"fields": {"error": str(exc)}})
        if await ctx.sleep(ctx.settings.worker_heartbeat_s):
            return


SERVICES: list[Service] = [
    heartbeat_service,
    metrics_server_service,
    prune_auth_state,
    live_settlement_service,
    live_reconciliation_service,
    signal_intake_service,
    trade_requests_service,
    price_monitor_service,
    snapshot_service,
]


async def run_worker(
    settings: Settings,
    database_url: str,
    *,
    stopping: asyncio.Event | None = None,
    services: list[Service] | None = None,
    worker_id: str | None = None,
) -> bool:
    """Run the services until asked to stop; False when a service crashed or ended on its own (the process
    should then exit non-zero so a supervisor or restart policy starts a fresh one)."""
    # Every connection stays open for the life of the process (min = max): above min_size asyncpg closes a
    # connection idle for 5 minutes, and signals that far apart then each paid ~15 ms to reconnect their lanes
    # and prepare their statements again.
    size = max(4, settings.worker_concurrency + 2)
    pool = await create_pool(database_url, min_size=size, max_size=size)
    ctx = WorkerContext(
        settings=settings,
        pool=pool,
        database_url=database_url,
        worker_id=worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        stopping=stopping or asyncio.Event(),
    )
    log.info("worker started", extra={"fields": {"worker_id": ctx.worker_id}})
    tasks = [asyncio.create_task(service(ctx), name=service.__name__) for service in (services or SERVICES)]
    try:
        stop_wait = asyncio.create_task(ctx.stopping.wait())
        done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        clean = stop_wait in done
        for task in done:
            if task is not stop_wait and task.exception() is not None:
                clean = False
                log.error(
                    "worker service crashed", exc_info=task.exception(), extra={"fields": {"service": task.get_name()}}
                )
            elif task is not stop_wait and not clean:
                log.error("worker service ended on its own", extra={"fields": {"service": task.get_name()}})
        ctx.stopping.set()
        await asyncio.wait(tasks, timeout=10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await Q.mark_worker_stopped.execute(pool, ctx.worker_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass
        await pool.close()
        log.info("worker stopped", extra={"fields": {"worker_id": ctx.worker_id}})
    return clean


def freeze_startup_heap() -> None:
    """Move everything imported so far out of the garbage collector's reach (``gc.freeze``).

    Those objects live as long as the process; left in the young generations they are scanned again by every
    full collection, which paused the trading loop for 28-32 ms once per fan-out benchmark run (gen-2 pauses
    measured with ``gc.callbacks`` in bench/worker_fanout.py; none after freezing). Trades started during
    such a pause wait for it.
    """
    gc.collect()
    gc.freeze()


def main(settings: Settings, database_url: str) -> None:
    async def runner() -> bool:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        return await run_worker(settings, database_url, stopping=stopping)

    freeze_startup_heap()
    # uvloop, as uvicorn uses for the API: signal-to-fill p50 ~15 % lower than the standard loop in
    # bench/worker_fanout.py (3 paired runs, 3.8-4.5 ms vs 4.5-5.4 ms; the fan-out was within the noise).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        clean = loop_runner.run(runner())
    if not clean:
        # Exit 0 means "asked to stop" to `nexgent up`'s supervisor and to restart policies: a crash must not.
        raise SystemExit(1)
