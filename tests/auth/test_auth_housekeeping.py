"""The worker's auth housekeeping deletes only state that can no longer decide anything."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.auth.housekeeping import prune_auth_state
from app.worker.main import WorkerContext
from tests.factories import create_user


async def test_prune_keeps_live_state_and_drops_expired(pool, settings) -> None:
    user_id = await create_user(pool)
    live_session, old_session, revoked_live = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await pool.executemany(
        "INSERT INTO auth_sessions (id, user_id, expires_at, revoked_at) VALUES ($1, $2, now() + $3::interval, $4)",
        [
            (live_session, user_id, timedelta(days=1), None),
            (old_session, user_id, timedelta(minutes=-1), None),
            (revoked_live, user_id, timedelta(days=1), None),
        ],
    )
    await pool.execute("UPDATE auth_sessions SET revoked_at = now() WHERE id = $1", revoked_live)
    await pool.execute(
        "INSERT INTO refresh_tokens (jti, session_id, expires_at) VALUES ($1, $2, now() - interval '1 minute')",
        uuid.uuid4(),
        old_session,
    )
    fresh_jti, stale_jti = uuid.uuid4(), uuid.uuid4()
    await pool.executemany(
        "INSERT INTO revoked_access_tokens (jti, user_id, expires_at) VALUES ($1, $2, now() + $3::interval)",
        [(fresh_jti, user_id, timedelta(minutes=10)), (stale_jti, user_id, timedelta(seconds=-1))],
    )
    await pool.executemany(
        "INSERT INTO login_throttle (email_sha256, failed_login_attempts, locked_until, updated_at) "
        "VALUES ($1, 2, NULL, now() - $2::interval)",
        [("a" * 64, timedelta(days=2)), ("b" * 64, timedelta(hours=1))],
    )

    ctx = WorkerContext(settings=settings, pool=pool, database_url="", worker_id="test")
    ctx.stopping.set()  # one pass, then the service returns
    await prune_auth_state(ctx)

    sessions = {r["id"] for r in await pool.fetch("SELECT id FROM auth_sessions WHERE user_id = $1", user_id)}
    assert sessions == {live_session, revoked_live}  # a revoked session stays until it expires
    assert await pool.fetchval("SELECT count(*) FROM refresh_tokens WHERE session_id = $1", old_session) == 0
    revoked = {r["jti"] for r in await pool.fetch("SELECT jti FROM revoked_access_tokens WHERE user_id = $1", user_id)}
    assert revoked == {fresh_jti}
    throttled = {r["email_sha256"] for r in await pool.fetch("SELECT email_sha256 FROM login_throttle")}
    assert "b" * 64 in throttled and "a" * 64 not in throttled
