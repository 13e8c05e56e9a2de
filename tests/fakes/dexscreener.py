"""Fake DexScreener ``GET /tokens/v1/{chainId}/{a,b,…}`` (route name ``tokens``).

Knobs: ``pairs`` (list of pair dicts in the real shape); :meth:`FakeDexScreener.add_pair` builds
one (``price_usd=None`` omits ``priceUsd``; ``liquidity=False`` omits the ``liquidity`` block, as
DexScreener does for some pools). The response is a flat JSON array of every pair whose base *or*
quote token is one of the requested addresses (case-insensitive), so callers must group by base
and filter SOL quotes themselves. Unknown tokens give ``[]``; more than 30 addresses → 400.
Base URL for the client: ``fake.url``.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, json_response

SOL_MINT = "So11111111111111111111111111111111111111112"
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


class FakeDexScreener(FakeServer):
    def __init__(self) -> None:
        self.pairs: list[dict[str, Any]] = []
        self._n = itertools.count(1)
        super().__init__()

    def setup_routes(self) -> None:
        self.route("GET", "/tokens/v1/{chain}/{addresses}", self._tokens, "tokens")

    def add_pair(
        self,
        base: str,
        *,
        quote: str = SOL_MINT,
        price_native: str = "0.0000271",
        price_usd: str | None = "0.00406",
        liquidity_usd: Decimal | str = "12345.6",
        liquidity_quote: Decimal | str = "41.2",
        liquidity: bool = True,
        dex_id: str = "raydium",
        symbol: str = "TKN",
    ) -> dict[str, Any]:
        n = next(self._n)
        pair: dict[str, Any] = {
            "chainId": "solana",
            "dexId": dex_id,
            "url": f"https://dexscreener.com/solana/pair{n}",
            "pairAddress": f"FakePair{n:036d}",
            "baseToken": {"address": base, "name": symbol.title(), "symbol": symbol},
            "quoteToken": {
                "address": quote,
                "name": "Wrapped SOL" if quote == SOL_MINT else "Quote",
                "symbol": "SOL" if quote == SOL_MINT else "QUOTE",
            },
            "priceNative": price_native,
            "txns": {k: {"buys": 1, "sells": 2} for k in ("m5", "h1", "h6", "h24")},
            "volume": {"h24": Decimal("1.5"), "h6": Decimal(1), "h1": Decimal(1), "m5": Decimal(1)},
            "priceChange": {"m5": Decimal("0.1"), "h1": Decimal("1.2"), "h6": Decimal("3.4"), "h24": Decimal("5.6")},
            "fdv": 1,
            "marketCap": 1,
            "pairCreatedAt": 1_700_000_000_000,
        }
        if price_usd is not None:
            pair["priceUsd"] = price_usd
        if liquidity:
            pair["liquidity"] = {"usd": Decimal(liquidity_usd), "base": 1_000_000, "quote": Decimal(liquidity_quote)}
        self.pairs.append(pair)
        return pair

    async def _tokens(self, request: web.Request) -> web.Response:
        wanted = {a.lower() for a in request.match_info["addresses"].split(",") if a}
        if len(wanted) > 30:
            return json_response({"error": "at most 30 addresses"}, 400)
        if request.match_info["chain"] != "solana":
            return json_response([])
        return json_response(
            [
                p
                for p in self.pairs
                if p["baseToken"]["address"].lower() in wanted or p["quoteToken"]["address"].lower() in wanted
            ]
        )
