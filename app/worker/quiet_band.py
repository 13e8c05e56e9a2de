"""The price band in which a settled position has nothing to do: the monitor's fast path.

A position is *settled* when :func:`app.trading.evaluate.evaluate_position` at the current price
returns ``Hold`` with nothing to write back. Its decisions then depend only on where the next price
falls, so one evaluation yields an open interval ``(lo, hi)`` (and possibly a deadline) inside which
every later evaluation of the same row version and config is again a ``Hold`` with no changes:

* stop loss: the stop price below (trigger iff ``price ≤ stop``) and the stored peak above (a new
  peak moves the trailing stop);
* lowest price: the stored lowest below (a new low is written back);
* take profit: the next level's price above (``gain ≥ target``);
* DCA: the next level's price below (``drop ≤ dropPercent``), whatever the cooldown (conservative);
* stale trade: the close band ``[min, max]`` excluded on the current price's side, or, while the
  position is younger than ``minHoldTimeMinutes`` and the price is inside that band, a deadline at the
  end of the hold time.

Every bound repeats the evaluator's own formula (``average × (1 + percent/100)``) so a price on the
wrong side of a bound is exactly a price the evaluator would act on. Anything this module does not
model (a non-positive average, a missing stored field) yields no band, and the position is simply
evaluated in full. The equivalence is property-tested against ``evaluate_position``
(tests/monitor/test_quiet_band.py). The caller must drop a band as soon as the row (its
``updated_at``) or the agent's config changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import msgspec

from app.trading._num import HUNDRED, ONE, exact
from app.trading.config import AgentTradingConfig, effective_dca_levels, effective_take_profit_levels
from app.trading.position import PositionState, is_only_moon_bag
from app.trading.stop_loss import MIN_PURCHASE_PRICE, evaluate_stop_loss
from app.trading.take_profit import total_levels


class QuietBand(msgspec.Struct, frozen=True, kw_only=True):
    lo: Decimal | None  # exclusive
    hi: Decimal | None  # exclusive
    until: datetime | None = None  # exclusive

    def contains(self, price: Decimal, now: datetime) -> bool:
        return (
            (self.lo is None or price > self.lo)
            and (self.hi is None or price < self.hi)
            and (self.until is None or now < self.until)
        )


def _at(average: Decimal, percent: Decimal) -> Decimal:
    return average * (ONE + percent / HUNDRED)


def _raise_lo(lo: Decimal | None, bound: Decimal) -> Decimal:
    return bound if lo is None else max(lo, bound)


def _lower_hi(hi: Decimal | None, bound: Decimal) -> Decimal:
    return bound if hi is None else min(hi, bound)


def _hold_deadline(created_at: datetime, minutes: Decimal) -> datetime:
    # Floored to whole microseconds: the deadline is never later than the evaluator's exact boundary.
    micros = int((minutes * 60_000_000).to_integral_value(rounding=ROUND_FLOOR))
    return created_at + timedelta(microseconds=micros)


@exact
def quiet_band(position: PositionState, price: Decimal, cfg: AgentTradingConfig, now: datetime) -> QuietBand | None:
    """The band around ``price`` for a position settled at ``price``; None when there is none to trust."""
    average = position.purchase_price
    if average <= 0 or position.lowest_price is None:
        return None
    lo: Decimal | None = position.lowest_price
    hi: Decimal | None = None
    until: datetime | None = None

    if cfg.stop_loss.enabled and average >= MIN_PURCHASE_PRICE:
        if position.peak_price is None:
            return None
        stop = evaluate_stop_loss(position, price, cfg, now)
        if stop.persist or stop.triggered or stop.stop_price is None:
            return None
        lo = _raise_lo(lo, stop.stop_price)
        hi = _lower_hi(hi, position.peak_price)

    tp = cfg.take_profit
    if tp.enabled and position.take_profit_levels_hit < total_levels(position, cfg):
        levels = effective_take_profit_levels(tp)
        index = max(position.take_profit_levels_hit - position.tp_batch_start_level, 0)
        if index < len(levels):
            hi = _lower_hi(hi, _at(average, levels[index].target_percent))

    stale = cfg.stale_trade
    if stale.enabled and stale.min_profit_percent <= stale.max_profit_percent:
        close_from, close_to = _at(average, stale.min_profit_percent), _at(average, stale.max_profit_percent)
        if price < close_from:
            hi = _lower_hi(hi, close_from)
        elif price > close_to:
            lo = _raise_lo(lo, close_to)
        else:
            until = _hold_deadline(position.created_at, stale.min_hold_time_minutes)

    dca = cfg.dca
    if dca.enabled and not is_only_moon_bag(position) and position.dca_count < dca.max_dca_count:
        levels_dca = effective_dca_levels(dca)
        if position.dca_count < len(levels_dca):
            lo = _raise_lo(lo, _at(average, levels_dca[position.dca_count].drop_percent))

    band = QuietBand(lo=lo, hi=hi, until=until)
    return band if band.contains(price, now) else None
