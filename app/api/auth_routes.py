"""``/api/v1/auth``: register, login, refresh, logout, me (spec api.md §3; decisions in docs/security.md).

Response fields are the reference's: ``accessToken``, ``refreshToken``, ``user{id,email,createdAt}``. Refresh
also returns a new ``refreshToken`` (rotation): clients must replace the one they hold.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody

from app.api.auth import Principal, bearer_token, jwt_only, principal_from_access_token
from app.api.deps import PoolDep, PrincipalDep, SettingsDep
from app.api.errors import ApiError
from app.auth import accounts, sessions
from app.auth.passwords import policy_violation
from app.auth.ratelimit import LOGIN, REFRESH, REGISTER, rate_limit_guard
from app.auth.runtime import AuthRuntime, auth_runtime
from app.config import Settings
from app.db import Q

# Login accepts any stored password (imported accounts predate the policy) but not megabytes of input to hash.
LOGIN_PASSWORD_MAX = 1024


class RegisterBody(msgspec.Struct):
    email: str
    password: str


class LoginBody(msgspec.Struct, rename="camel"):
    email: str
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=LOGIN_PASSWORD_MAX)]
    remember_me: bool = False


class RefreshBody(msgspec.Struct, rename="camel"):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1)]


class LogoutBody(msgspec.Struct, rename="camel"):
    refresh_token: str | None = None


def field_error(field: str, message: str) -> ApiError:
    """The reference's Shape B validation answer, naming the field and the rule."""
    return ApiError(
        400, message, "VALIDATION_ERROR", details={"errors": [{"field": field, "message": message}]}, success=False
    )


def _checked_email(raw: str) -> str:
    email = accounts.normalise_email(raw)
    problem = accounts.email_problem(email)
    if problem:
        raise field_error("email", problem)
    return email


def _session_body(pair: sessions.TokenPair, user: accounts.UserRow) -> dict[str, Any]:
    return {"accessToken": pair.access_token, "refreshToken": pair.refresh_token, "user": accounts.user_json(user)}


@post("/api/v1/auth/register", guards=[rate_limit_guard(REGISTER)], tags=["auth"])
async def register(data: JSONBody[RegisterBody], state: State, pool: PoolDep, settings: SettingsDep) -> Response[Any]:
    if not settings.registration_enabled:
        # Indistinguishable from the reference, where the route is not mounted.
        raise NotFoundException()
    email = _checked_email(data.email)
    problem = policy_violation(data.password)
    if problem:
        raise field_error("password", problem)
    user = await accounts.create_user(pool, auth_runtime(state), email, data.password)
    if user is None:
        raise ApiError(409, "Unable to create account", "CONFLICT")
    pair = await sessions.open_session(pool, settings, user.id, user.email, remember_me=False)
    return Response(_session_body(pair, user), status_code=201)


@post("/api/v1/auth/login", guards=[rate_limit_guard(LOGIN)], tags=["auth"])
async def login(data: JSONBody[LoginBody], state: State, pool: PoolDep, settings: SettingsDep) -> Response[Any]:
    email = _checked_email(data.email)
    user = await accounts.authenticate(pool, auth_runtime(state), email, data.password)
    pair = await sessions.open_session(pool, settings, user.id, user.email, data.remember_me)
    return Response(_session_body(pair, user), status_code=200)


@post("/api/v1/auth/refresh", guards=[rate_limit_guard(REFRESH)], tags=["auth"])
async def refresh(data: JSONBody[RefreshBody], state: State, pool: PoolDep, settings: SettingsDep) -> Response[Any]:
    pair = await sessions.rotate(pool, settings, auth_runtime(state), data.refresh_token)
    return Response({"accessToken": pair.access_token, "refreshToken": pair.refresh_token}, status_code=200)


@post("/api/v1/auth/logout", tags=["auth"])
async def logout(request: Request, state: State, pool: PoolDep, settings: SettingsDep) -> Response[Any]:
    """Revokes the presented access token and its session; a refresh token in the body (optional) revokes its
    session too if it is the caller's. Works with only a refresh token, so an expired access token is no
    obstacle to logging out."""
    body = await _logout_body(request)
    try:
        principal: Principal | None = await principal_from_access_token(
            state, bearer_token(request, "Authorization header required")
        )
        access_error = None
    except ApiError as exc:
        principal, access_error = None, exc
    refresh_session = await _refresh_session_or_none(pool, settings, body.refresh_token)
    if principal is None and refresh_session is None:
        raise access_error  # type: ignore[misc]  # set whenever principal is None

    runtime = auth_runtime(state)
    if principal is not None:
        await _revoke_access(pool, runtime, principal)
    if refresh_session is not None:
        session_id, owner = refresh_session
        # Another user's refresh token is not the caller's to revoke (upstream revoked any it was handed).
        if principal is None or owner == principal.user_id:
            await sessions.revoke_session(pool, runtime, session_id, "logout")
    return Response({"success": True, "message": "Logged out successfully"}, status_code=200)


async def _revoke_access(pool: asyncpg.Pool, runtime: AuthRuntime, principal: Principal) -> None:
    assert principal.token_id is not None and principal.token_expires_at is not None
    await sessions.revoke_access_token(
        pool, runtime, uuid.UUID(principal.token_id), principal.user_id, principal.token_expires_at
    )
    if principal.session_id is not None:
        await sessions.revoke_session(pool, runtime, principal.session_id, "logout")


async def _refresh_session_or_none(pool: asyncpg.Pool, settings: Settings, token: str | None):
    if not token:
        return None
    try:
        return await sessions.session_of_refresh_token(pool, settings, token)
    except ApiError:
        return None  # an unusable refresh token is ignored, as upstream


async def _logout_body(request: Request) -> LogoutBody:
    raw = await request.body()
    if not raw.strip():
        return LogoutBody()
    try:
        return msgspec.json.decode(raw, type=LogoutBody)
    except msgspec.ValidationError as exc:
        raise field_error("refreshToken", str(exc)) from None
    except msgspec.DecodeError:
        raise ApiError(400, "Malformed JSON body", "VALIDATION_ERROR") from None


@get("/api/v1/auth/me", dependencies={"principal": jwt_only()}, tags=["auth"])
async def me(principal: PrincipalDep, pool: PoolDep) -> Response[Any]:
    user = await Q.auth_user_by_id.fetch_one(pool, principal.user_id, into=accounts.UserRow)
    if user is None:
        raise ApiError(404, "User not found", "NOT_FOUND")
    return Response(accounts.user_json(user), status_code=200)


ROUTES = [register, login, refresh, logout, me]
