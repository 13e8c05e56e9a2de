"""Login sessions in PostgreSQL: refresh-token rotation with reuse detection, logout, access-token revocation.

A session is one login (``auth_sessions``); its refresh tokens form a family (``refresh_tokens``). Each refresh
marks the presented token used and issues the next one with the session's original expiry (24 h, or 30 days
with remember-me: rotating never extends a session). Presenting a used token again means two parties hold the
family (a stolen copy, or a client that kept an old token): the whole session is revoked, which also revokes
every access token carrying its ``sid``. Clients must store the new ``refreshToken`` from every refresh.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec

from app.api.errors import ApiError
from app.auth.accounts import locked_error
from app.auth.runtime import AuthRuntime
from app.auth.tokens import (
    REFRESH_TTL,
    REFRESH_TTL_REMEMBER_ME,
    TokenError,
    issue_access_token,
    issue_refresh_token,
    read_token,
)
from app.config import Settings
from app.db import Q, transaction
from app.metrics import AUTH_EVENTS_TOTAL


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str


class _RefreshRow(msgspec.Struct, frozen=True):
    jti: uuid.UUID
    used_at: datetime | None
    session_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    revoked_at: datetime | None
    email: str | None
    locked_until: datetime | None


def _refresh_error(message: str, code: str = "AUTHENTICATION_ERROR") -> ApiError:
    return ApiError(401, message, code)


def _pair(settings: Settings, user_id: uuid.UUID, email: str, session_id: uuid.UUID, jti: uuid.UUID, expires_at):
    return TokenPair(
        access_token=issue_access_token(settings.jwt_secret, user_id, email, session_id=session_id),
        refresh_token=issue_refresh_token(
            settings.jwt_secret, user_id, email, jti=jti, session_id=session_id, expires_at=expires_at
        ),
    )


async def open_session(
    pool: asyncpg.Pool, settings: Settings, user_id: uuid.UUID, email: str, remember_me: bool
) -> TokenPair:
    session_id, jti = uuid.uuid4(), uuid.uuid4()
    lifetime = REFRESH_TTL_REMEMBER_ME if remember_me else REFRESH_TTL
    # Whole seconds: the JWT's exp and the session row must agree exactly.
    expires_at = datetime.fromtimestamp(int((datetime.now(UTC) + lifetime).timestamp()), UTC)
    await Q.auth_create_session.execute(pool, session_id, user_id, remember_me, expires_at, jti)
    return _pair(settings, user_id, email, session_id, jti, expires_at)


def read_refresh_token(settings: Settings, token: str) -> dict:
    try:
        return read_token(settings.jwt_secret, token, "refresh")
    except TokenError as exc:
        if exc.reason == "type":
            raise _refresh_error("Invalid token type") from None
        raise _refresh_error("Invalid or expired refresh token") from None


async def rotate(pool: asyncpg.Pool, settings: Settings, runtime: AuthRuntime, token: str) -> TokenPair:
    """Exchange a refresh token for a new access + refresh pair; revoke the session on reuse."""
    claims = read_refresh_token(settings, token)
    failure: ApiError | None = None
    reused_session: uuid.UUID | None = None
    async with transaction(pool) as conn:
        row = await Q.auth_refresh_token_for_update.fetch_one(conn, claims["jti"], into=_RefreshRow)
        if row is None or row.revoked_at is not None or row.user_id != claims["userId"]:
            failure = _refresh_error("Refresh token has been revoked")
        elif row.used_at is not None:
            await Q.auth_revoke_session.execute(conn, row.session_id, "refresh_reuse")
            reused_session = row.session_id
            AUTH_EVENTS_TOTAL.labels("refresh_reuse").inc()
            failure = _refresh_error("Refresh token has been revoked", "REFRESH_TOKEN_REUSED")
        elif row.email is None:
            failure = _refresh_error("User not found")
        elif row.locked_until is not None and row.locked_until > runtime.clock():
            failure = locked_error(row.locked_until, runtime.clock())
        else:
            new_jti = uuid.uuid4()
            await Q.auth_rotate_refresh_token.execute(conn, row.jti, new_jti, row.session_id, row.expires_at)
            pair = _pair(settings, row.user_id, row.email, row.session_id, new_jti, row.expires_at)
    # Raised after the commit: the reuse revocation must persist even though the request fails.
    if reused_session is not None:
        runtime.access_tokens.evict_session(reused_session)
    if failure is not None:
        raise failure
    AUTH_EVENTS_TOTAL.labels("refresh").inc()
    return pair


async def revoke_access_token(
    pool: asyncpg.Pool, runtime: AuthRuntime, jti: uuid.UUID, user_id: uuid.UUID, expires_at: datetime
) -> None:
    await Q.auth_revoke_access_token.execute(pool, jti, user_id, expires_at)
    runtime.access_tokens.evict_token(jti)  # after the commit: this process refuses it on its very next request


async def revoke_session(pool: asyncpg.Pool, runtime: AuthRuntime, session_id: uuid.UUID, reason: str) -> None:
    await Q.auth_revoke_session.execute(pool, session_id, reason)
    runtime.access_tokens.evict_session(session_id)


async def session_of_refresh_token(pool: asyncpg.Pool, settings: Settings, token: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(session id, user id) of a refresh token that verifies and is known; ApiError 401 otherwise."""
    claims = read_refresh_token(settings, token)
    row = await Q.auth_refresh_token_session.fetch_one(pool, claims["jti"])
    if row is None:
        raise _refresh_error("Refresh token has been revoked")
    return row["session_id"], row["user_id"]
