"""DCA: buy more when the price falls far enough below the average (domain §7).

Level ``i`` of the effective list (template or sorted custom, §7.1) serves the ``i``-th DCA buy of a
position; each buy moves the average, so the next drop is measured from the new one.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

import msgspec

from app.trading._num import HUNDRED, ZERO, exact, gain_percent, plain, seconds_between
from app.trading.config import AgentTradingConfig, DcaLevel, effective_dca_levels
from app.trading.position import PositionState, is_only_moon_bag

_LAMPORT = Decimal("1e-9")


class DcaDecision(msgspec.Struct, frozen=True, kw_only=True):
    should_buy: bool
    level: DcaLevel | None = None
    level_index: int | None = None
    buy_amount_sol: Decimal | None = None
    reason: str


@exact
def evaluate_dca(position: PositionState, price: Decimal, cfg: AgentTradingConfig, now: datetime) -> DcaDecision:
    """§7.2. The buy is ``price × holding × buyPercent / 100`` SOL, floored to whole lamports."""
    dca = cfg.dca
    if not dca.enabled:
        return DcaDecision(should_buy=False, reason="DCA disabled")
    if is_only_moon_bag(position):
        return DcaDecision(should_buy=False, reason="Only moon bag remains — DCA disabled")
    count = position.dca_count
    if count >= dca.max_dca_count:
        return DcaDecision(should_buy=False, reason=f"Max DCA count reached ({count}/{plain(dca.max_dca_count)})")
    if position.last_dca_time is not None:
        rest = dca.cooldown_seconds - seconds_between(now, position.last_dca_time)
        if rest > 0:
            return DcaDecision(should_buy=False, reason=f"Cooldown active ({math.ceil(rest)}s remaining)")
    levels = effective_dca_levels(dca)
    if not levels:
        return DcaDecision(should_buy=False, reason="No DCA levels configured")
    average = position.purchase_price
    if average <= 0:
        return DcaDecision(should_buy=False, reason="Purchase price is not positive")
    drop = gain_percent(price, average)
    if count >= len(levels):
        return DcaDecision(should_buy=False, reason=f"All DCA levels exhausted ({count}/{len(levels)})")
    level = levels[count]
    if drop > level.drop_percent:
        return DcaDecision(
            should_buy=False,
            reason=f"Price drop {drop:.2f}% has not reached next level ({plain(level.drop_percent)}%)",
        )
    amount = (price * position.holding * level.buy_percent / HUNDRED).quantize(_LAMPORT, rounding=ROUND_DOWN)
    if amount <= ZERO:
        return DcaDecision(should_buy=False, reason="DCA buy amount is below one lamport")
    return DcaDecision(
        should_buy=True,
        level=level,
        level_index=count,
        buy_amount_sol=amount,
        reason=f"Price dropped {drop:.2f}% (level: {plain(level.drop_percent)}%)",
    )
