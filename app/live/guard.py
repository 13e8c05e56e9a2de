"""Database-side gates in front of every live order: config switch, kill switch, drift block,
daily loss limit and open-position cap. The pure checks live in :mod:`app.live.rails`.

The same function runs twice: once early without locks (refuse before quoting/building anything)
and once inside the journaling transaction (:func:`app.live.swaplog.journal`), where the kill-switch
rows are read ``FOR SHARE`` so a halt committed before the journal write always wins.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from app.config import Settings
from app.db import Q
from app.live import rails
from app.live.rails import LiveRefused
from app.live.swaplog import check_halts

# Intent kinds that buy into a token without opening a new position.
NON_OPENING_BUYS = frozenset({"dca", "dca_buy"})


def opens_position(side: str, kind: str | None) -> bool:
    return side == "buy" and (kind or "buy") not in NON_OPENING_BUYS


def check_enabled(settings: Settings) -> None:
    if not settings.live_trading_enabled:
        raise LiveRefused("LIVE_TRADING_DISABLED", "Live trading is disabled on this server (LIVE_TRADING_ENABLED)")


async def agent_limits(
    conn: asyncpg.Connection | asyncpg.Pool, settings: Settings, agent_id: uuid.UUID
) -> tuple[Decimal | None, int]:
    row = await Q.live_get_agent_limits.fetch_one(conn, agent_id)
    daily = row["daily_loss_limit_sol"] if row and row["daily_loss_limit_sol"] is not None else None
    cap = row["max_open_positions"] if row and row["max_open_positions"] is not None else None
    return (
        daily if daily is not None else settings.live_daily_loss_limit_sol,
        cap if cap is not None else settings.live_max_open_positions,
    )


async def check_wallet_drift(conn: asyncpg.Connection | asyncpg.Pool, wallet: str) -> None:
    if await Q.live_wallet_blocked.fetch_val(conn, wallet):
        raise LiveRefused(
            "WALLET_DRIFT",
            f"Wallet {wallet} differs from its on-chain balances beyond the threshold; "
            "review and acknowledge the reconciliation report to resume live trading",
        )


async def check_order(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    agent_id: uuid.UUID,
    user_id: uuid.UUID | None,
    wallet: str,
    side: str,
    kind: str | None,
    lock_halts: bool,
) -> None:
    """Every DB gate, cheapest first. Sells pass the loss and position rails: they reduce risk."""
    check_enabled(settings)
    await check_halts(conn, user_id, lock=lock_halts)
    await check_wallet_drift(conn, wallet)
    if side != "buy":
        return
    daily_limit, max_open = await agent_limits(conn, settings, agent_id)
    if daily_limit is not None:
        rails.check_daily_loss(await Q.live_realized_pnl_today.fetch_val(conn, agent_id), daily_limit)
    if opens_position(side, kind):
        rails.check_open_positions(await Q.live_open_positions_count.fetch_val(conn, agent_id), max_open)
