"""Manual trades over HTTP (api.md §14.4 and §11): a buy, and closing a position. JWT only.

The API never trades. A route validates and authorises the request, inserts a ``trade_requests`` row and
waits for the worker's answer (``LISTEN trade_request_done`` on one shared connection, with polling as the
fallback). The worker executes it exactly once (app/worker/trade_requests.py). If the answer takes longer
than ``TRADE_REQUEST_WAIT_S`` the route answers **202** with the request id and a ``Location`` to poll
(``GET /api/v1/trades/requests/{id}``): the trade still happens, once.

``Idempotency-Key`` (optional, ≤ 255 printable ASCII characters): a retry with the same key and body gets
the same request's answer (never a second trade); the same key with a different body is a 422.

Error codes map to HTTP as api.md §14.4 suggests: ``*_NOT_FOUND`` → 404; ``*_IN_PROGRESS``,
``POSITION_LOCKED``, ``POSITION_EXISTS``, ``POSITION_ALREADY_CLOSED`` → 409; a market/venue failure
(``EXECUTION_FAILED`` …) → 502; a worker that never picked the request up → 503; the rest → 400.
Live outcomes that are not the client's fault: ``SWAP_UNCONFIRMED`` (sent, may still land; settlement
records it) → 202 with the request id and the swap's signature; ``WALLET_BUSY`` (an earlier live swap of the
wallet is unresolved) → 409 with ``Retry-After``; ``SWAP_EXPIRED`` (provably never landed, safe to retry) → 502.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from app.api.auth import Principal, jwt_only
from app.api.deps import PoolDep, PrincipalDep, SettingsDep
from app.api.errors import ApiError
from app.api.serialization import (
    IdempotencyHeader,
    bad_request,
    checked_idempotency_key,
    encode_json,
    error_responses,
    parse_uuid,
)
from app.auth.ratelimit import MANUAL_TRADES
from app.config import Settings
from app.db import Q
from app.trading.ledger import fits_numeric
from app.trading.units import SOL_MINT

DONE_CHANNEL = "trade_request_done"
POLL_S = 0.25
INT32_MAX = 2**31 - 1
CLOSE_REASONS = ("manual", "stop_loss")

CONFLICT_CODES = frozenset(
    {"POSITION_LOCKED", "POSITION_EXISTS", "POSITION_ALREADY_CLOSED", "CONCURRENT_MODIFICATION", "WALLET_BUSY"}
)
UPSTREAM_CODES = frozenset(
    {
        "EXECUTION_FAILED",
        "TAKE_PROFIT_EXECUTION_FAILED",
        "DCA_EXECUTION_FAILED",
        "SWAP_FAILED",
        "SWAP_EXPIRED",
        "QUOTE_FAILED",
    }
)
# The swap was sent but its outcome is unknown: the request was fine and may yet have traded.
PENDING_SETTLEMENT_CODE = "SWAP_UNCONFIRMED"
# A hint only: the unresolved swap is settled when it confirms or its blockhash expires (≈ 1-2 min at most);
# a retry that comes too early is refused again and sends nothing.
WALLET_BUSY_RETRY_AFTER_S = 5


def http_status(code: str | None) -> int:
    """HTTP status of a failed trade request (api.md §14.4 suggested mapping)."""
    code = code or ""
    if code.endswith("_NOT_FOUND"):
        return 404
    if code.endswith("_IN_PROGRESS") or code in CONFLICT_CODES:
        return 409
    if code in UPSTREAM_CODES:
        return 502
    if code == "REQUEST_EXPIRED":
        return 503
    if code == "INTERNAL_ERROR":
        return 500
    return 400


# --------------------------------------------------------------------------------------------------
# Waiting for the worker's answer


class TradeWaiter:
    """One LISTEN connection shared by every request waiting in this process, held only while someone waits
    (so shutting the pool down never blocks on it). Polling the row every ``POLL_S`` covers a lost
    notification or a dropped listener."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._events: dict[str, set[asyncio.Event]] = {}
        self._conn: Any = None
        self._waiting = 0
        self._lock = asyncio.Lock()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for event in self._events.get(payload, ()):
            event.set()

    async def _join(self) -> None:
        async with self._lock:
            self._waiting += 1
            if self._conn is None:
                try:
                    conn = await self.pool.acquire()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    return  # polling still answers
                try:
                    await conn.add_listener(DONE_CHANNEL, self._notified)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    conn.terminate()  # the LISTEN may have taken effect: the pool does not reset sessions
                    await self.pool.release(conn)
                    return
                self._conn = conn

    async def _leave(self) -> None:
        async with self._lock:
            self._waiting -= 1
            if self._waiting == 0 and self._conn is not None:
                conn, self._conn = self._conn, None
                try:
                    await conn.remove_listener(DONE_CHANNEL, self._notified)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    conn.terminate()  # still LISTENing: the pool does not reset sessions (app.db.pool)
                await self.pool.release(conn)

    async def wait(
        self, request_id: uuid.UUID, read: Callable[[], Awaitable[dict[str, Any]]], wait_s: float
    ) -> dict[str, Any]:
        """The request's row once it is finished, or as it is when ``wait_s`` runs out."""
        key = str(request_id)
        event = asyncio.Event()
        self._events.setdefault(key, set()).add(event)
        await self._join()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        try:
            while True:
                event.clear()
                row = await read()
                remaining = deadline - loop.time()
                if row["status"] != "pending" or remaining <= 0:
                    return row
                try:
                    await asyncio.wait_for(event.wait(), timeout=min(remaining, POLL_S))
                except TimeoutError:
                    pass
        finally:
            waiters = self._events.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._events[key]
            await self._leave()


