"""DexScreener tokens v1 (§10.4, peers §5.6): price source and SOL-pair liquidity checker.

One endpoint serves both: ``GET /tokens/v1/solana/<mint,mint,…>`` (≤30 mints) returns a flat array
of pairs. A token's price is its SOL-quoted pair with the most USD liquidity. For the rug check
(§9.4) a failed fetch must read as *unknown* (None), never as "no liquidity", or an API outage would
burn every open position.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp

from app.market.budget import UpstreamBudget
from app.market.http import JsonHttp, RetryPolicy, Sleep, timeout
from app.market.types import SOL_MINT, TokenPrice, to_decimal

log = logging.getLogger(__name__)

DEXSCREENER_URL = "https://api.dexscreener.com"
BATCH = 30
RUG_MIN_SOL_LIQUIDITY = Decimal(10)


def rug_pulled(liquidity: list[Decimal] | None, min_sol: Decimal = RUG_MIN_SOL_LIQUIDITY) -> bool | None:
    """§9.4 verdict: True iff no SOL pair or best SOL-side liquidity < ``min_sol``; None if unknown."""
    if liquidity is None:
        return None
    return not liquidity or max(liquidity) < min_sol


def _liq(pair: dict[str, Any], key: str) -> Decimal | None:
    liq = pair.get("liquidity")
    return to_decimal(liq.get(key)) if isinstance(liq, dict) else None


def _base(pair: dict[str, Any]) -> str:
    base = pair.get("baseToken")
    return str(base.get("address", "")).lower() if isinstance(base, dict) else ""


def _is_sol_quoted(pair: dict[str, Any]) -> bool:
    quote = pair.get("quoteToken")
    return isinstance(quote, dict) and quote.get("address") == SOL_MINT


class DexScreener:
    """PriceSource (``name = "dexscreener"``) and LiquidityChecker over tokens v1."""

    name = "dexscreener"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = DEXSCREENER_URL,
        chain: str = "solana",
        request_timeout: float = 5.0,
        retry: RetryPolicy = RetryPolicy(),
        budget: UpstreamBudget | None = None,
        batch_pause: float = 0.1,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.chain = chain
        # DexScreener's published limit for these endpoints: 300 requests a minute per IP.
        self.budget = budget or UpstreamBudget("dexscreener", 300, 60.0, burst=300, sleep=sleep)
        self.batch_pause = batch_pause
        self.sleep = sleep
        self.clock = clock
        self.http = JsonHttp(
            session, name="dexscreener", timeout=timeout(request_timeout), retry=retry, sleep=sleep, budget=self.budget
        )

    async def _fetch(self, mints: Sequence[str]) -> list[dict[str, Any]]:
        data = await self.http.get(f"{self.base_url}/tokens/v1/{self.chain}/{','.join(mints)}")
        if not isinstance(data, list):
            # Legacy endpoints wrap pairs as {"pairs": [...]}; anything else is not a pair list.
            data = data.get("pairs") if isinstance(data, dict) else None
            if not isinstance(data, list):
                raise ValueError("DexScreener: expected a JSON array of pairs")
        return [p for p in data if isinstance(p, dict)]

    async def _batches(self, mints: Sequence[str]):
        """Yield (batch, pairs-or-exception) sequentially, pausing between batches (§9.4)."""
        wanted = list(dict.fromkeys(mints))
        for i in range(0, len(wanted), BATCH):
            if i:
                await self.sleep(self.batch_pause)
            batch = wanted[i : i + BATCH]
            try:
                yield batch, await self._fetch(batch)
            except Exception as exc:
                log.warning("dexscreener: batch of %d failed: %s", len(batch), exc)
                yield batch, exc

    @staticmethod
    def _sol_pairs(batch: list[str], pairs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        by_base: dict[str, list[dict[str, Any]]] = {}
        for pair in pairs:
            if _is_sol_quoted(pair):
                by_base.setdefault(_base(pair), []).append(pair)
        return {mint: by_base.get(mint.lower(), []) for mint in batch}

    async def prices(self, mints: Sequence[str]) -> dict[str, TokenPrice]:
        out: dict[str, TokenPrice] = {}
        async for batch, pairs in self._batches(mints):
            if isinstance(pairs, Exception):
                continue
            now = self.clock()
            for mint, sol_pairs in self._sol_pairs(batch, pairs).items():
                if not sol_pairs:
                    continue
                best = max(sol_pairs, key=lambda p: _liq(p, "usd") or Decimal(-1))
                price_sol = to_decimal(best.get("priceNative"))
                if price_sol is None or price_sol <= 0:
                    continue
                change = best.get("priceChange")
                out[mint] = TokenPrice(
                    mint=mint,
                    price_sol=price_sol,
                    price_usd=to_decimal(best.get("priceUsd")),
                    liquidity_usd=_liq(best, "usd"),
                    observed_at=now,
                    source=self.name,
                    price_change_24h=to_decimal(change.get("h24")) if isinstance(change, dict) else None,
                )
        return out

    async def sol_pair_liquidity(self, mints: Sequence[str]) -> dict[str, list[Decimal] | None]:
        out: dict[str, list[Decimal] | None] = {}
        async for batch, pairs in self._batches(mints):
            if isinstance(pairs, Exception):
                out.update(dict.fromkeys(batch))
                continue
            for mint, sol_pairs in self._sol_pairs(batch, pairs).items():
                # A SOL pair without a liquidity block counts as 0 SOL (upstream: `quote ?? 0`).
                out[mint] = [_liq(p, "quote") or Decimal(0) for p in sol_pairs]
        return out
