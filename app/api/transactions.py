"""Agent transactions (api.md §12.1): the ledger rows, with writes that keep balances consistent.

Every write moves balances with the engine's rule (``app.trading.ledger``), in the same DB transaction,
under the agent lock then the balance locks (token-address order), so ``balance == Σ deltas of the
wallet's rows`` holds after every request:

* ``POST`` applies the new row's deltas; a debit larger than the balance is refused (400 with
  ``currentBalance``/``requiredAmount`` as upstream). A ``DEPOSIT`` on a simulation wallet is the
  simulation deposit.
* ``PUT`` is **reconciled**: the difference between the edited row's deltas and the stored row's deltas is
  applied; if that would overdraw a balance the edit is refused with 409 ``LEDGER_CONFLICT``.
* ``DELETE`` is **reconciled**: the row's deltas are reversed (409 if a balance would go negative).
* Rows an open position or a closed trade refers to cannot change amounts or be deleted (409): the
  position/history would describe a trade the ledger no longer has.
* Live wallets are read-only here (403): their ledger comes from the chain and the engine. Withdrawal rows
  belong to the withdrawal endpoint and are read-only here too.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import delete, get, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from app.api.auth import Principal, jwt_only, scoped
from app.api.common import (
    AgentRow,
    WalletRow,
    owned_agent,
    refuse_live_row,
    refuse_live_wallet,
    require_owned_signal,
    resolve_wallet,
)
from app.api.deps import PoolDep, PrincipalDep
from app.api.errors import ApiError
from app.api.ledger_store import Overdraw, apply_deltas, net_deltas, record_and_apply, row_deltas, row_symbols
from app.api.serialization import (
    Sign,
    assume_utc,
    bad_request,
    body_signal_id,
    column_decimal,
    dec_str,
    error_responses,
    is_base58_address,
    iso,
    parse_datetime,
    parse_flag,
    parse_int32,
    parse_limit,
    parse_offset,
    parse_uuid,
    trimmed,
)
from app.db import Q, transaction
from app.trading.ledger import AMOUNT_18, PCT_4, SOL_8

TransactionType = Literal["DEPOSIT", "SWAP", "BURN", "WITHDRAWAL"]
MAX_ROUTES_BYTES = 65_536
UNSET: Any = msgspec.UNSET

# Column → (precision, scale, sign rule of serialization.column_decimal). Values are rounded half-even to the
# column scale.
DECIMAL_COLUMNS: dict[str, tuple[int, int, Sign]] = {
    "transaction_value_usd": (20, SOL_8, "ge0"),
    "fees": (20, SOL_8, "ge0"),
    "input_amount": (30, AMOUNT_18, "ge0"),
    "input_price": (30, AMOUNT_18, "ge0"),
    "output_amount": (30, AMOUNT_18, "ge0"),
    "output_price": (30, AMOUNT_18, "ge0"),
    "slippage": (10, PCT_4, None),
    "price_impact": (10, PCT_4, None),
    "protocol_fee_sol": (20, SOL_8, "ge0"),
    "network_fee_sol": (20, SOL_8, "ge0"),
}
TEXT_LIMITS = {
    "destination_address": 255,
    "input_mint": 255,
    "output_mint": 255,
    "input_symbol": 20,
    "output_symbol": 20,
    "transaction_hash": 255,
}
CAMEL = {
    "transaction_type": "transactionType",
    "transaction_value_usd": "transactionValueUsd",
    "transaction_time": "transactionTime",
    "destination_address": "destinationAddress",
    "signal_id": "signalId",
    "input_mint": "inputMint",
    "input_symbol": "inputSymbol",
    "input_amount": "inputAmount",
    "input_price": "inputPrice",
    "output_mint": "outputMint",
    "output_symbol": "outputSymbol",
    "output_amount": "outputAmount",
    "output_price": "outputPrice",
    "price_impact": "priceImpact",
    "is_dca": "isDca",
    "is_take_profit": "isTakeProfit",
    "transaction_hash": "transactionHash",
    "protocol_fee_sol": "protocolFeeSol",
    "network_fee_sol": "networkFeeSol",
}


class TransactionFields(msgspec.Struct, rename="camel", kw_only=True):
    """Every writable field; absent fields are UNSET (PUT changes only what is present)."""

    transaction_type: TransactionType | msgspec.UnsetType = UNSET
    transaction_value_usd: Decimal | msgspec.UnsetType = UNSET
    transaction_time: datetime | msgspec.UnsetType = UNSET
    destination_address: str | msgspec.UnsetType | None = UNSET
    signal_id: int | str | msgspec.UnsetType | None = UNSET
    fees: Decimal | msgspec.UnsetType | None = UNSET
    routes: Any = UNSET
    input_mint: str | msgspec.UnsetType | None = UNSET
    input_symbol: str | msgspec.UnsetType | None = UNSET
    input_amount: Decimal | msgspec.UnsetType | None = UNSET
    input_price: Decimal | msgspec.UnsetType | None = UNSET
    output_mint: str | msgspec.UnsetType | None = UNSET
    output_symbol: str | msgspec.UnsetType | None = UNSET
    output_amount: Decimal | msgspec.UnsetType | None = UNSET
    output_price: Decimal | msgspec.UnsetType | None = UNSET
    slippage: Decimal | msgspec.UnsetType | None = UNSET
    price_impact: Decimal | msgspec.UnsetType | None = UNSET
    is_dca: bool | msgspec.UnsetType = UNSET
    is_take_profit: bool | msgspec.UnsetType = UNSET
    transaction_hash: str | msgspec.UnsetType | None = UNSET
    protocol_fee_sol: Decimal | msgspec.UnsetType | None = UNSET
    network_fee_sol: Decimal | msgspec.UnsetType | None = UNSET


class TransactionCreate(TransactionFields, kw_only=True):
    agent_id: str
    wallet_address: str | None = None


class TransactionUpdate(TransactionFields, kw_only=True):
    wallet_address: str | msgspec.UnsetType | None = UNSET


class TransactionOut(msgspec.Struct, rename="camel"):
    id: str
    agent_id: str
    wallet_address: str | None
    transaction_type: str
    transaction_value_usd: str
    transaction_time: str
    destination_address: str | None
    signal_id: int | None
    fees: str | None
    routes: Any
    input_mint: str | None
    input_symbol: str | None
    input_amount: str | None
    input_price: str | None
    output_mint: str | None
    output_symbol: str | None
    output_amount: str | None
    output_price: str | None
    slippage: str | None
    price_impact: str | None
    is_dca: bool
    is_take_profit: bool
    transaction_hash: str | None
    protocol_fee_sol: str | None
    network_fee_sol: str | None
    created_at: str
    updated_at: str


def transaction_out(row: dict[str, Any]) -> TransactionOut:
    return TransactionOut(
        id=str(row["id"]),
        agent_id=str(row["agent_id"]),
        wallet_address=row["wallet_address"],
        transaction_type=row["transaction_type"],
        transaction_value_usd=dec_str(row["transaction_value_usd"]) or "0",
        transaction_time=iso(row["transaction_time"]) or "",
        destination_address=row["destination_address"],
        signal_id=row["signal_id"],
        fees=dec_str(row["fees"]),
        routes=row["routes"],
        input_mint=row["input_mint"],
        input_symbol=row["input_symbol"],
        input_amount=dec_str(row["input_amount"]),
        input_price=dec_str(row["input_price"]),
        output_mint=row["output_mint"],
        output_symbol=row["output_symbol"],
        output_amount=dec_str(row["output_amount"]),
        output_price=dec_str(row["output_price"]),
        slippage=dec_str(row["slippage"]),
        price_impact=dec_str(row["price_impact"]),
        is_dca=row["is_dca"],
        is_take_profit=row["is_take_profit"],
        transaction_hash=row["transaction_hash"],
        protocol_fee_sol=dec_str(row["protocol_fee_sol"]),
        network_fee_sol=dec_str(row["network_fee_sol"]),
        created_at=iso(row["created_at"]) or "",
        updated_at=iso(row["updated_at"]) or "",
    )


# ---------------------------------------------------------------- validation


def _decimal(column: str, value: Decimal | None) -> Decimal | None:
    return None if value is None else column_decimal(CAMEL.get(column, column), value, *DECIMAL_COLUMNS[column])


def _text(column: str, value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if len(text) > TEXT_LIMITS[column]:
        raise bad_request(f"{CAMEL.get(column, column)} must be at most {TEXT_LIMITS[column]} characters")
    return text


def clean_fields(fields: TransactionFields) -> dict[str, Any]:
    """The present fields as DB columns, validated and quantized."""
    out: dict[str, Any] = {}
    for field in msgspec.structs.fields(fields):
        column = field.name
        if column in ("agent_id", "wallet_address"):
            continue
        value = getattr(fields, column)
        if value is UNSET:
            continue
        if column in DECIMAL_COLUMNS:
            out[column] = _decimal(column, value)
        elif column in TEXT_LIMITS:
            out[column] = _text(column, value)
            if column in ("input_mint", "output_mint") and out[column] and not is_base58_address(out[column]):
                raise bad_request(f"{CAMEL[column]} must be a base58 address of 32-44 characters")
        elif column == "signal_id":
            out[column] = body_signal_id(value)
        elif column == "transaction_time":
            out[column] = assume_utc(value)
        elif column == "routes":
            if value is not None and len(msgspec.json.encode(value)) > MAX_ROUTES_BYTES:
                raise bad_request(f"routes must be at most {MAX_ROUTES_BYTES} bytes of JSON")
            out[column] = value
        else:
            out[column] = value
    return out


def check_row(row: dict[str, Any]) -> None:
    """Rules of a complete row: required fields and what each type needs to move balances."""
    if row.get("transaction_type") == "WITHDRAWAL":
        raise bad_request("Withdrawals are made with POST /api/v1/wallets/{walletAddress}/withdraw")
    if row.get("transaction_value_usd") is None:
        raise bad_request("transactionValueUsd is required")
    if row.get("transaction_time") is None:
        raise bad_request("transactionTime is required")
    kind = row["transaction_type"]
    sides = ("input", "output") if kind == "SWAP" else ("input",)
    for side in sides:
        mint, symbol, amount = row.get(f"{side}_mint"), row.get(f"{side}_symbol"), row.get(f"{side}_amount")
        if not mint or not symbol or amount is None:
            raise bad_request(f"{kind} requires {side}Mint, {side}Symbol and {side}Amount")
        if amount <= 0:
            raise bad_request(f"{side}Amount must be greater than 0")
    if kind == "SWAP" and row["input_mint"] == row["output_mint"]:
        raise bad_request("inputMint and outputMint must differ")


# ---------------------------------------------------------------- routes


@post(
    "/api/v1/agent-transactions",
    dependencies={"principal": jwt_only()},
    summary="Record a DEPOSIT, SWAP or BURN on a simulation wallet, moving its balances atomically",
    description="A DEPOSIT of SOL on a simulation wallet is the simulation deposit. Live wallets are read-only "
    "here (403). The wallet defaults to the agent's wallet for its current trading mode.",
    tags=["Transactions"],
    status_code=201,
    responses=error_responses(400, 401, 403, 404),
)
async def create_transaction(
    data: JSONBody[TransactionCreate], principal: PrincipalDep, pool: PoolDep
) -> TransactionOut:
    if data.transaction_type is UNSET:
        raise bad_request("transactionType is required")
    row = clean_fields(data)
    check_row(row)
    async with transaction(pool) as conn:
        agent: AgentRow = await owned_agent(conn, data.agent_id, principal.user_id, lock=True)
        wallet: WalletRow = await resolve_wallet(conn, agent, trimmed(data.wallet_address))
        refuse_live_wallet(wallet, "Transactions")
        await require_owned_signal(conn, row.get("signal_id"), principal.user_id)
        row.update(agent_id=agent.id, wallet_address=wallet.wallet_address)
        try:
            stored = await record_and_apply(conn, row)
        except Overdraw as exc:
            raise exc.to_api_error(400, "Insufficient balance", "INSUFFICIENT_BALANCE") from None
    return transaction_out(stored)


@get(
    "/api/v1/agent-transactions",
    dependencies={"principal": scoped("transactions")},
    summary="An agent's transactions, newest first (limit ≤ 1000)",
    tags=["Transactions"],
    responses=error_responses(400, 401, 403, 404),
)
async def list_transactions(
    principal: PrincipalDep,
    pool: PoolDep,
    agent_id: Annotated[str | None, QueryParameter(name="agentId", description="Required")] = None,
    wallet_address: Annotated[str | None, QueryParameter(name="walletAddress")] = None,
    transaction_type: Annotated[
        str | None, QueryParameter(name="transactionType", description="DEPOSIT|SWAP|BURN|WITHDRAWAL")
    ] = None,
    start_time: Annotated[str | None, QueryParameter(name="startTime", description="ISO-8601, inclusive")] = None,
    end_time: Annotated[str | None, QueryParameter(name="endTime", description="ISO-8601, inclusive")] = None,
    signal_id: Annotated[str | None, QueryParameter(name="signalId")] = None,
    is_dca: Annotated[str | None, QueryParameter(name="isDca", description="'true' or anything else (false)")] = None,
    is_take_profit: Annotated[str | None, QueryParameter(name="isTakeProfit")] = None,
    limit: Annotated[str | None, QueryParameter(description="1..1000, default 100")] = None,
    offset: Annotated[str | None, QueryParameter(description="≥ 0, default 0")] = None,
) -> list[TransactionOut]:
    if not agent_id:
        raise bad_request("Agent ID is required")
    kind = trimmed(transaction_type)
    if kind is not None and kind not in ("DEPOSIT", "SWAP", "BURN", "WITHDRAWAL"):
        raise bad_request("Invalid transaction type")
    args = (
        trimmed(wallet_address),
        kind,
        parse_datetime(start_time, "startTime"),
        parse_datetime(end_time, "endTime"),
        parse_int32(signal_id, "Invalid signalId"),
        parse_flag(is_dca),
        parse_flag(is_take_profit),
        parse_limit(limit),
        parse_offset(offset),
    )
    async with pool.acquire() as conn:
        agent = await owned_agent(conn, agent_id, principal.user_id)
        rows = await Q.api_list_transactions.fetch_all(conn, agent.id, *args)
    return [transaction_out(row) for row in rows]


TxId = Annotated[str, PathParameter(description="Transaction id (UUID)")]


@get(
    "/api/v1/agent-transactions/{transaction_id:str}",
    dependencies={"principal": scoped("transactions")},
    summary="One transaction",
    tags=["Transactions"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_transaction(transaction_id: TxId, principal: PrincipalDep, pool: PoolDep) -> TransactionOut:
    tx_id = parse_uuid(transaction_id, "Invalid transaction ID format")
    row = await Q.api_get_transaction.fetch_one(pool, tx_id, principal.user_id)
    if row is None:
        raise ApiError(404, "Transaction not found", "NOT_FOUND")
    return transaction_out(row)


async def _lock_owned_transaction(conn: Any, raw_id: str, principal: Principal) -> dict[str, Any]:
    """Agent lock, then the row lock; refuses rows of live wallets and withdrawals."""
    tx_id = parse_uuid(raw_id, "Invalid transaction ID format")
    agent_id = await Q.api_transaction_agent.fetch_val(conn, tx_id, principal.user_id)
    if agent_id is None:
        raise ApiError(404, "Transaction not found", "NOT_FOUND")
    await owned_agent(conn, str(agent_id), principal.user_id, lock=True)
    row = await Q.api_lock_transaction.fetch_one(conn, tx_id, agent_id)
    if row is None:
        raise ApiError(404, "Transaction not found", "NOT_FOUND")
    await refuse_live_row(conn, row, "Transactions")
    if row["transaction_type"] == "WITHDRAWAL":
        raise ApiError(409, "Withdrawal rows are managed by the withdrawal endpoint", "LEDGER_CONFLICT")
    return row


async def _refuse_if_referenced(conn: Any, row: dict[str, Any]) -> None:
    refs = await Q.api_transaction_references.fetch_one(conn, row["id"], row["agent_id"])
    assert refs is not None
    if refs["in_position"]:
        raise ApiError(409, "Transaction belongs to an open position; close the position instead", "LEDGER_CONFLICT")
    if refs["in_history"]:
        raise ApiError(
            409, "Transaction belongs to a closed trade in the history; its amounts cannot change", "LEDGER_CONFLICT"
        )


async def _reconcile(
    conn: Any, row: dict[str, Any], deltas: dict[str, Decimal], symbols: dict[str, str], refusal: str
) -> None:
    """Move the stored row's wallet balances by an edit's or a delete's difference; 409 if it would overdraw."""
    try:
        await apply_deltas(conn, row["agent_id"], row["wallet_address"], deltas, symbols)
    except Overdraw as exc:
        raise exc.to_api_error(409, refusal, "LEDGER_CONFLICT") from None


