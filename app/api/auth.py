"""Who is calling: JWT access tokens and API keys, turned into a ``Principal`` by route dependencies.

Routes declare what they accept with a dependency named ``principal``, received as ``PrincipalDep``
(``app.api.deps``)::

    @get("/api/v1/agents", dependencies={"principal": scoped("agents")})      # JWT or API key with scope
    async def list_agents(principal: PrincipalDep, pool: PoolDep) -> ...

    @post("/api/v1/agents", dependencies={"principal": jwt_only()})           # user access token only

    # with a rate limit counted after authentication (per API key id, else per client IP; plus the path):
    @post("/api/v1/trading-signals", dependencies={"principal": scoped("signals", rate_limit=SIGNAL_INGEST)})
    @post("/api/v1/wallets/assign", dependencies={"principal": jwt_only(rate_limit=WALLET_OPS)})

Failures answer 401/403 with the error envelope and the reference's messages (spec api.md §2.2, §2.3).
A JWT holder has every scope; ``full_access`` satisfies any scope check; an API key never passes ``jwt_only``.
Every access token is checked against revocation (logout, revoked session) with one indexed query. API keys are
answered from the process's cache of verified keys while its revocation listener is connected (app.auth.keys).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from app.api.errors import ApiError
from app.auth.keys import API_KEY_PREFIX, address_allowed, hash_api_key, looks_like_api_key
from app.auth.ratelimit import RateLimit, client_ip, enforce_rate_limit, guard_credentials
from app.auth.runtime import auth_runtime
from app.auth.tokens import ACCESS_TTL, JWT_ALGORITHM, TokenError, issue_access_token, read_token
from app.metrics import AUTH_EVENTS_TOTAL

__all__ = [
    "ACCESS_TTL",
    "API_KEY_PREFIX",
    "IMPLIED_SCOPES",
    "JWT_ALGORITHM",
    "SCOPES",
    "Principal",
    "decode_token",
    "hash_api_key",
    "issue_access_token",
    "jwt_only",
    "looks_like_api_key",
    "principal_from_access_token",
    "principal_from_api_key",
    "scoped",
    "scoped_by_body_key",
]

# The reference's scopes, plus ``signals:write`` (api.md §25.1 #6): a key that may only send signals, for webhook
# senders whose key sits in a third party's configuration; it reads, edits and deletes nothing.
SCOPES = frozenset(
    {"signals", "signals:write", "agents", "positions", "balances", "transactions", "history", "full_access"}
)
# A scope that grants another: every ``signals`` key (the reference's) may also send signals.
IMPLIED_SCOPES: dict[str, frozenset[str]] = {"signals": frozenset({"signals:write"})}


class Principal(msgspec.Struct, frozen=True):
    user_id: uuid.UUID
    email: str
    api_key_id: uuid.UUID | None = None
    scopes: frozenset[str] = SCOPES
    token_id: str | None = None  # the access token's jti (None for API keys)
    token_expires_at: datetime | None = None
    session_id: uuid.UUID | None = None  # the login session the access token belongs to

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    def has_scope(self, scope: str) -> bool:
        if self.api_key_id is None or scope in self.scopes or "full_access" in self.scopes:
            return True
        return any(scope in IMPLIED_SCOPES.get(held, ()) for held in self.scopes)


def _unauthorized(message: str, code: str = "AUTHENTICATION_ERROR", *, guess: bool = False) -> ApiError:
    """``guess``: a credential that failed verification outright (counted by ``INVALID_CREDENTIALS``), unlike an
    expired, revoked or missing one."""
    error = ApiError(401, message, code, headers={"WWW-Authenticate": "Bearer"})
    error.invalid_credential = guess  # type: ignore[attr-defined]
    return error


_ACCESS_TOKEN_ERRORS = {"expired": "Token expired", "invalid": "Invalid token", "type": "Invalid token type"}


def decode_token(secret: str, token: str, expected_type: str) -> dict[str, Any]:
    """Verified claims (``userId``/``jti``/``sid`` as UUIDs) or ApiError 401 with the reference's message."""
    try:
        return read_token(secret, token, expected_type)  # type: ignore[arg-type]
    except TokenError as exc:
        raise _unauthorized(_ACCESS_TOKEN_ERRORS[exc.reason], guess=exc.reason != "expired") from None


async def principal_from_access_token(state: State, token: str) -> Principal:
    claims = decode_token(state.settings.jwt_secret, token, "access")
    if await auth_runtime(state).access_tokens.is_revoked(state.pool, claims["jti"], claims["sid"]):
        AUTH_EVENTS_TOTAL.labels("revoked_token_refused").inc()
        raise _unauthorized("Token has been revoked")
    return Principal(
        user_id=claims["userId"],
        email=claims["email"],
        token_id=str(claims["jti"]),
        token_expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        session_id=claims["sid"],
    )


