"""API keys: ``nex_`` + 32 base64url characters (192 random bits), stored as SHA-256 hex in ``api_keys.key_hash``.

A fast hash is the right tool for a high-entropy secret: nobody can guess 192 bits offline, so a slow hash would
only cost every request ~100-250 ms (measured in stack.md §4d, and by bench/api_key_verify.py). Lookup is one
indexed equality query per request, so deleting a key revokes it on the very next request in every process.

Keys imported from a Nexgent database whose seed documentation stores a *bcrypt* hash cannot be looked up by
equality. Those rows are found by their display prefix and checked with bcrypt in a thread; a verified key is
then cached for ``api_key_cache_ttl_s`` as ``sha256(presented key) -> (key id, stored bcrypt hash)``. The cache
never answers alone: each request re-reads the row by id *and* stored hash (the same cost as a SHA-256 lookup),
so a deleted key, or a row whose hash changed, fails at once in every process; the cache only saves the bcrypt.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import bcrypt
import msgspec

from app.db import Q
from app.metrics import AUTH_EVENTS_TOTAL

API_KEY_PREFIX = "nex_"
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


@dataclass(frozen=True)
class _CachedKey:
    key_id: uuid.UUID
    key_hash: str
    expires_at: float


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
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._cache: dict[str, _CachedKey] = {}
        self._inflight: dict[str, asyncio.Task[ApiKeyRow | None]] = {}
        # bcrypt-12 costs ~230 ms of CPU: a flood of guesses sharing a known prefix must not take every core.
        self._bcrypt_slots = asyncio.Semaphore(bcrypt_concurrency)
        self.bcrypt_checks = 0

    async def verify(self, conn: asyncpg.Pool | asyncpg.Connection, raw_key: str) -> ApiKeyRow | None:
        key_sha = hash_api_key(raw_key)
        cached = self._cached(key_sha)
        if cached is not None:
            row = await Q.auth_api_key_by_id_and_hash.fetch_one(conn, cached.key_id, cached.key_hash, into=ApiKeyRow)
            if row is not None:
                return row
            self._cache.pop(key_sha, None)
        row = await Q.auth_api_key_by_hash.fetch_one(conn, key_sha, into=ApiKeyRow)
        if row is not None:
            return row
        prefixes = sorted({raw_key[:n] for n in LEGACY_PREFIX_LENGTHS})
        legacy = await Q.auth_api_key_legacy_candidates.fetch_all(conn, prefixes, into=ApiKeyRow)
        if not legacy:
            return None
        return await self._verify_legacy_once(key_sha, raw_key, legacy)

    def invalidate(self, key_id: uuid.UUID) -> None:
        """Forget a deleted key in this process (other processes find the row gone on their next request)."""
        for key_sha in [s for s, entry in self._cache.items() if entry.key_id == key_id]:
            del self._cache[key_sha]

    def _cached(self, key_sha: str) -> _CachedKey | None:
        entry = self._cache.get(key_sha)
        if entry is not None and entry.expires_at <= self.clock():
            del self._cache[key_sha]
            return None
        return entry

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
            self._remember(key_sha, match)

    async def _bcrypt_match(self, raw_key: str, rows: list[ApiKeyRow]) -> ApiKeyRow | None:
        for row in rows:
            async with self._bcrypt_slots:
                self.bcrypt_checks += 1
                AUTH_EVENTS_TOTAL.labels("api_key_bcrypt_check").inc()
                if await asyncio.to_thread(_bcrypt_key_matches, row.key_hash, raw_key):
                    return row
        return None

    def _remember(self, key_sha: str, row: ApiKeyRow) -> None:
        if len(self._cache) >= self.max_entries:
            now = self.clock()
            for stale in [s for s, entry in self._cache.items() if entry.expires_at <= now]:
                del self._cache[stale]
            if len(self._cache) >= self.max_entries:
                del self._cache[next(iter(self._cache))]  # oldest insertion first
        self._cache[key_sha] = _CachedKey(row.id, row.key_hash, self.clock() + self.ttl_s)
