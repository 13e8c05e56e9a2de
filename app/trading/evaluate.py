"""One price tick for one open position: which single action to take (domain §9.3).

Order: stop loss → take profit → stale trade → DCA. The first that fires wins the tick; the worker
executes it and re-evaluates on the next tick (upstream could run a take-profit and then a
stale-trade close in the same tick; one action per tick keeps every action on fresh state).
Alongside the action come the state changes to persist (peak, stop level, lowest price) whether or
not anything trades.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from app.trading._num import exact
from app.trading.config import AgentTradingConfig
from app.trading.dca import DcaDecision, evaluate_dca
from app.trading.ledger import AMOUNT_18, quantize
from app.trading.position import PositionState
from app.trading.stale import should_close_stale
from app.trading.stop_loss import evaluate_stop_loss
from app.trading.take_profit import TakeProfitDecision, evaluate_take_profit

__all__ = [
    "Action",
    "DcaBuy",
    "Hold",
    "PositionState",
    "SellAll",
    "SellPartial",
    "StateUpdate",
    "evaluate_position",
]


class StateUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Fields to write back. When ``stop_loss_changed``, write ``peak_price``,
    ``current_stop_loss_percentage`` and ``last_stop_loss_update = now``; when ``lowest_changed``,
    write ``lowest_price``."""

    peak_price: Decimal | None
    current_stop_loss_percentage: Decimal | None
    stop_loss_changed: bool
    lowest_price: Decimal | None
    lowest_changed: bool

    @property
    def changed(self) -> bool:
        return self.stop_loss_changed or self.lowest_changed


class Hold(msgspec.Struct, frozen=True, kw_only=True, tag="hold"):
    update: StateUpdate


class SellAll(msgspec.Struct, frozen=True, kw_only=True, tag="sell"):
    reason: Literal["stop_loss", "stale_trade"]
    update: StateUpdate
    stop_price: Decimal | None = None


class SellPartial(msgspec.Struct, frozen=True, kw_only=True, tag="take_profit"):
    decision: TakeProfitDecision
    update: StateUpdate


class DcaBuy(msgspec.Struct, frozen=True, kw_only=True, tag="dca"):
    decision: DcaDecision
    update: StateUpdate


Action = Hold | SellAll | SellPartial | DcaBuy


@exact
def evaluate_position(
    position: PositionState, price: Decimal, cfg: AgentTradingConfig, now: datetime, automated: bool = True
) -> Action:
    """``automated`` is the agent's flag for its current trading mode; off ⇒ nothing at all."""
    if not automated:
        return Hold(
            update=StateUpdate(
                peak_price=position.peak_price,
                current_stop_loss_percentage=position.current_stop_loss_percentage,
                stop_loss_changed=False,
                lowest_price=position.lowest_price,
                lowest_changed=False,
            )
        )
    stop = evaluate_stop_loss(position, price, cfg, now)
    previous_low = position.lowest_price if position.lowest_price is not None else position.purchase_price
    lowest = min(previous_low, quantize(price, AMOUNT_18))
    update = StateUpdate(
        peak_price=stop.new_peak,
        current_stop_loss_percentage=stop.stored_percentage,
        stop_loss_changed=stop.persist,
        lowest_price=lowest,
        lowest_changed=lowest != position.lowest_price,
    )
    if stop.triggered:
        return SellAll(reason="stop_loss", update=update, stop_price=stop.stop_price)
    take_profit = evaluate_take_profit(position, price, cfg)
    if take_profit.should_execute:
        return SellPartial(decision=take_profit, update=update)
    if should_close_stale(position, price, cfg, now):
        return SellAll(reason="stale_trade", update=update)
    dca = evaluate_dca(position, price, cfg, now)
    if dca.should_buy:
        return DcaBuy(decision=dca, update=update)
    return Hold(update=update)
