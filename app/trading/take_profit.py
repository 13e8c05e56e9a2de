"""Take profit with moon bag and the DCA "append levels" model (domain §6).

Levels sell a share of ``purchase_amount`` (not of what remains) once the gain over the current
average reaches their target. Which levels and which moon bag apply comes from
:func:`app.trading.config.effective_take_profit_levels` / ``effective_moon_bag`` (preset modes use
their templates: our fix of §16.16).

After a DCA the batch restarts: ``tp_batch_start_level = levels_hit`` and
``total_take_profit_levels = levels_hit + len(levels)``, so ``levels_hit − batch_start`` indexes the
level list again from the top while ``levels_hit`` keeps counting up; a level can never fire twice
within a batch.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import msgspec

from app.trading._num import HUNDRED, ZERO, exact, gain_percent, plain
from app.trading.config import (
    AgentTradingConfig,
    TakeProfitLevel,
    effective_moon_bag,
    effective_take_profit_levels,
)
from app.trading.ledger import AMOUNT_18, quantize
from app.trading.position import PositionState, is_only_moon_bag

__all__ = [
    "TakeProfitDecision",
    "TakeProfitProgress",
    "evaluate_take_profit",
    "is_only_moon_bag",
    "take_profit_progress",
    "total_levels",
]

_TOKEN = Decimal(1).scaleb(-AMOUNT_18)


class TakeProfitDecision(msgspec.Struct, frozen=True, kw_only=True):
    should_execute: bool
    levels_to_execute: tuple[TakeProfitLevel, ...]
    sell_amount: Decimal
    activate_moon_bag: bool
    moon_bag_amount: Decimal  # amount to set aside when activating now, else 0
    new_remaining_amount: Decimal
    reason: str

    @property
    def levels_executed(self) -> int:
        return len(self.levels_to_execute)


def total_levels(position: PositionState, cfg: AgentTradingConfig) -> int:
    if position.total_take_profit_levels is not None:
        return position.total_take_profit_levels
    return len(effective_take_profit_levels(cfg.take_profit))


def _nothing(
    position: PositionState, reason: str, activate: bool = False, amount: Decimal = ZERO
) -> TakeProfitDecision:
    return TakeProfitDecision(
        should_execute=False,
        levels_to_execute=(),
        sell_amount=ZERO,
        activate_moon_bag=activate,
        moon_bag_amount=amount,
        new_remaining_amount=position.holding,
        reason=reason,
    )


@exact
def evaluate_take_profit(position: PositionState, price: Decimal, cfg: AgentTradingConfig) -> TakeProfitDecision:
    """§6.2 for one price tick. Sell amounts are whole 1e-18 token units, rounded down."""
    tp = cfg.take_profit
    if not tp.enabled:
        return _nothing(position, "Take-profit disabled")
    total = total_levels(position, cfg)
    hit = position.take_profit_levels_hit
    if hit >= total:
        return _nothing(position, "All take-profit levels exhausted")
    levels, moon_bag = effective_take_profit_levels(tp), effective_moon_bag(tp)
    average = position.purchase_price
    gain = gain_percent(price, average) if average > 0 else ZERO
    start = hit - position.tp_batch_start_level
    collected: list[TakeProfitLevel] = []
    for level in levels[max(start, 0) :]:
        if gain < level.target_percent:
            break
        collected.append(level)
    if not collected:
        if not 0 <= start < len(levels):
            return _nothing(position, "No more levels in current batch")
        return _nothing(position, f"Current gain {gain:.2f}% below next level {plain(levels[start].target_percent)}%")
    original = position.purchase_amount
    approaching_final = hit + len(collected) >= total
    activate = (
        moon_bag.enabled and not position.moon_bag_activated and (gain >= moon_bag.trigger_percent or approaching_final)
    )
    new_moon_bag = quantize(original * moon_bag.retain_percent / HUNDRED, AMOUNT_18) if activate else ZERO
    if activate:
        reserve = new_moon_bag
    elif position.moon_bag_activated and position.moon_bag_amount:
        reserve = position.moon_bag_amount
    else:
        reserve = ZERO
    wanted = (original * sum((level.sell_percent for level in collected), ZERO) / HUNDRED).quantize(
        _TOKEN, rounding=ROUND_DOWN
    )
    remaining = position.holding
    sell = min(wanted, max(ZERO, remaining - reserve))
    if sell <= 0:
        return _nothing(position, "No tokens available to sell (only moon bag remains)", activate, new_moon_bag)
    return TakeProfitDecision(
        should_execute=True,
        levels_to_execute=tuple(collected),
        sell_amount=sell,
        activate_moon_bag=activate,
        moon_bag_amount=new_moon_bag,
        new_remaining_amount=remaining - sell,
        reason=f"Triggered {len(collected)} level(s) at {gain:.2f}% gain",
    )


class TakeProfitProgress(msgspec.Struct, frozen=True, kw_only=True):
    levels_hit: int
    total_levels: int
    percent_complete: Decimal
    sold_amount: Decimal
    sold_percent: Decimal


@exact
def take_profit_progress(position: PositionState, cfg: AgentTradingConfig) -> TakeProfitProgress:
    """Read-model figures of §6.2 "Helpers" and the positions endpoint (§11.3)."""
    total = total_levels(position, cfg)
    sold = position.purchase_amount - position.holding
    return TakeProfitProgress(
        levels_hit=position.take_profit_levels_hit,
        total_levels=total,
        percent_complete=Decimal(position.take_profit_levels_hit) / total * HUNDRED if total else ZERO,
        sold_amount=sold,
        sold_percent=sold / position.purchase_amount * HUNDRED if position.purchase_amount else ZERO,
    )
