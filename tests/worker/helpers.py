"""Shared set-up for the worker tests: a replay market with constant prices, contexts, signals, waits."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import asyncpg

from app.config import Settings
from app.market.jupiter import parse_order
from app.market.replay import ReplayMarket, SimulatedQuoter, sample_mint
from app.market.types import SOL_MINT, Quote
from app.worker.execution import ExecutionContext
from app.worker.executor import SimulationExecutor

# Valid-looking base58 mints (32-44 chars) for the tokens of the replay file.
STEADY = "Stdy1111111111111111111111111111111111111111"
THIN = "Thin1111111111111111111111111111111111111111"  # shallow pool: buys move the price a lot
METRICS = "Mtrc1111111111111111111111111111111111111111"  # has mcap/liquidity/holders
NINE = "Nine1111111111111111111111111111111111111111"  # 9 decimals

SOL_USD = Decimal(150)


def extra_mint(i: int) -> str:
    """The i-th generated token of the replay file (valid base58)."""
    return sample_mint("worker-tests", f"T{i}")


def records(
    thin_liquidity_usd: str = "2400", *, extra_tokens: int = 0, later: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Constant prices at t=0; ``later`` = {mint: priceSol} from t=10 (``market.seek(10)``)."""
    rows = [
        {"t": 0, "mint": SOL_MINT, "priceUsd": str(SOL_USD)},
        {
            "t": 0,
            "mint": STEADY,
            "symbol": "STEADY",
            "decimals": 6,
            "priceSol": "0.0000273115456547",
            "liquidityUsd": "100000000",
        },
        {
            "t": 0,
            "mint": THIN,
            "symbol": "THIN",
            "decimals": 6,
            "priceSol": "0.001",
            "liquidityUsd": thin_liquidity_usd,
        },
        {
            "t": 0,
            "mint": METRICS,
            "symbol": "MTRC",
            "decimals": 6,
            "priceSol": "0.0002",
            "liquidityUsd": "500000",
            "mcap": "1000000",
            "holders": 1000,
        },
        {"t": 0, "mint": NINE, "symbol": "NINE", "decimals": 9, "priceSol": "0.0003", "liquidityUsd": "90000000"},
    ]
    for i in range(extra_tokens):
        rows.append(
            {
                "t": 0,
                "mint": extra_mint(i),
                "symbol": f"T{i}",
                "decimals": 6,
                "priceSol": "0.00001",
                "liquidityUsd": "100000000",
            }
        )
    rows.append({"t": 10, "mint": SOL_MINT, "priceUsd": str(SOL_USD)})
    for mint, price in (later or {}).items():
        rows.append({"t": 10, "mint": mint, "priceSol": price, "liquidityUsd": "100000000"})
    return rows


def replay_market(**kwargs: Any) -> ReplayMarket:
    return ReplayMarket(records(**kwargs), manual=True, loop=False)


class MarketBundle:
    """What ``app.market.Market`` exposes, over a manual replay market (no network, no session)."""

    def __init__(self, replay: ReplayMarket, quoter: Any = None) -> None:
        self.replay = replay
        self.price_source = self.sol_usd = self.liquidity = self.metrics = replay
        self.quoter = quoter or SimulatedQuoter(replay)
        self.executor = self.metis = self.rpc = None

    async def aclose(self) -> None:
        return None


def execution_context(pool: asyncpg.Pool, settings: Settings, market: MarketBundle | None = None, **kw: Any):
    market = market or MarketBundle(replay_market())

    async def decimals(mint: str) -> int:
        return market.replay.token_decimals(mint)

    return ExecutionContext(
        pool=pool,
        settings=settings,
        quoter=market.quoter,
        sol_usd=market.sol_usd,
        executor=SimulationExecutor(),
        rng=random.Random(7),
        market=market,
        metrics=market.metrics,
        decimals_lookup=decimals,
        **kw,
    )


class RecordingQuoter:
    """Wraps a quoter: records every requested amount, optionally sleeps before answering."""

    def __init__(self, inner: Any, delay_s: float = 0.0) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.calls: list[tuple[str, str, int]] = []

    async def quote(self, input_mint: str, output_mint: str, amount_raw: int, **kw: Any) -> Quote:
        self.calls.append((input_mint, output_mint, amount_raw))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await self.inner.quote(input_mint, output_mint, amount_raw, **kw)


class ScriptedQuoter:
    """Fake Jupiter Ultra ``/order``: answers with the given orders in turn (validated like real ones)."""

    FEES = {
        "feeBps": 10,
        "platformFee": {"feeBps": 10, "feeMint": SOL_MINT},
        "signatureFeeLamports": 5000,
        "prioritizationFeeLamports": 100000,
        "rentFeeLamports": 0,
    }

    def __init__(self, *orders: dict[str, Any]) -> None:
        self.orders = list(orders)

    async def quote(self, input_mint: str, output_mint: str, amount_raw: int, **kw: Any) -> Quote:
        order = {
            "requestId": f"scripted-{len(self.orders)}",
            "swapType": "aggregator",
            "slippageBps": 50,
            "priceImpactPct": "-0.0001",
            "routePlan": [],
            **self.FEES,
            **self.orders.pop(0),
        }
        order.update(inputMint=input_mint, outputMint=output_mint, inAmount=str(amount_raw))
        return parse_order(order)


class PricedQuoter:
    """Fake Jupiter Ultra ``/order`` quoting any token at ``price`` SOL per whole token, no price impact,
    with the usual fee terms (10 bps SOL platform fee, 0.000105 SOL network fee)."""

    def __init__(self, price: Decimal, decimals: int = 6) -> None:
        self.price, self.decimals = price, decimals

    async def quote(self, input_mint: str, output_mint: str, amount_raw: int, **kw: Any) -> Quote:
        scale = Fraction(10**self.decimals, 10**9)
        rate = 1 / (Fraction(self.price) * scale) if input_mint == SOL_MINT else Fraction(self.price) * scale
        order = {
            "requestId": "priced",
            "routePlan": [],
            "slippageBps": 50,
            "priceImpactPct": "0",
            **ScriptedQuoter.FEES,
            "inputMint": input_mint,
            "outputMint": output_mint,
            "inAmount": str(amount_raw),
            "outAmount": str(math.floor(amount_raw * rate)),
        }
        return parse_order(order)


async def insert_signal(
    pool: asyncpg.Pool,
    user_id: uuid.UUID | None,
    token: str = STEADY,
    *,
    strength: int = 3,
    signal_type: str = "Hypersurge",
    symbol: str | None = "STEADY",
) -> int:
    return await pool.fetchval(
        """INSERT INTO trading_signals (token_address, symbol, signal_type, signal_strength, user_id)
           VALUES ($1, $2, $3, $4, $5) RETURNING id""",
        token,
        symbol,
        signal_type,
        strength,
        user_id,
    )


async def wait_until(predicate: Callable[[], Awaitable[bool]], within_s: float = 20.0, step: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        if await predicate():
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


async def sol_balance(pool: asyncpg.Pool, wallet: str) -> Decimal:
    text = await pool.fetchval(
        "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, SOL_MINT
    )
    return Decimal(text) if text is not None else Decimal(0)


async def token_balance(pool: asyncpg.Pool, wallet: str, token: str) -> Decimal | None:
    text = await pool.fetchval(
        "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, token
    )
    return Decimal(text) if text is not None else None


def no_randomization(**overrides: Any) -> dict[str, Any]:
    """A trading config with deterministic sizing (the category max), plus overrides merged one level deep."""
    config: dict[str, Any] = {"positionCalculator": {"randomization": {"enabled": False}}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config
