"""Closed trades (api.md §12.2) and their CSV export (§17.1).

History rows do not move balances, but they are the performance figures: hand-written rows are allowed
on simulation wallets only (live history comes from the engine, §25.1 item 2), every referenced
transaction and signal must belong to the caller (404 otherwise, never an existence oracle), and the
export is streamed in sale-time order with formula injection neutralised.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Stream

from app.api.auth import Principal, jwt_only, scoped
from app.api.common import (
    WalletRow,
    owned_agent,
    refuse_live_row,
    refuse_live_wallet,
    require_owned_signal,
    resolve_wallet,
    sol_usd_price,
)
from app.api.csv import csv_stream, export_filename, format_time, keyset_rows, parse_timezone
from app.api.deps import PoolDep, PrincipalDep
from app.api.errors import ApiError
from app.api.serialization import (
    Sign,
    assume_utc,
    bad_request,
    body_signal_id,
    column_decimal,
    dec_str,
    error_responses,
    iso,
    optional_uuid,
    parse_datetime,
    parse_decimal,
    parse_int32,
    parse_limit,
    parse_offset,
    parse_uuid,
    trimmed,
)
from app.db import Q, transaction
from app.trading._num import ZERO, exact
from app.trading.ledger import AMOUNT_18, PCT_4, SOL_8, quantize

UNSET: Any = msgspec.UNSET
CloseReason = Literal["manual", "stop_loss", "stale_trade", "take_profit"]

# field → (column precision, scale, sign rule of serialization.column_decimal).
DECIMALS: dict[str, tuple[int, int, Sign]] = {
    "amount": (30, AMOUNT_18, "ge0"),
    "purchase_price": (30, AMOUNT_18, "gt0"),
    "sale_price": (30, AMOUNT_18, "gt0"),
    "change_percent": (10, PCT_4, None),
    "profit_loss_usd": (20, SOL_8, None),
    "profit_loss_sol": (20, SOL_8, None),
}
CAMEL = {
    "token_address": "tokenAddress",
    "token_symbol": "tokenSymbol",
    "purchase_price": "purchasePrice",
    "sale_price": "salePrice",
    "change_percent": "changePercent",
    "profit_loss_usd": "profitLossUsd",
    "profit_loss_sol": "profitLossSol",
    "purchase_time": "purchaseTime",
    "sale_time": "saleTime",
    "purchase_transaction_id": "purchaseTransactionId",
    "sale_transaction_id": "saleTransactionId",
    "signal_id": "signalId",
    "close_reason": "closeReason",
}


class SwapFields(msgspec.Struct, rename="camel", kw_only=True):
    token_address: str | msgspec.UnsetType = UNSET
    token_symbol: str | msgspec.UnsetType = UNSET
    amount: Decimal | msgspec.UnsetType = UNSET
    purchase_price: Decimal | msgspec.UnsetType = UNSET
    sale_price: Decimal | msgspec.UnsetType = UNSET
    change_percent: Decimal | msgspec.UnsetType = UNSET
    profit_loss_usd: Decimal | msgspec.UnsetType = UNSET
    profit_loss_sol: Decimal | msgspec.UnsetType = UNSET
    purchase_time: datetime | msgspec.UnsetType = UNSET
    sale_time: datetime | msgspec.UnsetType = UNSET
    purchase_transaction_id: str | msgspec.UnsetType | None = UNSET
    sale_transaction_id: str | msgspec.UnsetType | None = UNSET
    signal_id: int | str | msgspec.UnsetType | None = UNSET
    close_reason: CloseReason | msgspec.UnsetType | None = UNSET


class SwapCreate(SwapFields, kw_only=True):
    agent_id: str
    wallet_address: str | None = None


class SwapOut(msgspec.Struct, rename="camel"):
    id: str
    agent_id: str
    wallet_address: str | None
    token_address: str
    token_symbol: str
    amount: str
    purchase_price: str
    sale_price: str
    change_percent: str
    profit_loss_usd: str
    profit_loss_sol: str
    purchase_time: str
    sale_time: str
    purchase_transaction_id: str | None
    sale_transaction_id: str | None
    signal_id: str | None  # a stringified integer, as upstream returns it here
    close_reason: str | None
    created_at: str


def swap_out(row: dict[str, Any]) -> SwapOut:
    def opt(value: Any) -> str | None:
        return None if value is None else str(value)

    return SwapOut(
        id=str(row["id"]),
        agent_id=str(row["agent_id"]),
        wallet_address=row["wallet_address"],
        token_address=row["token_address"],
        token_symbol=row["token_symbol"],
        amount=dec_str(row["amount"]) or "0",
        purchase_price=dec_str(row["purchase_price"]) or "0",
        sale_price=dec_str(row["sale_price"]) or "0",
        change_percent=dec_str(row["change_percent"]) or "0",
        profit_loss_usd=dec_str(row["profit_loss_usd"]) or "0",
        profit_loss_sol=dec_str(row["profit_loss_sol"]) or "0",
        purchase_time=iso(row["purchase_time"]) or "",
        sale_time=iso(row["sale_time"]) or "",
        purchase_transaction_id=opt(row["purchase_transaction_id"]),
        sale_transaction_id=opt(row["sale_transaction_id"]),
        signal_id=opt(row["signal_id"]),
        close_reason=row["close_reason"],
        created_at=iso(row["created_at"]) or "",
    )


def _text(column: str, value: str, limit: int) -> str:
    text = value.strip()
    if not text or len(text) > limit:
        raise bad_request(f"{CAMEL[column]} must be 1-{limit} characters")
    return text


def clean_swap_fields(fields: SwapFields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in msgspec.structs.fields(SwapFields):
        column = field.name
        value = getattr(fields, column)
        if value is UNSET:
            continue
        if column in DECIMALS:
            out[column] = column_decimal(CAMEL.get(column, column), value, *DECIMALS[column])
        elif column == "token_address":
            out[column] = _text(column, value, 255)
        elif column == "token_symbol":
            out[column] = _text(column, value, 20)
        elif column in ("purchase_time", "sale_time"):
            out[column] = assume_utc(value)
        elif column in ("purchase_transaction_id", "sale_transaction_id"):
            out[column] = optional_uuid(value, f"{CAMEL[column]} must be a UUID")
        elif column == "signal_id":
            out[column] = body_signal_id(value)
        else:
            out[column] = value
    return out


REQUIRED = (
    "token_address",
    "token_symbol",
    "amount",
    "purchase_price",
    "sale_price",
    "change_percent",
    "profit_loss_usd",
    "profit_loss_sol",
    "purchase_time",
    "sale_time",
)


def check_swap(row: dict[str, Any]) -> None:
    for column in REQUIRED:
        if row.get(column) is None:
            raise bad_request(f"{CAMEL.get(column, column)} is required")
    if row["sale_time"] < row["purchase_time"]:
        raise bad_request("saleTime must not be before purchaseTime")


async def check_references(conn: Any, row: dict[str, Any], agent_id: uuid.UUID, user_id: uuid.UUID) -> None:
    for column in ("purchase_transaction_id", "sale_transaction_id"):
        tx_id = row.get(column)
        if tx_id is None:
            continue
        owner_agent = await Q.api_transaction_agent.fetch_val(conn, tx_id, user_id)
        if owner_agent is None:
            raise ApiError(404, f"{CAMEL[column]}: transaction not found", "NOT_FOUND")
        if owner_agent != agent_id:
            raise bad_request(f"{CAMEL[column]}: transaction belongs to another agent")
    await require_owned_signal(conn, row.get("signal_id"), user_id)


@post(
    "/api/v1/agent-historical-swaps",
    dependencies={"principal": jwt_only()},
    summary="Record a closed trade by hand (simulation wallets only)",
    tags=["Historical swaps"],
    status_code=201,
    responses=error_responses(400, 401, 403, 404),
)
async def create_swap(data: JSONBody[SwapCreate], principal: PrincipalDep, pool: PoolDep) -> SwapOut:
    row = clean_swap_fields(data)
    check_swap(row)
    async with transaction(pool) as conn:
        agent = await owned_agent(conn, data.agent_id, principal.user_id)
        wallet: WalletRow = await resolve_wallet(conn, agent, trimmed(data.wallet_address))
        refuse_live_wallet(wallet, "Trade history")
        await check_references(conn, row, agent.id, principal.user_id)
        stored = await Q.api_insert_swap.fetch_one(
            conn,
            agent.id,
            wallet.wallet_address,
            *(row[c] for c in REQUIRED),
            row.get("purchase_transaction_id"),
            row.get("sale_transaction_id"),
            row.get("signal_id"),
            row.get("close_reason"),
        )
    assert stored is not None
    return swap_out(stored)


class SwapFilters(msgspec.Struct, frozen=True):
    wallet_address: str | None
    token_address: str | None
    token_symbol: str | None
    start_purchase: datetime | None
    end_purchase: datetime | None
    start_sale: datetime | None
    end_sale: datetime | None
    signal_id: int | None
    purchase_transaction_id: uuid.UUID | None
    sale_transaction_id: uuid.UUID | None
    min_pl_usd: Decimal | None
    max_pl_usd: Decimal | None

    def args(self) -> tuple[Any, ...]:
        return msgspec.structs.astuple(self)


class SwapQuery(msgspec.Struct, frozen=True):
    agent_id: str  # as given: ownership is checked by the handler
    filters: SwapFilters


async def provide_swap_query(
    principal: PrincipalDep,
    agent_id: Annotated[str | None, QueryParameter(name="agentId", description="Required")] = None,
    wallet_address: Annotated[str | None, QueryParameter(name="walletAddress")] = None,
    token_address: Annotated[str | None, QueryParameter(name="tokenAddress")] = None,
    token_symbol: Annotated[str | None, QueryParameter(name="tokenSymbol")] = None,
    start_purchase_time: Annotated[str | None, QueryParameter(name="startPurchaseTime", description="ISO-8601")] = None,
    end_purchase_time: Annotated[str | None, QueryParameter(name="endPurchaseTime", description="ISO-8601")] = None,
    start_sale_time: Annotated[str | None, QueryParameter(name="startSaleTime", description="ISO-8601")] = None,
    end_sale_time: Annotated[str | None, QueryParameter(name="endSaleTime", description="ISO-8601")] = None,
    signal_id: Annotated[str | None, QueryParameter(name="signalId")] = None,
    purchase_transaction_id: Annotated[str | None, QueryParameter(name="purchaseTransactionId")] = None,
    sale_transaction_id: Annotated[str | None, QueryParameter(name="saleTransactionId")] = None,
    min_profit_loss_usd: Annotated[str | None, QueryParameter(name="minProfitLossUsd", description="decimal")] = None,
    max_profit_loss_usd: Annotated[str | None, QueryParameter(name="maxProfitLossUsd", description="decimal")] = None,
) -> SwapQuery:
    """The query parameters the list and the export share, validated.

    Takes ``principal`` so that Litestar resolves it first: authentication failures (401/403) answer before
    a malformed query (400), as they do on every other route.
    """
    if not agent_id:
        raise bad_request("Agent ID is required")
    filters = SwapFilters(
        trimmed(wallet_address),
        trimmed(token_address),
        trimmed(token_symbol),
        parse_datetime(start_purchase_time, "startPurchaseTime"),
        parse_datetime(end_purchase_time, "endPurchaseTime"),
        parse_datetime(start_sale_time, "startSaleTime"),
        parse_datetime(end_sale_time, "endSaleTime"),
        parse_int32(signal_id, "Invalid signalId"),
        optional_uuid(purchase_transaction_id, "Invalid purchaseTransactionId"),
        optional_uuid(sale_transaction_id, "Invalid saleTransactionId"),
        parse_decimal(min_profit_loss_usd, "minProfitLossUsd"),
        parse_decimal(max_profit_loss_usd, "maxProfitLossUsd"),
    )
    return SwapQuery(agent_id, filters)


SwapQueryDep = NamedDependency[SwapQuery]


@get(
    "/api/v1/agent-historical-swaps",
    dependencies={"principal": scoped("history"), "swap_query": Provide(provide_swap_query)},
    summary="An agent's closed trades, latest sale first (limit ≤ 1000)",
    tags=["Historical swaps"],
    responses=error_responses(400, 401, 403, 404),
)
async def list_swaps(
    principal: PrincipalDep,
    pool: PoolDep,
    swap_query: SwapQueryDep,
    limit: Annotated[str | None, QueryParameter(description="1..1000, default 100")] = None,
    offset: Annotated[str | None, QueryParameter(description="≥ 0, default 0")] = None,
) -> list[SwapOut]:
    page = (parse_limit(limit), parse_offset(offset))
    async with pool.acquire() as conn:
        agent = await owned_agent(conn, swap_query.agent_id, principal.user_id)
        rows = await Q.api_list_swaps.fetch_all(conn, agent.id, *swap_query.filters.args(), *page)
    return [swap_out(row) for row in rows]


# ---------------------------------------------------------------- CSV export


@exact
def _fixed(value: Decimal, places: int) -> str:
    return format(quantize(value, places), "f")


@exact
def _signed(value: Decimal, places: int) -> str:
    text = _fixed(value, places)
    return text if value < 0 else "+" + text


@exact
def _swap_csv_row(row: dict[str, Any], zone: Any, sol_usd: Decimal | None) -> list[Any]:
    in_usd = sol_usd is not None
    places = 8 if in_usd else 10
    factor = sol_usd if in_usd else Decimal(1)
    profit = row["profit_loss_usd"] if in_usd else row["profit_loss_sol"]
    return [
        format_time(row["sale_time"], zone),
        row["token_symbol"],
        row["token_address"],
        _fixed(row["amount"], 2),
        _fixed(row["purchase_price"] * factor, places),
        _fixed(row["sale_price"] * factor, places),
        _signed(profit, 2 if in_usd else 4),
        _fixed(row["change_percent"], 2) + "%",
        row["signal_id"] if row["signal_id"] is not None else "N/A",
        row["signal_type"] or "N/A",
        row["activation_reason"] or "N/A",
    ]


@get(
    "/api/v1/agent-historical-swaps/export",
    dependencies={"principal": scoped("history"), "swap_query": Provide(provide_swap_query)},
    summary="CSV of the agent's closed trades (streamed, oldest sale first)",
    description="Takes the list filters (no paging) plus timezone (IANA, default UTC), currency (SOL, else USD) "
    "and solPrice (USD per SOL for the price columns; default: the latest stored SOL/USD — 503 when none).",
    tags=["Historical swaps"],
    media_type="text/csv",
    responses=error_responses(400, 401, 403, 404, 503),
)
async def export_swaps(
    principal: PrincipalDep,
    pool: PoolDep,
    swap_query: SwapQueryDep,
    timezone: Annotated[str | None, QueryParameter(description="IANA zone for the Time column")] = None,
    currency: Annotated[str | None, QueryParameter(description="SOL or USD (default)")] = None,
    sol_price: Annotated[str | None, QueryParameter(name="solPrice", description="USD per SOL for USD prices")] = None,
) -> Stream:
    zone = parse_timezone(timezone)
    in_sol = (currency or "").upper() == "SOL"
    agent = await owned_agent(pool, swap_query.agent_id, principal.user_id)
    sol_usd: Decimal | None = None
    if not in_sol:
        sol_usd = parse_decimal(sol_price, "solPrice")
        if sol_usd is not None and sol_usd <= ZERO:
            raise bad_request("Invalid solPrice: must be greater than 0")
        if sol_usd is None:
            sol_usd = await sol_usd_price(pool)
        if sol_usd is None:
            raise ApiError(503, "No SOL/USD price is available yet; pass solPrice or currency=SOL", "PRICE_UNAVAILABLE")
    unit = "SOL" if in_sol else "USD"
    header = [
        "Time",
        "Token Symbol",
        "Token Address",
        "Amount",
        f"Average Purchase Price ({unit})",
        f"Sale Price ({unit})",
        f"Profit / Loss ({unit})",
        "Change (%)",
        "Signal ID",
        "Signal Type",
        "Activation Reason",
    ]
    base_args = (agent.id, *swap_query.filters.args())

    async def fetch(after: tuple[datetime, uuid.UUID] | None, size: int) -> list[dict[str, Any]]:
        after_time, after_id = after if after else (None, None)
        return await Q.api_export_swaps.fetch_all(pool, *base_args, after_time, after_id, size)

    rows = keyset_rows(fetch, lambda row: (row["sale_time"], row["id"]), None)
    return csv_stream(export_filename("agent-trades"), header, rows, lambda row: _swap_csv_row(row, zone, sol_usd))


SwapId = Annotated[str, PathParameter(description="Historical swap id (UUID)")]


async def _owned_swap(conn: Any, raw_id: str, principal: Principal) -> dict[str, Any]:
    swap_id = parse_uuid(raw_id, "Invalid historical swap ID format")
    row = await Q.api_get_swap.fetch_one(conn, swap_id, principal.user_id)
    if row is None:
        raise ApiError(404, "Historical swap not found", "NOT_FOUND")
    return row


async def _writable_swap(conn: Any, raw_id: str, principal: Principal) -> dict[str, Any]:
    row = await _owned_swap(conn, raw_id, principal)
    await refuse_live_row(conn, row, "Trade history")
    return row


@get(
    "/api/v1/agent-historical-swaps/{swap_id:str}",
    dependencies={"principal": scoped("history")},
    summary="One closed trade",
    tags=["Historical swaps"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_swap(swap_id: SwapId, principal: PrincipalDep, pool: PoolDep) -> SwapOut:
    return swap_out(await _owned_swap(pool, swap_id, principal))


@put(
    "/api/v1/agent-historical-swaps/{swap_id:str}",
    dependencies={"principal": jwt_only()},
    summary="Edit a hand-recorded closed trade (simulation wallets only)",
    tags=["Historical swaps"],
    responses=error_responses(400, 401, 403, 404),
)
async def update_swap(swap_id: SwapId, data: JSONBody[SwapFields], principal: PrincipalDep, pool: PoolDep) -> SwapOut:
    changes = clean_swap_fields(data)
    async with transaction(pool) as conn:
        old = await _writable_swap(conn, swap_id, principal)
        new = {**old, **changes}
        check_swap(new)
        await check_references(conn, changes, old["agent_id"], principal.user_id)
        stored = await Q.api_update_swap.fetch_one(
            conn,
            old["id"],
            *(new[c] for c in REQUIRED),
            new["purchase_transaction_id"],
            new["sale_transaction_id"],
            new["signal_id"],
            new["close_reason"],
        )
    assert stored is not None
    return swap_out(stored)


@delete(
    "/api/v1/agent-historical-swaps/{swap_id:str}",
    dependencies={"principal": jwt_only()},
    summary="Delete a closed trade (simulation wallets only)",
    tags=["Historical swaps"],
    status_code=204,
    responses=error_responses(400, 401, 403, 404),
)
async def delete_swap(swap_id: SwapId, principal: PrincipalDep, pool: PoolDep) -> None:
    async with transaction(pool) as conn:
        row = await _writable_swap(conn, swap_id, principal)
        await Q.api_delete_swap.execute(conn, row["id"])


ROUTES = [create_swap, list_swaps, export_swaps, get_swap, update_swap, delete_swap]
