"""Trailing stop loss (domain §5).

A stop level ``s`` is a percentage relative to the position's current average purchase price
``P``: the position is sold when ``price ≤ P × (1 + s/100)``. ``s`` is derived from the gain of the
highest price seen (the peak) and only ever tightens between DCA buys.

Deliberate differences from upstream:

* The effective level is rounded half-even to the 2 decimals of its column *before* it is used, so
  the level the trigger uses is exactly the one stored and the stored sequence can never go down.
* ``current_stop_loss_percentage`` is ``numeric(5,2)``: levels ≥ 1000 % (fixed mode above ~1010 %
  gain, custom levels of 1000) made upstream's update throw on every tick, leaving the best
  winners without any automation (§16.3). We store ``min(level, 999.99)`` but trigger on the true
  level, recomputed from the stored peak on every tick, so the position keeps its stop. (Only a
  custom list whose ``stopLoss`` falls while ``change`` rises can then lose the last 0.01 of a
  1000 % level.)
* The peak is persisted on *any* change (upstream ignored changes below an absolute 0.0001, which
  is meaningless for prices around 1e-6, §16.6). Peaks are kept at the 18 decimals of their column.
* A DCA buy re-bases the stop on the new average (:func:`reset_after_dca`, §16.17): keeping the old
  peak against a lower average could lift the stop above the market and sell immediately.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from app.trading._num import HUNDRED, ONE, ZERO, exact, gain_percent
from app.trading.config import AgentTradingConfig, StopLossConfig, TrailingLevel
from app.trading.ledger import AMOUNT_18, PCT_2, quantize
from app.trading.position import PositionState

STORED_PERCENT_MAX = Decimal("999.99")
MIN_PURCHASE_PRICE = Decimal("1e-15")
_TRAIL_FROM = Decimal(20)


@exact
def fixed_stop_loss(gain: Decimal, default: Decimal) -> Decimal:
    """The "fixed stepper": 10 points below the gain once the gain reaches 20 % (continuous)."""
    if gain < _TRAIL_FROM:
        return default
    return max(ZERO, gain - 10)


@exact
def exponential_stop_loss(gain: Decimal, default: Decimal) -> Decimal:
    """Keep-ratio that grows exponentially, dips around +75 % and accelerates again after +85 %."""
    if gain <= _TRAIL_FROM:
        return default
    x = gain - _TRAIL_FROM
    base = ONE - (-x / Decimal("31.25")).exp()
    dip = Decimal("0.12") * (-(((x - 55) / 8) ** 2) / 2).exp()
    keep = min(Decimal("0.9"), max(ZERO, base - dip))
    if x > 65:
        keep = min(Decimal("0.9"), keep + Decimal("0.3") * (ONE - (-(x - 65) / 80).exp()))
    return gain * keep


_ZONES = (
    (Decimal(25), Decimal("0.5")),
    (Decimal(50), Decimal("0.6")),
    (Decimal(100), Decimal("0.7")),
    (Decimal(200), Decimal("0.8")),
)


@exact
def zones_stop_loss(gain: Decimal, default: Decimal) -> Decimal:
    if gain < _TRAIL_FROM:
        return default
    keep = next((ratio for upper, ratio in _ZONES if gain <= upper), Decimal("0.85"))
    return gain * keep


def custom_stop_loss(gain: Decimal, levels: tuple[TrailingLevel, ...]) -> Decimal | None:
    """``stopLoss`` of the reached level with the largest ``change`` (list order is irrelevant)."""
    reached = [level for level in levels if gain >= level.change]
    return max(reached, key=lambda level: level.change).stop_loss if reached else None


_CALCULATORS = {"fixed": fixed_stop_loss, "exponential": exponential_stop_loss, "zones": zones_stop_loss}


@exact
def stop_loss_percent(gain: Decimal, cfg: StopLossConfig) -> Decimal:
    """Target stop level for a peak gain of ``gain`` % (§5.1 dispatch)."""
    default = cfg.default_percentage
    if gain < 0:
        return default
    if cfg.mode == "custom":
        value = custom_stop_loss(gain, cfg.trailing_levels)
        if value is None:
            return default
    elif cfg.mode in _CALCULATORS:
        value = _CALCULATORS[cfg.mode](gain, default)
    else:
        return default
    return default if value <= 0 else value


@exact
def stop_price(purchase_price: Decimal, percentage: Decimal) -> Decimal:
    return purchase_price * (ONE + percentage / HUNDRED)


def stored_percentage(percentage: Decimal) -> Decimal:
    """Value for the ``numeric(5,2)`` column (see module docstring)."""
    return min(quantize(percentage, PCT_2), STORED_PERCENT_MAX)


class StopLossDecision(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of one tick.

    ``new_percentage`` is the true level the trigger used; ``stored_percentage`` is what goes into
    the column (capped at 999.99). Persist ``stored_percentage``, ``new_peak`` and
    ``last_stop_loss_update = now`` only when ``persist``.
    """

    new_percentage: Decimal | None
    stored_percentage: Decimal | None
    new_peak: Decimal | None
    persist: bool
    triggered: bool
    stop_price: Decimal | None


