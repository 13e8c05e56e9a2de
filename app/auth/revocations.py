"""Cross-process invalidation of the authentication caches: one LISTEN connection per API process.

Migration 0011 NOTIFYs ``api_key_revoked`` with a key's id whenever its row is deleted or updated (``*`` when the
table is truncated), and migration 0070 NOTIFYs ``access_token_revoked`` (``jti:…`` / ``sid:…``) when an access
token or a session is revoked, from inside the changing transaction. This listener hands each notice to its
cache (the API-key verifier, app.auth.keys; the access-token cache, app.auth.access_tokens), which evicts at
once. The caches are trusted only between ``listener_connected`` (called after LISTEN is in effect on every
channel) and ``listener_lost`` (called as soon as the connection is known to be gone): while disconnected, every
request reads the database.

Same shape as the WebSocket hub's listener (app.api.ws), on its own connection: the hub's lifetime and probe
interval are the WebSocket's business, and this one decides how long a half-open connection can go unnoticed
(``PROBE_S``; a dead peer fails the probe within ``PROBE_S`` more). A clean close or a terminated backend is
noticed immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from litestar import Litestar

from app.auth.access_tokens import CHANNEL as TOKEN_CHANNEL
from app.auth.access_tokens import AccessTokenCache
from app.auth.keys import ApiKeyVerifier
from app.auth.runtime import auth_runtime
from app.metrics import API_KEY_LISTENER_UP

log = logging.getLogger(__name__)

CHANNEL = "api_key_revoked"
ALL_KEYS = "*"
APPLICATION_NAME = "nexgent-key-revocations"
PROBE_S = 5.0
FIRST_RETRY_S, MAX_RETRY_S = 0.5, 10.0


class RevocationListener:
    def __init__(self, database_url: str, verifier: ApiKeyVerifier, tokens: AccessTokenCache | None = None) -> None:
        self.database_url = database_url
        self.verifier = verifier
        self.tokens = tokens
        self.connected = asyncio.Event()
        self.backend_pid: int | None = None  # the LISTEN connection's server process, while connected
        self.notices = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="auth-revocations")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._lost()

    def _lost(self) -> None:
        self.verifier.listener_lost()
        if self.tokens is not None:
            self.tokens.listener_lost()
        self.connected.clear()
        self.backend_pid = None
        API_KEY_LISTENER_UP.set(0)

    def _on_terminated(self, gone: asyncio.Event, _conn: object) -> None:
        # Stop trusting the cache now, not when the watch loop next runs: notices are already being missed.
        self._lost()
        gone.set()

    def _on_notice(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.notices += 1
        if payload == ALL_KEYS:
            self.verifier.evict_all()
            return
        try:
            key_id = uuid.UUID(payload)
        except ValueError:
            # Not ours to understand, but it is about some key: forgetting everything is always safe.
            log.warning("malformed api_key_revoked payload; cache cleared", extra={"fields": {"payload": payload[:80]}})
            self.verifier.evict_all()
            return
        self.verifier.evict(key_id)

    def _on_token_notice(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.notices += 1
        assert self.tokens is not None
        self.tokens.on_notice(payload)

    async def _listen_forever(self) -> None:
        retry_s = FIRST_RETRY_S
        was_lost = False
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.database_url, server_settings={"application_name": APPLICATION_NAME})
                gone = asyncio.Event()
                conn.add_termination_listener(functools.partial(self._on_terminated, gone))
                await conn.add_listener(CHANNEL, self._on_notice)
                if self.tokens is not None:
                    await conn.add_listener(TOKEN_CHANNEL, self._on_token_notice)
                self.backend_pid = conn.get_server_pid()
                self.verifier.listener_connected()
                if self.tokens is not None:
                    self.tokens.listener_connected()
                self.connected.set()
                API_KEY_LISTENER_UP.set(1)
                if was_lost:
                    log.info("revocation listener back; key and token caches in use again")
                retry_s = FIRST_RETRY_S
                await self._watch(conn, gone)
                if not self._stopping.is_set():
                    was_lost = True
                    log.warning("revocation listener closed; key and token caches bypassed until it is back")
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                was_lost = True
                log.warning(
                    "revocation listener lost; key and token caches bypassed until it is back",
                    extra={"fields": {"error": type(exc).__name__, "retry_s": retry_s}},
                )
            finally:
                self._lost()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), retry_s)
            retry_s = min(retry_s * 2, MAX_RETRY_S)

    async def _watch(self, conn: asyncpg.Connection, gone: asyncio.Event) -> None:
        while not gone.is_set() and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), PROBE_S)
            if not gone.is_set() and not self._stopping.is_set():
                # A half-open TCP connection never reports termination; a round trip does.
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PROBE_S)


def revocation_lifespan(database_url: str):
    """Lifespan manager for ``create_app``; list it after the pool's (it reads ``state.settings``)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = auth_runtime(app.state)
        listener = RevocationListener(database_url, runtime.api_keys, runtime.access_tokens)
        app.state.revocations = listener
        await listener.start()
        try:
            yield
        finally:
            await listener.stop()

    return lifespan
