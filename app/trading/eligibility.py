"""Which agents consider a signal: the config checks of domain §3.3 c–f.

User scoping, the automated-trading flag and the config lookup (steps 1–4b) need I/O and stay with
the caller. Every failing reason of c–f is returned (for the log); an empty list means eligible.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import msgspec

from app.trading._num import plain
from app.trading.config import AgentTradingConfig


class MetricsLike(Protocol):
    mcap: Decimal | None
    liquidity: Decimal | None
    holder_count: int | None


class TokenMetrics(msgspec.Struct, frozen=True):
    """Same shape as ``app.market.types.TokenMetrics``; either (or anything alike) is accepted."""

    mcap: Decimal | None = None
    liquidity: Decimal | None = None
    holder_count: int | None = None


_BOUNDS = (
    ("market_cap_min", "mcap", "market cap", "min", "minimum market cap"),
    ("market_cap_max", "mcap", "market cap", "max", "maximum market cap"),
    ("liquidity_min", "liquidity", "liquidity", "min", "minimum liquidity"),
    ("liquidity_max", "liquidity", "liquidity", "max", "maximum liquidity"),
    ("holder_count_min", "holder_count", "holder count", "min", "minimum holders"),
    ("holder_count_max", "holder_count", "holder count", "max", "maximum holders"),
)


def metrics_failure(cfg: AgentTradingConfig, metrics: MetricsLike) -> str | None:
    """First violated metric bound, in §3.3 f order; equality passes, an unknown metric fails."""
    signals = cfg.signals
    for attr, metric_attr, label, side, requirement in _BOUNDS:
        bound = getattr(signals, attr)
        if bound is None:
            continue
        value = getattr(metrics, metric_attr, None)
        if value is None:
            return f"Token {label} unknown; agent requires {requirement}"
        if (value < bound) if side == "min" else (value > bound):
            op = "<" if side == "min" else ">"
            return f"Token {label} {plain(value)} {op} {side} {plain(bound)}"
    return None


def check_eligibility(
    signal_strength: int,
    signal_type: str,
    token_address: str,
    metrics: MetricsLike | None,
    cfg: AgentTradingConfig,
) -> list[str]:
    signals = cfg.signals
    reasons = []
    if signal_strength < signals.min_score:
        reasons.append(f"Signal strength {signal_strength} < minScore {signals.min_score}")
    if signals.allowed_signal_types and signal_type not in signals.allowed_signal_types:
        reasons.append(f"Signal type '{signal_type}' not in allowed types [{', '.join(signals.allowed_signal_types)}]")
    if signals.token_filter_mode == "blacklist" and token_address in signals.token_list:
        reasons.append(f"Token {token_address} is blacklisted")
    elif signals.token_filter_mode == "whitelist" and token_address not in signals.token_list:
        reasons.append(f"Token {token_address} not in whitelist")
    if signals.has_metric_bounds:
        if metrics is None:
            reasons.append("Token metrics unavailable (Jupiter API); agent has token metrics bounds set")
        elif failure := metrics_failure(cfg, metrics):
            reasons.append(failure)
    return reasons
