"""Drive the real price monitor against a manually stepped replay market and the real execution path.

A :class:`Harness` owns a test clock, a manual :class:`ReplayMarket` whose observations are stamped with
that clock, and a worker context whose shared market is that replay (so buys, sales and the monitor see
the same prices). ``await h.step()`` moves the replay to its next timestamp, advances the clock by the
same amount, runs one monitor tick and waits for the trades it started.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from app.config import Settings
from app.market.replay import ReplayMarket, SimulatedQuoter
from app.market.types import SOL_MINT
from app.worker.execution import execute_buy
from app.worker.main import WorkerContext
from app.worker.monitor import PriceMonitor, TickReport
from tests.factories import create_agent, create_user, deposit_sol

SOL_USD = "150"


class Clock:
    """Wall clock for decisions and the monotonic clock of the monitor's timers, moved together."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)
        self.elapsed = 0.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.elapsed

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.elapsed += seconds


class SlowQuoter:
    """The simulated venue answering slowly, so racing decisions overlap in time."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    async def quote(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.delay_s)
        return await self.inner.quote(*args, **kwargs)


class ReplayBundle:
    """The attributes of ``app.market.Market`` over one manual replay (no network)."""

    def __init__(self, replay: ReplayMarket, price_source: Any = None, sol_usd: Any = None) -> None:
        self.replay = replay
        self.price_source = price_source or replay
        self.sol_usd = sol_usd or replay
        self.liquidity = self.metrics = replay
        self.quoter = SimulatedQuoter(replay)
        self.executor = self.metis = self.rpc = None

    async def aclose(self) -> None:
        return None


def path_records(mint: str, prices: list[str], *, symbol: str = "TKN", step_s: int = 5) -> list[dict[str, Any]]:
    """One token's price path (SOL per token, no liquidity data ⇒ fills without price impact)."""
    rows: list[dict[str, Any]] = [{"t": 0, "mint": SOL_MINT, "priceUsd": SOL_USD}]
    for i, price in enumerate(prices):
        row: dict[str, Any] = {"t": i * step_s, "mint": mint, "priceSol": price}
        if i == 0:
            row.update(symbol=symbol, decimals=6)
        rows.append(row)
    return rows


def new_mint(tag: str) -> str:
    return (tag + uuid.uuid4().hex)[:44].ljust(32, "1")


class Harness:
    def __init__(
        self,
        pool: asyncpg.Pool,
        database_url: str,
        settings: Settings,
        records: list[dict[str, Any]],
        *,
        market_lag_s: float = 0.0,
        clock: Clock | None = None,
        bundle: Callable[[ReplayMarket], ReplayBundle] | None = None,
        worker_id: str = "monitor-test",
        **overrides: Any,
    ) -> None:
        self.pool = pool
        self.clock = clock or Clock()
        self.settings = msgspec.structs.replace(settings, **{"rug_check_interval_s": 0.0, **overrides})
        self.market_lag_s = market_lag_s
        self.replay = ReplayMarket(
            records, manual=True, loop=False, now=lambda: self.clock() - timedelta(seconds=self.market_lag_s)
        )
        self.market = bundle(self.replay) if bundle else ReplayBundle(self.replay)
        self.ctx = WorkerContext(settings=self.settings, pool=pool, database_url=database_url, worker_id=worker_id)
        self.ctx.components["market"] = self.market
        self.monitor = PriceMonitor(self.ctx, self.market, now=self.clock, clock=self.clock.monotonic)

    def twin(self, worker_id: str) -> PriceMonitor:
        """A second monitor (another worker process) on the same market and clock."""
        ctx = WorkerContext(
            settings=self.settings, pool=self.pool, database_url=self.ctx.database_url, worker_id=worker_id
        )
        ctx.components["market"] = self.market
        return PriceMonitor(ctx, self.market, now=self.clock, clock=self.clock.monotonic)

    async def tick(self) -> TickReport:
        report = await self.monitor.tick()
        await self.monitor.drain()
        return report

    async def step(self, n: int = 1) -> TickReport:
        before = self.replay.offset
        self.replay.step(n)
        self.clock.advance(float(self.replay.offset - before))
        return await self.tick()

    async def agent(self, trading_config: dict | None = None, deposit: str = "10") -> tuple[uuid.UUID, str]:
        user = await create_user(self.pool)
        agent_id, wallet = await create_agent(self.pool, user, trading_config=trading_config)
        await deposit_sol(self.pool, agent_id, wallet, deposit)
        return agent_id, wallet

    async def buy(self, agent_id: uuid.UUID, mint: str, size: str = "1") -> uuid.UUID:
        result = await execute_buy(self.ctx, agent_id=agent_id, token_address=mint, position_size=Decimal(size))
        assert result.position_id is not None
        return result.position_id


async def position(pool: asyncpg.Pool, position_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", position_id)


async def history(pool: asyncpg.Pool, position_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM agent_historical_swaps WHERE position_id = $1", position_id)


async def trades(pool: asyncpg.Pool, position_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT * FROM agent_transactions WHERE position_id = $1
           ORDER BY transaction_time, created_at""",
        position_id,
    )
