"""Wiring of live trading into the worker: the executor builder and the two background services.

* :func:`build_live_executor` — the :class:`~app.live.executor.LiveExecutor` for
  ``ExecutionContext.live_executor`` (None when this process holds no wallet keys).
* :func:`live_settlement_service` — every ``LIVE_SETTLE_INTERVAL_S``: settle unresolved swaps whose
  lease lapsed (crash, timeout, failed ledger write) and record the ones that landed.
* :func:`live_reconciliation_service` — every ``LIVE_RECONCILE_INTERVAL_S``: chain vs ledger per live
  wallet, blocking drifting wallets (:mod:`app.live.reconcile`).

Settlement runs even without keys: a swap sent before the key was removed must still be recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg

from app.config import Settings
from app.live.executor import LiveExecutor
from app.live.keys import get_keystore
from app.live.reconcile import reconcile_all
from app.live.settlement import Settlement
from app.live.swap import LiveSwapper
from app.market.budget import UpstreamBudget
from app.market.jupiter import JupiterMetis, JupiterUltra
from app.market.solana_rpc import SolanaRpc

if TYPE_CHECKING:
    from app.worker.main import WorkerContext

log = logging.getLogger(__name__)

SolUsdPrice = Callable[[], Awaitable[Decimal | None]]


def build_swapper(
    settings: Settings,
    session: aiohttp.ClientSession,
    rpc: SolanaRpc | None = None,
    jupiter_budget: UpstreamBudget | None = None,
) -> LiveSwapper:
    """Jupiter clients and the RPC for live swaps, from the settings (independent of PRICE_SOURCE).
    ``jupiter_budget`` is the market's, so live swaps and price polls share one Jupiter account budget."""
    base = settings.jupiter_base_url.rstrip("/")
    return LiveSwapper(
        rpc=rpc or SolanaRpc(session, settings.solana_rpc_url),
        keystore=get_keystore(settings),
        settings=settings,
        metis=JupiterMetis(
            session,
            api_key=settings.jupiter_api_key,
            base_url=f"{base}/swap/v1",
            default_slippage_bps=settings.live_slippage_bps,
            budget=jupiter_budget,
        ),
        ultra=JupiterUltra(session, api_key=settings.jupiter_api_key, base_url=f"{base}/ultra", budget=jupiter_budget),
    )


async def build_live_executor(
    settings: Settings, pool: asyncpg.Pool, market: Any, *, sol_usd: SolUsdPrice | None = None
) -> LiveExecutor | None:
    """For ``ExecutionContext.live_executor``: None when no wallet key is loaded in this process.
    ``market`` is the entered :class:`app.market.Market` whose aiohttp session (and RPC) is shared."""
    if not len(get_keystore(settings)):
        return None
    swapper = build_swapper(
        settings, market.session, getattr(market, "rpc", None), getattr(market, "jupiter_budget", None)
    )
    return LiveExecutor(pool, settings, swapper, sol_usd=sol_usd)


async def _live_executor(ctx: WorkerContext) -> LiveExecutor:
    """The execution context's live executor (built with it when this process holds keys), or else
    one for settlement only; resolved once per process, whichever service asks first."""
    from app.worker import components

    async with ctx.components.setdefault("_live_lock", asyncio.Lock()):
        cached = ctx.components.get("live_executor")
        if cached is not None:
            return cached
        execution = await components.execution(ctx)
        if isinstance(execution.live_executor, LiveExecutor):
            built = execution.live_executor
        else:
            market = await components.market(ctx)
            built = LiveExecutor(
                ctx.pool,
                ctx.settings,
                build_swapper(ctx.settings, market.session, market.rpc, getattr(market, "jupiter_budget", None)),
                sol_usd=execution.sol_usd_price,
            )
        ctx.components["live_executor"] = built
        return built


async def live_settlement_service(ctx: WorkerContext) -> None:
    settlement: Settlement | None = None
    while True:
        try:
            if settlement is None:
                settlement = (await _live_executor(ctx)).settlement
            await settlement.run_once(record=True)
        except Exception:
            # One bad tick must not stop settlement: the next one retries from the journal.
            log.exception("live settlement tick failed")
        if await ctx.sleep(ctx.settings.live_settle_interval_s):
            return


async def live_reconciliation_service(ctx: WorkerContext) -> None:
    while True:
        try:
            if len(get_keystore(ctx.settings)):
                executor = await _live_executor(ctx)
                statuses = await reconcile_all(ctx.pool, ctx.settings, executor.swapper.rpc)
                if statuses:
                    log.info("live reconciliation done", extra={"fields": {"wallets": statuses}})
        except Exception:
            log.exception("live reconciliation tick failed")
        if await ctx.sleep(ctx.settings.live_reconcile_interval_s):
            return
