"""``/api/v1/api-keys``: create, list, get, delete the caller's API keys (spec api.md §4.3). JWT only: an API key
can never manage keys. The raw key is returned once, at creation; only its SHA-256 is stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

import msgspec
from litestar import Response, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from app.api.auth import SCOPES, jwt_only
from app.api.auth_routes import field_error
from app.api.deps import PoolDep, PrincipalDep
from app.api.errors import ApiError
from app.api.serialization import iso, parse_datetime
from app.auth.keys import generate_api_key
from app.auth.runtime import auth_runtime
from app.db import Q

NAME_MAX_LENGTH = 100
MAX_ALLOWED_IPS = 50
JWT = {"principal": jwt_only()}


class CreateApiKeyBody(msgspec.Struct, rename="camel"):
    name: str
    scopes: list[str]
    expires_at: str | None = None  # ISO-8601; absent = never (the reference's keys never expire)
    allowed_ips: list[str] | None = None  # addresses or networks the key may be used from; absent = any


class ApiKeyRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    key_prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    allowed_ips: list[str] | None


def _key_json(row: ApiKeyRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "prefix": row.key_prefix,
        "scopes": row.scopes,
        "createdAt": iso(row.created_at),
        "expiresAt": None if row.expires_at is None else iso(row.expires_at),
        # Within a minute: uses are recorded at most once a minute per key and API process.
        "lastUsedAt": None if row.last_used_at is None else iso(row.last_used_at),
        "allowedIps": row.allowed_ips,
    }


def _checked_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise field_error("scopes", "At least one scope is required")
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        allowed = ", ".join(sorted(SCOPES))
        raise field_error("scopes", f"Unknown scope: {', '.join(unknown)} (allowed: {allowed})")
    return list(dict.fromkeys(scopes))  # duplicates collapse, order kept


def _checked_expiry(value: str | None) -> datetime | None:
    expires_at = parse_datetime(value, "expiresAt")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise field_error("expiresAt", "expiresAt must be in the future")
    return expires_at


def _checked_networks(values: list[str] | None) -> list[IPv4Network | IPv6Network] | None:
    """Addresses (``52.89.214.238``) or networks (``10.0.0.0/8``, ``2001:db8::/32``); host bits are dropped."""
    if values is None:
        return None
    if not values or len(values) > MAX_ALLOWED_IPS:
        raise field_error("allowedIps", f"allowedIps must list 1 to {MAX_ALLOWED_IPS} addresses, or be omitted")
    networks = []
    for value in values:
        try:
            networks.append(ip_network(value.strip(), strict=False))
        except ValueError:
            raise field_error("allowedIps", f"Not an IP address or network: {value!r}") from None
    return list(dict.fromkeys(networks))


def _checked_name(name: str) -> str:
    # Validated before trimming like the reference (1-100), then trimmed; an all-blank name is refused too.
    if not 1 <= len(name) <= NAME_MAX_LENGTH or not name.strip():
        raise field_error("name", f"Name must be 1 to {NAME_MAX_LENGTH} characters")
    return name.strip()


def _key_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(400, "Invalid API key ID format", "VALIDATION_ERROR") from None


def _not_found() -> ApiError:
    return ApiError(404, "API key not found", "NOT_FOUND")


@post("/api/v1/api-keys", dependencies=JWT, tags=["api-keys"])
async def create_api_key(data: JSONBody[CreateApiKeyBody], principal: PrincipalDep, pool: PoolDep) -> Response[Any]:
    name, scopes = _checked_name(data.name), _checked_scopes(data.scopes)
    expires_at, networks = _checked_expiry(data.expires_at), _checked_networks(data.allowed_ips)
    raw_key, key_hash, prefix = generate_api_key()
    row = await Q.auth_insert_api_key.fetch_one(
        pool, principal.user_id, name, key_hash, prefix, scopes, expires_at, networks, into=ApiKeyRow
    )
    assert row is not None
    return Response({**_key_json(row), "key": raw_key}, status_code=201)


@get("/api/v1/api-keys", dependencies=JWT, tags=["api-keys"])
async def list_api_keys(principal: PrincipalDep, pool: PoolDep) -> Response[Any]:
    rows = await Q.auth_list_api_keys.fetch_all(pool, principal.user_id, into=ApiKeyRow)
    return Response({"items": [_key_json(row) for row in rows]}, status_code=200)


@get("/api/v1/api-keys/{key_id:str}", dependencies=JWT, tags=["api-keys"])
async def get_api_key(key_id: FromPath[str], principal: PrincipalDep, pool: PoolDep) -> Response[Any]:
    row = await Q.auth_get_api_key.fetch_one(pool, _key_id(key_id), principal.user_id, into=ApiKeyRow)
    if row is None:
        raise _not_found()
    return Response(_key_json(row), status_code=200)


@delete("/api/v1/api-keys/{key_id:str}", dependencies=JWT, status_code=200, tags=["api-keys"])
async def delete_api_key(key_id: FromPath[str], principal: PrincipalDep, pool: PoolDep, state: State) -> Response[Any]:
    deleted = await Q.auth_delete_api_key.fetch_val(pool, _key_id(key_id), principal.user_id)
    if deleted is None:
        raise _not_found()
    # Other processes evict on the trigger's notice; this one must not wait for its own notice to come back.
    auth_runtime(state).api_keys.evict(deleted)
    return Response({"success": True, "message": "API key deleted successfully"}, status_code=200)


ROUTES = [create_api_key, list_api_keys, get_api_key, delete_api_key]
