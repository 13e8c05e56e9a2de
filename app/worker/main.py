"""The trading worker process: a set of long-running services sharing one pool, stopped by SIGTERM/SIGINT.

Each service is an ``async def service(ctx: WorkerContext) -> None`` that loops until ``ctx.stopping`` is
set. The heartbeat service records liveness for ``/api/v1/health/ready``; the trading services (signal
intake, price monitoring, snapshots, settlement) register themselves in ``SERVICES``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.config import Settings
from app.db import Q, create_pool

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
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The database being away must not kill the worker: the pool reconnects when it returns.
            log.warning("heartbeat failed", extra={"fields": {"error": str(exc)}})
        if await ctx.sleep(ctx.settings.worker_heartbeat_s):
            return


SERVICES: list[Service] = [heartbeat_service]


async def run_worker(
    settings: Settings,
    database_url: str,
    *,
    stopping: asyncio.Event | None = None,
    services: list[Service] | None = None,
    worker_id: str | None = None,
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=max(4, settings.worker_concurrency + 2))
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
        for task in done:
            if task is not stop_wait and task.exception() is not None:
                log.error(
                    "worker service crashed", exc_info=task.exception(), extra={"fields": {"service": task.get_name()}}
                )
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


def main(settings: Settings, database_url: str) -> None:
    async def runner() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await run_worker(settings, database_url, stopping=stopping)

    asyncio.run(runner())
