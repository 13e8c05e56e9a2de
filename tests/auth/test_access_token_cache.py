"""Access tokens found not revoked are remembered per process (app.auth.access_tokens) and forgotten on revocation.

Two instances of the real app (``app_a``, ``app_b``) share only PostgreSQL. Each test first proves the cache is
answering (``cache_hits`` grows), then that a revoked token is refused: at once in the revoking instance, within
the notice's delivery in the other (polled for at most 2 s; the cache TTL is 60 s), and at once while the
listener is down, because the cache is then bypassed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.api.auth import decode_token
from app.auth.access_tokens import AccessTokenCache
from app.auth.keys import ApiKeyVerifier
from app.auth.revocations import RevocationListener
from app.auth.runtime import auth_runtime
from tests.auth import helpers
from tests.auth.helpers import bearer, eventually, from_ip, register
from tests.factories import create_user
from tests.in_loop import InLoopClient, in_loop_app_client

NOTICE_WITHIN_S = 2.0
ME = "/api/v1/auth/me"


def tokens(http: InLoopClient) -> AccessTokenCache:
    return auth_runtime(http.app.state).access_tokens


async def _instance(settings, database_url) -> AsyncIterator[InLoopClient]:
    async with in_loop_app_client(settings, database_url) as http:
        assert await eventually(lambda: tokens(http).live, within_s=10), "revocation listener never connected"
        yield http


@pytest.fixture(scope="module")
async def app_a(settings, database_url) -> AsyncIterator[InLoopClient]:
    async for http in _instance(settings, database_url):
        yield http


@pytest.fixture(scope="module")
async def app_b(settings, database_url) -> AsyncIterator[InLoopClient]:
    async for http in _instance(settings, database_url):
        yield http


async def status(http: InLoopClient, access_token: str) -> int:
    return (await http.get(ME, headers=bearer(access_token))).status_code


async def warm(http: InLoopClient, access_token: str) -> None:
    hits = tokens(http).cache_hits
    for _ in range(3):
        assert await status(http, access_token) == 200
    assert tokens(http).cache_hits > hits, "the token was never answered from the cache"


async def refused_within(http: InLoopClient, access_token: str, within_s: float = NOTICE_WITHIN_S) -> bool:
    return await helpers.refused_within(http, ME, bearer(access_token), "Token has been revoked", within_s)


def claims(settings, access_token: str) -> dict:
    return decode_token(settings.jwt_secret, access_token, "access")


async def test_logout_refuses_the_token_on_the_very_next_request_and_in_the_other_instance(app_a, app_b) -> None:
    session = await register(app_a)
    access = session["accessToken"]
    await warm(app_a, access)
    await warm(app_b, access)

    # Hold app_a's notices back (a slow delivery) to show it does not need them for its own revocations.
    held: list[str] = []
    cache_a = tokens(app_a)
    cache_a.on_notice = held.append  # type: ignore[method-assign]
    try:
        logout = await app_a.post("/api/v1/auth/logout", json={}, headers=bearer(access))
        assert logout.status_code == 200, logout.text
        assert await eventually(lambda: len(held) >= 2)  # jti and sid notices were sent, and held
        hits = cache_a.cache_hits
        assert await status(app_a, access) == 401  # evicted synchronously after the commit
        assert cache_a.cache_hits == hits
    finally:
        del cache_a.on_notice
    assert await refused_within(app_b, access)


async def test_refresh_token_reuse_revokes_the_sessions_access_tokens_everywhere(app_a, app_b) -> None:
    session = await register(app_a)
    access = session["accessToken"]
    await warm(app_a, access)
    await warm(app_b, access)
    first = await app_a.post("/api/v1/auth/refresh", json={"refreshToken": session["refreshToken"]}, headers=from_ip())
    assert first.status_code == 200, first.text
    rotated_access = first.json()["accessToken"]
    await warm(app_b, rotated_access)

    reuse = await app_a.post("/api/v1/auth/refresh", json={"refreshToken": session["refreshToken"]}, headers=from_ip())
    assert reuse.status_code == 401
    assert await status(app_a, access) == 401
    assert await status(app_a, rotated_access) == 401
    assert await refused_within(app_b, access)
    assert await refused_within(app_b, rotated_access)


async def test_revocations_made_in_sql_reach_every_instance(app_a, app_b, pool, settings) -> None:
    by_token, by_session, bystander = [await register(app_a) for _ in range(3)]
    for session in (by_token, by_session, bystander):
        await warm(app_a, session["accessToken"])
        await warm(app_b, session["accessToken"])

    token_claims = claims(settings, by_token["accessToken"])
    await pool.execute(
        "INSERT INTO revoked_access_tokens (jti, user_id, expires_at) VALUES ($1, $2, now() + interval '1 hour')",
        token_claims["jti"],
        token_claims["userId"],
    )
    await pool.execute(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'operator' WHERE id = $1",
        claims(settings, by_session["accessToken"])["sid"],
    )
    for http in (app_a, app_b):
        assert await refused_within(http, by_token["accessToken"])
        assert await refused_within(http, by_session["accessToken"])
        await warm(http, bystander["accessToken"])  # an unrelated token stays cached


async def test_while_the_listener_is_down_the_cache_is_bypassed(app_b, pool, admin_url, settings) -> None:
    session = await register(app_b)
    doomed, kept = session["accessToken"], (await register(app_b))["accessToken"]
    await warm(app_b, doomed)
    await warm(app_b, kept)
    database = await pool.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", app_b.app.state.revocations.backend_pid)
        assert await eventually(lambda: not tokens(app_b).live)
        assert len(tokens(app_b)) == 0

        await pool.execute(
            "UPDATE auth_sessions SET revoked_at = now() WHERE id = $1", claims(settings, doomed)["sid"]
        )  # its notice reaches no one in app_b

        hits = tokens(app_b).cache_hits
        assert await status(app_b, doomed) == 401
        assert [await status(app_b, kept) for _ in range(3)] == [200] * 3
        assert tokens(app_b).cache_hits == hits  # every answer came from the database
        assert not tokens(app_b).live
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        await admin.close()

    assert await eventually(lambda: tokens(app_b).live, within_s=15), "listener did not come back"
    assert await status(app_b, doomed) == 401
    await warm(app_b, kept)


class SlowPool:
    """Delays the revocation query's answer so a revocation can overtake it."""

    def __init__(self, pool: asyncpg.Pool, started: asyncio.Event, release: asyncio.Event) -> None:
        self.pool, self.started, self.release = pool, started, release

    async def fetchval(self, *args, **kwargs):
        answer = await self.pool.fetchval(*args, **kwargs)
        self.started.set()
        await self.release.wait()
        return answer


