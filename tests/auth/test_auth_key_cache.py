"""The in-process cache of verified API keys and its invalidation (app.auth.keys, app.auth.revocations).

Two instances of the real app run on this module's database (``app_a``, ``app_b``: two API processes as far as
the cache is concerned, sharing nothing but PostgreSQL). Every test first proves the cache is really answering
(``cache_hits`` grows), then that a deleted key stops working: at once in the deleting instance, within the
notice's delivery (polled for at most 2 s, while the cache TTL is 60 s) in the other, and at once while the
listener is down because the cache is then bypassed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import bcrypt
import pytest
from litestar import get

from app.api.auth import scoped
from app.api.deps import PrincipalDep
from app.auth.keys import ApiKeyVerifier, generate_api_key
from app.auth.revocations import RevocationListener
from app.auth.runtime import auth_runtime
from tests.auth import helpers
from tests.auth.helpers import bearer, eventually, register
from tests.factories import create_user
from tests.in_loop import InLoopClient, in_loop_app_client

NOTICE_WITHIN_S = 2.0
PROBE = "/test-only/key-cache/whoami"


@get(PROBE, dependencies={"principal": scoped("agents")}, sync_to_thread=False)
def whoami(principal: PrincipalDep) -> dict[str, str]:
    return {"userId": str(principal.user_id), "email": principal.email, "apiKeyId": str(principal.api_key_id)}


@asynccontextmanager
async def _instance(settings, database_url) -> AsyncIterator[InLoopClient]:
    async with in_loop_app_client(settings, database_url) as http:
        http.app.register(whoami)
        assert await eventually(lambda: verifier(http).live, within_s=10), "revocation listener never connected"
        yield http


@pytest.fixture(scope="module")
async def app_a(settings, database_url) -> AsyncIterator[InLoopClient]:
    async with _instance(settings, database_url) as http:
        yield http


@pytest.fixture(scope="module")
async def app_b(settings, database_url) -> AsyncIterator[InLoopClient]:
    async with _instance(settings, database_url) as http:
        yield http


def verifier(http: InLoopClient) -> ApiKeyVerifier:
    return auth_runtime(http.app.state).api_keys


def listener(http: InLoopClient) -> RevocationListener:
    return http.app.state.revocations


async def status(http: InLoopClient, raw_key: str) -> int:
    return (await http.get(PROBE, headers={"X-API-Key": raw_key})).status_code


async def refused_within(http: InLoopClient, raw_key: str, within_s: float = NOTICE_WITHIN_S) -> bool:
    return await helpers.refused_within(http, PROBE, {"X-API-Key": raw_key}, "Invalid API key", within_s)


async def warm(http: InLoopClient, raw_key: str) -> None:
    """Use the key until this instance answers it from its cache."""
    hits = verifier(http).cache_hits
    for _ in range(3):
        assert await status(http, raw_key) == 200
    assert verifier(http).cache_hits > hits, "the key was never answered from the cache"


async def insert_key(pool: asyncpg.Pool, user_id: uuid.UUID, scopes: tuple[str, ...] = ("agents",)):
    raw, key_hash, prefix = generate_api_key()
    key_id = await pool.fetchval(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'cache', $2, $3, $4) "
        "RETURNING id",
        user_id,
        key_hash,
        prefix,
        list(scopes),
    )
    return raw, key_id


async def create_key_via_api(http: InLoopClient, session: dict) -> dict:
    response = await http.post(
        "/api/v1/api-keys", json={"name": "cache", "scopes": ["agents"]}, headers=bearer(session["accessToken"])
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_key_deleted_through_the_api_fails_on_the_very_next_request(app_a) -> None:
    session = await register(app_a)
    key = await create_key_via_api(app_a, session)
    await warm(app_a, key["key"])
    deleted = await app_a.delete(f"/api/v1/api-keys/{key['id']}", headers=bearer(session["accessToken"]))
    assert deleted.status_code == 200
    answer = await app_a.get(PROBE, headers={"X-API-Key": key["key"]})
    assert (answer.status_code, answer.json()["error"]) == (401, "Invalid API key")


async def test_another_instance_with_a_warm_cache_refuses_the_deleted_key_once_notified(app_a, app_b) -> None:
    session = await register(app_a)
    key = await create_key_via_api(app_a, session)
    await warm(app_a, key["key"])
    await warm(app_b, key["key"])
    b_backend, b_notices = listener(app_b).backend_pid, listener(app_b).notices

    deleted = await app_a.delete(f"/api/v1/api-keys/{key['id']}", headers=bearer(session["accessToken"]))
    assert deleted.status_code == 200
    assert await status(app_a, key["key"]) == 401
    assert await refused_within(app_b, key["key"])
    # Evicted by the notice, on the same LISTEN connection throughout: not a cache bypass, not the 60 s TTL.
    assert verifier(app_b).live
    assert listener(app_b).backend_pid == b_backend
    assert listener(app_b).notices > b_notices


async def test_deleting_a_user_revokes_its_keys_in_every_instance(app_a, app_b, pool) -> None:
    user_id = await create_user(pool)
    keys = [(await insert_key(pool, user_id))[0], (await insert_key(pool, user_id, ("signals", "agents")))[0]]
    for http in (app_a, app_b):
        for raw in keys:
            await warm(http, raw)

    await pool.execute("DELETE FROM users WHERE id = $1", user_id)  # api_keys rows go by ON DELETE CASCADE

    for http in (app_a, app_b):
        for raw in keys:
            assert await refused_within(http, raw)


async def test_an_email_change_reaches_cached_principals(app_a, app_b, pool) -> None:
    user_id = await create_user(pool)
    raw, _ = await insert_key(pool, user_id)
    for http in (app_a, app_b):
        await warm(http, raw)
    new_email = f"renamed-{uuid.uuid4().hex[:8]}@example.com"

    await pool.execute("UPDATE users SET email = $2 WHERE id = $1", user_id, new_email)

    async def reports_new_email(http: InLoopClient) -> bool:
        deadline = time.monotonic() + NOTICE_WITHIN_S
        while time.monotonic() < deadline:
            if (await http.get(PROBE, headers={"X-API-Key": raw})).json()["email"] == new_email:
                return True
            await asyncio.sleep(0.02)
        return False

    assert await reports_new_email(app_a)
    assert await reports_new_email(app_b)


async def test_while_the_listener_is_down_the_cache_is_bypassed(app_b, pool, admin_url) -> None:
    """The LISTEN backend is terminated while the database refuses new connections, so the outage lasts as long
    as the test needs: a key deleted meanwhile (its notice reaches no one in app_b) must be refused, and no key
    may be answered from the cache, until the listener is back."""
    user_id = await create_user(pool)
    doomed, doomed_id = await insert_key(pool, user_id)
    kept, _ = await insert_key(pool, user_id)
    await warm(app_b, doomed)
    await warm(app_b, kept)
    database = await pool.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", listener(app_b).backend_pid)
        assert await eventually(lambda: not verifier(app_b).live)
        assert verifier(app_b).cached_keys == 0

        await pool.execute("DELETE FROM api_keys WHERE id = $1", doomed_id)

        hits = verifier(app_b).cache_hits
        assert await status(app_b, doomed) == 401
        assert [await status(app_b, kept) for _ in range(3)] == [200] * 3
        assert verifier(app_b).cache_hits == hits  # every answer came from the database
        assert not verifier(app_b).live  # still the same outage (the listener cannot reconnect)
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        await admin.close()

    assert await eventually(lambda: verifier(app_b).live, within_s=15), "listener did not come back"
    assert await status(app_b, doomed) == 401
    await warm(app_b, kept)  # the cache is in use again


async def test_truncating_the_table_empties_every_cache(app_a, app_b, pool) -> None:
    user_id = await create_user(pool)
    raw, _ = await insert_key(pool, user_id)
    for http in (app_a, app_b):
        await warm(http, raw)

    await pool.execute("TRUNCATE api_keys")

    for http in (app_a, app_b):
        assert await refused_within(http, raw)


@pytest.fixture
async def standalone(database_url) -> AsyncIterator[tuple[ApiKeyVerifier, RevocationListener, list[float]]]:
    """A verifier with a small bound and a clock the test moves, kept current by a real listener."""
    now = [1000.0]
    verifier = ApiKeyVerifier(ttl_s=60, max_entries=2, clock=lambda: now[0])
    revocations = RevocationListener(database_url, verifier)
    await revocations.start()
    try:
        assert await eventually(lambda: verifier.live, within_s=10)
        yield verifier, revocations, now
    finally:
        await revocations.stop()


async def test_entries_expire_after_the_ttl(standalone, pool) -> None:
    verifier, _, now = standalone
    raw, _ = await insert_key(pool, await create_user(pool))
    assert await verifier.verify(pool, raw) is not None
    assert await verifier.verify(pool, raw) is not None
    assert verifier.cache_hits == 1
    now[0] += 60
    assert await verifier.verify(pool, raw) is not None
    assert verifier.cache_hits == 1  # expired: read from the database again (and cached anew)
    assert await verifier.verify(pool, raw) is not None
    assert verifier.cache_hits == 2


async def test_the_cache_is_bounded_least_recently_used_first_out(standalone, pool) -> None:
    verifier, _, _ = standalone
    user_id = await create_user(pool)
    first, second, third = [(await insert_key(pool, user_id))[0] for _ in range(3)]
    for raw in (first, second, first, third):  # `first` used again before `third` arrives: `second` goes
        assert await verifier.verify(pool, raw) is not None
    assert verifier.cached_keys == 2
    hits = verifier.cache_hits
    assert await verifier.verify(pool, first) is not None
    assert await verifier.verify(pool, third) is not None
    assert verifier.cache_hits == hits + 2
    assert await verifier.verify(pool, second) is not None
    assert verifier.cache_hits == hits + 2


async def test_a_lookup_overtaken_by_a_deletion_does_not_cache_the_deleted_key(standalone, pool) -> None:
    """An imported bcrypt-12 key takes ~250 ms to verify: the key is deleted, and its notice handled, while the
    verification runs. That in-flight request may still succeed (it began before the deletion), but what it read
    must not be cached, or the key would outlive its notice until the TTL."""
    verifier, revocations, _ = standalone
    raw = "nex_" + uuid.uuid4().hex[:32]
    key_id = await pool.fetchval(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'imported', $2, $3, "
        "'{agents}') RETURNING id",
        await create_user(pool),
        bcrypt.hashpw(raw.encode(), bcrypt.gensalt(12)).decode(),
        raw[:8],
    )
    checks, notices = verifier.bcrypt_checks, revocations.notices
    in_flight = asyncio.create_task(verifier.verify(pool, raw))
    assert await eventually(lambda: verifier.bcrypt_checks > checks)  # its database reads are done

    await pool.execute("DELETE FROM api_keys WHERE id = $1", key_id)
    assert await eventually(lambda: revocations.notices > notices)
    assert not in_flight.done(), "bcrypt finished before the notice: the race was not exercised"

    assert (await in_flight) is not None
    assert await verifier.verify(pool, raw) is None
    assert verifier.cached_keys == 0
