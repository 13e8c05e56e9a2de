"""Stale-trade auto-close (domain §8): sell a position that has been held long enough while its
gain sits inside a configured band. Both bounds are inclusive; fees are ignored and the gain is
measured against the current (DCA-weighted) average, as upstream does (§16.23)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from app.trading._num import exact, gain_percent, seconds_between
from app.trading.config import AgentTradingConfig
from app.trading.position import PositionState


@exact
def held_minutes(position: PositionState, now: datetime) -> Decimal:
    return seconds_between(now, position.created_at) / 60


@exact
def should_close_stale(position: PositionState, price: Decimal, cfg: AgentTradingConfig, now: datetime) -> bool:
    stale = cfg.stale_trade
    if not stale.enabled or position.purchase_price <= 0:
        return False
    if held_minutes(position, now) < stale.min_hold_time_minutes:
        return False
    return stale.min_profit_percent <= gain_percent(price, position.purchase_price) <= stale.max_profit_percent
