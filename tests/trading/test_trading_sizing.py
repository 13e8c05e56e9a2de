import random
from decimal import Decimal as D

import msgspec
import pytest

from app.trading.config import (
    AgentTradingConfig,
    BalanceThresholds,
    PositionSizes,
    SizeRange,
    default_config,
)
from app.trading.errors import TradeError
from app.trading.sizing import (
    calculate_position_size,
    choose_after_retries,
    impact_requires_retry,
    price_impact_error,
    price_impact_retry_sizes,
    resolve_buy_size,
    retry_impact_accepted,
)

replace = msgspec.structs.replace


def spec_cfg(min_balance="0.1", max_purchase="5", randomize=False) -> AgentTradingConfig:
    """The calculator tests' config: thresholds 0.1/1/10, sizes 0.1–0.5 / 0.5–2 / 2–10 (built
    directly: a minimum balance of 0.05 is below what validation accepts)."""
    base = default_config()
    calc = replace(
        base.position_calculator,
        sol_balance_thresholds=BalanceThresholds(minimum=D("0.1"), medium=D(1), large=D(10)),
        position_sizes=PositionSizes(
            small=SizeRange(min=D("0.1"), max=D("0.5")),
            medium=SizeRange(min=D("0.5"), max=D(2)),
            large=SizeRange(min=D(2), max=D(10)),
        ),
        randomization=replace(base.position_calculator.randomization, enabled=randomize),
    )
    limits = replace(base.purchase_limits, minimum_agent_balance=D(min_balance), max_purchase_per_token=D(max_purchase))
    return replace(base, position_calculator=calc, purchase_limits=limits)


@pytest.mark.parametrize(
    ("balance", "kwargs", "size", "category"),
    [
        ("0.5", {"min_balance": "0.05", "max_purchase": "5"}, "0.45", "small"),
        ("5", {"min_balance": "0.1"}, "2", "medium"),
        ("20", {"max_purchase": "15"}, "10", "large"),
        ("20", {"max_purchase": "5"}, "5", "large"),
        ("2.5", {"min_balance": "1", "max_purchase": "10"}, "1.5", "medium"),
    ],
)
def test_calculator_examples(balance, kwargs, size, category):
    result = calculate_position_size(D(balance), spec_cfg(**kwargs))
    assert (result.size, result.category, result.randomized) == (D(size), category, False)


@pytest.mark.parametrize(
    ("balance", "kwargs", "code", "message"),
    [
        ("0.5", {"min_balance": "0.5"}, "INSUFFICIENT_BALANCE_FOR_MINIMUM", "Cannot maintain minimum balance: 0.5 SOL"),
        ("0.05", {}, "BELOW_MINIMUM_THRESHOLD", "Balance below minimum threshold: 0.1 SOL"),
        ("0", {}, "INSUFFICIENT_BALANCE", "SOL balance must be positive"),
    ],
)
def test_calculator_errors(balance, kwargs, code, message):
    with pytest.raises(TradeError) as info:
        calculate_position_size(D(balance), spec_cfg(**kwargs))
    assert (info.value.code, info.value.message) == (code, message)


def test_zero_band_is_refused():
    cfg = spec_cfg()
    cfg = replace(cfg, position_calculator=replace(
        cfg.position_calculator,
        position_sizes=replace(cfg.position_calculator.position_sizes, medium=SizeRange(min=D(0), max=D(0))),
    ))  # fmt: skip
    with pytest.raises(TradeError) as info:
        calculate_position_size(D(5), cfg)
    assert (info.value.code, info.value.message) == (
        "INVALID_POSITION_SIZE",
        "Calculated position size must be positive",
    )


def test_randomized_size_stays_in_band_and_is_seedable():
    sizes = [calculate_position_size(D(5), spec_cfg(randomize=True), random.Random(seed)).size for seed in range(200)]
    assert all(D("0.5") <= s <= D(2) for s in sizes)
    assert len(set(sizes)) > 150
    assert all(s == s.quantize(D("1e-9")) for s in sizes)  # whole lamports
    first = calculate_position_size(D(5), spec_cfg(randomize=True), random.Random(42))
    again = calculate_position_size(D(5), spec_cfg(randomize=True), random.Random(42))
    assert first == again and first.randomized


