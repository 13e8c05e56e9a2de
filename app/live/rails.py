"""Safety rails for live orders: pure checks on a quote and on an agent's risk figures.

Units are handled exactly: ``Quote.price_impact`` is a signed Decimal FRACTION (Jupiter's
``priceImpactPct`` string is already a fraction despite its name; the numeric ``priceImpact`` is in
percent and the adapter divides it by 100, domain §16.31); ``slippageBps`` and the limits here are
integer basis points (1 bp = 0.0001). No float anywhere.

Each failed check raises :class:`LiveRefused` with a stable ``code``; none of them touches the
network or the database, so the same inputs always give the same answer.
"""

from __future__ import annotations

from decimal import Decimal

from app.market.types import Quote
from app.trading._num import exact, plain
from app.trading.errors import TradeError

BPS_PER_UNIT = 10_000


class LiveRefused(TradeError):
    """A live order refused before anything was sent. ``code`` is stable for clients and logs; being a
    :class:`TradeError`, the execution path reports it like any other refused trade."""


def percent_text(fraction: Decimal) -> str:
    return f"{plain((fraction * 100).quantize(Decimal('0.01')))}%"


@exact
def check_price_impact(quote: Quote, max_impact: Decimal) -> None:
    """Refuse when ``|impact| > max_impact`` (both fractions: 0.05 = 5 %)."""
    impact = abs(quote.price_impact)
    if impact > max_impact:
        raise LiveRefused(
            "PRICE_IMPACT_TOO_HIGH",
            f"Price impact {percent_text(impact)} exceeds the live limit {percent_text(max_impact)}",
        )


def min_out_for(out_amount: int, slippage_bps: int) -> int:
    """Smallest acceptable output for an ExactIn quote at ``slippage_bps`` (floored, integer math)."""
    return out_amount * (BPS_PER_UNIT - slippage_bps) // BPS_PER_UNIT


def check_slippage(quote: Quote, max_slippage_bps: int) -> None:
    """The quote's slippage tolerance must be within the limit, and its minimum output
    (``otherAmountThreshold``) must really enforce it: a threshold of 0 (or one far below what the
    claimed ``slippageBps`` implies) would let a sandwich take the whole output."""
    bps = quote.slippage_bps
    if bps < 0 or bps > max_slippage_bps:
        raise LiveRefused(
            "SLIPPAGE_TOO_HIGH", f"Quote allows {bps} bps slippage; the live limit is {max_slippage_bps} bps"
        )
    threshold = quote.other_amount_threshold
    if threshold is None:
        # Ultra quotes may omit it; the swap program then uses slippageBps, which was checked above.
        return
    floor = min_out_for(quote.out_amount, max_slippage_bps)
    if threshold <= 0 or threshold < floor:
        raise LiveRefused(
            "SLIPPAGE_TOO_HIGH",
            f"Quote minimum output {threshold} is below {floor} ({max_slippage_bps} bps under {quote.out_amount})",
        )


def check_quote(quote: Quote, *, max_impact: Decimal, max_slippage_bps: int) -> None:
    if quote.in_amount <= 0 or quote.out_amount <= 0:
        raise LiveRefused("INVALID_QUOTE", "Quote amounts must be positive")
    check_price_impact(quote, max_impact)
    check_slippage(quote, max_slippage_bps)


@exact
def check_daily_loss(realized_today_sol: Decimal, limit_sol: Decimal | None) -> None:
    """Refuse new buys once today's realized loss reaches the limit (limit is a positive SOL amount)."""
    if limit_sol is None:
        return
    if realized_today_sol <= -limit_sol:
        raise LiveRefused(
            "DAILY_LOSS_LIMIT",
            f"Daily loss limit reached: realized {plain(realized_today_sol)} SOL today, limit {plain(limit_sol)} SOL",
        )


def check_open_positions(open_positions: int, limit: int | None) -> None:
    if limit is None:
        return
    if open_positions >= limit:
        raise LiveRefused("MAX_OPEN_POSITIONS", f"Maximum open live positions reached ({open_positions} of {limit})")
