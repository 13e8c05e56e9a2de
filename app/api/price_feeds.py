"""SOL/USD and data-source status (api.md §18).

SOL/USD is the latest observation the worker stored (``token_prices``, SOL mint row). Upstream answered a
hard-coded 100 until Pyth spoke; here there is no price until one was observed: 503 instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from litestar import get

from app.api.auth import jwt_only
from app.api.deps import PoolDep, PrincipalDep, SettingsDep
from app.api.errors import ApiError
from app.api.serialization import error_responses, iso
from app.auth.ratelimit import DATA_SOURCES
from app.trading.ledger import SOL_8, quantize
from app.worker.prices import latest_sol_usd, sol_usd_max_age


class SolUsdResponse(msgspec.Struct, rename="camel"):
    price: str  # 8 decimals, as upstream
    last_updated: str | None
    is_stale: bool
    source: str


@get(
    "/api/v1/price-feeds/sol-usd",
    dependencies={"principal": jwt_only()},
    summary="Latest observed SOL/USD price",
    description="isStale is true when the observation is older than SOL_USD_MAX_AGE_S (default 30 s). "
    "503 PRICE_UNAVAILABLE until the worker has stored a first observation.",
    tags=["Prices"],
    responses=error_responses(401, 503),
)
async def sol_usd(principal: PrincipalDep, pool: PoolDep, settings: SettingsDep) -> SolUsdResponse:
    stored = await latest_sol_usd(pool)
    if stored is None or stored.price_usd is None:
        raise ApiError(503, "SOL/USD price not available yet", "PRICE_UNAVAILABLE")
    age = datetime.now(UTC) - stored.observed_at
    return SolUsdResponse(
        price=format(quantize(stored.price_usd, SOL_8), "f"),
        last_updated=iso(stored.observed_at),
        is_stale=age > sol_usd_max_age(settings),
        source=stored.source,
    )


class Configured(msgspec.Struct):
    configured: bool


class DataSourcesResponse(msgspec.Struct, rename="camel"):
    pyth_network: Configured
    pyth_sol_price_feed: Configured
    jupiter: Configured
    dexscreener: Configured
    liquidity_checks: Configured
    signal_generation: Configured


@get(
    "/api/v1/data-sources/status",
    dependencies={"principal": jwt_only(rate_limit=DATA_SOURCES)},
    summary="Which market-data sources are configured (booleans only)",
    tags=["Prices"],
    responses=error_responses(401, 429),
)
async def data_sources(principal: PrincipalDep, settings: SettingsDep) -> DataSourcesResponse:
    yes = Configured(True)
    return DataSourcesResponse(
        pyth_network=yes,
        pyth_sol_price_feed=yes,
        jupiter=Configured(bool(settings.jupiter_api_key)),
        dexscreener=yes,
        liquidity_checks=yes,
        signal_generation=yes,
    )


ROUTES = [sol_usd, data_sources]
