"""The slice of an ``agent_positions`` row the decision functions read (domain §1).

Frozen: evaluators never mutate it; updates are returned and the worker persists them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from app.trading._num import ZERO


class PositionState(msgspec.Struct, frozen=True, kw_only=True):
    purchase_price: Decimal  # weighted average SOL per token
    purchase_amount: Decimal  # every token ever bought into the position (grows with DCA)
    created_at: datetime
    remaining_amount: Decimal | None = None  # None ⇒ purchase_amount
    total_invested_sol: Decimal = ZERO
    current_stop_loss_percentage: Decimal | None = None
    peak_price: Decimal | None = None
    lowest_price: Decimal | None = None
    dca_count: int = 0
    last_dca_time: datetime | None = None
    take_profit_levels_hit: int = 0
    moon_bag_activated: bool = False
    moon_bag_amount: Decimal | None = None
    realized_profit_sol: Decimal = ZERO
    tp_batch_start_level: int = 0
    total_take_profit_levels: int | None = None

    @property
    def holding(self) -> Decimal:
        """Tokens the position still holds."""
        return self.purchase_amount if self.remaining_amount is None else self.remaining_amount


MOON_BAG_TOLERANCE = Decimal("1e-6")


def is_only_moon_bag(position: PositionState) -> bool:
    """Activated moon bag and nothing else left (|remaining − moon bag| < 1e-6)."""
    if not position.moon_bag_activated or position.moon_bag_amount is None:
        return False
    return abs(position.holding - position.moon_bag_amount) < MOON_BAG_TOLERANCE
