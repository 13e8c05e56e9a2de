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
from collections import OrderedDict
from collections.abc import Callable

import asyncpg

from app.db import Q

CHANNEL = "access_token_revoked"


class AccessTokenCache:
    def __init__(
        self, ttl_s: float = 60.0, *, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        # jti -> (session id, expiry on ``clock``): tokens found not revoked, oldest first.
        self._good: OrderedDict[uuid.UUID, tuple[uuid.UUID | None, float]] = OrderedDict()
        self._tokens_of_session: dict[uuid.UUID, set[uuid.UUID]] = {}
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
            entry = self._good.get(jti)
            if entry is not None and entry[0] == session_id:
                if entry[1] > self.clock():
                    self._good.move_to_end(jti)
                    self.cache_hits += 1
                    return False
                self._drop(jti)
        generation = self._generation
        revoked = bool(await Q.auth_access_token_revoked.fetch_val(conn, jti, session_id))
        if not revoked and self._live and generation == self._generation:
            self._remember(jti, session_id)
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
        self._drop(jti)

    def evict_session(self, session_id: uuid.UUID) -> None:
        self._generation += 1
        for jti in list(self._tokens_of_session.get(session_id, ())):
            self._drop(jti)

    def evict_all(self) -> None:
        self._generation += 1
        self._good.clear()
        self._tokens_of_session.clear()

    def listener_connected(self) -> None:
        self.evict_all()
        self._live = True

    def listener_lost(self) -> None:
        self._live = False
        self.evict_all()

    # --- bookkeeping ---------------------------------------------------------------------------------------

    def _remember(self, jti: uuid.UUID, session_id: uuid.UUID | None) -> None:
        self._drop(jti)
        self._good[jti] = (session_id, self.clock() + self.ttl_s)
        if session_id is not None:
            self._tokens_of_session.setdefault(session_id, set()).add(jti)
        while len(self._good) > self.max_entries:
            self._drop(next(iter(self._good)))

    def _drop(self, jti: uuid.UUID) -> None:
        entry = self._good.pop(jti, None)
        if entry is None or entry[0] is None:
            return
        tokens = self._tokens_of_session.get(entry[0])
        if tokens is not None:
            tokens.discard(jti)
            if not tokens:
                del self._tokens_of_session[entry[0]]


__all__ = ["CHANNEL", "AccessTokenCache"]
