"""Objects the worker's services share, built once per process on first use.

``await market(ctx)`` is the one :class:`app.market.Market` of the process (one aiohttp session, one
Pyth stream, one replay clock), so the signal intake, the manual-trade service and the position monitor
all trade and evaluate against the same prices. ``await execution(ctx)`` is the
:class:`~app.worker.execution.ExecutionContext` built on it. Both are cached in ``ctx.components``
under ``"market"`` / ``"execution"`` and closed when the worker stops.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from app.config import Settings

if TYPE_CHECKING:
    from app.market import Market
    from app.worker.execution import ExecutionContext
    from app.worker.main import WorkerContext

log = logging.getLogger(__name__)

_LOCK_KEY = "_components_lock"


def market_options(settings: Settings) -> dict[str, Any]:
    """``build_market`` keyword arguments from the settings (README "Configuration")."""
    base = settings.jupiter_base_url.rstrip("/")
    return {
        "jupiter_api_key": settings.jupiter_api_key,
        "jupiter_ultra_url": f"{base}/ultra",
        "jupiter_swap_url": f"{base}/swap/v1",
        "jupiter_tokens_url": f"{base}/tokens/v2",
        "jupiter_price_url": settings.jupiter_price_url,
        "dexscreener_url": settings.dexscreener_url,
        "pyth_url": settings.pyth_hermes_url,
        # Replay needs no chain access; live sources read decimals and balances from this RPC.
        "solana_rpc_url": None if settings.price_source == "replay" else settings.solana_rpc_url,
        "replay_file": settings.price_replay_file,
        "jupiter_max_rps": settings.jupiter_max_rps,
        "solana_rpc_max_rps": settings.solana_rpc_max_rps,
    }


async def open_market(settings: Settings) -> Market:
    """An entered market for ``settings.price_source``; the caller closes it (``await m.aclose()``)."""
    from app.market import build_market

    built = build_market(settings.price_source, **market_options(settings))
    return await built.__aenter__()


def _lock(ctx: WorkerContext) -> asyncio.Lock:
    return ctx.components.setdefault(_LOCK_KEY, asyncio.Lock())


async def _close_on_stop(ctx: WorkerContext, opened: Market) -> None:
    await ctx.stopping.wait()
    try:
        await opened.aclose()
    except Exception:
        log.exception("closing the market failed")


async def market(ctx: WorkerContext) -> Market:
    """The process's market, built from the settings on first call."""
    async with _lock(ctx):
        existing = ctx.components.get("market")
        if existing is None:
            existing = await open_market(ctx.settings)
            ctx.components["market"] = existing
            ctx.components["_market_closer"] = asyncio.create_task(_close_on_stop(ctx, existing))
        return existing


get_market = market


async def execution(ctx: WorkerContext) -> ExecutionContext:
    """The process's execution context (trades of every service go through it)."""
    if "execution" in ctx.components:
        return ctx.components["execution"]
    shared = await market(ctx)
    async with _lock(ctx):
        existing = ctx.components.get("execution")
        if existing is None:
            from app.worker.execution import build_execution_context

            existing = await build_execution_context(ctx.settings, ctx.pool, shared)
            ctx.components["execution"] = existing
        return existing


get_execution = execution
