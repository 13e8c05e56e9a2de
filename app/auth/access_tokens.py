"""Is an access token revoked? One answer per token per process while revocations are heard, not one query per
request.

An access token is refused when its ``jti`` is in ``revoked_access_tokens`` (logout) or its session has
``revoked_at`` set (logout, refresh-token reuse, admin password reset). Both can only flip a token from good to
revoked, and migration 0070's triggers NOTIFY ``access_token_revoked`` (``jti:<uuid>`` / ``sid:<uuid>``) from
inside the revoking transaction. So a token found *not* revoked is remembered, and forgotten when its notice
arrives; a revoked token is never remembered (it costs its query every time, and its owner has no reason to
keep sending it).

Same trust rules as the API-key cache (``app.auth.keys``): the cache answers alone only while the revocation
listener (``app.auth.revocations``) is connected; it is emptied when the listener is lost; a lookup stores its
answer only if no eviction happened while it read the database; the revoking process evicts synchronously after
its commit, so its next request is refused without waiting for the notice; entries expire after
``api_key_cache_ttl_s`` (the bound on a change made with triggers disabled).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import NamedTuple

import asyncpg

from app.auth.ttl_cache import TtlLruCache
from app.db import Q

CHANNEL = "access_token_revoked"


class _NotRevoked(NamedTuple):
    session_id: uuid.UUID | None  # the session the token was checked with (None: minted without one)


def _session_of(seen: _NotRevoked) -> uuid.UUID | None:
    return seen.session_id


class AccessTokenCache:
    def __init__(
        self, ttl_s: float = 60.0, *, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        # jti -> the session it was found not revoked with, grouped by session so that a session's revocation
        # evicts all its tokens.
        self._good: TtlLruCache[uuid.UUID, _NotRevoked, uuid.UUID] = TtlLruCache(ttl_s, max_entries, clock, _session_of)
        self._live = False
        self._generation = 0
        self.cache_hits = 0

    @property
    def live(self) -> bool:
        return self._live

    def __len__(self) -> int:
        return len(self._good)

    async def is_revoked(
        self, conn: asyncpg.Pool | asyncpg.Connection, jti: uuid.UUID, session_id: uuid.UUID | None
    ) -> bool:
        if self._live:
            seen = self._good.get(jti)
            if seen is not None and seen.session_id == session_id:
                self.cache_hits += 1
                return False
        generation = self._generation
        revoked = bool(await Q.auth_access_token_revoked.fetch_val(conn, jti, session_id))
        if not revoked and self._live and generation == self._generation:
            self._good.put(jti, _NotRevoked(session_id))
        return revoked

    # --- what the revocation listener and the revoking handlers call -------------------------------------

    def on_notice(self, payload: str) -> None:
        kind, _, value = payload.partition(":")
        try:
            target = uuid.UUID(value)
        except ValueError:
            self.evict_all()  # not understood, but about some revocation: forgetting everything is always safe
            return
        if kind == "jti":
            self.evict_token(target)
        elif kind == "sid":
            self.evict_session(target)
        else:
            self.evict_all()

    def evict_token(self, jti: uuid.UUID) -> None:
        self._generation += 1
        self._good.evict(jti)

    def evict_session(self, session_id: uuid.UUID) -> None:
        self._generation += 1
        self._good.evict_group(session_id)

    def evict_all(self) -> None:
        self._generation += 1
        self._good.clear()

    def listener_connected(self) -> None:
        self.evict_all()
        self._live = True

    def listener_lost(self) -> None:
        self._live = False
        self.evict_all()


__all__ = ["CHANNEL", "AccessTokenCache"]
