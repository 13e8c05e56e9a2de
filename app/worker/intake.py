"""Signal intake: every committed signal becomes exactly one ``signal_executions`` row per agent of its owner.

The database is the queue (docs/worker.md "Intake"):

* ``LISTEN signal_created`` only wakes the worker up; it drains the table, so a notification lost while
  the worker was down or reconnecting costs latency, never a signal, and a poll every
  ``WORKER_SIGNAL_POLL_MS`` covers a dead listener.
* A signal is claimed oldest-first with ``FOR NO KEY UPDATE SKIP LOCKED`` and the claim is held for as
  long as it is processed: two workers never process the same signal, and a worker that dies releases
  it at once, so another (or the restarted one) picks it up and finishes the agents without a row.
* Each agent's buy commits its ``success`` row in the buy's own ledger transaction (unique on
  ``(signal_id, agent_id)``), so "traded" and "recorded as executed" cannot diverge; skipped and failed
  rows are written with ``ON CONFLICT DO NOTHING``. ``processed_at`` is set, in the claim's transaction,
  only once every agent of the owner has its row.
* Each claim is counted outside the claim's transaction; a signal that fails (or kills its worker)
  ``WORKER_SIGNAL_MAX_ATTEMPTS`` times is written off with ``failed`` rows instead of blocking the queue,
  and a failed attempt backs off exponentially.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from app.config import Settings
from app.db import Q
from app.logs import bind
from app.market.types import MarketError, TokenMetrics
from app.metrics import SIGNAL_PROCESSING_LATENCY, SIGNAL_PROCESSING_TOTAL, SIGNAL_TO_FILL_LATENCY, WORKER_LAG
from app.trading.config import AgentTradingConfig, InvalidConfig, load_config
from app.trading.eligibility import check_eligibility
from app.trading.units import SOL_MINT
from app.worker import components
from app.worker.execution import (
    AlreadyExecuted,
    BuyResult,
    BuySnapshot,
    ExecutionContext,
    TradeError,
    execute_buy,
)

log = logging.getLogger(__name__)

CHANNEL = "signal_created"
METRICS_TIMEOUT_S = 8.0
MAX_BACKOFF_S = 300.0
FAN_OUT_ROUNDS = 3  # agents created while a signal is processed are picked up in a further round
LISTENER_PING_S = 30.0

# Losing the database mid-signal is not the signal's fault: the attempt is abandoned and retried, and no
# agent gets a "failed" row for it.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


class SignalRow(msgspec.Struct, frozen=True):
    id: int
    token_address: str
    symbol: str | None
    signal_type: str
    signal_strength: int
    user_id: uuid.UUID | None
    created_at: datetime
    attempts: int
    last_error: str | None


class AgentRow(msgspec.Struct, frozen=True):
    """An agent of the signal's owner with the unlocked snapshot its buy is planned on (``BuySnapshot``)."""

    id: uuid.UUID
    user_id: uuid.UUID
    trading_mode: str
    automated_trading_simulation: bool
    automated_trading_live: bool
    trading_config: Any = None
    wallet_address: str | None = None
    wallet_type: str | None = None
    sol_balance: str | None = None
    position_exists: bool = False
    open_positions: int = 0
    agent_version: str | None = None
    sol_symbol: str | None = None
    token_balance_exists: bool = True

    def buy_snapshot(self) -> BuySnapshot:
        return BuySnapshot(
            agent_id=self.id,
            user_id=self.user_id,
            trading_mode=self.trading_mode,
            trading_config=self.trading_config,
            wallet_address=self.wallet_address,
            wallet_type=self.wallet_type,
            sol_balance=self.sol_balance,
            position_exists=self.position_exists,
            open_positions=self.open_positions,
            agent_version=self.agent_version,
            sol_symbol=self.sol_symbol,
            token_balance_exists=self.token_balance_exists,
        )


class Outcome(msgspec.Struct, frozen=True):
    agent_id: uuid.UUID
    status: str  # success | failed | skipped | duplicate (another writer's row already exists)
    error: str | None = None
    result: BuyResult | None = None


# --------------------------------------------------------------------------------------------------
# Eligibility (domain §3.3): failing here means "skipped"


def _config(agent: AgentRow) -> AgentTradingConfig | str:
    try:
        return load_config(agent.trading_config)
    except InvalidConfig as exc:
        return f"Failed to load trading configuration: {exc}"