def _unchanged(position: PositionState) -> StopLossDecision:
    return StopLossDecision(
        new_percentage=position.current_stop_loss_percentage,
        stored_percentage=position.current_stop_loss_percentage,
        new_peak=position.peak_price,
        persist=False,
        triggered=False,
        stop_price=None,
    )


@exact
def evaluate_stop_loss(
    position: PositionState, price: Decimal, cfg: AgentTradingConfig, now: datetime | None = None
) -> StopLossDecision:
    """§5.4 steps 3–8 for one price tick. ``now`` is accepted for symmetry; the worker stamps it."""
    sl = cfg.stop_loss
    average = position.purchase_price
    if not sl.enabled or average < MIN_PURCHASE_PRICE:
        return _unchanged(position)
    peak = max(position.peak_price if position.peak_price is not None else average, quantize(price, AMOUNT_18))
    gain = gain_percent(peak, average)
    target = stop_loss_percent(gain, sl) if gain >= 0 else sl.default_percentage
    current = (
        position.current_stop_loss_percentage
        if position.current_stop_loss_percentage is not None
        else sl.default_percentage
    )
    level = quantize(max(current, target), PCT_2)
    stored = stored_percentage(level)
    trigger_at = stop_price(average, level)
    return StopLossDecision(
        new_percentage=level,
        stored_percentage=stored,
        new_peak=peak,
        persist=(
            stored != position.current_stop_loss_percentage
            or position.peak_price is None
            or peak != position.peak_price
        ),
        triggered=price <= trigger_at,
        stop_price=trigger_at,
    )


class StopLossReset(msgspec.Struct, frozen=True, kw_only=True):
    peak_price: Decimal
    current_stop_loss_percentage: Decimal  # column value (capped)


def initial_stop_loss(purchase_price: Decimal, cfg: AgentTradingConfig) -> StopLossReset | None:
    """Stop-loss fields of a new position (§5.3); None when stop loss is disabled."""
    if not cfg.stop_loss.enabled:
        return None
    return StopLossReset(
        peak_price=quantize(purchase_price, AMOUNT_18),
        current_stop_loss_percentage=stored_percentage(cfg.stop_loss.default_percentage),
    )


@exact
def reset_after_dca(new_average: Decimal, fill_price: Decimal, cfg: AgentTradingConfig) -> StopLossReset | None:
    """Stop-loss fields after a DCA buy moved the average to ``new_average`` (fix of §16.17).

    The trail restarts from the new average, as for a fresh position: the peak becomes
    ``max(fill, new_average)`` and the level is recomputed from that peak. Every built-in mode keeps
    its level below the gain that produced it, so the stop sits strictly below the fill and the
    buy cannot sell itself. Two cases remain, both independent of DCA: a fill at or below
    ``new_average × (1 + defaultPercentage/100)`` (any stop fires there), and custom levels whose
    ``stopLoss`` exceeds their ``change`` (they fire on reaching the level, fresh positions too).
    """
    sl = cfg.stop_loss
    if not sl.enabled or new_average < MIN_PURCHASE_PRICE:
        return None
    average = quantize(new_average, AMOUNT_18)
    peak = max(quantize(fill_price, AMOUNT_18), average)
    level = quantize(stop_loss_percent(gain_percent(peak, average), sl), PCT_2)
    return StopLossReset(peak_price=peak, current_stop_loss_percentage=stored_percentage(level))
