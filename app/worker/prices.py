"""Latest-price store: the price monitor's last observation of every tracked token, in ``token_prices``.

The monitor upserts one row per priced mint on every poll, plus the SOL mint's row carrying SOL/USD
(``price_sol = 1``). The API (positions, performance) and the hourly snapshots read it instead of
calling a price feed themselves. Rows keep the source's ``observed_at`` so every reader can decide
what is too old to act on; an older observation never replaces a newer one (two monitors may race).

Prices are quantized to the column scale (18 decimals) *before* the monitor evaluates them, so the
price a decision used is exactly the price stored next to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
import msgspec

from app.config import Settings
from app.db import Q
from app.market.types import SOL_MINT, SolUsd, TokenPrice
from app.trading.ledger import AMOUNT_18, SOL_8, fits_numeric, quantize

# Staleness defaults when the settings leave them at 0: a token price may be three polls old, SOL/USD
# (Pyth publishes several times a second; its fallback poll runs every 10 s) half a minute.
POLLS_PER_MAX_AGE = 3


class StoredPrice(msgspec.Struct, frozen=True, kw_only=True):
    mint: str
    price_sol: Decimal
    price_usd: Decimal | None
    liquidity_usd: Decimal | None
    observed_at: datetime
    source: str

    def is_fresh(self, now: datetime, max_age: timedelta) -> bool:
        return now - self.observed_at <= max_age


def price_max_age(settings: Settings) -> timedelta:
    """How old a token price may be and still drive a trade."""
    ms = settings.price_max_age_ms or POLLS_PER_MAX_AGE * settings.worker_price_poll_ms
    return timedelta(milliseconds=ms)


def sol_usd_max_age(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.sol_usd_max_age_s)


def _positive_18(value: Decimal | None) -> Decimal | None:
    if value is None or not value.is_finite() or not fits_numeric(value, 30, AMOUNT_18):
        return None
    rounded = quantize(value, AMOUNT_18)
    return rounded if rounded > 0 else None


def normalize_price(price: TokenPrice) -> TokenPrice | None:
    """The price at column precision, or None when it cannot be a usable price (≤ 0 at 18 decimals)."""
    price_sol = _positive_18(price.price_sol)
    if price_sol is None:
        return None
    liquidity = price.liquidity_usd
    if liquidity is not None and (not liquidity.is_finite() or not fits_numeric(liquidity, 30, SOL_8)):
        liquidity = None
    return msgspec.structs.replace(
        price,
        price_sol=price_sol,
        price_usd=_positive_18(price.price_usd),
        liquidity_usd=None if liquidity is None else quantize(liquidity, SOL_8),
    )


def sol_usd_row(sol: SolUsd) -> TokenPrice | None:
    """SOL/USD as the SOL mint's price row."""
    usd = _positive_18(sol.price)
    if usd is None:
        return None
    return TokenPrice(
        mint=SOL_MINT,
        price_sol=Decimal(1),
        price_usd=usd,
        liquidity_usd=None,
        observed_at=sol.observed_at,
        source=sol.source,
    )


async def store_prices(conn: asyncpg.Connection | asyncpg.Pool, prices: Iterable[TokenPrice]) -> int:
    """Upsert normalized prices in one statement; returns how many were offered."""
    rows = [p for p in (normalize_price(p) for p in prices) if p is not None]
    if not rows:
        return 0
    await Q.upsert_token_prices.execute(
        conn,
        [p.mint for p in rows],
        [p.price_sol for p in rows],
        [p.price_usd for p in rows],
        [p.liquidity_usd for p in rows],
        [p.observed_at for p in rows],
        [p.source[:32] for p in rows],
    )
    return len(rows)


async def latest_prices(conn: asyncpg.Connection | asyncpg.Pool, mints: Sequence[str]) -> dict[str, StoredPrice]:
    if not mints:
        return {}
    rows = await Q.latest_token_prices.fetch_all(conn, list(dict.fromkeys(mints)), into=StoredPrice)
    return {row.mint: row for row in rows}


async def latest_sol_usd(conn: asyncpg.Connection | asyncpg.Pool) -> StoredPrice | None:
    """The stored SOL/USD observation (price in ``price_usd``), whatever its age."""
    return (await latest_prices(conn, [SOL_MINT])).get(SOL_MINT)
