from decimal import Decimal as D

import pytest

from app.market.types import TokenMetrics as MarketTokenMetrics
from app.trading.config import apply_config_patch, default_config
from app.trading.eligibility import TokenMetrics, check_eligibility

TOKEN = "So1TokenMint1111111111111111111111111111111"
OTHER = "OtherMint11111111111111111111111111111111111"


def cfg(**signals):
    return apply_config_patch(None, {"signals": signals})[0]


def test_defaults_accept_anything():
    assert check_eligibility(1, "anything", TOKEN, None, default_config()) == []


def test_min_score_equality_passes():
    # signal strength 3 with agents at minScore 5 / 1 / 2 ⇒ the second and third are eligible
    assert check_eligibility(3, "t", TOKEN, None, cfg(minScore=5)) == ["Signal strength 3 < minScore 5"]
    assert check_eligibility(3, "t", TOKEN, None, cfg(minScore=1)) == []
    assert check_eligibility(3, "t", TOKEN, None, cfg(minScore=2)) == []
    assert check_eligibility(3, "t", TOKEN, None, cfg(minScore=3)) == []


def test_signal_type_filter_is_exact():
    assert check_eligibility(3, "Hypersurge", TOKEN, None, cfg(allowedSignalTypes=["buy"])) == [
        "Signal type 'Hypersurge' not in allowed types [buy]"
    ]
    assert check_eligibility(3, "Hypersurge", TOKEN, None, cfg(allowedSignalTypes=[])) == []
    assert check_eligibility(3, "hypersurge", TOKEN, None, cfg(allowedSignalTypes=["Hypersurge"])) != []


def test_token_lists():
    black = cfg(tokenFilterMode="blacklist", tokenList=[TOKEN])
    assert check_eligibility(3, "t", TOKEN, None, black) == [f"Token {TOKEN} is blacklisted"]
    assert check_eligibility(3, "t", OTHER, None, black) == []
    white = cfg(tokenFilterMode="whitelist", tokenList=[TOKEN])
    assert check_eligibility(3, "t", OTHER, None, white) == [f"Token {OTHER} not in whitelist"]
    assert check_eligibility(3, "t", TOKEN, None, white) == []
    assert check_eligibility(3, "t", TOKEN, None, cfg(tokenFilterMode="none", tokenList=[TOKEN])) == []


METRICS = TokenMetrics(mcap=D(1_000_000), liquidity=D(500_000), holder_count=1000)
BOUNDS = {"marketCapMin": 500_000, "marketCapMax": 2_000_000, "liquidityMin": 100_000, "holderCountMin": 500}


def test_metric_bounds():
    assert check_eligibility(3, "t", TOKEN, METRICS, cfg(**BOUNDS)) == []
    assert check_eligibility(
        3, "t", TOKEN, METRICS, cfg(**{**BOUNDS, "marketCapMin": 5_000_000, "marketCapMax": None})
    ) == ["Token market cap 1000000 < min 5000000"]
    assert check_eligibility(3, "t", TOKEN, None, cfg(**BOUNDS)) == [
        "Token metrics unavailable (Jupiter API); agent has token metrics bounds set"
    ]
    assert check_eligibility(3, "t", TOKEN, None, default_config()) == []


def test_metric_equality_passes_and_unknown_metric_fails():
    exact = cfg(marketCapMin=1_000_000, marketCapMax=1_000_000, holderCountMax=1000)
    assert check_eligibility(3, "t", TOKEN, METRICS, exact) == []
    unknown = TokenMetrics(mcap=None, liquidity=D(1), holder_count=None)
    assert check_eligibility(3, "t", TOKEN, unknown, cfg(holderCountMax=5)) == [
        "Token holder count unknown; agent requires maximum holders"
    ]


@pytest.mark.parametrize(
    ("bounds", "reason"),
    [
        ({"marketCapMax": 900_000}, "Token market cap 1000000 > max 900000"),
        ({"liquidityMin": 600_000}, "Token liquidity 500000 < min 600000"),
        ({"liquidityMax": 400_000}, "Token liquidity 500000 > max 400000"),
        ({"holderCountMin": 1001}, "Token holder count 1000 < min 1001"),
        ({"holderCountMax": 999}, "Token holder count 1000 > max 999"),
        # first failure in spec order wins
        ({"liquidityMax": 1, "marketCapMin": 5_000_000}, "Token market cap 1000000 < min 5000000"),
    ],
)
def test_metric_failures_in_order(bounds, reason):
    assert check_eligibility(3, "t", TOKEN, METRICS, cfg(**bounds)) == [reason]


def test_all_reasons_are_collected_and_market_metrics_are_accepted():
    agent = cfg(minScore=5, allowedSignalTypes=["buy"], tokenFilterMode="whitelist", tokenList=[OTHER], liquidityMin=1)
    reasons = check_eligibility(2, "sell", TOKEN, MarketTokenMetrics(liquidity=D("0.5")), agent)
    assert reasons == [
        "Signal strength 2 < minScore 5",
        "Signal type 'sell' not in allowed types [buy]",
        f"Token {TOKEN} not in whitelist",
        "Token liquidity 0.5 < min 1",
    ]
