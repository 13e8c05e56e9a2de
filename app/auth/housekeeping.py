"""Worker service: delete authentication state that can no longer decide anything (expired revocations,
expired sessions with their refresh tokens, old unknown-e-mail counters). Hourly, and once at start."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import asyncpg

from app.db import Q

if TYPE_CHECKING:
    from app.worker.main import WorkerContext

log = logging.getLogger(__name__)
PRUNE_INTERVAL_S = 3600.0


async def prune_auth_state(ctx: WorkerContext) -> None:
    while True:
        try:
            row = await Q.auth_prune_expired.fetch_one(ctx.pool)
            if row and any(row.values()):
                log.info("expired auth state pruned", extra={"fields": dict(row)})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("auth state pruning failed", extra={"fields": {"error": str(exc)}})
        if await ctx.sleep(PRUNE_INTERVAL_S):
            return
