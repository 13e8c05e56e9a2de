"""What authenticating one request costs, per credential kind (issue 3).

    uv run python bench/api_key_verify.py                 # local server, ~30 s
    uv run python bench/api_key_verify.py --bcrypt-cost 10 --iterations 5000

Creates a throwaway database (on ``--admin-url``, default ``$BENCH_ADMIN_URL`` or the local server), then times,
in one run and one process (median of ``--repeats`` batches of ``--iterations`` calls; the cases take turns):

* ``baseline: SELECT 1``: one pool round trip, the floor of anything that asks PostgreSQL;
* ``sha256 only``: hashing a presented key, no database;
* ``sha256 key, cached``: ``ApiKeyVerifier.verify`` for a key created by this API, with the revocation listener
  connected (app.auth.revocations): answered from the in-process cache, no database;
* ``sha256 key, cache bypassed``: the same without a listener, as during a listener outage (one indexed query);
* ``bcrypt key, cached``: an imported key (bcrypt ``key_hash``) after its first verification, listener connected;
* ``bcrypt key, cache bypassed``: the same without a listener (the bcrypt memo: one query by id and hash);
* ``bcrypt key, uncached``: the same key evicted each time (prefix query + bcrypt);
* ``JWT verification, first time``: PyJWT's signature and claims check of a token not seen before;
* ``JWT decode only``: ``read_token`` of a token verified before (app.auth.tokens remembers verified access
  tokens by their exact string and re-checks only ``exp``), no database;
* ``access token, cached|bypassed``: JWT decode + the revocation check, answered from the access-token cache
  (app.auth.access_tokens) while the listener is up, or by one query with two primary-key probes.

Ratios are against the ``SELECT 1`` baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import bcrypt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DEFAULT_ADMIN_URL, create_database, drop_database, migrate

from app.api.auth import decode_token, issue_access_token
from app.auth.access_tokens import AccessTokenCache
from app.auth.keys import ApiKeyVerifier, generate_api_key, hash_api_key
from app.auth.revocations import RevocationListener
from app.auth.tokens import _verify as verify_uncached  # the full check that read_token remembers
from app.db import create_pool

SECRET = "bench-secret-0123456789-0123456789-0123456789"


async def batch(fn: Callable[[], Awaitable[object]], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        await fn()
    return (time.perf_counter() - started) / iterations


async def interleaved(cases: list[tuple[str, Callable[[], Awaitable[object]], int]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each case; the cases take turns batch by batch, so a machine that gets busier
    or quieter during the run shifts every case alike instead of skewing the ratios."""
    samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(repeats):
        for name, fn, iterations in cases:
            samples[name].append(await batch(fn, iterations))
    return {name: statistics.median(values) for name, values in samples.items()}


async def populate(pool: asyncpg.Pool, bcrypt_cost: int, other_keys: int) -> tuple[uuid.UUID, str, str, uuid.UUID]:
    """A user with one API-created key, one imported bcrypt key, and ``other_keys`` keys of other users (so the
    indexes have something to search)."""
    user_id = await pool.fetchval("INSERT INTO users (email) VALUES ('bench-keys@example.com') RETURNING id")
    rows = []
    for n in range(other_keys):
        owner = await pool.fetchval("INSERT INTO users (email) VALUES ($1) RETURNING id", f"other-{n}@example.com")
        _, key_hash, prefix = generate_api_key()
        rows.append((owner, key_hash, prefix))
    await pool.executemany(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'other', $2, $3, '{agents}')",
        rows,
    )
    sha_key, key_hash, prefix = generate_api_key()
    await pool.execute(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'sha', $2, $3, '{agents}')",
        user_id,
        key_hash,
        prefix,
    )
    legacy_key, _, legacy_prefix = generate_api_key()
    legacy_hash = bcrypt.hashpw(legacy_key.encode(), bcrypt.gensalt(bcrypt_cost)).decode()
    legacy_id = await pool.fetchval(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'bcrypt', $2, $3, '{agents}') "
        "RETURNING id",
        user_id,
        legacy_hash,
        legacy_prefix,
    )
    return user_id, sha_key, legacy_key, legacy_id


