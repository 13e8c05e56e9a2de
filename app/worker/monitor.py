"""Price monitor: drives stop loss, take profit, stale-trade closes, DCA and rug write-offs (domain §9).

Every ``worker_price_poll_ms`` (never overlapping) one tick:

1. **Tracking set** — the tokens with an open position in the in-process position store
   (:mod:`app.worker.position_store`, loaded at start, then synced incrementally): recomputed every
   ``tracking_refresh_s`` (and the store reconciled in full at the end of that tick) whether or not the
   set is empty, and at once when a ``position_created`` / ``position_closed`` event arrives on
   ``nexgent_events`` (fix of §16.24: upstream never refreshed an empty set and missed positions opened
   by other processes).
2. **Prices** for exactly those tokens from the market's price source, plus SOL/USD. A price is used
   only if it is fresh (``observed_at`` within :func:`app.worker.prices.price_max_age`) and, when the
   source derives SOL prices from USD (Jupiter), only with a real and fresh SOL/USD: the reference's
   invented 100 USD (§16.21) has no equivalent here. Fresh prices are stored in ``token_prices`` and
   broadcast as one ``price_update_batch`` event.
3. **Evaluation** of the open positions of each priced token, in memory: the store first applies the
   rows and agent settings changed since the last tick, then each position is evaluated with
   :func:`app.trading.evaluate.evaluate_position` (stop loss → take profit → stale trade → DCA; the
   first that fires is the tick's action). A position whose last evaluation had nothing to do keeps its
   *quiet band* (:mod:`app.worker.quiet_band`) in the store and is skipped while the price stays inside
   the band and neither the row nor the agent's settings changed. The automated-trading flag is the one
   of the position's *wallet type* (fix of §16.22). Changed ``peak_price`` / ``current_stop_loss_percentage`` /
   ``last_stop_loss_update`` / ``lowest_price`` are written in one conditional batch UPDATE (nothing is
   written for an unchanged position; a row modified since it was read is left alone and its action
   skipped until the next tick). The stop column is ``numeric(5,2)``: the evaluator stores at most
   999.99 but triggers on the true level, so a >1000 % winner keeps its automation (fix of §16.3).
4. **Actions** go to the execution path (:mod:`app.worker.execution`) as background tasks, at most
   ``worker_concurrency`` at once and never two for one position in this process (in-flight set).
   Across processes the execution functions lock agent → balances → position and re-check the state
   the decision was made on (``expected_updated_at`` / levels hit / DCA count), so a second monitor's
   identical decision is a no-op.
5. **Rug check** of tracked tokens the source did not price: the liquidity checker (DexScreener) is
   asked at most every ``rug_check_interval_s`` per token; a failed lookup is *unknown*, never a rug.
   A token judged rug-pulled on two consecutive checks is written off (``execute_burn``) for every
   position whose automation is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
import asyncpg
import msgspec

from app.db import Q, transaction
from app.events import CHANNEL, publish
from app.logs import bind
from app.market.types import LiquidityChecker, MarketError, PriceSource, SolUsd, SolUsdSource, TokenPrice
from app.metrics import (
    DCA_TRIGGER_TOTAL,
    ERRORS_TOTAL,
    OPEN_POSITIONS,
    POSITIONS_EVALUATED_TOTAL,
    PRICE_FEED_STALENESS,
    PRICE_MONITOR_TICK_LATENCY,
    PRICE_UPDATE_LATENCY,
    PRICE_UPDATE_TOTAL,
    PRICES_REJECTED_TOTAL,
    RUG_BURN_TRIGGER_TOTAL,
    STALE_TRADE_TRIGGER_TOTAL,
    STOP_LOSS_TRIGGER_TOTAL,
    TAKE_PROFIT_TRIGGER_TOTAL,
)
from app.trading.config import AgentTradingConfig, InvalidConfig, load_config
from app.trading.errors import TradeError
from app.trading.evaluate import Action, DcaBuy, Hold, SellAll, SellPartial, evaluate_position
from app.trading.position import PositionState
from app.trading.rug import is_rug_pulled
from app.worker import execution
from app.worker.leader import lead
from app.worker.position_store import PositionStore, Row
from app.worker.prices import normalize_price, price_max_age, sol_usd_max_age, sol_usd_row, store_prices
from app.worker.quiet_band import quiet_band

log = logging.getLogger(__name__)

# Sources whose SOL price is their USD price divided by SOL/USD: without a fresh SOL/USD they price nothing.
USD_DERIVED_SOURCES = frozenset({"jupiter"})
# A rug verdict must repeat on consecutive checks before an irreversible write-off.
RUG_CONFIRMATIONS = 2
# After a DCA buy failed for lack of SOL, stop retrying it for a minute (upstream's dca_suspend key).
DCA_SUSPEND_S = 60.0
# Events that change which tokens have open positions.
TRACKING_EVENTS = frozenset({"position_created", "position_closed"})
# NOTIFY payloads are limited to 8000 bytes; price batches are split below this.
MAX_EVENT_BYTES = 7000
# How long shutdown waits for trades already submitted.
DRAIN_TIMEOUT_S = 30.0

_event_decoder = msgspec.json.Decoder()
_size_encoder = msgspec.json.Encoder(decimal_format="number")


class MonitorMarket(Protocol):
    price_source: PriceSource
    sol_usd: SolUsdSource
    liquidity: LiquidityChecker


@dataclass
class TickReport:
    """What one tick did (for tests, logs and the benchmark)."""

    tracked: int = 0
    priced: dict[str, Decimal] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    unpriced: list[str] = field(default_factory=list)
    evaluated: int = 0
    quiet: int = 0  # positions of the priced tokens skipped, inside their quiet band
    evaluation_s: float = 0.0  # the in-memory pass over the priced tokens' positions (decide)
    persisted: int = 0
    actions: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    rug_pulled: list[str] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def position_updated_event(row: dict[str, Any]) -> dict[str, Any]:
    """``position_updated`` event data, the shape the execution path publishes (§13.4)."""
    return {
        "agentId": row["agent_id"],
        "walletAddress": row["wallet_address"],
        "position": execution.position_payload(row),
    }


def price_update_chunks(prices: Sequence[TokenPrice]) -> list[list[dict[str, Any]]]:
    """``price_update_batch`` updates split so each NOTIFY payload stays under the 8 kB limit.

    ``tokenAddress`` is lower-cased as the reference's clients expect (§9.2); everything else in the
    engine keys tokens by their exact, case-sensitive mint (§16.25).
    """
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for price in prices:
        update = {"tokenAddress": price.mint.lower(), "price": price.price_sol, "priceUsd": price.price_usd}
        item = len(_size_encoder.encode(update)) + 1
        if chunks[-1] and size + item > MAX_EVENT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(update)
        size += item
    return [chunk for chunk in chunks if chunk]


class PriceMonitor:
    """One process's price monitor. ``now`` is the wall clock the decisions use (injectable for replay
    tests); ``clock`` is the monotonic clock of the refresh/rug-check timers."""

    def __init__(
        self,
        ctx: Any,
        market: MonitorMarket,
        *,
        now: Callable[[], datetime] = _utcnow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.pool: asyncpg.Pool = ctx.pool
        self.market = market
        self.now = now
        self.clock = clock
        self.tracked: set[str] = set()
        self.in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._tracking_dirty = True
        self._refreshed_at = -math.inf
        self._reconcile_due = False
        self._tick_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max(1, self.settings.worker_concurrency))
        self._configs: dict[uuid.UUID, tuple[Any, AgentTradingConfig | None]] = {}
        self._dca_suspended_until: dict[uuid.UUID, float] = {}
        self._rug_checked_at: dict[str, float] = {}
        self._rug_strikes: dict[str, int] = {}
        self.store = PositionStore()
        self._listener: asyncpg.Connection | None = None

    # --- tracking set -------------------------------------------------------------------------------

    def on_event(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """NOTIFY callback: a position opened or closed somewhere ⇒ re-read the tracking set next tick."""
        try:
            event = _event_decoder.decode(payload)
        except msgspec.DecodeError:
            return
        if not isinstance(event, dict) or event.get("type") not in TRACKING_EVENTS:
            return
        self._tracking_dirty = True
        data = event.get("data")
        position = data.get("position", data) if isinstance(data, dict) else None
        if event["type"] == "position_created" and isinstance(position, dict) and position.get("tokenAddress"):
            self.tracked.add(str(position["tokenAddress"]))

    async def refresh_tracking(self) -> None:
        """Recompute the tracking set from the store, synced first. On the periodic refresh the store is also
        reconciled in full, at the end of the tick (:meth:`tick`), so that read never delays a decision."""
        if self.store.loaded and self.clock() - self._refreshed_at >= self.settings.tracking_refresh_s:
            self._reconcile_due = True
        await self.store.sync(self.pool)
        self.tracked = set(self.store.open_counts())
        OPEN_POSITIONS.set(len(self.store.rows))
        now = self.clock()
        self._dca_suspended_until = {pid: t for pid, t in self._dca_suspended_until.items() if t > now}
        self._tracking_dirty = False
        self._refreshed_at = self.clock()
        live = self.tracked
        for mint in [m for m in self._rug_checked_at if m not in live]:
            self._rug_checked_at.pop(mint, None)
            self._rug_strikes.pop(mint, None)

    async def _maybe_refresh_tracking(self) -> None:
        if self._tracking_dirty or self.clock() - self._refreshed_at >= self.settings.tracking_refresh_s:
            await self.refresh_tracking()

    async def start_listening(self) -> None:
        """(Re)open the LISTEN connection for position events; without it the periodic refresh still runs."""
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(self.ctx.database_url)
            await conn.add_listener(CHANNEL, self.on_event)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("price monitor: event listener unavailable", extra={"fields": {"error": str(exc)}})
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
            return
        self._listener = conn
        # Events may have been missed while not listening.
        self._tracking_dirty = True

    async def stop_listening(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None

    # --- one tick ------------------------------------------------------------------------------------

    async def tick(self) -> TickReport:
        async with self._tick_lock:
            report = await self._tick()
            if self._reconcile_due:
                self._reconcile_due = False
                await self.store.reconcile(self.pool)
            return report

    async def _tick(self) -> TickReport:
        report = TickReport()
        await self._maybe_refresh_tracking()
        tracked = sorted(self.tracked)
        report.tracked = len(tracked)
        if not tracked:
            return report
        sol = await self._fetch_sol_usd()
        fetched = await self._fetch_prices(tracked)
        now = self.now()
        sol_ok = sol is not None and sol.price > 0 and now - sol.observed_at <= sol_usd_max_age(self.settings)
        fresh = self._screen(fetched or {}, set(tracked), sol_ok, now, report)
        await self._store_and_broadcast(fresh, sol)
        if fresh:
            await self._evaluate(fresh, now, report)
        usd_blind = self.market.price_source.name in USD_DERIVED_SOURCES and not sol_ok
        # Without an answer from the source (or without the SOL/USD it needs) a missing price says
        # nothing about the token; only a real "not priced" leads to a liquidity check.
        if fetched is not None and not usd_blind:
            report.unpriced = [mint for mint in tracked if mint not in fetched]
            await self._check_rugs(report.unpriced, report)
        return report

    async def _fetch_sol_usd(self) -> SolUsd | None:
        try:
            sol = await self.market.sol_usd.sol_usd()
        except (MarketError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("price monitor: SOL/USD unavailable", extra={"fields": {"error": str(exc)}})
            return None
        if sol is not None:
            PRICE_FEED_STALENESS.labels("sol_usd").set(max(0.0, (self.now() - sol.observed_at).total_seconds()))
        return sol

    async def _fetch_prices(self, mints: list[str]) -> dict[str, TokenPrice] | None:
        source = self.market.price_source
        started = time.perf_counter()
        try:
            prices = await source.prices(mints)
        except (MarketError, aiohttp.ClientError, TimeoutError) as exc:
            PRICE_UPDATE_TOTAL.labels(source.name, "error").inc()
            ERRORS_TOTAL.labels("price_feed", getattr(exc, "code", type(exc).__name__)).inc()
            log.warning("price monitor: price fetch failed", extra={"fields": {"error": str(exc)}})
            return None
        PRICE_UPDATE_LATENCY.labels(source.name).observe(time.perf_counter() - started)
        PRICE_UPDATE_TOTAL.labels(source.name, "success" if prices else "empty").inc()
        if prices:
            newest = max(p.observed_at for p in prices.values())
            PRICE_FEED_STALENESS.labels(source.name).set(max(0.0, (self.now() - newest).total_seconds()))
        return prices

    def _screen(
        self, fetched: dict[str, TokenPrice], tracked: set[str], sol_ok: bool, now: datetime, report: TickReport
    ) -> dict[str, TokenPrice]:
        """Prices allowed to drive trades this tick; the others are counted and reported with a reason."""
        max_age = price_max_age(self.settings)
        fresh: dict[str, TokenPrice] = {}
        for mint, raw in fetched.items():
            if mint not in tracked:
                continue
            price = normalize_price(raw)
            if price is None:
                reason = "invalid"
            elif now - price.observed_at > max_age:
                reason = "stale"
            elif price.source in USD_DERIVED_SOURCES and not sol_ok:
                reason = "no_sol_usd"
            else:
                fresh[mint] = price
                report.priced[mint] = price.price_sol
                continue
            report.rejected[mint] = reason
            PRICES_REJECTED_TOTAL.labels(reason).inc()
        return fresh

    async def _store_and_broadcast(self, fresh: dict[str, TokenPrice], sol: SolUsd | None) -> None:
        rows = list(fresh.values())
        sol_row = sol_usd_row(sol) if sol is not None else None
        if sol_row is not None:
            rows.append(sol_row)
        if not rows:
            return
        stamp = self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        async with transaction(self.pool) as conn:
            await store_prices(conn, rows)
            for chunk in price_update_chunks(list(fresh.values())):
                await publish(conn, "*", "price_update_batch", {"updates": chunk, "timestamp": stamp})

    # --- evaluation ----------------------------------------------------------------------------------

    def _config(self, agent_id: uuid.UUID, raw: Any) -> AgentTradingConfig | None:
        """The agent's effective config, parsed again only when its stored JSON changed."""
        cached = self._configs.get(agent_id)
        if cached is not None and cached[0] == raw:
            return cached[1]
        cfg: AgentTradingConfig | None
        try:
            cfg = load_config(raw)
        except InvalidConfig as exc:
            cfg = None
            ERRORS_TOTAL.labels("monitor", "INVALID_CONFIG").inc()
            log.error(
                "price monitor: agent config invalid, its positions are not managed",
                extra={"fields": {"agent_id": str(agent_id), "errors": getattr(exc, "errors", str(exc))}},
            )
        self._configs[agent_id] = (raw, cfg)
        return cfg

    async def _evaluate(self, fresh: dict[str, TokenPrice], now: datetime, report: TickReport) -> None:
        await self.store.sync(self.pool)
        prices = {mint: fresh[mint].price_sol for mint in fresh}
        started = time.perf_counter()
        decisions, report.evaluated, report.quiet = self.decide(prices, now)
        report.evaluation_s = time.perf_counter() - started
        PRICE_MONITOR_TICK_LATENCY.observe(report.evaluation_s)
        POSITIONS_EVALUATED_TOTAL.inc(report.evaluated)
        written = await self._persist([(row, action) for row, action in decisions if action.update.changed], now)
        report.persisted = len(written)
        for row, action in decisions:
            if isinstance(action, Hold):
                continue
            if action.update.changed and row["id"] not in written:
                continue  # the row moved under us: decide again on the next tick with fresh state
            self._dispatch(row, action, written.get(row["id"], row["updated_at"]), report)

    def decide(self, prices: dict[str, Decimal], now: datetime) -> tuple[list[tuple[Row, Action]], int, int]:
        """Evaluate, in memory, the store's positions of the priced tokens that are not inside their quiet band.

        A position with nothing to do gets its band (:mod:`app.worker.quiet_band`), so the next ticks skip
        it while the price, the row and the agent's settings stay put. Returns the decisions with something
        to write or do, how many positions were evaluated and how many were skipped as quiet.
        """
        decisions: list[tuple[Row, Action]] = []
        evaluated = quiet = 0
        resolved: dict[uuid.UUID, AgentTradingConfig | None] = {}
        for mint in sorted(prices):
            book = self.store.tokens.get(mint)
            if book is None:
                continue
            price = prices[mint]
            due = book.due(price, now)
            quiet += len(book.rows) - len(due)
            for row in sorted((book.rows[pid] for pid in due), key=lambda r: (r["created_at"], r["id"])):
                if self.in_flight and row["id"] in self.in_flight:
                    continue
                agent_id = row["agent_id"]
                agent = self.store.agents.get(agent_id)
                if agent is None or not agent.automated(row["wallet_type"]):
                    continue
                if agent_id not in resolved:
                    resolved[agent_id] = self._config(agent_id, agent.trading_config)
                cfg = resolved[agent_id]
                if cfg is None:
                    continue
                evaluated += 1
                state = msgspec.convert(row, PositionState)
                action = evaluate_position(state, price, cfg, now)
                if isinstance(action, Hold) and not action.update.changed:
                    self.store.set_band(row, quiet_band(state, price, cfg, now))
                    continue
                decisions.append((row, action))
        return decisions, evaluated, quiet

    async def _persist(self, changed: list[tuple[Row, Action]], now: datetime) -> dict[uuid.UUID, datetime]:
        """Write the changed tracking fields (into the store too); returns the new ``updated_at`` of each row
        written."""
        if not changed:
            return {}
        updates = [(row, action.update) for row, action in changed]
        async with transaction(self.pool) as conn:
            rows = await Q.monitor_update_tracking.fetch_all(
                conn,
                [row["id"] for row, _ in updates],
                [row["updated_at"] for row, _ in updates],
                [u.stop_loss_changed for _, u in updates],
                [u.peak_price for _, u in updates],
                [u.current_stop_loss_percentage for _, u in updates],
                [u.lowest_changed for _, u in updates],
                [u.lowest_price for _, u in updates],
                now,
            )
            for row in rows:
                await publish(conn, row["agent_id"], "position_updated", position_updated_event(row))
        for row in rows:
            self.store.upsert(dict(row))
        return {row["id"]: row["updated_at"] for row in rows}

    def _dispatch(self, row: dict[str, Any], action: Action, updated_at: datetime, report: TickReport) -> None:
        ctx, position_id = self.ctx, row["id"]
        call: Callable[[], Awaitable[Any]]
        if isinstance(action, SellAll):
            kind = action.reason
            call = lambda: execution.execute_full_sale(  # noqa: E731
                ctx,
                agent_id=row["agent_id"],
                position_id=position_id,
                reason=action.reason,
                expected_updated_at=updated_at,
            )
            (STOP_LOSS_TRIGGER_TOTAL if kind == "stop_loss" else STALE_TRADE_TRIGGER_TOTAL).inc()
        elif isinstance(action, SellPartial):
            kind, decision = "take_profit", action.decision
            call = lambda: execution.execute_take_profit_sale(  # noqa: E731
                ctx,
                position_id=position_id,
                sell_amount=decision.sell_amount,
                levels_executed=decision.levels_executed,
                expected_levels_hit=row["take_profit_levels_hit"],
                activate_moon_bag=decision.activate_moon_bag,
                moon_bag_amount=decision.moon_bag_amount,
            )
            TAKE_PROFIT_TRIGGER_TOTAL.inc()
        elif isinstance(action, DcaBuy):
            if self._dca_suspended_until.get(position_id, -math.inf) > self.clock():
                return
            kind, amount = "dca", action.decision.buy_amount_sol
            call = lambda: execution.execute_dca_buy(  # noqa: E731
                ctx, position_id=position_id, buy_amount_sol=amount, expected_dca_count=row["dca_count"]
            )
            DCA_TRIGGER_TOTAL.inc()
        else:
            return
        if self._spawn(row, kind, call):
            report.actions.append((position_id, kind))

    def _spawn(self, row: dict[str, Any], kind: str, call: Callable[[], Awaitable[Any]]) -> bool:
        position_id = row["id"]
        if position_id in self.in_flight:
            return False
        task = asyncio.create_task(self._run_action(row, kind, call), name=f"{kind}:{position_id}")
        self.in_flight[position_id] = task
        task.add_done_callback(lambda _t: self.in_flight.pop(position_id, None))
        return True

    async def _run_action(self, row: dict[str, Any], kind: str, call: Callable[[], Awaitable[Any]]) -> None:
        position_id = row["id"]
        async with self._slots:
            with bind(agent_id=str(row["agent_id"]), position_id=str(position_id), action=kind):
                try:
                    result = await call()
                except TradeError as exc:
                    if kind == "dca" and exc.code == "INSUFFICIENT_BALANCE":
                        self._dca_suspended_until[position_id] = self.clock() + DCA_SUSPEND_S
                    ERRORS_TOTAL.labels("monitor", exc.code).inc()
                    log.info(
                        "price monitor: action not executed", extra={"fields": {"code": exc.code, "error": exc.message}}
                    )
                    return
                except Exception as exc:
                    # A failing trade must never stop the monitor; the next tick decides again.
                    ERRORS_TOTAL.labels("monitor", "UNEXPECTED").inc()
                    log.error("price monitor: action failed", exc_info=exc)
                    return
                outcome = getattr(result, "outcome", "executed")
                if outcome == "executed":
                    self._dca_suspended_until.pop(position_id, None)
                # "changed" / "already_closed": another tick or worker got there first; nothing was traded.
                log.info("price monitor: action done", extra={"fields": {"outcome": outcome}})

    async def drain(self, wait_s: float | None = None) -> None:
        """Wait for every action already handed to execution."""
        tasks = list(self.in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)

    # --- rug pulls -----------------------------------------------------------------------------------

    async def _check_rugs(self, unpriced: list[str], report: TickReport) -> None:
        missing = set(unpriced)
        for mint in [m for m in self._rug_strikes if m not in missing]:
            self._rug_strikes.pop(mint, None)  # priced again: start over
        now = self.clock()
        due = [
            m for m in unpriced if now - self._rug_checked_at.get(m, -math.inf) >= self.settings.rug_check_interval_s
        ]
        if not due:
            return
        for mint in due:
            self._rug_checked_at[mint] = now
        try:
            liquidity = await self.market.liquidity.sol_pair_liquidity(due)
        except (MarketError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("price monitor: liquidity check failed", extra={"fields": {"error": str(exc)}})
            return
        confirmed = []
        for mint in due:
            verdict = is_rug_pulled(True, liquidity.get(mint))
            if verdict is None:
                continue  # unknown: neither a strike nor a reprieve
            if not verdict:
                self._rug_strikes.pop(mint, None)
                continue
            self._rug_strikes[mint] = self._rug_strikes.get(mint, 0) + 1
            if self._rug_strikes[mint] >= RUG_CONFIRMATIONS:
                confirmed.append(mint)
        if not confirmed:
            return
        report.rug_pulled = confirmed
        log.warning("price monitor: tokens rug-pulled", extra={"fields": {"mints": confirmed}})
        for row in await Q.monitor_open_positions.fetch_all(self.pool, confirmed):
            if not row["automated"]:
                continue
            position_id = row["id"]
            if self._spawn(row, "burn", lambda pid=position_id: execution.execute_burn(self.ctx, position_id=pid)):
                RUG_BURN_TRIGGER_TOTAL.inc()
                report.actions.append((position_id, "burn"))

    # --- service loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Tick every price poll until ``stop`` (default: the worker's stopping event) is set."""
        stop = stop or self.ctx.stopping
        poll_s = self.settings.worker_price_poll_ms / 1000
        try:
            while not stop.is_set():
                started = time.monotonic()
                await self.start_listening()
                try:
                    await self.tick()
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    # The database being away must not kill the loop; the pool reconnects.
                    ERRORS_TOTAL.labels("monitor", "DB_ERROR").inc()
                    log.warning("price monitor tick failed", extra={"fields": {"error": str(exc)}})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, poll_s - (time.monotonic() - started)))
        finally:
            await self.stop_listening()
            await self.drain(wait_s=DRAIN_TIMEOUT_S)


async def price_monitor_service(ctx: Any) -> None:
    """The price monitor of the elected worker (docs/position-management.md, "One monitor per database").

    A fresh :class:`PriceMonitor` per term: a new leader starts from the database, not from what this process
    remembered while another worker was trading the positions."""
    from app.worker.components import get_market

    market = await get_market(ctx)

    async def monitor(stop: asyncio.Event) -> None:
        await PriceMonitor(ctx, market).run(stop)

    retry_s = ctx.settings.monitor_leader_retry_s
    await lead(ctx, "price_monitor", monitor, retry_s=retry_s, check_s=retry_s)


__all__ = [
    "RUG_CONFIRMATIONS",
    "USD_DERIVED_SOURCES",
    "MonitorMarket",
    "PriceMonitor",
    "TickReport",
    "position_updated_event",
    "price_monitor_service",
    "price_update_chunks",
]
