"""Admin seeding at API start: create-only, never touching another account, policy enforced, reset opt-in."""

from __future__ import annotations

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.api.app import create_app
from app.auth.runtime import AuthRuntime
from app.auth.seed import seed_admin
from app.config import ConfigError, Settings
from tests.auth.helpers import from_ip, login, new_email, register
from tests.factories import create_user

ADMIN_PASSWORD = "Admin-Password-2024"


def with_admin(settings: Settings, email: str, password: str = ADMIN_PASSWORD, **extra) -> Settings:
    return msgspec.structs.replace(settings, admin_email=email, admin_password=password, **extra)


async def test_admin_is_created_at_start_and_can_log_in(settings: Settings, database_url: str, pool) -> None:
    email = new_email()
    await create_user(pool)  # other accounts exist: they are not "the admin" and stay untouched
    async with AsyncTestClient(app=create_app(with_admin(settings, f"  {email.upper()} "), database_url)) as client:
        response = await login(client, email, ADMIN_PASSWORD)
        assert response.status_code == 200
        assert response.json()["user"]["email"] == email
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE email = $1", email)
    assert stored.startswith("$argon2id$")


async def test_existing_account_is_never_overwritten(client: AsyncTestClient, settings: Settings, pool) -> None:
    email = new_email()
    await register(client, email=email)  # password PASSWORD, not ADMIN_PASSWORD
    before = await pool.fetch("SELECT id, email, password_hash FROM users ORDER BY id")
    runtime = AuthRuntime.from_settings(settings)
    assert await seed_admin(pool, with_admin(settings, email.upper()), runtime) == "exists"
    assert await pool.fetch("SELECT id, email, password_hash FROM users ORDER BY id") == before
    assert (await login(client, email, ADMIN_PASSWORD)).status_code == 401


async def test_seeding_twice_creates_once(settings: Settings, pool) -> None:
    email = new_email()
    runtime = AuthRuntime.from_settings(settings)
    assert await seed_admin(pool, with_admin(settings, email), runtime) == "created"
    assert await seed_admin(pool, with_admin(settings, email), runtime) == "exists"
    assert await pool.fetchval("SELECT count(*) FROM users WHERE email = $1", email) == 1


async def test_opt_in_reset_replaces_the_admins_password_and_ends_its_sessions(
    client: AsyncTestClient, settings: Settings, pool
) -> None:
    email = new_email()
    session = await register(client, email=email)
    await pool.execute("UPDATE users SET failed_login_attempts = 3 WHERE email = $1", email)
    runtime = AuthRuntime.from_settings(settings)
    outcome = await seed_admin(pool, with_admin(settings, email, admin_password_reset=True), runtime)
    assert outcome == "password_reset"
    assert (await login(client, email, ADMIN_PASSWORD)).status_code == 200
    assert await pool.fetchval("SELECT failed_login_attempts FROM users WHERE email = $1", email) == 0
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": session["refreshToken"]}, headers=from_ip()
    )
    assert refreshed.status_code == 401
    # Same password again: nothing to do.
    assert await seed_admin(pool, with_admin(settings, email, admin_password_reset=True), runtime) == "exists"


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("admin@example.com", "Short-1!", "at least 12 characters"),
        ("admin@example.com", "alllowercase-123", "uppercase"),
        ("not-an-email", ADMIN_PASSWORD, "ADMIN_EMAIL"),
        ("admin@example.com", None, "set together"),
        (None, ADMIN_PASSWORD, "set together"),
    ],
)
async def test_unusable_admin_settings_stop_the_start(
    settings: Settings, pool, email: str | None, password: str | None, message: str
) -> None:
    bad = msgspec.structs.replace(settings, admin_email=email, admin_password=password)
    with pytest.raises(ConfigError, match=message):
        await seed_admin(pool, bad, AuthRuntime.from_settings(settings))
    assert await pool.fetchval("SELECT count(*) FROM users WHERE email = 'admin@example.com'") == 0


async def test_unusable_admin_settings_fail_the_app_startup(settings: Settings, database_url: str) -> None:
    bad = with_admin(settings, new_email(), "weak")
    with pytest.raises(BaseException) as raised:
        async with AsyncTestClient(app=create_app(bad, database_url)):
            pass
    assert any(isinstance(exc, ConfigError) for exc in _flatten(raised.value))


def _flatten(exc: BaseException) -> list[BaseException]:
    """The startup error arrives wrapped in exception groups by the lifespan machinery."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _flatten(inner)]
    return [exc]


async def test_nothing_configured_means_nothing_seeded(settings: Settings, pool) -> None:
    count = await pool.fetchval("SELECT count(*) FROM users")
    assert await seed_admin(pool, settings, AuthRuntime.from_settings(settings)) == "not_configured"
    assert await pool.fetchval("SELECT count(*) FROM users") == count
