"""Hourly balance snapshots (domain §11.2): one row per wallet per UTC hour.

Every wallet of every agent (simulation and live) gets, for the hour containing "now", its SOL
balance, the value of its open positions at the latest stored prices (``token_prices``; a token the
monitor never priced is valued at its purchase price), their unrealized P/L and the sum of SOL and
positions, upserted on (agent, wallet, hour): a second run in the same hour overwrites the figures.

After downtime the hours between a wallet's newest snapshot and the current hour are filled once
(``ON CONFLICT DO NOTHING``, at most ``snapshot_backfill_max_hours``) with the figures available now
— the best we have, since neither past balances of positions nor past prices are kept — and logged
as backfilled. A wallet never snapshotted before starts at the current hour.

The figures come from :mod:`app.trading.performance`: P/L is computed from trades only, so a
withdrawal lowers ``sol_balance`` and ``portfolio_balance_sol`` but never the unrealized P/L.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from app.db import Q, transaction
from app.metrics import BALANCE_SNAPSHOTS_TOTAL
from app.trading.ledger import parse_balance
from app.trading.performance import OpenPositionValuation, SnapshotFigures, hour_floor, snapshot_figures
from app.trading.position import PositionState
from app.trading.units import SOL_MINT

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# Wake a little after the hour so the snapshot of hour H is taken inside hour H even with clock jitter.
_AFTER_HOUR = timedelta(seconds=1)


class WalletRef(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: uuid.UUID
    wallet_address: str
    wallet_type: str
    last_snapshot: datetime | None = None


class SnapshotRun(msgspec.Struct, kw_only=True):
    hour: datetime
    wallets: int = 0
    captured: int = 0
    backfilled_hours: int = 0
    failed: list[str] = msgspec.field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def missed_hours(last_snapshot: datetime | None, current_hour: datetime, max_hours: int) -> list[datetime]:
    """Hours strictly between the newest snapshot and ``current_hour``, the most recent ``max_hours``."""
    if last_snapshot is None or max_hours <= 0:
        return []
    first = hour_floor(last_snapshot) + HOUR
    count = int((current_hour - first) / HOUR)
    if count <= 0:
        return []
    count = min(count, max_hours)
    return [current_hour - HOUR * n for n in range(count, 0, -1)]


def _valuation(row: dict[str, Any]) -> OpenPositionValuation:
    return OpenPositionValuation(
        position=msgspec.convert(row, PositionState),
        price=row["latest_price"],
        tp_net_proceeds=row["tp_net_proceeds"],
    )


async def snapshot_wallet_valuations(
    conn: asyncpg.Connection, agent_id: uuid.UUID, wallet_address: str
) -> list[OpenPositionValuation]:
    """The wallet's open positions with their latest stored price and take-profit proceeds."""
    rows = await Q.snapshot_wallet_positions.fetch_all(conn, agent_id, wallet_address)
    return [_valuation(row) for row in rows]


async def wallet_figures(conn: asyncpg.Connection, agent_id: uuid.UUID, wallet_address: str) -> SnapshotFigures:
    """Snapshot figures of one wallet now. Run inside a REPEATABLE READ transaction so the SOL balance
    and the positions come from the same instant (a sale in between would count its value twice)."""
    text = await Q.snapshot_sol_balance.fetch_val(conn, wallet_address, SOL_MINT)
    sol = parse_balance(text) if text is not None else Decimal(0)
    return snapshot_figures(sol, await snapshot_wallet_valuations(conn, agent_id, wallet_address))


async def snapshot_wallet(
    pool: asyncpg.Pool, wallet: WalletRef, hour: datetime, *, backfill_hours: list[datetime] | None = None
) -> tuple[SnapshotFigures, int]:
    """Upsert the wallet's snapshot for ``hour`` and fill ``backfill_hours``; returns (figures, filled)."""
    async with transaction(pool, isolation="repeatable_read") as conn:
        figures = await wallet_figures(conn, wallet.agent_id, wallet.wallet_address)
        values = (
            figures.portfolio_balance_sol,
            figures.sol_balance,
            figures.positions_value_sol,
            figures.unrealized_pnl_sol,
        )
        await Q.upsert_balance_snapshot.execute(conn, wallet.agent_id, wallet.wallet_address, hour, *values)
        filled: list[Any] = []
        if backfill_hours:
            filled = await Q.backfill_balance_snapshots.fetch_all(
                conn, wallet.agent_id, wallet.wallet_address, backfill_hours, *values
            )
    if filled:
        log.warning(
            "balance snapshots backfilled after downtime",
            extra={
                "fields": {
                    "agent_id": str(wallet.agent_id),
                    "wallet_address": wallet.wallet_address,
                    "backfilled": True,
                    "hours": len(filled),
                    "first_hour": min(r["snapshot_timestamp"] for r in filled).isoformat(),
                    "last_hour": max(r["snapshot_timestamp"] for r in filled).isoformat(),
                    "portfolio_balance_sol": str(figures.portfolio_balance_sol),
                }
            },
        )
        BALANCE_SNAPSHOTS_TOTAL.labels("backfill", "success").inc(len(filled))
    BALANCE_SNAPSHOTS_TOTAL.labels("hourly", "success").inc()
    return figures, len(filled)


async def capture_snapshots(pool: asyncpg.Pool, *, now: datetime, backfill_max_hours: int) -> SnapshotRun:
    """Snapshot every wallet for the hour containing ``now``; a failing wallet never stops the others."""
    hour = hour_floor(now)
    run = SnapshotRun(hour=hour)
    wallets = await Q.snapshot_wallets.fetch_all(pool, into=WalletRef)
    run.wallets = len(wallets)
    for wallet in wallets:
        try:
            _, filled = await snapshot_wallet(
                pool, wallet, hour, backfill_hours=missed_hours(wallet.last_snapshot, hour, backfill_max_hours)
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError) as exc:
            # ValueError: an unparseable balance text; the wallet is skipped until someone repairs it.
            BALANCE_SNAPSHOTS_TOTAL.labels("hourly", "failed").inc()
            run.failed.append(wallet.wallet_address)
            log.error(
                "balance snapshot failed",
                extra={
                    "fields": {
                        "agent_id": str(wallet.agent_id),
                        "wallet_address": wallet.wallet_address,
                        "error": str(exc),
                    }
                },
            )
            continue
        run.captured += 1
        run.backfilled_hours += filled
    log.info(
        "balance snapshots captured",
        extra={
            "fields": {
                "hour": hour.isoformat(),
                "wallets": run.wallets,
                "captured": run.captured,
                "backfilled_hours": run.backfilled_hours,
                "failed": len(run.failed),
            }
        },
    )
    return run


def seconds_until_next_run(now: datetime, interval_s: float) -> float:
    """Sleep until just after the next UTC hour, or ``interval_s`` if that comes first (refreshes the
    current hour's row)."""
    next_hour = hour_floor(now) + HOUR + _AFTER_HOUR
    return max(0.0, min(float(interval_s), (next_hour - now).total_seconds()))


async def snapshot_service(ctx: Any) -> None:
    """Worker service: snapshot at start (filling any hours missed while down), then every hour."""
    while True:
        try:
            await capture_snapshots(
                ctx.pool, now=_utcnow(), backfill_max_hours=ctx.settings.snapshot_backfill_max_hours
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.error("balance snapshot run failed", extra={"fields": {"error": str(exc)}})
        if await ctx.sleep(seconds_until_next_run(_utcnow(), ctx.settings.snapshot_interval_s)):
            return