def skip_reason(signal: SignalRow, agent: AgentRow, cfg: AgentTradingConfig | str, metrics: Any) -> str | None:
    """Why ``agent`` does not consider ``signal``, or None when it is eligible (spec order)."""
    automated = (
        agent.automated_trading_simulation if agent.trading_mode == "simulation" else agent.automated_trading_live
    )
    if not automated:
        return f"Automated trading is disabled for {agent.trading_mode} mode"
    if isinstance(cfg, str):
        return cfg
    reasons = check_eligibility(signal.signal_strength, signal.signal_type, signal.token_address, metrics, cfg)
    return "; ".join(reasons) if reasons else None


async def _token_metrics(ctx: ExecutionContext, token: str) -> TokenMetrics | None:
    """Metrics once per signal; any failure is "unknown" (agents with bounds then skip)."""
    if ctx.metrics is None:
        return None
    try:
        async with asyncio.timeout(METRICS_TIMEOUT_S):
            return await ctx.metrics.token_metrics(token)
    except (TimeoutError, MarketError) as exc:
        log.info("token metrics unavailable", extra={"fields": {"token": token, "error": str(exc)}})
        return None


# --------------------------------------------------------------------------------------------------
# One signal


async def _buy_for(ctx: ExecutionContext, conn: asyncpg.Connection, signal: SignalRow, agent: AgentRow) -> Outcome:
    with bind(agent_id=str(agent.id)):
        try:
            result = await execute_buy(
                ctx,
                agent_id=agent.id,
                token_address=signal.token_address,
                token_symbol=signal.symbol,
                signal_id=signal.id,
                signal_execution=(signal.id, agent.id),
                conn=conn,
                snapshot=agent.buy_snapshot(),
            )
        except AlreadyExecuted:
            return Outcome(agent.id, "duplicate")
        except TradeError as err:
            # A live SWAP_UNCONFIRMED is recorded as failed like any refusal: no buy exists yet. If its swap
            # lands later, settlement turns this row into the buy's success row (docs/worker.md §3.1).
            level = logging.WARNING if err.code in ("INSUFFICIENT_BALANCE", "SWAP_UNCONFIRMED") else logging.INFO
            log.log(level, "signal buy failed", extra={"fields": {"code": err.code, "error": err.message}})
            return Outcome(agent.id, "failed", err.message)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            log.exception("signal buy crashed")
            return Outcome(agent.id, "failed", f"Trade execution failed: {exc}")
    return Outcome(agent.id, "success", result=result)


async def _fan_out(ctx: ExecutionContext, signal: SignalRow, agents: list[AgentRow], concurrency: int) -> list[Outcome]:
    """Skip the ineligible agents, buy for the others on ``concurrency`` lanes.

    Each lane keeps one pooled connection for all its buys (no acquire/reset per agent: a fan-out to a
    thousand agents is bound by database round trips). Every buy runs to its own end (no cancellation
    halfway through a trade); a lost database then fails the attempt as a whole, and the agents without
    a committed row are retried.
    """
    configs = {agent.id: _config(agent) for agent in agents}
    needs_metrics = any(
        isinstance(cfg, AgentTradingConfig) and cfg.signals.has_metric_bounds for cfg in configs.values()
    )
    metrics = await _token_metrics(ctx, signal.token_address) if needs_metrics else None
    outcomes: list[Outcome] = []
    eligible: list[AgentRow] = []
    for agent in agents:
        reason = skip_reason(signal, agent, configs[agent.id], metrics)
        if reason is None:
            eligible.append(agent)
        else:
            outcomes.append(Outcome(agent.id, "skipped", reason))
    queue = iter(eligible)

    async def lane() -> list[Outcome]:
        done: list[Outcome] = []
        async with ctx.pool.acquire() as conn:
            for agent in queue:
                done.append(await _buy_for(ctx, conn, signal, agent))
        return done

    lanes = await asyncio.gather(*(lane() for _ in range(min(max(1, concurrency), len(eligible)))),
                                 return_exceptions=True)  # fmt: skip
    for result in lanes:
        if isinstance(result, BaseException):
            raise result
        outcomes += result
    return outcomes


async def _write_rows(conn: asyncpg.Connection, signal_id: int, outcomes: list[Outcome]) -> None:
    rows = [o for o in outcomes if o.status in ("failed", "skipped")]
    if rows:
        await Q.worker_insert_executions.execute(
            conn, signal_id, [o.agent_id for o in rows], [o.status for o in rows], [o.error for o in rows]
        )


def _observe(signal: SignalRow, outcomes: list[Outcome], picked_up: float) -> None:
    elapsed = time.perf_counter() - picked_up
    now = datetime.now(UTC)
    for outcome in outcomes:
        if outcome.status == "duplicate":
            continue
        SIGNAL_PROCESSING_TOTAL.labels(outcome.status).inc()
        SIGNAL_PROCESSING_LATENCY.labels(outcome.status).observe(elapsed)
        if outcome.status == "success":
            SIGNAL_TO_FILL_LATENCY.observe(max(0.0, (now - signal.created_at).total_seconds()))


