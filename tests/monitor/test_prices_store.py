"""The latest-price store: normalization, SOL/USD row, never moving backwards in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import msgspec

from app.market.types import SOL_MINT, SolUsd, TokenPrice
from app.worker.prices import (
    latest_prices,
    latest_sol_usd,
    normalize_price,
    price_max_age,
    sol_usd_row,
    store_prices,
)

MINT = "PriceStore111111111111111111111111111111111"
T0 = datetime(2026, 2, 1, 12, tzinfo=UTC)


def _price(price_sol: str, at: datetime, *, mint: str = MINT, usd: str | None = "0.5") -> TokenPrice:
    return TokenPrice(
        mint=mint,
        price_sol=Decimal(price_sol),
        price_usd=None if usd is None else Decimal(usd),
        liquidity_usd=Decimal("12345.678901234"),
        observed_at=at,
        source="test",
    )


def test_normalize_quantizes_to_the_column_scale_and_drops_unusable_prices() -> None:
    price = normalize_price(_price("0.0000271000000000000049", T0))
    assert price is not None
    assert price.price_sol == Decimal("0.000027100000000000")
    assert price.liquidity_usd == Decimal("12345.67890123")
    assert normalize_price(_price("0.0000000000000000001", T0)) is None  # 0 at 18 decimals
    assert normalize_price(_price("-1", T0)) is None
    assert normalize_price(_price("1e13", T0)) is None  # does not fit numeric(30,18)


def test_price_max_age_defaults_to_three_polls(settings) -> None:
    assert price_max_age(settings) == timedelta(milliseconds=3 * settings.worker_price_poll_ms)
    assert price_max_age(msgspec.structs.replace(settings, price_max_age_ms=700)) == timedelta(milliseconds=700)


async def test_store_upserts_and_never_moves_a_price_backwards(pool: asyncpg.Pool) -> None:
    await store_prices(pool, [_price("0.001", T0)])
    await store_prices(pool, [_price("0.002", T0 + timedelta(seconds=2))])
    await store_prices(pool, [_price("0.0015", T0 + timedelta(seconds=1))])  # a slower monitor's older reading
    stored = (await latest_prices(pool, [MINT]))[MINT]
    assert (stored.price_sol, stored.observed_at, stored.source) == (
        Decimal("0.002"),
        T0 + timedelta(seconds=2),
        "test",
    )
    assert stored.is_fresh(T0 + timedelta(seconds=3), timedelta(seconds=1))
    assert not stored.is_fresh(T0 + timedelta(seconds=4), timedelta(seconds=1))


async def test_sol_usd_is_the_sol_mint_row(pool: asyncpg.Pool) -> None:
    assert sol_usd_row(SolUsd(price=Decimal(0), observed_at=T0, source="pyth")) is None
    row = sol_usd_row(SolUsd(price=Decimal("144.655"), observed_at=T0, source="pyth"))
    assert row is not None
    await store_prices(pool, [row])
    sol = await latest_sol_usd(pool)
    assert sol is not None
    assert (sol.mint, sol.price_sol, sol.price_usd, sol.source) == (SOL_MINT, Decimal(1), Decimal("144.655"), "pyth")