@put(
    "/api/v1/agent-transactions/{transaction_id:str}",
    dependencies={"principal": jwt_only()},
    summary="Edit a transaction; balances are reconciled with the change in the same DB transaction",
    description="If the edit changes what the row does to balances, the difference is applied at once; an edit "
    "that would overdraw a balance, or that changes a row an open position or closed trade refers to, is refused "
    "with 409 LEDGER_CONFLICT. Live-wallet rows are read-only (403).",
    tags=["Transactions"],
    responses=error_responses(400, 401, 403, 404, 409),
)
async def update_transaction(
    transaction_id: TxId, data: JSONBody[TransactionUpdate], principal: PrincipalDep, pool: PoolDep
) -> TransactionOut:
    changes = clean_fields(data)
    async with transaction(pool) as conn:
        old = await _lock_owned_transaction(conn, transaction_id, principal)
        if data.wallet_address is not UNSET and trimmed(data.wallet_address) != old["wallet_address"]:
            raise bad_request("walletAddress cannot be changed; delete and re-create the transaction")
        new = {**old, **changes}
        check_row(new)
        if "signal_id" in changes:
            await require_owned_signal(conn, new["signal_id"], principal.user_id)
        delta = net_deltas(row_deltas(new), row_deltas(old))
        if delta:
            await _refuse_if_referenced(conn, old)
            await _reconcile(
                conn, old, delta, row_symbols(new), "Editing this transaction would make a balance negative"
            )
        stored = await Q.api_update_transaction.fetch_one(
            conn,
            old["id"],
            new["transaction_type"],
            new["transaction_value_usd"],
            new["transaction_time"],
            new["destination_address"],
            new["signal_id"],
            new["fees"],
            new["routes"],
            new["input_mint"],
            new["input_symbol"],
            new["input_amount"],
            new["input_price"],
            new["output_mint"],
            new["output_symbol"],
            new["output_amount"],
            new["output_price"],
            new["slippage"],
            new["price_impact"],
            new["is_dca"],
            new["is_take_profit"],
            new["transaction_hash"],
            new["protocol_fee_sol"],
            new["network_fee_sol"],
        )
    assert stored is not None
    return transaction_out(stored)


@delete(
    "/api/v1/agent-transactions/{transaction_id:str}",
    dependencies={"principal": jwt_only()},
    summary="Delete a transaction and reverse its balance effects",
    description="Refused with 409 LEDGER_CONFLICT when reversing would overdraw a balance or when an open "
    "position or closed trade refers to the row. Live-wallet rows are read-only (403).",
    tags=["Transactions"],
    status_code=204,
    responses=error_responses(400, 401, 403, 404, 409),
)
async def delete_transaction(transaction_id: TxId, principal: PrincipalDep, pool: PoolDep) -> None:
    async with transaction(pool) as conn:
        row = await _lock_owned_transaction(conn, transaction_id, principal)
        await _refuse_if_referenced(conn, row)
        reverse = {mint: -delta for mint, delta in row_deltas(row).items()}
        if reverse:
            await _reconcile(
                conn, row, reverse, row_symbols(row), "Deleting this transaction would make a balance negative"
            )
        await Q.api_delete_transaction.execute(conn, row["id"])


ROUTES = [create_transaction, list_transactions, get_transaction, update_transaction, delete_transaction]
