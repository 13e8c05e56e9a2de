"""Valuation of open positions and the performance summary (domain §11.3), as pure functions.

One definition of position P/L serves the positions list, the performance summary and (through the same
formula in the snapshot job) the balance history: the tokens still held at the latest stored price,
against the cost basis of those tokens, plus the profit already realised by partial take-profit sales.
Upstream's REST view valued the *original* amount instead (api.md §11 asks to pick one; this is the one
the WebSocket and the performance figures used).

The cost basis and the position metrics are ``app.trading.performance``'s, the functions the hourly
snapshots use, so the performance figures, the positions view and the balance history agree. A position
without a stored price is valued at its purchase price: prices are never invented, so the unrealised P/L
of such a position is 0 until the worker has observed a price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from app.trading._num import HUNDRED, ZERO, exact
from app.trading.ledger import AMOUNT_18, PCT_4, SOL_8, quantize
from app.trading.performance import OpenPositionValuation, cost_basis, position_metrics
from app.trading.position import PositionState


def valuation_of(row: Mapping[str, Any], price: Decimal | None) -> OpenPositionValuation:
    """An ``api_open_positions`` row as the shared performance module's input (same as the snapshots)."""
    has_tp = bool(row.get("take_profit_transaction_ids"))
    return OpenPositionValuation(
        position=msgspec.convert(dict(row), PositionState),
        price=price if price is not None and price > 0 else None,
        tp_net_proceeds=row.get("tp_proceeds_sol") if has_tp else None,
    )


@dataclass(frozen=True, slots=True)
class Valuation:
    holding: Decimal
    price: Decimal  # SOL per token used for the valuation
    value: Decimal  # SOL
    cost_basis: Decimal  # SOL cost of the tokens still held
    unrealized: Decimal
    realized: Decimal  # profit of partial take-profit sales
    invested: Decimal

    @property
    def profit_loss(self) -> Decimal:
        return self.unrealized + self.realized


@exact
def value_position(position: Mapping[str, Any], price: Decimal | None) -> Valuation:
    valuation = valuation_of(position, price)
    state = valuation.position
    used_price = valuation.price if valuation.price is not None else state.purchase_price
    value = used_price * state.holding
    cost = cost_basis(valuation)
    invested = (
        state.total_invested_sol if state.total_invested_sol > 0 else state.purchase_price * state.purchase_amount
    )
    return Valuation(state.holding, used_price, value, cost, value - cost, state.realized_profit_sol, invested)


@exact
def percent(part: Decimal, whole: Decimal) -> Decimal:
    return ZERO if whole == 0 else quantize(part / whole * HUNDRED, PCT_4)


@exact
def sol(value: Decimal) -> Decimal:
    return quantize(value, SOL_8)


@exact
def price18(value: Decimal) -> Decimal:
    return quantize(value, AMOUNT_18)


@exact
def usd(value_sol: Decimal, sol_usd: Decimal | None) -> Decimal | None:
    return None if sol_usd is None else quantize(value_sol * sol_usd, SOL_8)


@exact
def usd_price(price_sol: Decimal, sol_usd: Decimal | None) -> Decimal | None:
    return None if sol_usd is None else quantize(price_sol * sol_usd, AMOUNT_18)


@dataclass(frozen=True, slots=True)
class ClosedStats:
    closed_trades: int
    realized_sol: Decimal
    wins: int
    change_sum: Decimal


@exact
def performance_summary(
    positions: Iterable[Mapping[str, Any]],
    prices: Mapping[str, Decimal],
    sol_balance: Decimal,
    closed: ClosedStats,
) -> dict[str, Any]:
    """``app.trading.performance.performance_summary`` with the closed trades aggregated in SQL (a long
    history is summed by the database instead of being fetched row by row); same figures, same rounding."""
    metrics = position_metrics(valuation_of(p, prices.get(p["token_address"])) for p in positions)
    count = closed.closed_trades
    realized = quantize(closed.realized_sol + metrics.realized_take_profit_sol, SOL_8)
    return {
        "portfolioBalanceSol": quantize(sol_balance + metrics.positions_value_sol, SOL_8),
        "totalProfitLossSol": quantize(realized + metrics.unrealized_pnl_sol, SOL_8),
        "realizedProfitLossSol": realized,
        "unrealizedProfitLossSol": metrics.unrealized_pnl_sol,
        "averageReturn": quantize(closed.change_sum / count, PCT_4) if count else quantize(ZERO, PCT_4),
        "winRate": quantize(Decimal(closed.wins) / count * HUNDRED, PCT_4) if count else quantize(ZERO, PCT_4),
        "totalClosedTrades": count,
        "totalOpenPositions": metrics.count,
    }
