"""Market data and swap adapters (Jupiter, DexScreener, Pyth, Solana RPC, offline replay).

Use :func:`build_market` and ``async with`` the returned :class:`Market`: it owns the single
``aiohttp.ClientSession`` shared by every adapter and the Pyth background task, so nothing leaks
when the app stops. Sources:

* ``"replay"`` (default, no network): prices, SOL/USD, liquidity and metrics from a replay file
  (the shipped sample unless ``replay_file``/``seed`` is given) and a simulated Ultra quoter.
  ``rpc`` is built only when ``solana_rpc_url`` is given.
* ``"jupiter"``: Price v3 (SOL via Pyth), Ultra quoter/executor, DexScreener liquidity, Tokens v2
  metrics, Solana RPC.
* ``"dexscreener"``: same as ``"jupiter"`` but DexScreener prices.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from app.market.budget import UpstreamBudget
from app.market.dexscreener import DEXSCREENER_URL, DexScreener
from app.market.http import RetryPolicy, Sleep
from app.market.jupiter import (
    PRICE_V3_URL,
    SWAP_V1_URL,
    TOKENS_V2_URL,
    ULTRA_URL,
    JupiterMetis,
    JupiterPriceSource,
    JupiterTokenMetrics,
    JupiterUltra,
)
from app.market.pyth import HERMES_URL, PythSolUsd
from app.market.replay import SAMPLE_FILE, ReplayMarket, SimulatedQuoter, build_sample_records
from app.market.solana_rpc import MAINNET_RPC_URL, SolanaRpc
from app.market.types import (
    LiquidityChecker,
    MetricsSource,
    PriceSource,
    Quoter,
    SolUsdSource,
    SwapExecutor,
)

SOURCES = ("replay", "jupiter", "dexscreener")

__all__ = ["SOURCES", "Market", "build_market"]


class Market:
    """Bundle of adapters chosen by :func:`build_market`; attributes exist inside ``async with``.

    ``executor`` (Ultra execute) and ``metis`` (swap v1 for the RPC-send path) are None in replay
    mode; ``rpc`` is None when no RPC is configured for replay.
    """

    price_source: PriceSource
    sol_usd: SolUsdSource
    quoter: Quoter
    liquidity: LiquidityChecker
    metrics: MetricsSource | None
    executor: SwapExecutor | None
    metis: JupiterMetis | None
    rpc: SolanaRpc | None
    replay: ReplayMarket | None
    jupiter_budget: UpstreamBudget  # shared by every Jupiter client of the account (live swaps included)
    rpc_budget: UpstreamBudget

    def __init__(self, source: str, opts: dict[str, Any]) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown market source {source!r}; expected one of {SOURCES}")
        self.source = source
        self._opts = opts
        self.session: aiohttp.ClientSession | None = None
        self._pyth: PythSolUsd | None = None

    async def __aenter__(self) -> Market:
        o = self._opts
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=o["max_connections"]))
        common: dict[str, Any] = {"retry": o["retry"], "sleep": o["sleep"]}
        self.executor = self.metis = self.replay = None
        # One budget per upstream account, shared by every client of it in this process (app/market/budget.py).
        # A request waits at most half the quote timeout for its turn, so a rate limit reads RATE_LIMITED, not a
        # quote that "timed out" while it was never sent.
        wait = o["quote_timeout"] / 2
        self.jupiter_budget = UpstreamBudget("jupiter", o["jupiter_max_rps"], max_wait=wait, sleep=o["sleep"])
        self.rpc_budget = UpstreamBudget("solana-rpc", o["solana_rpc_max_rps"], max_wait=wait, sleep=o["sleep"])
        self.rpc = (
            SolanaRpc(
                self.session,
                o["solana_rpc_url"] or MAINNET_RPC_URL,
                commitment=o["commitment"],
                budget=self.rpc_budget,
                **common,
            )
            if o["solana_rpc_url"] or self.source != "replay"
            else None
        )
        try:
            if self.source == "replay":
                records = o["replay_file"] or (
                    build_sample_records(o["seed"]) if o["seed"] is not None else SAMPLE_FILE
                )
                self.replay = ReplayMarket(records, speed=o["replay_speed"], loop=o["replay_loop"])
                self.price_source = self.sol_usd = self.liquidity = self.metrics = self.replay
                self.quoter = SimulatedQuoter(self.replay, seed=o["seed"] or 0)
                return self
            key = o["jupiter_api_key"]
            self._pyth = PythSolUsd(self.session, base_url=o["pyth_url"], **common)
            self.sol_usd = self._pyth
            dex = DexScreener(
                self.session,
                base_url=o["dexscreener_url"],
                request_timeout=o["price_timeout"],
                budget=UpstreamBudget(
                    "dexscreener",
                    o["dexscreener_rate_per_min"],
                    60.0,
                    burst=o["dexscreener_rate_per_min"],
                    sleep=o["sleep"],
                ),
                **common,
            )
            self.liquidity = dex
            self.price_source = (
                dex
                if self.source == "dexscreener"
                else JupiterPriceSource(
                    self.session,
                    self._pyth,
                    api_key=key,
                    base_url=o["jupiter_price_url"],
                    request_timeout=o["price_timeout"],
                    budget=self.jupiter_budget,
                    **common,
                )
            )
            ultra = JupiterUltra(
                self.session,
                api_key=key,
                base_url=o["jupiter_ultra_url"],
                quote_timeout=o["quote_timeout"],
                execute_timeout=o["execute_timeout"],
                budget=self.jupiter_budget,
                **common,
            )
            self.quoter = self.executor = ultra
            self.metis = JupiterMetis(
                self.session,
                api_key=key,
                base_url=o["jupiter_swap_url"],
                quote_timeout=o["quote_timeout"],
                budget=self.jupiter_budget,
                **common,
            )
            self.metrics = JupiterTokenMetrics(
                self.session,
                api_key=key,
                base_url=o["jupiter_tokens_url"],
                sleep=o["sleep"],
                budget=self.jupiter_budget,
            )
            await self._pyth.start()
            return self
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._pyth is not None:
            await self._pyth.stop()
            self._pyth = None
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def build_market(
    source: str = "replay",
    *,
    jupiter_api_key: str | None = None,
    jupiter_ultra_url: str = ULTRA_URL,
    jupiter_swap_url: str = SWAP_V1_URL,
    jupiter_price_url: str = PRICE_V3_URL,
    jupiter_tokens_url: str = TOKENS_V2_URL,
    dexscreener_url: str = DEXSCREENER_URL,
    dexscreener_rate_per_min: int = 300,
    jupiter_max_rps: float | None = None,
    solana_rpc_max_rps: float | None = None,
    pyth_url: str = HERMES_URL,
    solana_rpc_url: str | None = None,
    commitment: str = "confirmed",
    replay_file: str | Path | None = None,
    replay_speed: float = 1.0,
    replay_loop: bool = True,
    seed: int | None = None,
    quote_timeout: float = 10.0,
    execute_timeout: float = 30.0,
    price_timeout: float = 5.0,
    retry: RetryPolicy = RetryPolicy(),
    max_connections: int = 50,
    sleep: Sleep = asyncio.sleep,
) -> Market:
    """Describe a market; adapters and the shared session are created on ``async with``.

    ``seed`` without ``replay_file`` generates a fresh deterministic replay timeline; ``sleep`` and
    ``retry`` exist so tests can make backoff instant.
    """
    return Market(source, dict(locals()))