async def run(args: argparse.Namespace) -> None:
    url = await create_database(args.admin_url)
    try:
        await asyncio.to_thread(migrate, url)
        pool = await create_pool(url, min_size=1, max_size=2)
        cached = ApiKeyVerifier(ttl_s=3600)
        tokens = AccessTokenCache(ttl_s=3600)
        listener = RevocationListener(url, cached, tokens)
        await listener.start()
        try:
            await asyncio.wait_for(listener.connected.wait(), 10)
            await measure(pool, cached, tokens, args)
        finally:
            await listener.stop()
            await pool.close()
    finally:
        await drop_database(args.admin_url, url)


async def measure(
    pool: asyncpg.Pool, cached: ApiKeyVerifier, tokens: AccessTokenCache, args: argparse.Namespace
) -> None:
    user_id, sha_key, legacy_key, legacy_id = await populate(pool, args.bcrypt_cost, args.other_keys)
    bypassed = ApiKeyVerifier(ttl_s=3600)  # no listener: never trusts its cache
    for verifier in (cached, bypassed):
        assert await verifier.verify(pool, sha_key) is not None
        assert await verifier.verify(pool, legacy_key) is not None
    hits = cached.cache_hits
    assert await cached.verify(pool, sha_key) is not None
    assert cached.cache_hits == hits + 1, "the cached verifier is not answering from its cache"
    token = issue_access_token(SECRET, user_id, "bench-keys@example.com", session_id=uuid.uuid4())
    tokens_bypassed = AccessTokenCache(ttl_s=3600)  # no listener: reads the database every time

    async def ping() -> None:
        await pool.fetchval("SELECT 1")

    async def sha_only() -> None:
        hash_api_key(sha_key)

    async def sha_cached() -> None:
        await cached.verify(pool, sha_key)

    async def sha_bypassed() -> None:
        await bypassed.verify(pool, sha_key)

    async def bcrypt_cached() -> None:
        await cached.verify(pool, legacy_key)

    async def bcrypt_bypassed() -> None:
        await bypassed.verify(pool, legacy_key)

    async def bcrypt_uncached() -> None:
        bypassed.evict(legacy_id)
        await bypassed.verify(pool, legacy_key)

    async def jwt_only() -> None:
        decode_token(SECRET, token, "access")

    async def jwt_first_time() -> None:
        verify_uncached(SECRET, token, "access")

    async def access_token_cached() -> None:
        claims = decode_token(SECRET, token, "access")
        await tokens.is_revoked(pool, claims["jti"], claims["sid"])

    async def access_token_bypassed() -> None:
        claims = decode_token(SECRET, token, "access")
        await tokens_bypassed.is_revoked(pool, claims["jti"], claims["sid"])

    n = args.iterations
    slow_n = max(1, args.bcrypt_iterations)
    cases = [
        ("baseline: SELECT 1", ping, n),
        ("sha256 only (no DB)", sha_only, n),
        ("sha256 key, cached", sha_cached, n),
        ("sha256 key, cache bypassed", sha_bypassed, n),
        ("bcrypt key, cached", bcrypt_cached, n),
        ("bcrypt key, cache bypassed (memo)", bcrypt_bypassed, n),
        (f"bcrypt key, uncached (cost {args.bcrypt_cost})", bcrypt_uncached, slow_n),
        ("JWT verification, first time (PyJWT)", jwt_first_time, n),
        ("JWT decode only (no DB)", jwt_only, n),
        ("access token, cached", access_token_cached, n),
        ("access token, cache bypassed", access_token_bypassed, n),
    ]
    for _, fn, _ in cases:  # warm up: prepared statements, pool connections
        await batch(fn, 5)
    results = await interleaved(cases, args.repeats)
    baseline = results["baseline: SELECT 1"]
    print(f"{'credential check':<40} {'µs/verify':>12} {'x SELECT 1':>12}")
    for name, seconds in results.items():
        print(f"{name:<40} {seconds * 1e6:>12.1f} {seconds / baseline:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--bcrypt-iterations", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--bcrypt-cost", type=int, default=12, help="12 = the reference's cost")
    parser.add_argument("--other-keys", type=int, default=2000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
