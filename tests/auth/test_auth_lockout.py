"""Lockout with an injected clock: 5 failures lock for 15 minutes (423 + Retry-After), a success resets the count,
an expired lock starts a fresh count, unknown e-mails lock identically, and the counter is atomic."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import AsyncTestClient

from app.auth.runtime import auth_runtime, utcnow
from tests.auth.helpers import hash_ops, login, new_email, register
from tests.dbutil import PROJECT_ROOT
from tests.in_loop import InLoopClient

WRONG = "Wrong-Password-1"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(client: AsyncTestClient) -> Iterator[FakeClock]:
    fake = FakeClock()
    runtime = auth_runtime(client.app.state)
    runtime.clock = fake
    yield fake
    runtime.clock = utcnow


async def fail(client: AsyncTestClient, email: str, times: int) -> list[int]:
    return [(await login(client, email, WRONG)).status_code for _ in range(times)]


async def counters(pool, email: str):
    return await pool.fetchrow("SELECT failed_login_attempts, locked_until FROM users WHERE email = $1", email)


async def test_five_failures_lock_for_fifteen_minutes(client: AsyncTestClient, pool, clock: FakeClock) -> None:
    email = new_email()
    await register(client, email=email)
    assert await fail(client, email, 5) == [401] * 5
    row = await counters(pool, email)
    assert row["failed_login_attempts"] == 5
    assert row["locked_until"] == clock.now + timedelta(minutes=15)

    # Locked: even the right password is refused, with how long to wait.
    locked = await login(client, email)
    assert locked.status_code == 423
    assert locked.headers["retry-after"] == "900"
    body = locked.json()
    assert body["error"] == "Account is temporarily locked due to too many failed login attempts"
    assert body["retryAfter"] == 900
    assert body["lockedUntil"].endswith("Z")

    clock.advance(minutes=10)
    again = await login(client, email, WRONG)
    assert again.status_code == 423
    assert again.headers["retry-after"] == "300"
    assert (await counters(pool, email))["failed_login_attempts"] == 5  # not counted while locked

    clock.advance(minutes=5, seconds=1)
    ok = await login(client, email)
    assert ok.status_code == 200
    row = await counters(pool, email)
    assert (row["failed_login_attempts"], row["locked_until"]) == (0, None)


async def test_locked_answer_does_not_depend_on_the_password(client: AsyncTestClient, clock: FakeClock) -> None:
    """During a lock the right and a wrong password get the same answer, and no hash is computed for either."""
    email = new_email()
    await register(client, email=email)
    await fail(client, email, 5)
    verifies_before = hash_ops("verify", "argon2id") + hash_ops("verify", "dummy")
    right, wrong = await login(client, email), await login(client, email, WRONG)
    assert right.status_code == wrong.status_code == 423
    assert right.json() == wrong.json()
    assert hash_ops("verify", "argon2id") + hash_ops("verify", "dummy") == verifies_before


async def test_expired_lock_starts_a_fresh_count(client: AsyncTestClient, pool, clock: FakeClock) -> None:
    """The reference re-locked on every failure after the fifth, forever; here the count restarts."""
    email = new_email()
    await register(client, email=email)
    await fail(client, email, 5)
    clock.advance(minutes=16)
    assert await fail(client, email, 1) == [401]
    row = await counters(pool, email)
    assert (row["failed_login_attempts"], row["locked_until"]) == (1, None)
    assert (await login(client, email)).status_code == 200  # not locked again
    assert await fail(client, email, 4) == [401] * 4
    assert (await login(client, email)).status_code == 200  # 4 failures: still open


async def test_success_resets_the_counter(client: AsyncTestClient, pool, clock: FakeClock) -> None:
    email = new_email()
    await register(client, email=email)
    await fail(client, email, 4)
    assert (await login(client, email)).status_code == 200
    assert (await counters(pool, email))["failed_login_attempts"] == 0
    assert await fail(client, email, 4) == [401] * 4
    assert (await login(client, email)).status_code == 200


async def test_unknown_email_locks_exactly_like_an_account(client: AsyncTestClient, pool, clock: FakeClock) -> None:
    """No 423-based account oracle: a made-up e-mail answers 401 x5 then 423 with the same body shape."""
    known, unknown = new_email(), new_email()
    await register(client, email=known)
    assert await fail(client, known, 5) == await fail(client, unknown, 5) == [401] * 5
    known_locked, unknown_locked = await login(client, known, WRONG), await login(client, unknown, WRONG)
    assert known_locked.status_code == unknown_locked.status_code == 423
    assert known_locked.json() == unknown_locked.json()
    assert known_locked.headers["retry-after"] == unknown_locked.headers["retry-after"]
    # The unknown e-mail is stored only as a digest.
    assert await pool.fetchval("SELECT count(*) FROM login_throttle WHERE email_sha256 LIKE '%@%'") == 0
    clock.advance(minutes=15, seconds=1)
    assert (await login(client, unknown, WRONG)).status_code == 401


async def test_concurrent_failures_are_all_counted(in_loop_client: InLoopClient, pool) -> None:
    """The increment is one UPDATE: parallel failures cannot under-count (the reference read then wrote)."""
    email = new_email()
    await register(in_loop_client, email=email)
    responses = await asyncio.gather(*(login(in_loop_client, email, WRONG) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [401] * 5
    row = await counters(pool, email)
    assert row["failed_login_attempts"] == 5
    assert row["locked_until"] is not None
    assert (await login(in_loop_client, email)).status_code == 423


async def _unlock(database_url: str, email: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "unlock", email, cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None, err
    return proc.returncode, out.decode()


async def test_an_operator_lifts_a_lockout_with_nexgent_unlock(client: AsyncTestClient, pool, database_url) -> None:
    email, unknown = new_email(), new_email()
    await register(client, email=email)
    assert await fail(client, email, 5) == [401] * 5
    assert (await login(client, email)).status_code == 423
    assert await fail(client, unknown, 5) == [401] * 5

    code, out = await _unlock(database_url, f"  {email.upper()} ")  # the same normalisation as login
    assert code == 0 and "lockout lifted" in out
    assert tuple(await counters(pool, email)) == (0, None)
    assert (await login(client, email)).status_code == 200

    code, out = await _unlock(database_url, unknown)  # an address with no account: its throttle row goes
    assert code == 0 and "no such account" in out
    assert (await login(client, unknown, WRONG)).status_code == 401  # counting from zero again, not 423

    code, out = await _unlock(database_url, new_email())
    assert code == 1 and "no account and no failed logins" in out
