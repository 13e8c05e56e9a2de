"""How much SOL a buy spends (domain §4.3 steps 6–10 and 4, §4.4).

Pure: the SOL balance, the config and a seedable ``random.Random`` go in, a size or a
:class:`TradeError` comes out. The price-impact guard is split into small predicates because the
quotes in between are I/O the worker performs.
"""

from __future__ import annotations

import random
from decimal import ROUND_DOWN, Decimal
from typing import Literal

import msgspec

from app.trading._num import HUNDRED, exact, plain
from app.trading.config import AgentTradingConfig, BalanceThresholds
from app.trading.errors import TradeError

Category = Literal["small", "medium", "large"]

RETRY_FACTORS = (Decimal("0.9"), Decimal("0.8"), Decimal("0.7"))
MIN_RETRY_SIZE = Decimal("0.01")
_LAMPORT = Decimal("1e-9")
_RANDOM_STEPS = 10**9


class PositionSize(msgspec.Struct, frozen=True):
    size: Decimal
    category: Category
    randomized: bool


def category_for(balance: Decimal, thresholds: BalanceThresholds) -> Category:
    if balance >= thresholds.large:
        return "large"
    if balance >= thresholds.medium:
        return "medium"
    return "small"


@exact
def random_fraction(rng: random.Random) -> Decimal:
    """Uniform in [0, 1) on a 1e-9 grid, drawn without float arithmetic."""
    return Decimal(rng.randrange(_RANDOM_STEPS)) / _RANDOM_STEPS


@exact
def calculate_position_size(
    balance: Decimal, cfg: AgentTradingConfig, rng: random.Random | None = None
) -> PositionSize:
    """Position calculator of §4.4; raises :class:`TradeError` with the calculator's own codes."""
    calc, limits = cfg.position_calculator, cfg.purchase_limits
    if balance <= 0:
        raise TradeError("INSUFFICIENT_BALANCE", "SOL balance must be positive")
    minimum = calc.sol_balance_thresholds.minimum
    if balance < minimum:
        raise TradeError("BELOW_MINIMUM_THRESHOLD", f"Balance below minimum threshold: {plain(minimum)} SOL")
    category = category_for(balance, calc.sol_balance_thresholds)
    band = getattr(calc.position_sizes, category)
    randomized = calc.randomization.enabled
    if not randomized:
        size = band.max
    elif band.min >= band.max:
        size = band.min
    else:
        # Whole lamports: the quote floors to lamports anyway, and it keeps the size ≥ band.min.
        spread = random_fraction(rng or random.Random()) * (band.max - band.min)
        size = band.min + spread.quantize(_LAMPORT, rounding=ROUND_DOWN)
    size = min(size, limits.max_purchase_per_token)
    reserve = limits.minimum_agent_balance
    if balance - size < reserve:
        adjusted = balance - reserve
        if adjusted <= 0:
            raise TradeError(
                "INSUFFICIENT_BALANCE_FOR_MINIMUM", f"Cannot maintain minimum balance: {plain(reserve)} SOL"
            )
        size = min(adjusted, limits.max_purchase_per_token)
    if size <= 0:
        raise TradeError("INVALID_POSITION_SIZE", "Calculated position size must be positive")
    if size > balance:
        raise TradeError("POSITION_SIZE_EXCEEDS_BALANCE", "Position size exceeds available balance")
    return PositionSize(size=size, category=category, randomized=randomized)


@exact
def resolve_buy_size(
    balance: Decimal,
    cfg: AgentTradingConfig,
    requested: Decimal | None = None,
    rng: random.Random | None = None,
) -> Decimal:
    """The trade validator's balance and size checks (§4.3 steps 2.6, 2.7 and 2.10), in order.

    ``balance`` is the wallet's SOL ledger balance (no lamport guessing, §16.2). An explicit
    ``requested`` size is checked; otherwise the calculator decides and its failures are wrapped
    as ``POSITION_CALCULATION_ERROR``.
    """
    reserve = cfg.purchase_limits.minimum_agent_balance
    if balance <= 0:
        raise TradeError("INSUFFICIENT_BALANCE", "Insufficient SOL balance")
    if balance < reserve:
        raise TradeError("BELOW_MINIMUM_THRESHOLD", f"Balance below minimum threshold: {plain(reserve)} SOL")
    if requested is None:
        try:
            return calculate_position_size(balance, cfg, rng).size
        except TradeError as err:
            raise TradeError("POSITION_CALCULATION_ERROR", f"Failed to calculate position size: {err.message}") from err
    cap = cfg.purchase_limits.max_purchase_per_token
    if requested <= 0:
        raise TradeError("INVALID_POSITION_SIZE", "Position size must be positive")
    if requested > balance:
        raise TradeError("POSITION_SIZE_EXCEEDS_BALANCE", "Position size exceeds available balance")
    if balance - requested < reserve:
        raise TradeError(
            "VIOLATES_MINIMUM_BALANCE",
            f"Position size would violate minimum balance requirement: {plain(reserve)} SOL",
        )
    if requested > cap:
        raise TradeError("EXCEEDS_MAX_PURCHASE", f"Position size exceeds maximum purchase per token: {plain(cap)} SOL")
    return requested


# --------------------------------------------------------------------------------------------------
# Price-impact guard (§4.3 step 4). Impacts are signed fractions; only their size matters.


def impact_requires_retry(impact: Decimal, max_impact: Decimal | None) -> bool:
    """First quote: ``|impact| ≥ max`` (inclusive) starts the retry ladder; no max ⇒ never."""
    return max_impact is not None and abs(impact) >= max_impact


def retry_impact_accepted(impact: Decimal, max_impact: Decimal) -> bool:
    """A retry quote is used only when strictly below the threshold."""
    return abs(impact) < max_impact


@exact
def price_impact_retry_sizes(size: Decimal) -> list[Decimal]:
    """90 %, 80 %, 70 % of ``size``, stopping at the first below the 0.01 SOL floor."""
    sizes = []
    for factor in RETRY_FACTORS:
        reduced = size * factor
        if reduced < MIN_RETRY_SIZE:
            break
        sizes.append(reduced)
    return sizes


@exact
def price_impact_error(first_impact: Decimal, max_impact: Decimal) -> TradeError:
    """The failure after the ladder, reporting the *first* quote's impact as upstream does."""
    return TradeError(
        "PRICE_IMPACT_TOO_HIGH",
        f"Price impact (slippage) {abs(first_impact) * HUNDRED:.2f}% exceeds maximum threshold "
        f"{max_impact * HUNDRED:.2f}% even after retries",
    )


def choose_after_retries(first_impact: Decimal, max_impact: Decimal, retries: list[tuple[Decimal, Decimal]]) -> Decimal:
    """Size to buy given the retry quotes ``[(size, impact), …]`` in ladder order.

    Returns the first accepted size or raises ``PRICE_IMPACT_TOO_HIGH``. The worker may stop
    quoting at the first accepted retry; later entries are ignored either way.
    """
    for size, impact in retries:
        if retry_impact_accepted(impact, max_impact):
            return size
    raise price_impact_error(first_impact, max_impact)
