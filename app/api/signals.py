"""Trading signals (api.md §14, §17.2): ingestion, list/get/update/delete, delete-all, CSV export.

Ingestion stores the signal with the caller's user id and answers 201 at once; the ``signal_created``
trigger wakes the worker, which fans the signal out to the user's agents (``processed_at`` marks it done).

Duplicates, in PostgreSQL instead of Redis (§13), race-free:
* the reference's 60 s window (same user, token, type, strength → 409 ``SIGNAL_DUPLICATE``) is a row in
  ``signal_dedupe`` claimed by ``INSERT … ON CONFLICT DO UPDATE … WHERE expired`` in the signal's own
  transaction: two identical concurrent posts serialise on the key and only one gets the slot, and a
  failed insert frees it again (upstream's marker outlived a failed insert);
* an optional ``Idempotency-Key`` header (≤ 255 printable characters, kept 24 h): a retry with the same key
  and the same body gets the original response (status and body, byte for byte) instead of a 409; the
  same key with a different body is a 422.

``POST /api/v1/trading-signals/webhook`` is the same ingestion for senders that cannot set headers (TradingView
alerts): API key in the body's ``apiKey``, ``alertId`` as the idempotency key (docs/api.md, "Signals").
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Stream

from app.api.auth import Principal, jwt_only, scoped, scoped_by_body_key
from app.api.common import signal_not_found
from app.api.csv import csv_stream, export_filename, format_time, keyset_rows, parse_timezone
from app.api.deps import PoolDep, PrincipalDep
from app.api.errors import ApiError
from app.api.serialization import (
    IdempotencyHeader,
    bad_request,
    checked_idempotency_key,
    encode_json,
    error_responses,
    is_base58_address,
    iso,
    parse_datetime,
    parse_int32,
    parse_limit,
    parse_offset,
    trimmed,
)
from app.auth.ratelimit import SIGNAL_INGEST
from app.db import Q, transaction
from app.db.queries import affected

log = logging.getLogger(__name__)

UNSET: Any = msgspec.UNSET
IDEMPOTENCY_SCOPE = "POST /api/v1/trading-signals"
MAX_ACTIVATION_REASON = 10_000  # upstream had no cap (1 MB bodies, §25.4 item 19)


# Litestar converts bodies leniently ("4" would become 4); upstream accepts only a JSON integer, so the
# strength is taken as-is and checked by _strength.
Strength = Annotated[Any, msgspec.Meta(description="JSON integer 1-5 (numeric strings are refused)")]


class SignalCreate(msgspec.Struct, rename="camel", kw_only=True):
    token_address: str
    signal_type: str
    signal_strength: Strength
    symbol: str | None = None
    activation_reason: str | None = None
    source: str | None = None


class WebhookSignal(SignalCreate, kw_only=True):
    """A signal with its credential and retry key in the body, for senders that cannot set headers."""

    # Read (and verified) by the route's ``scoped_by_body_key``; optional here so a missing key is its 401.
    api_key: Annotated[str | None, msgspec.Meta(description="API key with the signals or signals:write scope")] = None
    alert_id: Annotated[
        str | int | None, msgspec.Meta(description="The sender's id for this alert, used as the Idempotency-Key")
    ] = None


class SignalUpdate(msgspec.Struct, rename="camel", kw_only=True):
    token_address: str | msgspec.UnsetType = UNSET
    symbol: str | msgspec.UnsetType | None = UNSET
    signal_type: str | msgspec.UnsetType = UNSET
    activation_reason: str | msgspec.UnsetType | None = UNSET
    signal_strength: Strength = UNSET
    source: str | msgspec.UnsetType | None = UNSET


class SignalOut(msgspec.Struct, rename="camel"):
    id: int
    created_at: str
    updated_at: str
    token_address: str
    symbol: str | None
    signal_type: str
    activation_reason: str | None
    signal_strength: int
    source: str | None


class CleanSignal(msgspec.Struct, frozen=True):
    """Validated, trimmed values in column order; also what the idempotency hash covers."""

    token_address: str
    symbol: str | None
    signal_type: str
    activation_reason: str | None
    signal_strength: int
    source: str | None


def signal_out(row: dict[str, Any]) -> SignalOut:
    return SignalOut(
        id=row["id"],
        created_at=iso(row["created_at"]) or "",
        updated_at=iso(row["updated_at"]) or "",
        token_address=row["token_address"],
        symbol=row["symbol"],
        signal_type=row["signal_type"],
        activation_reason=row["activation_reason"],
        signal_strength=row["signal_strength"],
        source=row["source"],
    )


# ---------------------------------------------------------------- validation (upstream's order and texts)


def _token_address(value: str) -> str:
    text = value.strip()
    if not text:
        raise bad_request("tokenAddress is required and must be a non-empty string")
    if len(value) > 255:
        raise bad_request("tokenAddress must be at most 255 characters")
    if not is_base58_address(text):
        raise bad_request("tokenAddress must be a base58 Solana address of 32-44 characters")
    return text


def _signal_type(value: str) -> str:
    text = value.strip()
    if not text:
        raise bad_request("signalType is required and must be a non-empty string")
    if len(value) > 50:
        raise bad_request("signalType must be at most 50 characters")
    return text


def _strength(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= 5:
        raise bad_request("signalStrength must be an integer between 1 and 5")
    return value


def _optional(name: str, value: str | None, limit: int | None) -> str | None:
    if value is None:
        return None
    if limit is not None and len(value) > limit:
        raise bad_request(f"{name} must be at most {limit} characters")
    return value.strip() or None


def clean_create(data: SignalCreate) -> CleanSignal:
    token = _token_address(data.token_address)
    signal_type = _signal_type(data.signal_type)
    strength = _strength(data.signal_strength)
    return CleanSignal(
        token_address=token,
        symbol=_optional("symbol", data.symbol, 50),
        signal_type=signal_type,
        activation_reason=_optional("activationReason", data.activation_reason, MAX_ACTIVATION_REASON),
        signal_strength=strength,
        source=_optional("source", data.source, 100),
    )


def _duplicate() -> ApiError:
    return ApiError(
        409,
        "A signal for this token was already created recently. Please wait before sending another.",
        "SIGNAL_DUPLICATE",
    )


async def _replay(conn: Any, principal: Principal, key: str, request_hash: str) -> Response:
    stored = await Q.api_get_idempotent_response.fetch_one(conn, principal.user_id, IDEMPOTENCY_SCOPE, key)
    if stored is None or stored["status_code"] == 0:
        # Only reachable if the key's first request is still running on a connection that released the row
        # lock without committing a response, which the single-transaction write rules out.
        raise ApiError(409, "A request with this Idempotency-Key is in progress", "IDEMPOTENCY_IN_PROGRESS")
    if stored["request_hash"] != request_hash:
        raise ApiError(422, "Idempotency-Key was already used with a different request", "IDEMPOTENCY_KEY_REUSED")
    return Response(
        content=bytes(stored["response_body"]),
        status_code=stored["status_code"],
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


@post(
    "/api/v1/trading-signals",
    dependencies={"principal": scoped("signals:write", rate_limit=SIGNAL_INGEST)},
    summary="Ingest a trading signal (JWT, or API key with the signals or the ingest-only signals:write scope)",
    description="Answers 201 as soon as the signal is stored. An identical signal (same token, type and "
    "strength) within 60 s is a 409 SIGNAL_DUPLICATE. With an Idempotency-Key header, a retry returns the "
    "original response; reusing a key with a different body is a 422. Limited to 120 requests per minute "
    "per API key (per IP for JWT callers).",
    tags=["Signals"],
    status_code=201,
    responses=error_responses(400, 401, 403, 409, 422, 429),
)
async def create_signal(
    data: JSONBody[SignalCreate],
    principal: PrincipalDep,
    pool: PoolDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response[SignalOut]:
    return await _store_signal(pool, principal, clean_create(data), checked_idempotency_key(idempotency_key))


async def _store_signal(pool: asyncpg.Pool, principal: Principal, signal: CleanSignal, key: str | None) -> Response:
    """Insert the signal (201), or replay the response stored under ``key``; 409 inside the duplicate window."""
    request_hash = hashlib.sha256(msgspec.json.encode(signal)).hexdigest()
    async with transaction(pool) as conn:
        if key is not None:
            await Q.api_prune_idempotency_keys.execute(conn)
            claimed = await Q.api_claim_idempotency_key.fetch_val(
                conn, principal.user_id, IDEMPOTENCY_SCOPE, key, request_hash
            )
            if claimed is None:
                return await _replay(conn, principal, key, request_hash)
        await Q.api_prune_signal_slots.execute(conn)
        slot = (principal.user_id, signal.token_address, signal.signal_type, signal.signal_strength)
        if await Q.api_claim_signal_slot.fetch_val(conn, *slot) is None:
            raise _duplicate()
        row = await Q.api_insert_signal.fetch_one(conn, *msgspec.structs.astuple(signal), principal.user_id)
        assert row is not None
        await Q.api_set_signal_slot_id.execute(conn, *slot, row["id"])
        body = encode_json(signal_out(row))
        if key is not None:
            await Q.api_store_idempotent_response.execute(conn, principal.user_id, IDEMPOTENCY_SCOPE, key, 201, body)
    # The request id is on this line (log context), the signal id links it to the worker's lines.
    log.info("signal accepted", extra={"fields": {"signal_id": row["id"], "token": signal.token_address}})
    return Response(content=body, status_code=201, media_type="application/json")


@post(
    "/api/v1/trading-signals/webhook",
    dependencies={"principal": scoped_by_body_key("signals:write", rate_limit=SIGNAL_INGEST)},
    summary="Ingest a trading signal from a sender that cannot set headers (TradingView alerts)",
    description="The body is the signal of POST /api/v1/trading-signals plus `apiKey` (an API key with the "
    "signals or signals:write scope) and optionally `alertId` (the Idempotency-Key: a retried delivery with the "
    "same alertId returns the original response). Any Content-Type; the body must be a JSON object. Same "
    "duplicate window and rate limit (120 a minute per key) as the main route; the key is never stored or "
    "echoed.",
    tags=["Signals"],
    status_code=201,
    responses=error_responses(400, 401, 403, 409, 422, 429),
)
async def create_signal_from_webhook(
    data: JSONBody[WebhookSignal], principal: PrincipalDep, pool: PoolDep
) -> Response[SignalOut]:
    # A WebhookSignal is a SignalCreate: clean_create reads the signal's fields and never sees apiKey or alertId.
    key = checked_idempotency_key(None if data.alert_id is None else str(data.alert_id))
    return await _store_signal(pool, principal, clean_create(data), key)


class SignalFilters(msgspec.Struct, frozen=True):
    """The caller's filters shared by the list and the export, in the queries' parameter order."""

    user_id: uuid.UUID
    token_address: str | None
    signal_type: str | None
    start_date: datetime | None
    end_date: datetime | None

    def args(self) -> tuple[Any, ...]:
        return msgspec.structs.astuple(self)


async def provide_signal_filters(
    principal: PrincipalDep,
    token_address: Annotated[str | None, QueryParameter(name="tokenAddress")] = None,
    signal_type: Annotated[str | None, QueryParameter(name="signalType")] = None,
    start_date: Annotated[str | None, QueryParameter(name="startDate", description="ISO-8601, inclusive")] = None,
    end_date: Annotated[str | None, QueryParameter(name="endDate", description="ISO-8601, inclusive")] = None,
) -> SignalFilters:
    return SignalFilters(
        principal.user_id,
        trimmed(token_address),
        trimmed(signal_type),
        parse_datetime(start_date, "startDate"),
        parse_datetime(end_date, "endDate"),
    )


SignalFiltersDep = NamedDependency[SignalFilters]


@get(
    "/api/v1/trading-signals",
    dependencies={"principal": scoped("signals"), "filters": Provide(provide_signal_filters)},
    summary="The caller's signals, newest first (limit ≤ 1000)",
    tags=["Signals"],
    responses=error_responses(400, 401, 403),
)
async def list_signals(
    pool: PoolDep,
    filters: SignalFiltersDep,
    limit: Annotated[str | None, QueryParameter(description="1..1000, default 100")] = None,
    offset: Annotated[str | None, QueryParameter(description="≥ 0, default 0")] = None,
) -> list[SignalOut]:
    rows = await Q.api_list_signals.fetch_all(pool, *filters.args(), parse_limit(limit), parse_offset(offset))
    return [signal_out(row) for row in rows]


def _signal_csv_row(row: dict[str, Any], zone: Any) -> list[Any]:
    return [
        row["id"],
        format_time(row["created_at"], zone),
        row["signal_strength"] or 0,
        row["symbol"] or "N/A",
        row["token_address"],
        row["signal_type"],
        row["activation_reason"] or "N/A",
        row["source"] or "N/A",
        format_time(row["updated_at"], zone),
    ]


@get(
    "/api/v1/trading-signals/export",
    dependencies={"principal": scoped("signals"), "filters": Provide(provide_signal_filters)},
    summary="CSV of the caller's signals (streamed, id order)",
    tags=["Signals"],
    media_type="text/csv",
    responses=error_responses(400, 401, 403),
)
async def export_signals(
    pool: PoolDep,
    filters: SignalFiltersDep,
    timezone: Annotated[str | None, QueryParameter(description="IANA zone for the time columns")] = None,
) -> Stream:
    zone = parse_timezone(timezone)

    async def fetch(after: int, size: int) -> list[dict[str, Any]]:
        return await Q.api_export_signals.fetch_all(pool, *filters.args(), after, size)

    header = [
        "Signal ID",
        "Created At",
        "Signal Strength",
        "Token Symbol",
        "Token Address",
        "Trading Strategy",
        "Activation Reason",
        "Source",
        "Updated At",
    ]
    rows = keyset_rows(fetch, lambda row: row["id"], 0)
    return csv_stream(export_filename("trading-signals"), header, rows, lambda row: _signal_csv_row(row, zone))


class DeleteAllResponse(msgspec.Struct, rename="camel"):
    success: bool
    deleted_count: int
    message: str


async def _delete_all(pool: asyncpg.Pool, principal: Principal, confirm: str | None) -> DeleteAllResponse:
    if confirm != "true":
        raise ApiError(
            400, "Confirmation required", "CONFIRMATION_REQUIRED", message="Add ?confirm=true to delete every signal"
        )
    count = affected(await Q.api_delete_all_signals.execute(pool, principal.user_id))
    return DeleteAllResponse(success=True, deleted_count=count, message="All trading signals deleted successfully")


_DELETE_ALL = {
    "dependencies": {"principal": jwt_only()},
    "summary": "Delete every signal of the caller (requires ?confirm=true; JWT only)",
    "tags": ["Signals"],
    "status_code": 200,
    "responses": error_responses(400, 401),
}
Confirm = Annotated[str | None, QueryParameter(description="must be 'true'")]


@delete("/api/v1/trading-signals", **_DELETE_ALL)
async def delete_all_signals(principal: PrincipalDep, pool: PoolDep, confirm: Confirm = None) -> DeleteAllResponse:
    return await _delete_all(pool, principal, confirm)


@delete("/api/v1/trading-signals/all", **_DELETE_ALL)
async def delete_all_signals_alias(
    principal: PrincipalDep, pool: PoolDep, confirm: Confirm = None
) -> DeleteAllResponse:
    return await _delete_all(pool, principal, confirm)


SignalId = Annotated[str, PathParameter(description="Signal id (integer)")]


def _signal_id(raw: str) -> int:
    value = parse_int32(raw, "Signal ID must be a valid integer")
    if value is None:
        raise bad_request("Signal ID must be a valid integer")
    return value


async def _owned_signal(conn: Any, signal_id: int, principal: Principal) -> dict[str, Any]:
    row = await Q.api_get_signal.fetch_one(conn, signal_id, principal.user_id)
    if row is None:
        raise signal_not_found()
    return row


@get(
    "/api/v1/trading-signals/{signal_id:str}",
    dependencies={"principal": scoped("signals")},
    summary="One signal",
    tags=["Signals"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_signal(signal_id: SignalId, principal: PrincipalDep, pool: PoolDep) -> SignalOut:
    return signal_out(await _owned_signal(pool, _signal_id(signal_id), principal))


@put(
    "/api/v1/trading-signals/{signal_id:str}",
    dependencies={"principal": scoped("signals")},
    summary="Edit a signal (does not re-trigger processing)",
    tags=["Signals"],
    responses=error_responses(400, 401, 403, 404),
)
async def update_signal(
    signal_id: SignalId, data: JSONBody[SignalUpdate], principal: PrincipalDep, pool: PoolDep
) -> SignalOut:
    sid = _signal_id(signal_id)
    changes: dict[str, Any] = {}
    if data.token_address is not UNSET:
        changes["token_address"] = _token_address(data.token_address)
    if data.symbol is not UNSET:
        if data.symbol is not None and not data.symbol.strip():
            raise bad_request("symbol must be a non-empty string or null")
        changes["symbol"] = _optional("symbol", data.symbol, 50)
    if data.signal_type is not UNSET:
        changes["signal_type"] = _signal_type(data.signal_type)
    if data.activation_reason is not UNSET:
        changes["activation_reason"] = _optional("activationReason", data.activation_reason, MAX_ACTIVATION_REASON)
    if data.signal_strength is not UNSET:
        changes["signal_strength"] = _strength(data.signal_strength)
    if data.source is not UNSET:
        changes["source"] = _optional("source", data.source, 100)
    async with transaction(pool) as conn:
        row = await _owned_signal(conn, sid, principal)
        new = {**row, **changes}
        updated = await Q.api_update_signal.fetch_one(
            conn,
            sid,
            principal.user_id,
            new["token_address"],
            new["symbol"],
            new["signal_type"],
            new["activation_reason"],
            new["signal_strength"],
            new["source"],
        )
    assert updated is not None
    return signal_out(updated)


@delete(
    "/api/v1/trading-signals/{signal_id:str}",
    dependencies={"principal": scoped("signals")},
    summary="Delete a signal (its executions go with it; trades keep the row with signalId null)",
    tags=["Signals"],
    status_code=204,
    responses=error_responses(400, 401, 403, 404),
)
async def delete_signal(signal_id: SignalId, principal: PrincipalDep, pool: PoolDep) -> None:
    if affected(await Q.api_delete_signal.execute(pool, _signal_id(signal_id), principal.user_id)) == 0:
        raise signal_not_found()


ROUTES = [
    create_signal,
    create_signal_from_webhook,
    list_signals,
    export_signals,
    delete_all_signals,
    delete_all_signals_alias,
    get_signal,
    update_signal,
    delete_signal,
]
