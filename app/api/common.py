"""Ownership checks, row types and lookups shared by the resource routes.

Every lookup is filtered by the caller's user id, so a resource of another user is indistinguishable from
a missing one (404, never 403: api.md §2.4 [FIX]).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from app.api.errors import ApiError
from app.api.serialization import parse_uuid
from app.db import Q
from app.worker.prices import latest_prices, latest_sol_usd

Conn = asyncpg.Connection | asyncpg.Pool


class AgentRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    trading_mode: str
    automated_trading_simulation: bool
    automated_trading_live: bool
    trading_config: Any = None
    created_at: datetime
    updated_at: datetime


class WalletRow(msgspec.Struct, kw_only=True):
    wallet_address: str
    agent_id: uuid.UUID
    wallet_type: str
    created_at: datetime
    updated_at: datetime

    @property
    def is_live(self) -> bool:
        return self.wallet_type == "live"


def agent_not_found() -> ApiError:
    return ApiError(404, "Agent not found", "NOT_FOUND")


async def owned_agent(conn: Conn, raw_agent_id: str | None, user_id: uuid.UUID, *, lock: bool = False) -> AgentRow:
    """The caller's agent by a raw path/query value: 400 for a malformed id, 404 when missing or foreign.

    ``lock`` takes the agent row ``FOR UPDATE``: the first lock of the documented trade lock order
    (agent, then balances by token address, then positions), so ledger writes here serialise with trades.
    """
    agent_id = parse_uuid(raw_agent_id, "Invalid agent ID format")
    query = Q.api_lock_agent if lock else Q.api_get_agent
    agent = await query.fetch_one(conn, agent_id, user_id, into=AgentRow)
    if agent is None:
        raise agent_not_found()
    return agent


async def agent_wallets(conn: Conn, agent_id: uuid.UUID) -> list[WalletRow]:
    return await Q.api_list_agent_wallets.fetch_all(conn, agent_id, into=WalletRow)


async def resolve_wallet(conn: Conn, agent: AgentRow, wallet_address: str | None) -> WalletRow:
    """The wallet a write applies to: the given one (must belong to the agent) or the agent's wallet for
    its current trading mode (upstream default)."""
    if wallet_address:
        wallet = await Q.api_get_agent_wallet.fetch_one(conn, wallet_address, agent.id, into=WalletRow)
        if wallet is None:
            raise ApiError(400, "Wallet does not belong to this agent", "WALLET_MISMATCH")
        return wallet
    wallet = await Q.api_get_agent_wallet_by_type.fetch_one(conn, agent.id, agent.trading_mode, into=WalletRow)
    if wallet is None:
        raise ApiError(
            400,
            f"No wallet found for agent in {agent.trading_mode} mode. Please assign a wallet first.",
            "WALLET_NOT_FOUND",
        )
    return wallet


def refuse_live_wallet(wallet: WalletRow, what: str) -> None:
    """Live balances and history come from the chain and the engine only (api.md §25.1 item 2)."""
    if wallet.is_live:
        raise ApiError(
            403,
            f"{what} cannot be written by hand on a live wallet: live balances and history come from the chain",
            "LIVE_WALLET_READ_ONLY",
        )


async def refuse_live_row(conn: Conn, row: Mapping[str, Any], what: str) -> None:
    """:func:`refuse_live_wallet` for a stored row, by its ``wallet_address`` and ``agent_id``.

    A row without a wallet, or whose wallet is no longer the agent's, belongs to no live wallet.
    """
    if row["wallet_address"] is None:
        return
    wallet = await Q.api_get_agent_wallet.fetch_one(conn, row["wallet_address"], row["agent_id"], into=WalletRow)
    if wallet is not None:
        refuse_live_wallet(wallet, what)


def signal_not_found() -> ApiError:
    return ApiError(404, "Trading signal not found", "NOT_FOUND")


async def require_owned_signal(conn: Conn, signal_id: int | None, user_id: uuid.UUID) -> None:
    """A row may refer only to a signal of its owner (404 otherwise, never an existence oracle)."""
    if signal_id is not None and await Q.api_signal_owned.fetch_val(conn, signal_id, user_id) is None:
        raise signal_not_found()


async def current_prices(conn: Conn, rows: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """The latest stored SOL price of each row's ``token_address`` (mints without one are absent)."""
    stored = await latest_prices(conn, [row["token_address"] for row in rows])
    return {mint: price.price_sol for mint, price in stored.items()}


async def sol_usd_price(conn: Conn) -> Decimal | None:
    """The stored SOL/USD (None before the worker has seen one: never a made-up default)."""
    stored = await latest_sol_usd(conn)
    return None if stored is None else stored.price_usd


async def user_email(conn: Conn, user_id: uuid.UUID) -> str | None:
    return await Q.api_user_email.fetch_val(conn, user_id)
