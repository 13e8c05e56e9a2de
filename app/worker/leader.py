"""Leader election for work that one process should do for the whole database (the price monitor).

Every worker runs the same services; a service wrapped in :func:`lead` runs its body only while this process
holds a PostgreSQL *session* advisory lock. The lock lives on a dedicated connection, never a pooled one (pooled
connections skip asyncpg's reset, see ``app.db.pool``): when the holder exits or is SIGKILLed, PostgreSQL drops
the session and the lock with it, and a standby takes over on its next attempt (``retry_s``).

Why a lock and not a lease row: the lock needs no clock agreement between machines and no expiry to tune; its
lifetime is exactly the holder's session. Advisory locks are per database, so test databases cloned on one
server elect their own leaders.

Stepping down: the holder checks its lock connection every ``check_s``. If the check fails (connection lost,
server restarted), the lock may already belong to someone else, so the body is asked to stop (its ``stop``
event is set) and allowed to finish what it is doing; it is never cancelled mid-trade. For at most one tick two
monitors may overlap, which is safe: every sale re-reads and locks its position row inside its transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from app.metrics import WORKER_LEADER

log = logging.getLogger(__name__)

_CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (the same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(f"nexgent:{name}".encode(), digest_size=8).digest(), "big", signed=True)


def application_name(role: str, worker_id: str) -> str:
    """What the lock connection shows in ``pg_stat_activity``: operators find the leader with
    ``SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'nexgent-leader:%'``.
    PostgreSQL keeps 63 bytes of it."""
    return f"nexgent-leader:{role}:{worker_id}"[:63]


async def _acquire(database_url: str, key: int, name: str) -> asyncpg.Connection | None:
    """A connection holding the lock, or None when another session holds it (or the database is away)."""
    conn: asyncpg.Connection | None = None
    try:
        conn = await asyncpg.connect(database_url, timeout=10, server_settings={"application_name": name})
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return conn
    except _CONNECT_ERRORS as exc:
        log.warning("leader election: database unavailable", extra={"fields": {"error": str(exc)}})
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close(timeout=2)
    return None


async def _hold(conn: asyncpg.Connection, stop: asyncio.Event, stopping: asyncio.Event, check_s: float) -> None:
    """Set ``stop`` when the process stops or the lock can no longer be vouched for."""
    while True:
        try:
            await asyncio.wait_for(stopping.wait(), timeout=check_s)
            break  # the process is stopping
        except TimeoutError:
            pass
        try:
            # A session lock lasts as long as its session, so a connection that still answers still holds it
            # (a server restart ends the session, and the next query fails).
            await conn.fetchval("SELECT 1", timeout=check_s)
        except _CONNECT_ERRORS as exc:
            log.warning("leader election: lock connection lost", extra={"fields": {"error": str(exc)}})
            break
    stop.set()


async def lead(
    ctx: Any,
    role: str,
    body: Callable[[asyncio.Event], Awaitable[None]],
    *,
    retry_s: float,
    check_s: float,
) -> None:
    """Run ``body(stop)`` whenever this process is the ``role`` leader, until ``ctx.stopping`` is set.

    ``body`` must return soon after ``stop`` is set. Exceptions from ``body`` propagate (the worker treats a
    crashed service as fatal and exits non-zero, which releases the lock)."""
    key, name = lock_key(role), application_name(role, ctx.worker_id)
    while not ctx.stopping.is_set():
        conn = await _acquire(ctx.database_url, key, name)
        if conn is None:
            if await ctx.sleep(retry_s):
                return
            continue
        log.info("leader elected", extra={"fields": {"role": role, "worker_id": ctx.worker_id}})
        WORKER_LEADER.labels(role).set(1)
        stop = asyncio.Event()
        holder = asyncio.create_task(_hold(conn, stop, ctx.stopping, check_s))
        try:
            await body(stop)
        finally:
            WORKER_LEADER.labels(role).set(0)
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)  # ends the session: the lock is released with it
            log.info("leader stepped down", extra={"fields": {"role": role}})
        if not ctx.stopping.is_set() and await ctx.sleep(retry_s):
            return


__all__ = ["application_name", "lead", "lock_key"]
