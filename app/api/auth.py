"""Who is calling: JWT access tokens and API keys, turned into a ``Principal`` by route dependencies.

Routes declare what they accept with a dependency named ``principal``::

    @get("/api/v1/agents", dependencies={"principal": scoped("agents")})      # JWT or API key with scope
    async def list_agents(principal: Principal, pool: asyncpg.Pool) -> ...

    @post("/api/v1/agents", dependencies={"principal": jwt_only()})           # user access token only

Failures answer 401/403 with the error envelope and the reference's messages (spec api.md §2.2, §2.3).
A JWT holder has every scope; ``full_access`` satisfies any scope check.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
import msgspec
from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from app.api.errors import ApiError

SCOPES = frozenset({"signals", "agents", "positions", "balances", "transactions", "history", "full_access"})
ACCESS_TTL = timedelta(minutes=15)
API_KEY_PREFIX = "nex_"
JWT_ALGORITHM = "HS256"


class Principal(msgspec.Struct, frozen=True):
    user_id: uuid.UUID
    email: str
    api_key_id: uuid.UUID | None = None
    scopes: frozenset[str] = SCOPES
    token_id: str | None = None  # the access token's jti (None for API keys)
    token_expires_at: datetime | None = None

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    def has_scope(self, scope: str) -> bool:
        return self.api_key_id is None or scope in self.scopes or "full_access" in self.scopes


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, "AUTHENTICATION_ERROR", headers={"WWW-Authenticate": "Bearer"})


def issue_access_token(secret: str, user_id: uuid.UUID, email: str, *, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    claims = {
        "userId": str(user_id),
        "email": email,
        "type": "access",
        "jti": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        "exp": int((now + ACCESS_TTL).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_token(secret: str, token: str, expected_type: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "iat"]}, leeway=0
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("Token expired") from None
    except jwt.PyJWTError:
        raise _unauthorized("Invalid token") from None
    if not claims.get("userId") or not claims.get("email") or not claims.get("type"):
        raise _unauthorized("Invalid token")
    if claims["type"] != expected_type:
        raise _unauthorized("Invalid token type")
    try:
        uuid.UUID(str(claims["userId"]))
    except ValueError:
        raise _unauthorized("Invalid token") from None
    return claims


def looks_like_api_key(value: str) -> bool:
    return value.startswith(API_KEY_PREFIX) and 36 <= len(value) <= 40


def hash_api_key(raw_key: str) -> str:
    """SHA-256 hex: keys carry 192 random bits, so a fast hash is safe and costs microseconds per request."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


async def principal_from_access_token(state: State, token: str) -> Principal:
    claims = decode_token(state.settings.jwt_secret, token, "access")
    jti = claims.get("jti")
    if jti and await _is_revoked(state.pool, jti):
        raise _unauthorized("Token has been revoked")
    return Principal(
        user_id=uuid.UUID(claims["userId"]),
        email=claims["email"],
        token_id=jti,
        token_expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )


async def _is_revoked(pool: asyncpg.Pool, jti: str) -> bool:
    """Access-token revocation (logout); the table arrives with the auth migration."""
    checker = getattr(pool, "_nexgent_revocation_checker", None)
    return bool(checker and await checker(jti))


async def principal_from_api_key(state: State, raw_key: str, scope: str | None) -> Principal:
    row = await state.pool.fetchrow(
        "SELECT k.id, k.user_id, k.scopes, u.email FROM api_keys k JOIN users u ON u.id = k.user_id "
        "WHERE k.key_hash = $1",
        hash_api_key(raw_key),
    )
    if row is None:
        raise _unauthorized("Invalid API key")
    principal = Principal(
        user_id=row["user_id"], email=row["email"], api_key_id=row["id"], scopes=frozenset(row["scopes"])
    )
    if scope is not None and not principal.has_scope(scope):
        raise ApiError(403, f"API key missing required scope: {scope}", "AUTHORIZATION_ERROR")
    return principal


def _bearer(request: Request, missing_message: str) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized(missing_message)
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] != "Bearer" or not parts[1]:
        raise _unauthorized("Invalid authorization header format")
    return parts[1]


def jwt_only() -> Provide:
    async def provide(request: Request, state: State) -> Principal:
        return await principal_from_access_token(state, _bearer(request, "Authorization header required"))

    return Provide(provide)


def scoped(scope: str) -> Provide:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def provide(request: Request, state: State) -> Principal:
        api_key = request.headers.get("x-api-key")
        if api_key and looks_like_api_key(api_key):
            return await principal_from_api_key(state, api_key, scope)
        token = _bearer(request, "Authorization required")
        if looks_like_api_key(token):
            return await principal_from_api_key(state, token, scope)
        return await principal_from_access_token(state, token)

    return Provide(provide)