async def _signal_agents(conn: asyncpg.Connection, signal: SignalRow) -> list[AgentRow]:
    """The owner's agents without a row yet, with their buy snapshots (one query for the fan-out)."""
    token = (signal.token_address or "").strip()
    return await Q.worker_signal_agents.fetch_all(conn, signal.id, signal.user_id, token, SOL_MINT, into=AgentRow)


async def process_signal(
    ctx: ExecutionContext,
    conn: asyncpg.Connection,
    signal: SignalRow,
    attempts: int,
    settings: Settings,
    agents: list[AgentRow] | None = None,
) -> list[Outcome]:
    """Give every agent of the owner its row, then mark the signal processed (on the claim's ``conn``).

    ``agents``: the first round's :func:`_signal_agents`, when the caller already read them.
    """
    picked_up = time.perf_counter()
    if signal.user_id is None:
        await Q.worker_finish_signal.fetch_val(conn, signal.id, None, attempts)
        return []
    if attempts > settings.worker_signal_max_attempts:
        return await _write_off(conn, signal, attempts)
    outcomes: list[Outcome] = []
    for _ in range(FAN_OUT_ROUNDS):
        agents = agents if agents is not None else await _signal_agents(conn, signal)
        batch = await _fan_out(ctx, signal, agents, settings.worker_concurrency) if agents else []
        await _write_rows(conn, signal.id, batch)
        outcomes += batch
        agents = None
        if await Q.worker_finish_signal.fetch_val(conn, signal.id, signal.user_id, attempts) is not None:
            _observe(signal, outcomes, picked_up)
            counts = {status: sum(o.status == status for o in outcomes) for status in ("success", "failed", "skipped")}
            log.info("signal processed", extra={"fields": {**counts, "attempt": attempts}})
            return outcomes
    raise RuntimeError(f"signal {signal.id}: agents kept appearing while it was processed")


async def _write_off(conn: asyncpg.Connection, signal: SignalRow, attempts: int) -> list[Outcome]:
    """A poison signal: record every missing agent as failed so the queue moves on."""
    agents = await _signal_agents(conn, signal)
    message = f"Signal processing abandoned after {attempts - 1} attempts: {signal.last_error or 'worker crashed'}"
    outcomes = [Outcome(agent.id, "failed", message) for agent in agents]
    await _write_rows(conn, signal.id, outcomes)
    await Q.worker_finish_signal.fetch_val(conn, signal.id, signal.user_id, attempts)
    log.error("signal written off", extra={"fields": {"signal_id": signal.id, "attempts": attempts - 1}})
    return outcomes


def backoff_seconds(attempts: int, base: float) -> float:
    return min(MAX_BACKOFF_S, base * 2 ** max(0, attempts - 1))


def _claimed(rows: list[dict[str, Any]]) -> tuple[SignalRow, list[AgentRow]]:
    """The signal and its agents from the rows of ``worker_claim_signal``."""
    first = rows[0]
    signal = SignalRow(
        id=first["signal_id"],
        token_address=first["signal_token_address"],
        symbol=first["signal_symbol"],
        signal_type=first["signal_type"],
        signal_strength=first["signal_strength"],
        user_id=first["signal_user_id"],
        created_at=first["signal_created_at"],
        attempts=first["signal_attempts"],
        last_error=first["signal_last_error"],
    )
    agents = [msgspec.convert(row, AgentRow) for row in rows if row["id"] is not None]
    return signal, agents


async def _process_claimed(
    ctx: ExecutionContext,
    conn: asyncpg.Connection,
    signal: SignalRow,
    agents: list[AgentRow],
    settings: Settings,
    worker_id: str,
) -> None:
    # A savepoint: a failed attempt drops its own skipped/failed rows, keeps the claim usable. The claim is
    # counted meanwhile (autocommit, on another connection, so a worker that dies mid-signal still counts).
    counted, saved = await asyncio.gather(
        Q.worker_count_claim.fetch_val(ctx.pool, signal.id, worker_id),
        conn.execute("SAVEPOINT attempt"),
        return_exceptions=True,
    )
    for outcome in (saved, counted):
        if isinstance(outcome, BaseException):
            raise outcome
    attempts: int = counted
    try:
        await process_signal(ctx, conn, signal, attempts, settings, agents)
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:
        delay = backoff_seconds(attempts, settings.worker_signal_retry_base_s)
        log.exception("signal processing failed", extra={"fields": {"attempts": attempts, "retry_in_s": delay}})
        await conn.execute("ROLLBACK TO SAVEPOINT attempt")
        await Q.worker_fail_signal.execute(conn, signal.id, attempts, f"{type(exc).__name__}: {exc}", delay)