async def test_a_lookup_overtaken_by_a_revocation_does_not_cache_its_stale_answer(database_url, pool) -> None:
    cache = AccessTokenCache(ttl_s=60)
    listener = RevocationListener(database_url, ApiKeyVerifier(), cache)
    await listener.start()
    try:
        assert await eventually(lambda: cache.live, within_s=10)
        session_id, jti = await new_session(pool), uuid.uuid4()
        started, release = asyncio.Event(), asyncio.Event()
        in_flight = asyncio.create_task(cache.is_revoked(SlowPool(pool, started, release), jti, session_id))  # type: ignore[arg-type]
        await asyncio.wait_for(started.wait(), 5)  # it has read "not revoked"

        notices = listener.notices
        await pool.execute("UPDATE auth_sessions SET revoked_at = now() WHERE id = $1", session_id)
        assert await eventually(lambda: listener.notices > notices)
        release.set()

        assert await in_flight is False  # began before the revocation: may pass once
        assert len(cache) == 0  # but is not remembered
        assert await cache.is_revoked(pool, jti, session_id) is True
    finally:
        await listener.stop()


async def test_entries_expire_are_bounded_and_belong_to_their_session(pool) -> None:
    now = [0.0]
    cache = AccessTokenCache(ttl_s=60, max_entries=2, clock=lambda: now[0])
    cache.listener_connected()  # as if the listener were up; this test sends no notices
    sid = await new_session(pool)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def hit(jti: uuid.UUID, session_id: uuid.UUID | None = sid) -> bool:
        hits = cache.cache_hits
        assert await cache.is_revoked(pool, jti, session_id) is False
        return cache.cache_hits == hits + 1

    assert [await hit(a), await hit(a)] == [False, True]
    assert not await hit(a, uuid.uuid4())  # the same jti presented with another session id is looked up
    now[0] += 60
    assert not await hit(a)  # expired: read again
    assert await hit(a)

    for jti in (b, a, c):  # `a` used again before `c` arrives: `b` (least recently used) goes
        await cache.is_revoked(pool, jti, sid)
    assert len(cache) == 2
    assert await hit(a) and await hit(c) and not await hit(b)

    cache.evict_session(sid)
    assert len(cache) == 0
    await cache.is_revoked(pool, a, sid)
    cache.on_notice("not-a-revocation")  # not understood: everything is forgotten, never an error
    assert len(cache) == 0
    await cache.is_revoked(pool, a, sid)
    cache.on_notice(f"jti:{a}")
    assert len(cache) == 0
    cache.listener_lost()
    assert not await hit(a) and not await hit(a)  # bypassed while not live


async def new_session(pool: asyncpg.Pool) -> uuid.UUID:
    return await pool.fetchval(
        "INSERT INTO auth_sessions (id, user_id, expires_at) VALUES ($1, $2, now() + interval '1 day') RETURNING id",
        uuid.uuid4(),
        await create_user(pool),
    )
