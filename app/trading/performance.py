"""Performance summary and hourly snapshot figures (domain §11.2, §11.3).

P/L comes only from trades: realized = closed positions' ``profit_loss_sol`` plus the take-profit
P/L banked on open positions; unrealized = value of the tokens held minus their cost basis. A
withdrawal or any other balance drop is therefore never a loss; it only lowers the portfolio
balance.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import msgspec

from app.trading._num import HUNDRED, ZERO, exact
from app.trading.ledger import PCT_4, SOL_8, quantize
from app.trading.position import PositionState


class ClosedTrade(Protocol):
    profit_loss_sol: Decimal
    change_percent: Decimal


class ClosedTradeRow(msgspec.Struct, frozen=True):
    profit_loss_sol: Decimal
    change_percent: Decimal


class OpenPositionValuation(msgspec.Struct, frozen=True, kw_only=True):
    """An open position with its latest price (``None`` ⇒ valued at its purchase price) and, when
    it has take-profit sales, the SOL they credited (Σ ``trades.net_sol_proceeds``)."""

    position: PositionState
    price: Decimal | None = None
    tp_net_proceeds: Decimal | None = None


class PositionMetrics(msgspec.Struct, frozen=True, kw_only=True):
    positions_value_sol: Decimal
    unrealized_pnl_sol: Decimal
    realized_take_profit_sol: Decimal
    count: int


class PerformanceSummary(msgspec.Struct, frozen=True, kw_only=True):
    portfolio_balance_sol: Decimal
    total_profit_loss_sol: Decimal
    realized_profit_loss_sol: Decimal
    unrealized_profit_loss_sol: Decimal
    average_return: Decimal
    win_rate: Decimal
    total_closed_trades: int
    total_open_positions: int


class SnapshotFigures(msgspec.Struct, frozen=True, kw_only=True):
    portfolio_balance_sol: Decimal
    sol_balance: Decimal
    positions_value_sol: Decimal
    unrealized_pnl_sol: Decimal


@exact
def cost_basis(valuation: OpenPositionValuation) -> Decimal:
    """SOL still invested in the tokens held (§11.3)."""
    position = valuation.position
    invested, bought, holding = position.total_invested_sol, position.purchase_amount, position.holding
    if valuation.tp_net_proceeds is not None and invested > 0:
        return invested - valuation.tp_net_proceeds + position.realized_profit_sol
    if invested > 0 and bought > 0:
        return holding / bought * invested
    return position.purchase_price * holding


@exact
def position_metrics(open_positions: Iterable[OpenPositionValuation]) -> PositionMetrics:
    value = unrealized = realized = ZERO
    count = 0
    for valuation in open_positions:
        position = valuation.position
        price = valuation.price if valuation.price is not None else position.purchase_price
        worth = price * position.holding
        value += worth
        unrealized += worth - cost_basis(valuation)
        realized += position.realized_profit_sol
        count += 1
    return PositionMetrics(
        positions_value_sol=quantize(value, SOL_8),
        unrealized_pnl_sol=quantize(unrealized, SOL_8),
        realized_take_profit_sol=quantize(realized, SOL_8),
        count=count,
    )


def _sol_total(sol_balance: Decimal | Iterable[Decimal]) -> Decimal:
    return sol_balance if isinstance(sol_balance, Decimal) else sum(sol_balance, ZERO)


@exact
def performance_summary(
    closed_trades: Iterable[ClosedTrade],
    open_positions: Iterable[OpenPositionValuation],
    sol_balance: Decimal | Iterable[Decimal],
) -> PerformanceSummary:
    """§11.3. ``closed_trades`` are already filtered by wallet and timeframe; ``sol_balance`` is one
    wallet's balance or the balances of all the agent's wallets."""
    trades = list(closed_trades)
    count = len(trades)
    realized_closed = sum((t.profit_loss_sol for t in trades), ZERO)
    wins = sum(1 for t in trades if t.profit_loss_sol > 0)
    average = sum((t.change_percent for t in trades), ZERO) / count if count else ZERO
    metrics = position_metrics(open_positions)
    realized = quantize(realized_closed + metrics.realized_take_profit_sol, SOL_8)
    sol = _sol_total(sol_balance)
    return PerformanceSummary(
        portfolio_balance_sol=quantize(sol + metrics.positions_value_sol, SOL_8),
        total_profit_loss_sol=quantize(realized + metrics.unrealized_pnl_sol, SOL_8),
        realized_profit_loss_sol=realized,
        unrealized_profit_loss_sol=metrics.unrealized_pnl_sol,
        average_return=quantize(average, PCT_4),
        win_rate=quantize(Decimal(wins) / count * HUNDRED if count else ZERO, PCT_4),
        total_closed_trades=count,
        total_open_positions=metrics.count,
    )


@exact
def snapshot_figures(sol_balance: Decimal, open_positions: Iterable[OpenPositionValuation]) -> SnapshotFigures:
    """The four values of an ``agent_balance_snapshots`` row for one wallet (§11.2)."""
    metrics = position_metrics(open_positions)
    return SnapshotFigures(
        portfolio_balance_sol=quantize(sol_balance + metrics.positions_value_sol, SOL_8),
        sol_balance=quantize(sol_balance, SOL_8),
        positions_value_sol=metrics.positions_value_sol,
        unrealized_pnl_sol=metrics.unrealized_pnl_sol,
    )


def hour_floor(moment: datetime) -> datetime:
    """Snapshot timestamp: the UTC hour containing ``moment`` (naive datetimes are taken as UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(minute=0, second=0, microsecond=0)


def window_start(timeframe: str, now: datetime) -> datetime | None:
    """Earliest ``sale_time`` counted by the performance timeframe (``24h`` or ``all``)."""
    if timeframe == "24h":
        return now - timedelta(hours=24)
    if timeframe == "all":
        return None
    raise ValueError("Invalid timeframe. Must be '24h' or 'all'")
