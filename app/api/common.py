"""Ownership checks and row types shared by the resource routes.

Every lookup is filtered by the caller's user id, so a resource of another user is indistinguishable from
a missing one (404, never 403: api.md §2.4 [FIX]).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from app.api.errors import ApiError
from app.api.serialization import parse_uuid
from app.db import Q

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


async def user_email(conn: Conn, user_id: uuid.UUID) -> str | None:
    return await Q.api_user_email.fetch_val(conn, user_id)