def test_default_config_examples():
    cfg = default_config()
    rng = random.Random(1)
    assert calculate_position_size(D(3), cfg, rng).size == D("0.1")
    assert all(D("0.5") <= calculate_position_size(D(7), cfg, rng).size < D("1.0") for _ in range(100))
    assert all(D("1.5") <= calculate_position_size(D(12), cfg, rng).size < D("2.0") for _ in range(100))
    assert calculate_position_size(D("0.55"), cfg, rng).size == D("0.05")
    assert resolve_buy_size(D("0.55"), cfg, rng=rng) == D("0.05")
    with pytest.raises(TradeError) as info:
        resolve_buy_size(D("0.4"), cfg, rng=rng)
    assert (info.value.code, info.value.message) == (
        "BELOW_MINIMUM_THRESHOLD",
        "Balance below minimum threshold: 0.5 SOL",
    )


def test_validator_wraps_calculator_errors():
    with pytest.raises(TradeError) as info:
        resolve_buy_size(D("0.5"), default_config())
    assert info.value.code == "POSITION_CALCULATION_ERROR"
    assert info.value.message == "Failed to calculate position size: Cannot maintain minimum balance: 0.5 SOL"


@pytest.mark.parametrize(
    ("balance", "requested", "code", "message"),
    [
        ("0", "1", "INSUFFICIENT_BALANCE", "Insufficient SOL balance"),
        ("3", "0", "INVALID_POSITION_SIZE", "Position size must be positive"),
        ("3", "-1", "INVALID_POSITION_SIZE", "Position size must be positive"),
        ("3", "4", "POSITION_SIZE_EXCEEDS_BALANCE", "Position size exceeds available balance"),
        ("3", "2.6", "VIOLATES_MINIMUM_BALANCE", "Position size would violate minimum balance requirement: 0.5 SOL"),
        ("10", "3", "EXCEEDS_MAX_PURCHASE", "Position size exceeds maximum purchase per token: 2 SOL"),
    ],
)
def test_explicit_size_checks(balance, requested, code, message):
    with pytest.raises(TradeError) as info:
        resolve_buy_size(D(balance), default_config(), D(requested))
    assert (info.value.code, info.value.message) == (code, message)


def test_explicit_size_accepted_at_the_limits():
    assert resolve_buy_size(D("2.5"), default_config(), D(2)) == D(2)  # leaves exactly 0.5


def test_price_impact_ladder():
    assert price_impact_retry_sizes(D("1.0")) == [D("0.9"), D("0.8"), D("0.7")]
    assert price_impact_retry_sizes(D("0.012")) == [D("0.0108")]  # 0.0096 would be under 0.01
    assert price_impact_retry_sizes(D("0.01")) == []
    max_impact = D("0.05")
    assert impact_requires_retry(D("-0.08"), max_impact)
    assert impact_requires_retry(D("0.05"), max_impact)  # equal on the first quote ⇒ retry
    assert not impact_requires_retry(D("-0.049"), max_impact)
    assert not impact_requires_retry(D("-0.9"), None)
    assert not retry_impact_accepted(D("0.05"), max_impact)  # equal on a retry ⇒ rejected
    assert retry_impact_accepted(D("-0.045"), max_impact)
    assert choose_after_retries(D("-0.08"), max_impact, [(D("0.9"), D("-0.06")), (D("0.8"), D("-0.045"))]) == D("0.8")


def test_price_impact_failure_message():
    with pytest.raises(TradeError) as info:
        choose_after_retries(D("-0.08"), D("0.05"), [(D("0.0108"), D("-0.07"))])
    assert info.value.code == "PRICE_IMPACT_TOO_HIGH"
    assert info.value.message == "Price impact (slippage) 8.00% exceeds maximum threshold 5.00% even after retries"
    assert price_impact_error(D("0.123456"), D("0.1")).message == (
        "Price impact (slippage) 12.35% exceeds maximum threshold 10.00% even after retries"
    )
