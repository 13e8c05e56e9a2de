"""DexScreener price source, SOL-pair liquidity (rug check inputs) and the token bucket."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.market.dexscreener import DexScreener, rug_pulled
from app.market.types import SOL_MINT, LiquidityChecker, PriceSource
from tests.fakes.dexscreener import USDC_MINT

A = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"
B = "9BB6NFEcjBCtnNLFko2FqVQBq8HHM13kCyYcdQbgpump"
NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def dex(http_session, fake_dexscreener, no_sleep) -> DexScreener:
    return DexScreener(http_session, base_url=fake_dexscreener.url, sleep=no_sleep, clock=lambda: NOW)


async def test_price_picks_most_liquid_sol_pair(dex, fake_dexscreener):
    fake_dexscreener.add_pair(A, price_native="0.00002", liquidity_usd="5000", liquidity_quote="16")
    fake_dexscreener.add_pair(A, price_native="0.0000271", price_usd="0.00406", liquidity_usd="12345.6")
    fake_dexscreener.add_pair(A, quote=USDC_MINT, price_native="0.004", liquidity_usd="999999")  # not SOL
    assert isinstance(dex, PriceSource) and isinstance(dex, LiquidityChecker)
    prices = await dex.prices([A])
    p = prices[A]
    assert p.price_sol == Decimal("0.0000271") and p.price_usd == Decimal("0.00406")
    assert p.liquidity_usd == Decimal("12345.6") and p.price_change_24h == Decimal("5.6")
    assert p.source == "dexscreener" and p.observed_at == NOW


async def test_price_groups_by_base_case_insensitively_and_keeps_caller_case(dex, fake_dexscreener):
    fake_dexscreener.add_pair(A.lower(), price_native="0.5")
    prices = await dex.prices([A])
    assert list(prices) == [A] and prices[A].price_sol == Decimal("0.5")


async def test_price_edge_cases(dex, fake_dexscreener):
    fake_dexscreener.add_pair(A, price_usd=None, liquidity=False)  # no priceUsd, no liquidity block
    fake_dexscreener.add_pair(B, price_native="0")  # non-positive ⇒ unpriced
    only_usdc = "Usdc1111111111111111111111111111111111111111"
    fake_dexscreener.add_pair(only_usdc, quote=USDC_MINT)
    prices = await dex.prices([A, B, only_usdc, "Unknown111111111111111111111111111111111111"])
    assert set(prices) == {A}
    assert prices[A].price_usd is None and prices[A].liquidity_usd is None


async def test_pairs_where_token_is_the_quote_are_ignored(dex, fake_dexscreener):
    fake_dexscreener.add_pair(SOL_MINT, quote=A, price_native="37000")  # SOL/A pair
    assert await dex.prices([A]) == {}
    assert await dex.sol_pair_liquidity([A]) == {A: []}


async def test_liquidity_known_none_and_unknown(dex, fake_dexscreener, no_sleep):
    fake_dexscreener.add_pair(A, liquidity_quote="41.2")
    fake_dexscreener.add_pair(A, liquidity_quote="3")
    fake_dexscreener.add_pair(A, liquidity=False)
    fake_dexscreener.add_pair(B, quote=USDC_MINT)
    liq = await dex.sol_pair_liquidity([A, B])
    assert liq == {A: [Decimal("41.2"), Decimal(3), Decimal(0)], B: []}
    assert rug_pulled(liq[A]) is False and rug_pulled(liq[B]) is True
    fake_dexscreener.fail("tokens", 500, times=None)
    unknown = await dex.sol_pair_liquidity([A, B])
    assert unknown == {A: None, B: None}  # an outage is never a rug
    assert rug_pulled(unknown[A]) is None


async def test_rug_threshold():
    assert rug_pulled([Decimal("9.99")]) is True
    assert rug_pulled([Decimal("9.99"), Decimal(10)]) is False
    assert rug_pulled([]) is True and rug_pulled(None) is None


async def test_batches_of_30_with_pause_and_partial_failure(dex, fake_dexscreener, no_sleep):
    mints = [f"Tok{i:041d}" for i in range(65)]
    for m in mints:
        fake_dexscreener.add_pair(m, liquidity_quote="20")
    fake_dexscreener.fail("tokens", 400, times=1)  # the first batch fails; 4xx is not retried
    liq = await dex.sol_pair_liquidity(mints)
    sizes = [len(r[2].rsplit("/", 1)[1].split(",")) for r in fake_dexscreener.requests]
    assert sizes == [30, 30, 5]
    assert no_sleep.delays == [0.1, 0.1]
    assert all(liq[m] is None for m in mints[:30]) and all(liq[m] == [Decimal(20)] for m in mints[30:])
    prices = await dex.prices(mints)
    assert len(prices) == 65


async def test_malformed_body_is_unknown(dex, fake_dexscreener):
    fake_dexscreener.malformed("tokens", times=2)
    assert await dex.sol_pair_liquidity([A]) == {A: None}
    assert await dex.prices([A]) == {}


async def test_default_budget_is_300_per_minute(dex):
    assert dex.budget.burst == 300 and dex.budget.interval == pytest.approx(0.2)
    assert dex.http.budget is dex.budget
