"""API keys: ``nex_`` + 32 base64url characters (192 random bits), stored as SHA-256 hex in ``api_keys.key_hash``.

A fast hash is the right tool for a high-entropy secret: nobody can guess 192 bits offline, so a slow hash would
only cost every request ~100-250 ms (measured in stack.md §4d, and by bench/api_key_verify.py).

Verified keys are cached in the process, as ``sha256(presented key) -> row`` (key id, owner id and e-mail,
scopes): a cached key costs no database round trip. The cache is only trusted while this process hears about
every change to ``api_keys``: migration 0011's trigger NOTIFYs ``api_key_revoked`` with the key id when a row is
deleted (through the API, by a user deletion's cascade, or by hand) or updated, and ``app.auth.revocations`` keeps
a LISTEN connection that evicts the entry. While that connection is down the cache is emptied and bypassed, so a
notice missed during an outage can never keep a deleted key alive. The deleting process also evicts
synchronously, so a key deleted through the API fails on the very next request of that process; other processes
refuse it once the notice arrives (the commit's delivery time, milliseconds). Entries also expire after
``api_key_cache_ttl_s``, the bound on any change made with triggers disabled.

Keys imported from a Nexgent database whose seed documentation stores a *bcrypt* hash cannot be looked up by
equality. Those rows are found by their display prefix and checked with bcrypt in a thread. A successful check is
remembered separately as ``sha256(presented key) -> (key id, bcrypt hash)``; that memo never answers alone (each
use re-reads the row by id *and* hash), so it stays valid without notifications and spares the bcrypt while the
listener is down.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import asyncpg
import bcrypt
import msgspec

from app.auth.ttl_cache import TtlLruCache
from app.db import Q
from app.metrics import AUTH_EVENTS_TOTAL

log = logging.getLogger(__name__)

API_KEY_PREFIX = "nex_"
# ``api_keys.last_used_at`` is written at most this often per key and process (and per key in the database).
TOUCH_INTERVAL_S = 60.0
KEY_RANDOM_BYTES = 24  # base64url of 24 bytes = 32 characters, no padding
DISPLAY_PREFIX_LENGTH = 8  # "nex_" + 4 characters, what the reference writes to key_prefix
# Imported rows may hold a longer display prefix (the seed documentation says "first 12 chars").
LEGACY_PREFIX_LENGTHS = range(DISPLAY_PREFIX_LENGTH, 13)
BCRYPT_HASH_PREFIXES = ("$2a$", "$2b$", "$2y$")


class ApiKeyRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    user_id: uuid.UUID
    key_hash: str
    scopes: list[str]
    email: str
    expires_at: datetime | None = None  # checked by the caller on every use, cached or not
    allowed_ips: list[str] | None = None  # networks (cidr text); checked like the expiry; None = any address


def address_allowed(address: str, networks: list[str]) -> bool:
    """Whether ``address`` (the caller's, as ``client_ip`` gives it) lies in one of ``networks`` (cidr text). An
    IPv4 address seen as IPv4-mapped IPv6 (``::ffff:1.2.3.4``, dual-stack sockets) counts as itself."""
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    candidates = [ip] if ip.version == 4 or ip.ipv4_mapped is None else [ip, ip.ipv4_mapped]
    return any(candidate in network for network in _parsed(tuple(networks)) for candidate in candidates)


@functools.lru_cache(maxsize=1024)
def _parsed(networks: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    """Each key's list is parsed once, not on every request (up to 50 networks per key)."""
    return tuple(ip_network(network) for network in networks)


def looks_like_api_key(value: str) -> bool:
    """The reference's shape check, applied before any lookup."""
    return value.startswith(API_KEY_PREFIX) and 36 <= len(value) <= 40


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_api_key() -> tuple[str, str, str]:
    """A new key: (raw key shown once, SHA-256 hex to store, display prefix)."""
    raw = API_KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    return raw, hash_api_key(raw), raw[:DISPLAY_PREFIX_LENGTH]


def _bcrypt_key_matches(stored: str, raw_key: str) -> bool:
    try:
        return bcrypt.checkpw(raw_key.encode(), stored.encode())
    except ValueError:
        return False


def _key_id(row: ApiKeyRow) -> uuid.UUID:
    return row.id


class ApiKeyVerifier:
    """Turns a presented key into its row, or None. One instance per API process (on the app state)."""

    def __init__(
        self,
        ttl_s: float = 60.0,
        *,
        max_entries: int = 10_000,
        bcrypt_concurrency: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # sha256(presented key) -> row, grouped by key id so that a revocation evicts every presented form.
        self._verified: TtlLruCache[str, ApiKeyRow, uuid.UUID] = TtlLruCache(ttl_s, max_entries, clock, _key_id)
        self._bcrypt_memo: TtlLruCache[str, ApiKeyRow, uuid.UUID] = TtlLruCache(ttl_s, max_entries, clock, _key_id)
        self._inflight: dict[str, asyncio.Task[ApiKeyRow | None]] = {}
        # bcrypt-12 costs ~230 ms of CPU: a flood of guesses sharing a known prefix must not take every core.
        self._bcrypt_slots = asyncio.Semaphore(bcrypt_concurrency)
        # True only while the revocation listener is connected: the cache answers alone only then.
        self._live = False
        # Bumped by every eviction and listener change. A lookup stores its result only if no bump happened while
        # it read the database: a deletion that commits after the read, and whose notice is handled before the
        # read returns, would otherwise be outlived by the entry stored afterwards.
        self._generation = 0
        self.bcrypt_checks = 0
        self._clock = clock
        self._max_entries = max_entries
        self._touched: dict[uuid.UUID, float] = {}
        self._touching: set[asyncio.Task[None]] = set()
        self.cache_hits = 0

    @property
    def live(self) -> bool:
        return self._live

    @property
    def cached_keys(self) -> int:
        return len(self._verified)

    async def verify(self, conn: asyncpg.Pool | asyncpg.Connection, raw_key: str) -> ApiKeyRow | None:
        key_sha = hash_api_key(raw_key)
        if self._live:
            row = self._verified.get(key_sha)
            if row is not None:
                self.cache_hits += 1
                return row
        generation = self._generation
        row = await self._verify_in_database(conn, key_sha, raw_key)
        if row is not None and self._live and generation == self._generation:
            self._verified.put(key_sha, row)
        return row

    def note_use(self, pool: asyncpg.Pool, key_id: uuid.UUID) -> None:
        """Record a use in ``last_used_at`` in the background, at most once per :data:`TOUCH_INTERVAL_S` per key in
        this process: a request never waits for it, and a lost write only loses a timestamp. The write does not
        evict the key from any cache (migration 0073's trigger ignores that column)."""
        now = self._clock()
        if now - self._touched.get(key_id, -math.inf) < TOUCH_INTERVAL_S:
            return
        if len(self._touched) >= self._max_entries:
            self._touched.clear()
        self._touched[key_id] = now
        task = asyncio.create_task(self._touch(pool, key_id))
        self._touching.add(task)
        task.add_done_callback(self._touching.discard)

    async def _touch(self, pool: asyncpg.Pool, key_id: uuid.UUID) -> None:
        try:
            await Q.auth_touch_api_key.execute(pool, key_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.info("api key last_used_at not recorded", extra={"fields": {"error": str(exc)}})

    # --- what the revocation listener and the deleting handler call -----------------------------------

    def evict(self, key_id: uuid.UUID) -> None:
        """Forget a deleted or changed key in this process."""
        self._generation += 1
        self._verified.evict_group(key_id)
        self._bcrypt_memo.evict_group(key_id)

    def evict_all(self) -> None:
        self._generation += 1
        self._verified.clear()
        self._bcrypt_memo.clear()

    def listener_connected(self) -> None:
        """Called once LISTEN is in effect: every change committed from now on will be heard. Entries from before
        (none are kept while disconnected) are dropped anyway, so nothing predates the listening."""
        self._generation += 1
        self._verified.clear()
        self._live = True

    def listener_lost(self) -> None:
        """Notices may be missed from now on: stop trusting, and forget, every cached key."""
        self._live = False
        self._generation += 1
        self._verified.clear()

    # --- the database path ----------------------------------------------------------------------------

    async def _verify_in_database(
        self, conn: asyncpg.Pool | asyncpg.Connection, key_sha: str, raw_key: str
    ) -> ApiKeyRow | None:
        memo = self._bcrypt_memo.get(key_sha)
        if memo is not None:
            row = await Q.auth_api_key_by_id_and_hash.fetch_one(conn, memo.id, memo.key_hash, into=ApiKeyRow)
            if row is not None:
                return row
            self._bcrypt_memo.evict_group(memo.id)
        row = await Q.auth_api_key_by_hash.fetch_one(conn, key_sha, into=ApiKeyRow)
        if row is not None:
            return row
        prefixes = sorted({raw_key[:n] for n in LEGACY_PREFIX_LENGTHS})
        legacy = await Q.auth_api_key_legacy_candidates.fetch_all(conn, prefixes, into=ApiKeyRow)
        if not legacy:
            return None
        return await self._verify_legacy_once(key_sha, raw_key, legacy)

    async def _verify_legacy_once(self, key_sha: str, raw_key: str, rows: list[ApiKeyRow]) -> ApiKeyRow | None:
        """Concurrent requests with the same key share one bcrypt run instead of each paying for it. The run is
        its own task, so a caller that disconnects does not cancel it for the others."""
        task = self._inflight.get(key_sha)
        if task is None:
            task = asyncio.create_task(self._bcrypt_match(raw_key, rows))
            self._inflight[key_sha] = task
            task.add_done_callback(lambda done: self._settle(key_sha, done))
        return await asyncio.shield(task)

    def _settle(self, key_sha: str, task: asyncio.Task[ApiKeyRow | None]) -> None:
        self._inflight.pop(key_sha, None)
        if task.cancelled() or task.exception() is not None:
            return
        match = task.result()
        if match is not None:
            self._bcrypt_memo.put(key_sha, match)

    async def _bcrypt_match(self, raw_key: str, rows: list[ApiKeyRow]) -> ApiKeyRow | None:
        for row in rows:
            async with self._bcrypt_slots:
                self.bcrypt_checks += 1
                AUTH_EVENTS_TOTAL.labels("api_key_bcrypt_check").inc()
                if await asyncio.to_thread(_bcrypt_key_matches, row.key_hash, raw_key):
                    return row
        return None
