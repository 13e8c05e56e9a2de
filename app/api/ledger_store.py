"""Balance effects of ledger rows written through the API, applied with the engine's rule.

``app.trading.ledger.balance_deltas`` is the single definition of how a transaction row moves balances;
this module applies those deltas to ``agent_balances`` under row locks, so after every API write
``balance == Σ deltas of the wallet's stored rows`` (the audit invariant) still holds. The caller holds
the agent row lock (first in the lock order); balances are locked here in token-address order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg

from app.api.errors import ApiError
from app.db import Q
from app.trading._num import ZERO, plain
from app.trading.ledger import NEGATIVE_DUST, balance_deltas, format_balance, parse_balance
from app.trading.units import SOL_MINT


def row_deltas(row: Mapping[str, Any]) -> dict[str, Decimal]:
    """Deltas of a stored or about-to-be-stored transaction row (keys as the DB columns)."""
    if row.get("wallet_address") is None:
        return {}  # legacy rows without a wallet never touched a balance
    return balance_deltas(
        row["transaction_type"],
        row["input_mint"],
        row["input_amount"],
        row.get("output_mint"),
        row.get("output_amount"),
        network_fee_sol=row.get("network_fee_sol"),
        fees=row.get("fees"),
    )


def row_symbols(row: Mapping[str, Any]) -> dict[str, str]:
    symbols = {SOL_MINT: "SOL"}
    if row.get("output_mint") and row.get("output_symbol"):
        symbols[row["output_mint"]] = row["output_symbol"]
    if row.get("input_mint") and row.get("input_symbol"):
        symbols[row["input_mint"]] = row["input_symbol"]
    return symbols


def net_deltas(new: Mapping[str, Decimal], old: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """``new − old`` per mint, without the mints that net to zero."""
    out: dict[str, Decimal] = {}
    for mint in set(new) | set(old):
        delta = new.get(mint, ZERO) - old.get(mint, ZERO)
        if delta != 0:
            out[mint] = delta
    return out


class Overdraw(Exception):
    def __init__(self, mint: str, symbol: str | None, current: Decimal, required: Decimal) -> None:
        super().__init__("Insufficient balance")
        self.mint, self.symbol, self.current, self.required = mint, symbol, current, required

    def to_api_error(self, status: int, message: str, code: str) -> ApiError:
        return ApiError(
            status,
            message,
            code,
            currentBalance=plain(self.current),
            requiredAmount=plain(self.required),
            tokenAddress=self.mint,
            tokenSymbol=self.symbol,
        )


async def apply_deltas(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    wallet_address: str,
    deltas: Mapping[str, Decimal],
    symbols: Mapping[str, str],
) -> dict[str, Decimal]:
    """Apply signed deltas to the wallet's balances; raises :class:`Overdraw` instead of going negative.

    A debit may leave up to 1e-8 of dust below zero, which becomes 0 (ledger rule); a missing row is 0.
    Returns the new balance per mint.
    """
    mints = sorted(deltas)
    if not mints:
        return {}
    locked = await Q.api_lock_balances.fetch_all(conn, wallet_address, mints)
    current = {row["token_address"]: parse_balance(row["balance"]) for row in locked}
    known_symbols = {row["token_address"]: row["token_symbol"] for row in locked}
    new_balances: dict[str, Decimal] = {}
    for mint in mints:
        before = current.get(mint, ZERO)
        after = before + deltas[mint]
        if after < 0:
            if after < -NEGATIVE_DUST:
                raise Overdraw(mint, known_symbols.get(mint) or symbols.get(mint), before, -deltas[mint])
            after = ZERO
        new_balances[mint] = after
    for mint in mints:
        symbol = known_symbols.get(mint) or symbols.get(mint) or mint[:20]
        await Q.api_upsert_balance.execute(
            conn, agent_id, wallet_address, mint, symbol, format_balance(new_balances[mint])
        )
    return new_balances


TX_COLUMNS = (
    "agent_id",
    "wallet_address",
    "transaction_type",
    "transaction_value_usd",
    "transaction_time",
    "destination_address",
    "signal_id",
    "fees",
    "routes",
    "input_mint",
    "input_symbol",
    "input_amount",
    "input_price",
    "output_mint",
    "output_symbol",
    "output_amount",
    "output_price",
    "slippage",
    "price_impact",
    "is_dca",
    "is_take_profit",
    "transaction_hash",
    "protocol_fee_sol",
    "network_fee_sol",
    "swap_payload",
)
TX_DEFAULTS: dict[str, Any] = {"is_dca": False, "is_take_profit": False}


async def insert_transaction(conn: asyncpg.Connection, row: Mapping[str, Any]) -> dict[str, Any]:
    """Insert a transaction row (keys = column names; absent ones NULL) and return it as stored."""
    values = [row.get(column, TX_DEFAULTS.get(column)) for column in TX_COLUMNS]
    stored = await Q.api_insert_transaction.fetch_one(conn, *values)
    assert stored is not None
    return stored


async def record_and_apply(conn: asyncpg.Connection, row: Mapping[str, Any]) -> dict[str, Any]:
    """Insert a ledger row and move the wallet's balances by its deltas, in the caller's transaction."""
    await apply_deltas(conn, row["agent_id"], row["wallet_address"], row_deltas(row), row_symbols(row))
    return await insert_transaction(conn, row)
