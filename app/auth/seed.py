"""The first admin, from ``ADMIN_EMAIL`` / ``ADMIN_PASSWORD``, created when the API starts.

Create-only: when an account with that e-mail exists (any letter case) nothing is written, and no other
account is ever touched (the reference overwrote the e-mail and password of an arbitrary existing user). The
one exception is opt-in: with ``ADMIN_PASSWORD_RESET=true`` a *different* password replaces that same account's
hash, clears its lockout and revokes its sessions — the recovery path for a forgotten admin password.
The password must satisfy the policy with at least 12 characters; it is used exactly as given (not trimmed:
login does not trim either). A half or invalid configuration stops the start with a message.
"""

from __future__ import annotations

import logging
from typing import Literal

import asyncpg
import msgspec
from litestar import Litestar

from app.auth.accounts import email_problem, normalise_email
from app.auth.passwords import ADMIN_MIN_LENGTH, policy_violation
from app.auth.runtime import AuthRuntime, auth_runtime
from app.config import ConfigError, Settings
from app.db import Q

log = logging.getLogger(__name__)

SeedOutcome = Literal["not_configured", "created", "exists", "password_reset"]


class _Account(msgspec.Struct, frozen=True):
    id: object
    password_hash: str | None


def admin_credentials(settings: Settings) -> tuple[str, str] | None:
    """The validated (e-mail, password) pair, None when neither is set; ConfigError when unusable."""
    if not settings.admin_email and not settings.admin_password:
        return None
    if not settings.admin_email or not settings.admin_password:
        raise ConfigError("ADMIN_EMAIL and ADMIN_PASSWORD must be set together")
    email = normalise_email(settings.admin_email)
    problem = email_problem(email)
    if problem:
        raise ConfigError(f"ADMIN_EMAIL: {problem}")
    problem = policy_violation(settings.admin_password, min_length=ADMIN_MIN_LENGTH)
    if problem:
        raise ConfigError(f"ADMIN_PASSWORD: {problem}")
    return email, settings.admin_password


async def seed_admin(pool: asyncpg.Pool, settings: Settings, runtime: AuthRuntime) -> SeedOutcome:
    credentials = admin_credentials(settings)
    if credentials is None:
        return "not_configured"
    email, password = credentials
    created = await Q.auth_insert_user.fetch_one(pool, email, await runtime.passwords.hash(password))
    if created is not None:
        log.info("admin account created", extra={"fields": {"user_id": str(created["id"])}})
        return "created"
    account = await Q.auth_user_by_email.fetch_one(pool, email, into=_Account)
    if account is None:  # the conflict was on another unique key; nothing of ours to do
        return "exists"
    matches = account.password_hash is not None and (await runtime.passwords.verify(account.password_hash, password)).ok
    if matches:
        return "exists"
    if not settings.admin_password_reset:
        log.warning(
            "ADMIN_PASSWORD differs from the admin's stored password; left unchanged (set ADMIN_PASSWORD_RESET=true "
            "to replace it)",
            extra={"fields": {"user_id": str(account.id)}},
        )
        return "exists"
    async with pool.acquire() as conn, conn.transaction():
        await Q.auth_set_password.execute(conn, account.id, await runtime.passwords.hash(password))
        await Q.auth_revoke_user_sessions.execute(conn, account.id, "password_reset")
    log.warning(
        "admin password replaced from ADMIN_PASSWORD; sessions revoked", extra={"fields": {"user_id": str(account.id)}}
    )
    return "password_reset"


async def auth_startup(app: Litestar) -> None:
    """``on_startup`` hook: prepare the dummy hash (so unknown e-mails cost one verify from the first login on)
    and seed the admin."""
    runtime = auth_runtime(app.state)
    await runtime.passwords.warm_up()
    await seed_admin(app.state.pool, app.state.settings, runtime)