async def principal_from_api_key(state: State, raw_key: str, scope: str | None, client: str) -> Principal:
    """``client``: the caller's address (``client_ip``), checked against the key's ``allowedIps``."""
    row = await auth_runtime(state).api_keys.verify(state.pool, raw_key)
    if row is None:
        AUTH_EVENTS_TOTAL.labels("api_key_refused").inc()
        raise _unauthorized("Invalid API key", guess=True)
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        AUTH_EVENTS_TOTAL.labels("api_key_expired").inc()
        raise _unauthorized("API key expired", "API_KEY_EXPIRED")
    if row.allowed_ips is not None and not address_allowed(client, row.allowed_ips):
        AUTH_EVENTS_TOTAL.labels("api_key_address_refused").inc()
        raise ApiError(403, "API key not allowed from this address", "IP_NOT_ALLOWED")
    auth_runtime(state).api_keys.note_use(state.pool, row.id)
    principal = Principal(user_id=row.user_id, email=row.email, api_key_id=row.id, scopes=frozenset(row.scopes))
    if scope is not None and not principal.has_scope(scope):
        raise ApiError(403, f"API key missing required scope: {scope}", "AUTHORIZATION_ERROR")
    return principal


async def _api_key_principal(request: Request, state: State, credential: str, scope: str) -> Principal:
    """An API key presented by ``request`` (header or body), verified under the invalid-credential budget and
    checked against the key's ``allowedIps`` for this request's client address."""
    client = client_ip(request, state.settings.trusted_proxies)
    return await guard_credentials(request, lambda: principal_from_api_key(state, credential, scope, client))


def bearer_token(request: Request, missing_message: str) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized(missing_message)
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] != "Bearer" or not parts[1]:
        raise _unauthorized("Invalid authorization header format")
    return parts[1]


# The providers below take ``pool`` without using it (the checks read ``state.pool``, the same pool): it makes
# ``principal`` resolve after ``pool`` instead of beside it. Litestar resolves a handler's independent dependencies
# concurrently in an anyio task group, which cost ~100 µs per request next to a pool query (~575 µs instead of
# ~460 µs for a cached API key on the bench route; docs/security.md); chained, they resolve one after the other.


def jwt_only(rate_limit: RateLimit | None = None) -> Provide:
    async def provide(request: Request, state: State, pool: NamedDependency[asyncpg.Pool]) -> Principal:
        token = bearer_token(request, "Authorization header required")
        principal = await guard_credentials(request, lambda: principal_from_access_token(state, token))
        if rate_limit is not None:
            await enforce_rate_limit(request, rate_limit, principal)
        return principal

    return _described(provide, "jwt", rate_limit)


def _described(provide, requirement: str, rate_limit: RateLimit | None) -> Provide:
    """Tag the provider with what it demands, so tests can audit every route against the reference's table."""
    provide.requirement = requirement
    provide.rate_limit = rate_limit
    return Provide(provide)


def scoped(scope: str, rate_limit: RateLimit | None = None) -> Provide:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def authenticate(request: Request, state: State) -> Principal:
        # X-API-Key wins; otherwise the bearer credential is an API key or an access token by its shape.
        credential = request.headers.get("x-api-key") or ""
        if not looks_like_api_key(credential):
            credential = bearer_token(request, "Authorization required")
        if looks_like_api_key(credential):
            return await _api_key_principal(request, state, credential, scope)
        return await guard_credentials(request, lambda: principal_from_access_token(state, credential))

    async def provide(request: Request, state: State, pool: NamedDependency[asyncpg.Pool]) -> Principal:
        principal = await authenticate(request, state)
        if rate_limit is not None:
            await enforce_rate_limit(request, rate_limit, principal)
        return principal

    return _described(provide, f"key:{scope}", rate_limit)


_body_decoder = msgspec.json.Decoder()


async def json_object_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, whatever its Content-Type (senders such as TradingView label a message
    text/plain unless they judge it valid JSON; a template with a bad placeholder turns it into text)."""
    try:
        body = _body_decoder.decode(await request.body())
    except msgspec.DecodeError:
        raise ApiError(400, "Malformed JSON body", "VALIDATION_ERROR") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Body must be a JSON object", "VALIDATION_ERROR")
    return body


def scoped_by_body_key(scope: str, rate_limit: RateLimit | None = None) -> Provide:
    """An API key with ``scope`` carried in the JSON body's ``apiKey``, for senders that cannot set headers
    (TradingView alerts: a fixed URL and a message body, nothing else). API keys only: a body is no place for a
    session token. The key is never logged or echoed; the handler must ignore ``apiKey`` in what it stores."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def provide(request: Request, state: State, pool: NamedDependency[asyncpg.Pool]) -> Principal:
        credential = (await json_object_body(request)).get("apiKey")
        if not isinstance(credential, str) or not credential:
            raise _unauthorized("apiKey is required in the body")
        principal = await _api_key_principal(request, state, credential, scope)
        if rate_limit is not None:
            await enforce_rate_limit(request, rate_limit, principal)
        return principal

    return _described(provide, f"body-key:{scope}", rate_limit)