def _waiter(state: State, pool: asyncpg.Pool) -> TradeWaiter:
    waiter = getattr(state, "trade_waiter", None)
    if waiter is None or waiter.pool is not pool:
        waiter = TradeWaiter(pool)
        state.trade_waiter = waiter
    return waiter


# --------------------------------------------------------------------------------------------------
# Submitting and answering


def _request_hash(kind: str, agent_id: uuid.UUID, params: dict[str, Any]) -> str:
    return hashlib.sha256(msgspec.json.encode([kind, str(agent_id), params], order="sorted")).hexdigest()


async def _submit(
    pool: asyncpg.Pool, principal: Principal, agent_id: uuid.UUID, kind: str, params: dict[str, Any], key: str | None
) -> tuple[uuid.UUID, bool]:
    """Insert the request (or find the one this Idempotency-Key already made): (request id, replayed)."""
    request_hash = _request_hash(kind, agent_id, params)
    request_id = await Q.trade_request_insert.fetch_val(pool, principal.user_id, agent_id, kind, params, key,
                                                         request_hash)  # fmt: skip
    if request_id is not None:
        return request_id, False
    existing = await Q.trade_request_by_key.fetch_one(pool, principal.user_id, key)
    if existing is None:  # the key's request was deleted with its agent meanwhile
        raise ApiError(409, "A request with this Idempotency-Key is being replaced; retry", "IDEMPOTENCY_IN_PROGRESS")
    if existing["request_hash"] != request_hash:
        raise ApiError(422, "Idempotency-Key was already used with a different request", "IDEMPOTENCY_KEY_REUSED")
    return existing["id"], True


def _pending(request_id: uuid.UUID, headers: dict[str, str]) -> Response:
    location = f"/api/v1/trades/requests/{request_id}"
    body = {"requestId": str(request_id), "status": "pending", "statusUrl": location}
    return Response(
        content=encode_json(body), status_code=202, media_type="application/json",
        headers={**headers, "Location": location},
    )  # fmt: skip


