"""Agent balances (api.md §10).

Reads are as upstream. Writes never set a balance to an arbitrary figure: on a simulation wallet a create
or edit is recorded as a ledger row (``DEPOSIT`` for an increase, ``BURN`` for a decrease) and applied with
the ledger rule in the same DB transaction, so ``balance == Σ deltas of the wallet's rows`` keeps holding;
a delete burns the remaining amount first. Negative balances are refused (400), as is taking a balance
below what an open position of the wallet still holds (409). Live wallets are read-only (403): their
balances come from the chain and the engine (§25.1 item 2).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from app.api.auth import Principal, jwt_only, scoped
from app.api.common import WalletRow, current_prices, owned_agent, refuse_live_wallet, resolve_wallet
from app.api.deps import PoolDep, PrincipalDep
from app.api.errors import ApiError
from app.api.ledger_store import Overdraw, record_and_apply
from app.api.serialization import (
    bad_request,
    dec_num,
    error_responses,
    is_base58_address,
    iso,
    json_response,
    parse_uuid,
    trimmed,
)
from app.db import Q, transaction
from app.trading._num import ZERO, exact
from app.trading.ledger import format_balance, parse_balance
from app.trading.units import SOL_MINT

_BALANCE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
MAX_BALANCE_DECIMALS = 18
ADJUSTMENT_PAYLOAD = {"source": "agent-balances", "kind": "manual_balance_adjustment"}


class BalanceCreate(msgspec.Struct, rename="camel", kw_only=True):
    agent_id: str
    token_address: str
    token_symbol: str
    balance: str
    wallet_address: str | None = None


class BalanceUpdate(msgspec.Struct, rename="camel", kw_only=True):
    balance: str | None = None
    token_symbol: str | None = None


class BalanceOut(msgspec.Struct, rename="camel", omit_defaults=True):
    id: str
    agent_id: str
    wallet_address: str
    token_address: str
    token_symbol: str
    balance: str
    last_updated: str
    price_sol: Decimal | None = None  # list only; a JSON number, omitted when no price is stored


class BalanceDeleted(msgspec.Struct):
    success: bool
    message: str


def balance_out(row: dict[str, Any], price_sol: Decimal | None = None) -> BalanceOut:
    return BalanceOut(
        id=str(row["id"]),
        agent_id=str(row["agent_id"]),
        wallet_address=row["wallet_address"],
        token_address=row["token_address"],
        token_symbol=row["token_symbol"],
        balance=row["balance"],
        last_updated=iso(row["last_updated"]) or "",
        price_sol=dec_num(price_sol),
    )


def parse_amount(text: str) -> Decimal:
    value = text.strip()
    if not _BALANCE.match(value):
        raise bad_request('balance must be a decimal string such as "1.5"')
    amount = Decimal(value)
    if amount < 0:
        raise bad_request("balance cannot be negative")
    if "." in value and len(value.split(".", 1)[1]) > MAX_BALANCE_DECIMALS:
        raise bad_request(f"balance has more than {MAX_BALANCE_DECIMALS} decimal places")
    if len(value.split(".", 1)[0].lstrip("-")) > 12:
        raise bad_request("balance is too large")
    return amount


def clean_symbol(text: str) -> str:
    symbol = text.strip()
    if not symbol or len(symbol) > 20:
        raise bad_request("tokenSymbol must be 1-20 characters")
    return symbol


async def _check_position_floor(conn: Any, wallet: str, mint: str, new_balance: Decimal) -> None:
    holding = await Q.api_position_holding.fetch_val(conn, wallet, mint)
    if holding is not None and new_balance < holding:
        raise ApiError(
            409,
            f"An open position holds {format_balance(holding)} of this token; close it before lowering the balance",
            "LEDGER_CONFLICT",
        )


@exact
def _adjustment(agent_id: Any, wallet: str, mint: str, symbol: str, delta: Decimal, now: Any) -> dict[str, Any]:
    """The ledger row that records a manual balance change of ``delta`` tokens."""
    return {
        "agent_id": agent_id,
        "wallet_address": wallet,
        "transaction_type": "DEPOSIT" if delta > 0 else "BURN",
        "transaction_value_usd": ZERO,
        "transaction_time": now,
        "input_mint": mint,
        "input_symbol": symbol,
        "input_amount": abs(delta),
        "swap_payload": ADJUSTMENT_PAYLOAD,
    }


async def _adjust(conn: Any, agent_id: Any, wallet: str, mint: str, symbol: str, delta: Decimal) -> None:
    if delta == 0:
        return
    now = await conn.fetchval("SELECT now()")
    try:
        await record_and_apply(conn, _adjustment(agent_id, wallet, mint, symbol, delta, now))
    except Overdraw as exc:  # only if the row changed under us, which the locks rule out
        raise exc.to_api_error(409, "Balance would become negative", "LEDGER_CONFLICT") from None


@post(
    "/api/v1/agent-balances",
    dependencies={"principal": jwt_only()},
    summary="Create a token balance on a simulation wallet (recorded as a DEPOSIT ledger row)",
    tags=["Balances"],
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409),
)
async def create_balance(data: JSONBody[BalanceCreate], principal: PrincipalDep, pool: PoolDep) -> BalanceOut:
    mint = data.token_address.strip()
    if not is_base58_address(mint):
        raise bad_request("tokenAddress must be a base58 address of 32-44 characters")
    symbol = clean_symbol(data.token_symbol)
    amount = parse_amount(data.balance)
    async with transaction(pool) as conn:
        agent = await owned_agent(conn, data.agent_id, principal.user_id, lock=True)
        wallet: WalletRow = await resolve_wallet(conn, agent, trimmed(data.wallet_address))
        refuse_live_wallet(wallet, "Balances")
        if await Q.api_get_balance_by_token.fetch_one(conn, wallet.wallet_address, mint) is not None:
            raise ApiError(409, "Balance already exists for this wallet and token", "CONFLICT")
        if amount > 0:
            await _adjust(conn, agent.id, wallet.wallet_address, mint, symbol, amount)
        else:
            await Q.api_insert_balance.execute(conn, agent.id, wallet.wallet_address, mint, symbol, "0")
        row = await Q.api_get_balance_by_token.fetch_one(conn, wallet.wallet_address, mint)
    assert row is not None
    return balance_out(row)


@get(
    "/api/v1/agent-balances",
    dependencies={"principal": scoped("balances")},
    summary="An agent's balances, most recently updated first, with priceSol where a price is stored",
    tags=["Balances"],
    responses=error_responses(400, 401, 403, 404),
)
async def list_balances(
    principal: PrincipalDep,
    pool: PoolDep,
    agent_id: Annotated[str | None, QueryParameter(name="agentId", description="Required")] = None,
    wallet_address: Annotated[str | None, QueryParameter(name="walletAddress")] = None,
) -> Response[list[BalanceOut]]:
    if not agent_id:
        raise bad_request("agentId query parameter is required")
    async with pool.acquire() as conn:
        agent = await owned_agent(conn, agent_id, principal.user_id)
        rows = await Q.api_list_balances.fetch_all(conn, agent.id, trimmed(wallet_address))
        prices = await current_prices(conn, [r for r in rows if r["token_address"] != SOL_MINT])
    prices[SOL_MINT] = Decimal(1)
    return json_response([balance_out(row, prices.get(row["token_address"])) for row in rows], numbers=True)


BalanceId = Annotated[str, PathParameter(description="Balance id (UUID)")]


async def _owned_balance(conn: Any, raw_id: str, principal: Principal) -> dict[str, Any]:
    balance_id = parse_uuid(raw_id, "Invalid balance ID format")
    row = await Q.api_get_balance.fetch_one(conn, balance_id, principal.user_id)
    if row is None:
        raise ApiError(404, "Balance not found", "NOT_FOUND")
    return row


@get(
    "/api/v1/agent-balances/{balance_id:str}",
    dependencies={"principal": scoped("balances")},
    summary="One balance",
    tags=["Balances"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_balance(balance_id: BalanceId, principal: PrincipalDep, pool: PoolDep) -> BalanceOut:
    return balance_out(await _owned_balance(pool, balance_id, principal))


async def _locked_balance(conn: Any, raw_id: str, principal: Principal) -> tuple[dict[str, Any], WalletRow]:
    """Agent lock, then the balance row lock; live wallets refused."""
    row = await _owned_balance(conn, raw_id, principal)
    agent = await owned_agent(conn, str(row["agent_id"]), principal.user_id, lock=True)
    wallet = await Q.api_get_agent_wallet.fetch_one(conn, row["wallet_address"], agent.id, into=WalletRow)
    assert wallet is not None
    refuse_live_wallet(wallet, "Balances")
    locked = await Q.api_lock_balances.fetch_all(conn, row["wallet_address"], [row["token_address"]])
    if not locked:
        raise ApiError(404, "Balance not found", "NOT_FOUND")
    return {**row, "balance": locked[0]["balance"], "token_symbol": locked[0]["token_symbol"]}, wallet


@put(
    "/api/v1/agent-balances/{balance_id:str}",
    dependencies={"principal": jwt_only()},
    summary="Change a simulation balance (the difference is recorded as a DEPOSIT or BURN row) or its symbol",
    tags=["Balances"],
    responses=error_responses(400, 401, 403, 404, 409),
)
async def update_balance(
    balance_id: BalanceId, data: JSONBody[BalanceUpdate], principal: PrincipalDep, pool: PoolDep
) -> BalanceOut:
    if data.balance is None and data.token_symbol is None:
        raise bad_request("At least one field (balance, tokenSymbol) must be provided")
    amount = None if data.balance is None else parse_amount(data.balance)
    symbol = None if data.token_symbol is None else clean_symbol(data.token_symbol)
    async with transaction(pool) as conn:
        row, wallet = await _locked_balance(conn, balance_id, principal)
        if symbol is not None and symbol != row["token_symbol"]:
            await Q.api_set_balance_symbol.execute(conn, row["id"], symbol)
        if amount is not None:
            current = parse_balance(row["balance"])
            await _check_position_floor(conn, wallet.wallet_address, row["token_address"], amount)
            await _adjust(
                conn,
                row["agent_id"],
                wallet.wallet_address,
                row["token_address"],
                symbol or row["token_symbol"],
                amount - current,
            )
        updated = await Q.api_get_balance_by_token.fetch_one(conn, wallet.wallet_address, row["token_address"])
    assert updated is not None
    return balance_out(updated)


@delete(
    "/api/v1/agent-balances/{balance_id:str}",
    dependencies={"principal": jwt_only()},
    summary="Remove a simulation balance (what remains is recorded as a BURN row first)",
    tags=["Balances"],
    status_code=200,
    responses=error_responses(400, 401, 403, 404, 409),
)
async def delete_balance(balance_id: BalanceId, principal: PrincipalDep, pool: PoolDep) -> BalanceDeleted:
    async with transaction(pool) as conn:
        row, wallet = await _locked_balance(conn, balance_id, principal)
        await _check_position_floor(conn, wallet.wallet_address, row["token_address"], ZERO)
        current = parse_balance(row["balance"])
        await _adjust(conn, row["agent_id"], wallet.wallet_address, row["token_address"], row["token_symbol"], -current)
        await Q.api_delete_balance.execute(conn, row["id"])
    return BalanceDeleted(success=True, message="Balance deleted successfully")


ROUTES = [create_balance, list_balances, get_balance, update_balance, delete_balance]