async def drain_signals(
    ctx: ExecutionContext, settings: Settings, worker_id: str, stopping: asyncio.Event | None = None
) -> int:
    """Claim and process signals oldest-first until none is left (or the worker is stopping).

    Each claim is one transaction on one connection kept for the whole drain, driven with plain statements so
    that no round trip is spent on bookkeeping a signal's latency pays for: the claim reads the agents in the
    same statement, the savepoint is set while the claim is counted elsewhere, and one ``COMMIT; BEGIN`` ends
    a claim (its savepoint included) and opens the next.
    """
    processed = 0
    async with ctx.pool.acquire() as conn:
        await conn.execute("BEGIN")
        try:
            while stopping is None or not stopping.is_set():
                rows = await Q.worker_claim_signal.fetch_all(conn)
                if not rows:
                    break
                signal, agents = _claimed(rows)
                with bind(signal_id=signal.id):
                    await _process_claimed(ctx, conn, signal, agents, settings, worker_id)
                await conn.execute("COMMIT; BEGIN")
                processed += 1
            await conn.execute("COMMIT")
        finally:
            if not conn.is_closed() and conn.is_in_transaction():
                await conn.execute("ROLLBACK")
    return processed


# --------------------------------------------------------------------------------------------------
# Wake-up and the service loop


async def listen(
    database_url: str,
    channel: str,
    wake: asyncio.Event,
    stopping: asyncio.Event,
    on_connect: Callable[[], None] | None = None,
) -> None:
    """Keep a ``LISTEN channel`` connection open (reconnecting when it drops); each NOTIFY sets ``wake``.

    A fresh connection also sets ``wake``: whatever was notified while nobody listened gets drained.
    """
    while not stopping.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(database_url)
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, flag=lost: flag.set())
            await conn.add_listener(channel, lambda *_args: wake.set())
            wake.set()
            if on_connect is not None:
                on_connect()
            while not stopping.is_set() and not lost.is_set():
                try:
                    await asyncio.wait_for(_first(lost, stopping), timeout=LISTENER_PING_S)
                except TimeoutError:
                    await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5)  # half-open connections
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("listener connection lost", extra={"fields": {"channel": channel, "error": str(exc)}})
        finally:
            if conn is not None and not conn.is_closed():
                conn.terminate()
        wake.set()
        try:
            await asyncio.wait_for(stopping.wait(), timeout=1.0)
        except TimeoutError:
            pass


async def _first(*flags: asyncio.Event) -> None:
    waits = [asyncio.create_task(flag.wait()) for flag in flags]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


async def _update_lag(ctx: ExecutionContext) -> None:
    WORKER_LAG.set(await Q.worker_signal_lag.fetch_val(ctx.pool) or 0.0)


async def drain_on_notify(
    worker: Any, channel: str, drain: Callable[[], Awaitable[object]], *, name: str, logger: logging.Logger
) -> None:
    """Run ``drain`` on every NOTIFY on ``channel`` and at least every ``WORKER_SIGNAL_POLL_MS`` until the
    worker stops: the loop of the services whose queue is a table (signals, manual trade requests).

    Never let one bad claim stop the service: a failure is logged (``"<name> interrupted"`` when the
    database went away, ``"<name> failed"`` otherwise) and the poll interval paces the retries.
    """
    wake = asyncio.Event()
    listener = asyncio.create_task(listen(worker.database_url, channel, wake, worker.stopping))
    poll_s = worker.settings.worker_signal_poll_ms / 1000
    try:
        while not worker.stopping.is_set():
            wake.clear()
            try:
                await drain()
            except INFRASTRUCTURE_ERRORS as exc:
                logger.warning(f"{name} interrupted", extra={"fields": {"error": str(exc)}})
            except Exception:
                logger.exception(f"{name} failed")
            try:
                await asyncio.wait_for(_first(wake, worker.stopping), timeout=poll_s)
            except TimeoutError:
                pass
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def signal_intake_service(worker: Any) -> None:
    """Worker service: drain signals on every wake-up and at least every ``WORKER_SIGNAL_POLL_MS``."""
    ctx = await components.execution(worker)

    async def drain() -> None:
        await drain_signals(ctx, worker.settings, worker.worker_id, worker.stopping)
        await _update_lag(ctx)

    await drain_on_notify(worker, CHANNEL, drain, name="signal intake", logger=log)