def _pending_settlement(row: dict[str, Any], headers: dict[str, str]) -> Response:
    location = f"/api/v1/trades/requests/{row['id']}"
    details = msgspec.json.decode(row["result_json"]) if row["result_json"] else {}
    body = {
        "requestId": str(row["id"]),
        "status": "pending_settlement",
        "code": row["error_code"],
        "message": row["error_message"],
        "signature": details.get("signature"),
        "statusUrl": location,
    }
    return Response(
        content=encode_json(body), status_code=202, media_type="application/json",
        headers={**headers, "Location": location},
    )  # fmt: skip


def answer(row: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """HTTP answer for a trade request row in any state."""
    headers = headers or {}
    if row["status"] == "succeeded":
        return Response(
            content=row["result_json"].encode(), status_code=200, media_type="application/json", headers=headers
        )
    if row["status"] == "failed":
        code = row["error_code"]
        if code == PENDING_SETTLEMENT_CODE:
            return _pending_settlement(row, headers)
        if code == "WALLET_BUSY":
            headers = {**headers, "Retry-After": str(WALLET_BUSY_RETRY_AFTER_S)}
        raise ApiError(http_status(code), row["error_message"] or "Trade failed", code, headers=headers)
    return _pending(row["id"], headers)


async def _submit_and_wait(
    pool: asyncpg.Pool,
    state: State,
    settings: Settings,
    principal: Principal,
    agent_id: uuid.UUID,
    kind: str,
    params: dict[str, Any],
    key: str | None,
) -> Response:
    request_id, replayed = await _submit(pool, principal, agent_id, kind, params, key)

    async def read() -> dict[str, Any]:
        row = await Q.trade_request_status.fetch_one(pool, request_id, principal.user_id)
        if row is None:
            raise ApiError(404, "Agent not found", "AGENT_NOT_FOUND")  # deleted with its agent meanwhile
        return row

    row = await _waiter(state, pool).wait(request_id, read, settings.trade_request_wait_s)
    return answer(row, {"Idempotent-Replayed": "true"} if replayed else {})


async def _body(request: Request, into: type[Any]) -> Any:
    raw = await request.body()
    if not raw.strip():
        raw = b"{}"
    try:
        return msgspec.json.decode(raw, type=into)
    except msgspec.ValidationError as exc:
        raise bad_request(f"Validation failed: {exc}") from None
    except msgspec.DecodeError:
        raise bad_request("Malformed JSON body") from None


async def _owned_agent(pool: asyncpg.Pool, raw: Any, principal: Principal) -> uuid.UUID:
    agent_id = parse_uuid(raw if isinstance(raw, str) else None, "Invalid agent ID format")
    if not await Q.trade_request_agent_owned.fetch_val(pool, agent_id, principal.user_id):
        raise ApiError(404, "Agent not found", "AGENT_NOT_FOUND")
    return agent_id


# --------------------------------------------------------------------------------------------------
# Routes


class TradeExecuteBody(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    agent_id: Any = None
    token_address: Any = None
    wallet_address: str | None = None
    token_symbol: str | None = None
    signal_id: int | None = None
    position_size: Decimal | None = None


class CloseBody(msgspec.Struct, kw_only=True):
    reason: str | None = None


def _buy_params(body: TradeExecuteBody) -> dict[str, Any]:
    token = body.token_address.strip() if isinstance(body.token_address, str) else ""
    if not token:
        raise bad_request("tokenAddress is required")
    if len(token) > 255:
        raise bad_request("tokenAddress must be at most 255 characters")
    if token == SOL_MINT:
        raise bad_request("tokenAddress must be a token other than SOL")
    params: dict[str, Any] = {"tokenAddress": token}
    if body.wallet_address is not None and body.wallet_address.strip():
        wallet = body.wallet_address.strip()
        if len(wallet) > 44:
            raise bad_request("walletAddress must be at most 44 characters")
        params["walletAddress"] = wallet
    if body.token_symbol is not None and body.token_symbol.strip():
        if len(body.token_symbol) > 50:
            raise bad_request("tokenSymbol must be at most 50 characters")
        params["tokenSymbol"] = body.token_symbol.strip()
    if body.signal_id is not None:
        if not 1 <= body.signal_id <= INT32_MAX:
            raise bad_request("signalId must be a positive integer")
        params["signalId"] = body.signal_id
    if body.position_size is not None:
        size = body.position_size
        if not size.is_finite() or size <= 0 or not fits_numeric(size, 30, 18):
            raise bad_request("positionSize must be a positive number")
        # A string in the stored params: JSON numbers would come back from jsonb as floats.
        params["positionSize"] = format(size, "f")
    return params


@post(
    "/api/v1/trades/execute",
    dependencies={"principal": jwt_only(rate_limit=MANUAL_TRADES)},
    summary="Buy a token for an agent now (executed by the worker)",
    description="Body: agentId, tokenAddress, optional walletAddress, tokenSymbol, signalId, positionSize (SOL). "
    "200 with the buy; 202 with a requestId when the worker takes longer than TRADE_REQUEST_WAIT_S.",
    tags=["Trades"],
    status_code=200,
    responses=error_responses(400, 401, 404, 409, 422, 502, 503),
)
async def execute_trade(
    request: Request,
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
    state: State,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    key = checked_idempotency_key(idempotency_key)
    body = await _body(request, TradeExecuteBody)
    agent_id = await _owned_agent(pool, body.agent_id, principal)
    params = _buy_params(body)
    if "signalId" in params and not await Q.trade_request_signal_owned.fetch_val(
        pool, params["signalId"], principal.user_id
    ):
        raise ApiError(404, "Signal not found", "SIGNAL_NOT_FOUND")
    return await _submit_and_wait(pool, state, settings, principal, agent_id, "buy", params, key)


@post(
    "/api/v1/agent-positions/{agent_id:str}/{position_id:str}/close",
    dependencies={"principal": jwt_only(rate_limit=MANUAL_TRADES)},
    summary="Close an open position at the market (executed by the worker)",
    description="Body: optional reason 'manual' (default) or 'stop_loss'. 200 with the sale; 202 with a "
    "requestId when the worker takes longer than TRADE_REQUEST_WAIT_S; 409 if it is already closed.",
    tags=["Trades"],
    status_code=200,
    responses=error_responses(400, 401, 404, 409, 422, 502, 503),
)
async def close_position(
    agent_id: FromPath[str],
    position_id: FromPath[str],
    request: Request,
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
    state: State,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    key = checked_idempotency_key(idempotency_key)
    agent = await _owned_agent(pool, agent_id, principal)
    position = parse_uuid(position_id, "Invalid position ID format")
    body = await _body(request, CloseBody)
    reason = body.reason if body.reason is not None else "manual"
    if reason not in CLOSE_REASONS:
        raise bad_request("Invalid reason. Must be 'manual' or 'stop_loss'")
    if not await Q.trade_request_position_of_agent.fetch_val(pool, position, agent):
        if key is None or await Q.trade_request_by_key.fetch_one(pool, principal.user_id, key) is None:
            raise ApiError(404, "Position not found", "POSITION_NOT_FOUND")
        # A retry of a close that already happened: answer with that close.
    params = {"positionId": str(position), "reason": reason}
    return await _submit_and_wait(pool, state, settings, principal, agent, "close", params, key)


@get(
    "/api/v1/trades/requests/{request_id:str}",
    dependencies={"principal": jwt_only()},
    summary="State of a manual trade request (after a 202)",
    tags=["Trades"],
    responses=error_responses(400, 401, 404, 409, 502, 503),
)
async def trade_request_status(request_id: FromPath[str], principal: PrincipalDep, pool: PoolDep) -> Response:
    rid = parse_uuid(request_id, "Invalid request ID format")
    row = await Q.trade_request_status.fetch_one(pool, rid, principal.user_id)
    if row is None:
        raise ApiError(404, "Trade request not found", "REQUEST_NOT_FOUND")
    return answer(row)


ROUTES = [execute_trade, close_position, trade_request_status]
