"""Accounts: e-mail normalisation, registration, and password login with lockout.

Lockout (docs/security.md, "Lockout"): 5 consecutive failures lock for 15 minutes; a success resets the count;
once a lock has expired the next failure starts counting from 1 again (the reference re-locked on every further
failure, forever). The count is one atomic UPDATE. E-mails without an account are counted the same way in
``login_throttle``, so 401 and 423 answers are identical whether or not the account exists. While locked, the
answer is 423 *before* any hash: the password's correctness is never revealed during a lock (which would turn
the lock into a free guessing oracle), and the lock also stops the hash work an attacker can cause. Both
account kinds take that early exit, so its speed tells nothing either.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from datetime import datetime, timedelta

import asyncpg
import msgspec

from app.api.errors import ApiError
from app.api.serialization import iso
from app.auth.runtime import AuthRuntime
from app.db import Q
from app.metrics import AUTH_EVENTS_TOTAL

LOCK_THRESHOLD = 5
LOCK_DURATION = timedelta(minutes=15)
EMAIL_MAX_LENGTH = 255
_EMAIL = re.compile(r"^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$")

INVALID_CREDENTIALS = "Invalid email or password"
LOCKED_MESSAGE = "Account is temporarily locked due to too many failed login attempts"


class UserRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    email: str
    created_at: datetime


class _LoginSubject(msgspec.Struct, frozen=True):
    id: uuid.UUID | None
    email: str | None
    password_hash: str | None
    created_at: datetime | None
    locked_until: datetime | None
    throttle_locked_until: datetime | None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    """Why a normalised e-mail is unacceptable, or None."""
    if len(email) > EMAIL_MAX_LENGTH:
        return f"Email must be at most {EMAIL_MAX_LENGTH} characters"
    if not _EMAIL.match(email):
        return "Invalid email address"
    return None


def email_digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


def user_json(user: UserRow) -> dict[str, str]:
    return {"id": str(user.id), "email": user.email, "createdAt": iso(user.created_at)}


def locked_error(locked_until: datetime, now: datetime) -> ApiError:
    retry_after = max(1, math.ceil((locked_until - now).total_seconds()))
    return ApiError(
        423,
        LOCKED_MESSAGE,
        "LOCKED",
        headers={"Retry-After": str(retry_after)},
        lockedUntil=iso(locked_until),
        retryAfter=retry_after,
    )


def _invalid_credentials() -> ApiError:
    return ApiError(401, INVALID_CREDENTIALS, "AUTHENTICATION_ERROR")


def _is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and locked_until > now


async def authenticate(pool: asyncpg.Pool, runtime: AuthRuntime, email: str, password: str) -> UserRow:
    """The account for these credentials, or ApiError 401 (wrong e-mail or password) / 423 (locked)."""
    now = runtime.clock()
    digest = email_digest(email)
    subject = await Q.auth_login_subject.fetch_one(pool, email, digest, into=_LoginSubject)
    assert subject is not None  # the query always returns its one row
    lock = subject.locked_until if subject.id is not None else subject.throttle_locked_until
    if _is_locked(lock, now):
        AUTH_EVENTS_TOTAL.labels("login_locked").inc()
        raise locked_error(lock, now)  # type: ignore[arg-type]

    if subject.id is None or subject.password_hash is None:
        await runtime.passwords.dummy_verify(password)
        await _record_failure(pool, subject.id, digest, now)
        raise _invalid_credentials()

    result = await runtime.passwords.verify(subject.password_hash, password)
    if not result.ok:
        await _record_failure(pool, subject.id, digest, now)
        raise _invalid_credentials()

    await Q.auth_reset_failed_logins.execute(pool, subject.id)
    if result.needs_rehash:
        new_hash = await runtime.passwords.hash(password)
        await Q.auth_replace_password_hash.execute(pool, subject.id, new_hash, subject.password_hash)
        AUTH_EVENTS_TOTAL.labels("password_rehashed").inc()
    AUTH_EVENTS_TOTAL.labels("login_success").inc()
    return UserRow(id=subject.id, email=subject.email or email, created_at=subject.created_at)  # type: ignore[arg-type]


async def _record_failure(pool: asyncpg.Pool, user_id: uuid.UUID | None, digest: str, now: datetime) -> None:
    args = (now, LOCK_THRESHOLD, LOCK_DURATION.total_seconds())
    if user_id is not None:
        row = await Q.auth_record_failed_login.fetch_one(pool, user_id, *args)
    else:
        row = await Q.auth_record_failed_unknown_login.fetch_one(pool, digest, *args)
    locked = row is not None and row["locked_until"] is not None
    AUTH_EVENTS_TOTAL.labels("login_failed_locked" if locked else "login_failed").inc()


async def create_user(pool: asyncpg.Pool, runtime: AuthRuntime, email: str, password: str) -> UserRow | None:
    """Insert an account (argon2id hash); None when the e-mail is taken in any letter case."""
    password_hash = await runtime.passwords.hash(password)
    return await Q.auth_insert_user.fetch_one(pool, email, password_hash, into=UserRow)
