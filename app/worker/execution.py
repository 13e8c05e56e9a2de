"""THE execution path: every buy, full sale, take-profit sale, DCA buy and rug burn goes through here.

Shape of every trade (docs/worker.md "Execution"):

1. **Plan without locks**: read a snapshot (agent, wallet, balances, position), validate in the
   reference's order, size the trade, fetch decimals and a quote (network I/O never runs inside a
   database transaction, except the executor's own call, see 3).
2. **One transaction, one lock order**: ``agents`` row ``FOR UPDATE`` → the wallet's balance rows
   ``FOR UPDATE`` ordered by ``token_address`` → the position row ``FOR UPDATE``. Every writer of a
   wallet's ledger takes the agent lock first, so two trades of one agent are serialized and a
   balance is never computed from a stale copy (fixes §16.9/§16.10).
3. **Re-check under the locks** what the plan assumed (balance still covers the debit and keeps the
   minimum, position absent or unchanged, cap, signal not yet executed). A changed world means
   re-planning from step 1 (at most :data:`STALE_RETRIES` times), or, when the caller pinned the
   state it decided on (``expected_*``), a clear "changed"/"already closed" result and no trade.
   Only then does the wallet's :class:`~app.worker.executor.SwapExecutor` execute the quote, so a
   refused re-check never leaves a fill behind.
4. **Record the fill** (:func:`record_buy_fill`, :func:`record_sale_fill`, …) in that same
   transaction: the ``agent_transactions`` row, the balances (the single ledger rule of
   :mod:`app.trading.ledger`), the position insert/update/delete, the history row of a close
   (§16.12), the ``signal_executions`` row of a signal-driven buy, and the NOTIFY events. Either all
   of it commits or none of it does.

SOL/USD only values rows in USD. When it is unknown the trade still happens (a stop loss must never
wait for a display currency): ``transaction_value_usd`` / ``profit_loss_usd`` are recorded as 0 and
``sol_usd_price`` stays NULL, which marks the row as "USD unknown". No price is ever invented.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from functools import partial
from typing import Any, Literal, TypeVar

import asyncpg
import msgspec

from app import events
from app.config import Settings
from app.db import Q, transaction
from app.live.services import build_live_executor
from app.market.types import MarketError, MetricsSource, Quote, Quoter, SolUsdSource
from app.metrics import TRADE_EXECUTION_LATENCY, TRADE_EXECUTION_TOTAL
from app.trading._num import ZERO, plain
from app.trading.config import AgentTradingConfig, InvalidConfig, load_config
from app.trading.errors import TradeError
from app.trading.fees import extract_jupiter_fees, swap_usd_value
from app.trading.ledger import (
    AMOUNT_18,
    PCT_4,
    SOL_8,
    BalanceError,
    apply_deltas,
    balance_deltas,
    fits_numeric,
    format_balance,
    parse_balance,
    quantize,
    split_fee_lamports,
)
from app.trading.position import PositionState
from app.trading.rug import burn_amount
from app.trading.sizing import (
    impact_requires_retry,
    price_impact_error,
    price_impact_retry_sizes,
    resolve_buy_size,
    retry_impact_accepted,
)
from app.trading.trades import (
    BuyFill,
    HistoryFigures,
    SellFill,
    buy_fill,
    closing_history,
    net_sol_proceeds,
    plan_buy,
    plan_dca_buy,
    plan_full_sale,
    plan_take_profit_sale,
    sell_fill,
)
from app.trading.units import LAMPORTS_PER_SOL, SOL_DECIMALS, SOL_MINT, sol_to_lamports, to_raw
from app.worker.executor import Fill, QuotingSwapExecutor, Side, SimulationExecutor, SwapExecutor, fill_at_quote

__all__ = [
    "AlreadyExecuted",
    "BurnResult",
    "BuyIntent",
    "BuyResult",
    "DcaResult",
    "ExecutionContext",
    "SaleResult",
    "TakeProfitIntent",
    "TakeProfitResult",
    "TradeError",
    "UpstreamError",
    "build_execution_context",
    "clean_symbol",
    "execute_burn",
    "execute_buy",
    "execute_dca_buy",
    "execute_full_sale",
    "execute_take_profit_sale",
    "link_settled_signal_buy",
    "record_burn",
    "record_buy_fill",
    "record_dca_fill",
    "record_sale_fill",
    "record_take_profit_fill",
]

log = logging.getLogger(__name__)

MAX_OPEN_POSITIONS = 25  # the reference's hard cap, counted over all wallets of the agent (§16.26)
CLOSE_REASONS = ("manual", "stop_loss", "take_profit", "stale_trade")
RUG_CLOSE_REASON = "rug_pull"
CHANGE_PERCENT_FLOOR = Decimal("-999999.9999")  # change_percent is numeric(10,4)
STALE_RETRIES = 3
QUOTE_TIMEOUT_S = 10.0
DECIMALS_TIMEOUT_S = 5.0
SYMBOL_MAX = 20  # token_symbol / input_symbol / output_symbol are varchar(20) (§16.4)
RESERVE_MARGIN_LAMPORTS = 10  # covers the 8-decimal rounding of the protocol fee when fitting a buy
DEFAULT_SYMBOL = "TOKEN"

Outcome = Literal["executed", "already_closed", "changed"]
InTransaction = Callable[[asyncpg.Connection, Any], Awaitable[None]]
DecimalsLookup = Callable[[str], Awaitable[int]]
LockedBalances = Mapping[str, tuple[str, Decimal]]  # mint → (symbol, balance) of the rows locked FOR UPDATE
R = TypeVar("R", bound="BuyResult | _PositionResult")  # what a trade returns


class UpstreamError(TradeError):
    """The market or venue failed (quote, decimals, execute): not the caller's fault (HTTP 502)."""

    def __init__(self, code: str, message: str, cause: str | None = None) -> None:
        super().__init__(code, message)
        self.cause = cause


class AlreadyExecuted(TradeError):
    """This (signal, agent) already has its execution row: nothing was traded."""

    def __init__(self, signal_id: int, agent_id: uuid.UUID) -> None:
        super().__init__("SIGNAL_ALREADY_EXECUTED", f"Signal {signal_id} was already executed for agent {agent_id}")


class StalePlan(Exception):
    """What the plan assumed no longer holds under the locks: plan again (the trade functions do, at most
    ``STALE_RETRIES`` times; nothing was written)."""


# --------------------------------------------------------------------------------------------------
# Context


@dataclass
class ExecutionContext:
    """Everything a trade needs; built once per process (:func:`build_execution_context`).

    ``quoter``/``executor`` quote and fill simulation wallets, which take token decimals from
    ``decimals_lookup`` (the market's). ``live_executor`` quotes *and* fills live wallets; it is None when
    this process holds no wallet key, and then a live wallet cannot trade (``WALLET_NOT_LOADED``). Live
    wallets move real tokens, so their decimals come from the chain: ``live_decimals_lookup`` reads the
    mint account (the live executor's RPC), never the price source (the replay market answers 6 for any
    mint it does not know).
    """

    pool: asyncpg.Pool
    settings: Settings
    quoter: Quoter
    sol_usd: SolUsdSource | None
    executor: SwapExecutor
    rng: random.Random
    market: Any = None
    metrics: MetricsSource | None = None
    decimals_lookup: DecimalsLookup | None = None
    live_executor: QuotingSwapExecutor | None = None
    max_open_positions: int = MAX_OPEN_POSITIONS
    live_decimals_lookup: DecimalsLookup | None = None
    _market_decimals: dict[str, int] = field(default_factory=lambda: {SOL_MINT: SOL_DECIMALS})
    _chain_decimals: dict[str, int] = field(default_factory=lambda: {SOL_MINT: SOL_DECIMALS})

    def executor_for(self, wallet_type: str | None) -> SwapExecutor:
        if wallet_type == "simulation":
            return self.executor
        return self._live_for(wallet_type)

    def quoter_for(self, wallet_type: str | None) -> Quoter:
        """Live wallets are quoted by their executor, so the quote a trade is sized, impact-guarded and
        fee-estimated on is the very quote that gets executed."""
        if wallet_type == "simulation":
            return self.quoter
        return self._live_for(wallet_type)

    def _live_for(self, wallet_type: str | None) -> QuotingSwapExecutor:
        if wallet_type == "live" and self.live_executor is not None:
            return self.live_executor
        raise TradeError(
            "WALLET_NOT_LOADED",
            "Wallet not loaded from environment. Please configure WALLET_1, WALLET_2, etc. environment variables.",
        )

    async def token_decimals(self, mint: str, wallet_type: str | None) -> int:
        """Decimals of ``mint`` for a trade of a ``wallet_type`` wallet: the chain's for live wallets, the
        market's for simulation ones (cached forever, never guessed: §10.5)."""
        if wallet_type == "simulation":
            lookup, cache = self.decimals_lookup, self._market_decimals
        else:
            lookup, cache = self.live_decimals_lookup, self._chain_decimals
        if mint in cache:
            return cache[mint]
        if lookup is None:
            raise UpstreamError("EXECUTION_FAILED", f"Trade execution failed: no decimals source for {mint}")
        try:
            async with asyncio.timeout(DECIMALS_TIMEOUT_S):
                decimals = int(await lookup(mint))
        except TimeoutError:
            raise UpstreamError(
                "EXECUTION_FAILED",
                f"Trade execution failed: decimals lookup timed out for {mint}",
                "DECIMALS_FETCH_FAILED",
            ) from None
        except MarketError as exc:
            raise UpstreamError("EXECUTION_FAILED", f"Trade execution failed: {exc.message}", exc.code) from exc
        cache[mint] = decimals
        return decimals

    async def sol_usd_price(self) -> Decimal | None:
        if self.sol_usd is None:
            return None
        try:
            observation = await self.sol_usd.sol_usd()
        except MarketError as exc:
            log.warning("SOL/USD unavailable", extra={"fields": {"error": exc.message}})
            return None
        if observation is None or observation.price <= 0:
            return None
        return observation.price


async def _context(ctx: Any) -> ExecutionContext:
    """Accept the worker's context too: its shared execution context is built on first use."""
    if isinstance(ctx, ExecutionContext):
        return ctx
    from app.worker import components

    return await components.execution(ctx)


def _decimals_lookup_for(market: Any) -> DecimalsLookup | None:
    """Simulation wallets' decimals: the replay market's own table, else the market's RPC."""
    replay = getattr(market, "replay", None)
    if replay is not None:

        async def from_replay(mint: str) -> int:
            return replay.token_decimals(mint)

        return from_replay
    rpc = getattr(market, "rpc", None)
    if rpc is not None:
        return rpc.get_mint_decimals
    return None


async def build_execution_context(settings: Settings, pool: asyncpg.Pool, market: Any = None) -> ExecutionContext:
    """The context the worker uses (stored in ``ctx.components["execution"]``).

    ``market`` is an entered :class:`app.market.Market` (see :mod:`app.worker.components`); without one
    the market is built from the settings here and the caller owns closing it (``context.market``).
    """
    if market is None:
        from app.worker.components import open_market

        market = await open_market(settings)
    seed = settings.sim_random_seed
    context = ExecutionContext(
        pool=pool,
        settings=settings,
        quoter=market.quoter,
        sol_usd=market.sol_usd,
        executor=SimulationExecutor(),
        rng=random.Random(seed) if seed is not None else random.Random(),
        market=market,
        metrics=getattr(market, "metrics", None),
        decimals_lookup=_decimals_lookup_for(market),
    )
    live = await build_live_executor(settings, pool, market, sol_usd=context.sol_usd_price)
    if live is not None:
        context.live_executor = live
        context.live_decimals_lookup = live.swapper.rpc.get_mint_decimals  # cached by the client
    return context


# --------------------------------------------------------------------------------------------------
# Results (camelCase on the wire; money as Decimal, encoded as JSON numbers)


class _Result(msgspec.Struct, kw_only=True, rename="camel"):
    pass


class BuyResult(_Result, kw_only=True, rename="camel"):
    success: bool = True
    transaction_id: uuid.UUID
    position_id: uuid.UUID | None
    input_amount: Decimal  # gross SOL spent, protocol fee included
    output_amount: Decimal  # tokens received
    purchase_price: Decimal
    transaction_hash: str | None
    stop_loss_initialized: bool
    stop_loss_percentage: Decimal | None
    signal_id: int | None
    agent_id: uuid.UUID
    wallet_address: str
    token_address: str
    debit_sol: Decimal  # what left the SOL balance (input + network fee)


class _PositionResult(_Result, kw_only=True, rename="camel"):
    """A trade on an open position: ``outcome`` says whether it traded, or found the position gone
    (``already_closed``) or not as the caller decided on it (``changed``); then only these two are set."""

    outcome: Outcome
    position_id: uuid.UUID

    @property
    def success(self) -> bool:
        return self.outcome == "executed"


class SaleResult(_PositionResult, kw_only=True, rename="camel"):
    transaction_id: uuid.UUID | None = None
    historical_swap_id: uuid.UUID | None = None
    input_amount: Decimal | None = None  # tokens sold
    output_amount: Decimal | None = None  # SOL the swap produced (before the protocol fee)
    credit_sol: Decimal | None = None  # what reached the SOL balance
    sale_price: Decimal | None = None
    profit_loss_sol: Decimal | None = None
    profit_loss_usd: Decimal | None = None
    change_percent: Decimal | None = None
    transaction_hash: str | None = None
    close_reason: str | None = None


class TakeProfitResult(_PositionResult, kw_only=True, rename="camel"):
    transaction_id: uuid.UUID | None = None
    tokens_sold: Decimal | None = None
    credit_sol: Decimal | None = None
    profit_loss_sol: Decimal | None = None
    remaining_amount: Decimal | None = None
    levels_hit: int | None = None
    moon_bag_activated: bool | None = None
    position_closed: bool = False
    historical_swap_id: uuid.UUID | None = None
    transaction_hash: str | None = None


class DcaResult(_PositionResult, kw_only=True, rename="camel"):
    transaction_id: uuid.UUID | None = None
    tokens_bought: Decimal | None = None
    debit_sol: Decimal | None = None
    purchase_price: Decimal | None = None  # new weighted average
    dca_count: int | None = None
    transaction_hash: str | None = None


class BurnResult(_PositionResult, kw_only=True, rename="camel"):
    transaction_id: uuid.UUID | None = None  # None when there was nothing left to burn
    amount_burned: Decimal | None = None
    historical_swap_id: uuid.UUID | None = None
    profit_loss_sol: Decimal | None = None


# --------------------------------------------------------------------------------------------------
# Small helpers


def clean_symbol(symbol: str | None) -> str:
    """A symbol that fits varchar(20) (§16.4): trimmed, control characters dropped, cut to 20."""
    text = "".join(ch for ch in (symbol or "") if ch.isprintable()).strip()
    return text[:SYMBOL_MAX].strip() or DEFAULT_SYMBOL


def _q(value: Decimal | None, scale: int) -> Decimal | None:
    return None if value is None else quantize(value, scale)


def _fees(payload: dict) -> tuple[Decimal | None, Decimal | None]:
    protocol, network = extract_jupiter_fees(payload)
    return _q(protocol, SOL_8), _q(network, SOL_8)


def _total_fees(protocol: Decimal | None, network: Decimal | None) -> Decimal:
    return (protocol or ZERO) + (network or ZERO)


def _slippage_percent(fill: Fill) -> Decimal:
    return quantize(Decimal(fill.slippage_bps) / 100, PCT_4)


def _impact(fill: Fill) -> Decimal | None:
    value = quantize(fill.price_impact, PCT_4)
    return value if fits_numeric(value, 10, PCT_4) else None


def _usd_value(value: Decimal | None) -> Decimal:
    return ZERO if value is None else value


def _bought(fill: Fill, token_decimals: int, sol_usd: Decimal | None) -> BuyFill:
    """The figures of a SOL → token fill (initial or DCA buy), its fees read from its payload."""
    protocol, network = _fees(fill.payload)
    return buy_fill(
        input_lamports=fill.input_amount_raw,
        output_raw=fill.output_amount_raw,
        token_decimals=token_decimals,
        protocol_fee_sol=protocol,
        network_fee_sol=network,
        total_input_lamports=fill.total_input_raw,
        sol_usd=sol_usd,
        swap_usd_value=swap_usd_value(fill.payload),
    )


def _sold(fill: Fill, token_decimals: int, sol_usd: Decimal | None) -> SellFill:
    """The figures of a token → SOL fill (full or take-profit sale), its fees read from its payload."""
    protocol, network = _fees(fill.payload)
    return sell_fill(
        input_raw=fill.input_amount_raw,
        token_decimals=token_decimals,
        output_lamports=fill.output_amount_raw,
        protocol_fee_sol=protocol,
        network_fee_sol=network,
        total_output_lamports=fill.total_output_raw,
        sol_usd=sol_usd,
        swap_usd_value=swap_usd_value(fill.payload),
    )


def _position_state(row: Mapping[str, Any]) -> PositionState:
    return msgspec.convert(dict(row), PositionState)


@functools.cache  # the same few dozen column names, for every event
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def position_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The open-position object of events (§13.4): every column, camelCase."""
    return {_camel(k): v for k, v in dict(row).items()}


_event_encoder = msgspec.json.Encoder(decimal_format="number")


def _event_payload(agent_id: uuid.UUID, kind: str, data: Any) -> str:
    """The NOTIFY payload :func:`app.events.publish` sends (same shape, same encoding)."""
    return _event_encoder.encode({"type": kind, "agentId": str(agent_id), "data": data}).decode()


def _notify_sql(payloads: Sequence[str]) -> str:
    """``SELECT pg_notify(...)`` for payloads inlined as dollar-quoted literals (a tag absent from them)."""
    tag = "$nx$"
    while any(tag in p for p in payloads):
        tag = f"$nx{uuid.uuid4().hex[:8]}$"
    channel = events.CHANNEL
    return "SELECT " + ", ".join(f"pg_notify('{channel}', {tag}{p}{tag})" for p in payloads)


async def _publish(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    messages: Sequence[tuple[str, Any]],
    into: list[str] | None = None,
) -> None:
    """NOTIFY the events inside the transaction (delivered at commit), in one round trip; or hand the
    payloads to ``into`` for the caller to send with its COMMIT."""
    payloads = [_event_payload(agent_id, kind, data) for kind, data in messages]
    if into is not None:
        into.extend(payloads)
    elif payloads:
        await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", events.CHANNEL, payloads)


def _balance_event(wallet: str, balances: Mapping[str, tuple[str, Decimal]]) -> tuple[str, dict]:
    return (
        "balance_update",
        {
            "walletAddress": wallet,
            "balances": [
                {"tokenAddress": token, "tokenSymbol": symbol, "balance": format_balance(value)}
                for token, (symbol, value) in sorted(balances.items())
            ],
        },
    )


def _trade_event(
    kind: str, transaction_id: uuid.UUID, position: Mapping[str, Any], figures: BuyFill | SellFill, **extra: Any
) -> tuple[str, dict]:
    """The ``trade`` event of a swap on ``position``; ``extra`` carries the fields of its kind."""
    return (
        "trade",
        {
            "kind": kind,
            "transactionId": transaction_id,
            "positionId": position["id"],
            "walletAddress": position["wallet_address"],
            "tokenAddress": position["token_address"],
            "tokenSymbol": position["token_symbol"],
            "inputAmount": figures.input_amount,
            "outputAmount": figures.output_amount,
            "price": figures.price,
            **extra,
        },
    )


async def _fill_recorded(
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    fill: Fill,
    executor: SwapExecutor | None,
    messages: Sequence[tuple[str, Any]],
    into: list[str] | None = None,
) -> None:
    """Last steps of recording a fill, once its rows are written in the ledger transaction: the
    executor's own bookkeeping (a live swap's journal row becomes settled with them), then the events."""
    if executor is not None:
        await executor.on_recorded(conn, fill)
    await _publish(conn, agent_id, messages, into=into)


async def _lock_balances(
    conn: asyncpg.Connection, wallet: str, tokens: Sequence[str]
) -> dict[str, tuple[str, Decimal]]:
    rows = await Q.exec_lock_balances.fetch_all(conn, wallet, sorted(set(tokens)))
    return {r["token_address"]: (r["token_symbol"], parse_balance(r["balance"])) for r in rows}


def _new_balances(
    locked: Mapping[str, tuple[str, Decimal]], deltas: Mapping[str, Decimal], symbols: Mapping[str, str]
) -> dict[str, tuple[str, Decimal]]:
    """(symbol, new balance) of every mint the deltas touch; refuses to overdraw (§11.1)."""
    current = {mint: value for mint, (_, value) in locked.items()}
    try:
        new = apply_deltas(current, deltas)
    except BalanceError:
        raise TradeError("INSUFFICIENT_BALANCE", "Insufficient balance") from None
    return {
        mint: (locked[mint][0] if mint in locked else symbols.get(mint, DEFAULT_SYMBOL), value)
        for mint, value in new.items()
    }


async def _apply_ledger(
    conn: asyncpg.Connection,
    *,
    agent_id: uuid.UUID,
    wallet: str,
    locked: Mapping[str, tuple[str, Decimal]],
    deltas: Mapping[str, Decimal],
    symbols: Mapping[str, str],
    drop_empty_tokens: bool = False,
) -> dict[str, tuple[str, Decimal]]:
    """Apply one transaction's deltas to the locked balances; returns the new (symbol, balance) by mint.

    A token row that reaches exactly zero on a sale is removed (SOL rows always stay): the ledger sum
    of that mint is then zero too, so the audit still balances.
    """
    new = _new_balances(locked, deltas, symbols)
    emptied = [m for m, (_, value) in new.items() if drop_empty_tokens and m != SOL_MINT and value == 0]
    for mint in emptied:
        await Q.exec_delete_balance.execute(conn, wallet, mint)
    mints = sorted(m for m in new if m not in emptied)
    if mints:
        await Q.exec_upsert_balances.execute(
            conn, agent_id, wallet, mints, [new[m][0] for m in mints], [format_balance(new[m][1]) for m in mints]
        )
    return new


def _observe(kind: str, status: str, started: float) -> None:
    TRADE_EXECUTION_LATENCY.labels(kind, status).observe(time.perf_counter() - started)
    TRADE_EXECUTION_TOTAL.labels(kind, status).inc()


async def _measured(kind: str, trade: Awaitable[R]) -> R:
    """Await one trade and count it by status (``trade_execution_*{type=kind}``): ``failed`` when it
    raised, ``skipped`` when it found nothing to do (position gone or changed), else ``success``."""
    started = time.perf_counter()
    try:
        result = await trade
    except BaseException:
        _observe(kind, "failed", started)
        raise
    _observe(kind, "success" if result.success else "skipped", started)
    return result


async def _until_stable(attempt: Callable[[], Awaitable[R]], gave_up: str) -> R:
    """Plan and run a trade again while its locked re-checks find that the world moved since the plan
    (:class:`StalePlan`), at most :data:`STALE_RETRIES` times."""
    for _ in range(STALE_RETRIES):
        try:
            return await attempt()
        except StalePlan:
            continue
    raise TradeError("CONCURRENT_MODIFICATION", gave_up)


async def _quote(
    ctx: ExecutionContext,
    input_mint: str,
    output_mint: str,
    amount_raw: int,
    *,
    wallet: str,
    wallet_type: str,
    token: str,
    failure: tuple[str, str],
) -> Quote:
    code, prefix = failure
    quoter = ctx.quoter_for(wallet_type)
    try:
        async with asyncio.timeout(QUOTE_TIMEOUT_S):
            return await quoter.quote(input_mint, output_mint, amount_raw, taker=_taker(wallet, wallet_type))
    except TimeoutError:
        raise UpstreamError(code, f"{prefix}: Jupiter quote request timed out for {token}", "TIMEOUT") from None
    except MarketError as exc:
        raise UpstreamError(code, f"{prefix}: {exc.message}", exc.code) from exc


async def _execute(
    executor: SwapExecutor,
    quote: Quote,
    *,
    wallet: str,
    agent_id: uuid.UUID,
    side: str,
    intent: dict,
    failure: tuple[str, str],
) -> Fill:
    code, prefix = failure
    try:
        return await executor.execute(quote, wallet_address=wallet, agent_id=agent_id, side=side, intent=intent)
    except MarketError as exc:
        raise UpstreamError(code, f"{prefix}: {exc.message}", exc.code) from exc


def _load_config(raw: Any) -> AgentTradingConfig:
    try:
        return load_config(raw)
    except InvalidConfig as exc:
        raise TradeError("CONFIG_ERROR", f"Failed to load trading configuration: {exc}") from exc


def _taker(wallet: str, wallet_type: str | None) -> str | None:
    # Jupiter rejects simulation addresses as takers; only live wallets get a transaction to sign.
    return wallet if wallet_type == "live" else None


# --------------------------------------------------------------------------------------------------
# Buy


_BUY_FAILURE = ("EXECUTION_FAILED", "Trade execution failed")


class BuyIntent(msgspec.Struct, frozen=True, kw_only=True):
    """What a buy journals beside a live swap (``live_swaps.intent``): all settlement needs to record a
    fill that landed after the trade transaction gave up exactly as that transaction would have."""

    token_symbol: str
    signal_id: int | None
    signal_execution: bool  # a signal-driven buy: the (signal, agent) execution row must end up "success"
    # A manual trade (``trade_requests.id``): settlement answers the request once the swap is resolved.
    trade_request_id: str | None = None


class BuySnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What a buy is planned on, read without locks (``exec_buy_snapshot``; the intake reads the snapshots of
    all agents of a signal in one query). The locked re-checks decide whether the plan still holds."""

    agent_id: uuid.UUID
    user_id: uuid.UUID
    trading_mode: str
    trading_config: Any
    wallet_address: str | None
    wallet_type: str | None
    sol_balance: str | None
    position_exists: bool
    open_positions: int
    # The agent row's version (xmin) and what a simulation buy's record statement re-checks under its locks.
    agent_version: str | None = None
    sol_symbol: str | None = None
    token_balance_exists: bool = True


class BuyChecks(msgspec.Struct, frozen=True, kw_only=True):
    """What a simulation buy was planned on, for ``exec_record_buy`` to lock and re-check itself: its fill
    has no effect outside the database, so checking and writing can be one statement (one round trip fewer
    than a live buy, which must re-check under the locks *before* it sends its swap)."""

    sol_balance: str  # the SOL balance's text as the snapshot read it (compared exactly)
    sol_symbol: str
    agent_version: str  # the agents row's xmin: any change to the agent (mode, config) is a new version
    wallet_type: str
    max_open_positions: int

    def balances(self) -> dict[str, tuple[str, Decimal]]:
        """The balances the statement will find under its locks if the plan holds (no token balance)."""
        return {SOL_MINT: (self.sol_symbol, parse_balance(self.sol_balance))}


@dataclass(frozen=True, slots=True)
class _BuyPlan:
    cfg: AgentTradingConfig
    raw_config: Any
    trading_mode: str
    wallet: str
    wallet_type: str
    balance: Decimal
    quote: Quote
    debit: Decimal
    decimals: int
    prefetched: bool  # planned on a snapshot the caller read earlier (possibly long before the locks)
    checks: BuyChecks | None  # set when the record statement re-checks the plan itself (simulation)


async def execute_buy(
    ctx: ExecutionContext,
    *,
    agent_id: uuid.UUID,
    token_address: str,
    token_symbol: str | None = None,
    signal_id: int | None = None,
    position_size: Decimal | None = None,
    wallet_address: str | None = None,
    signal_execution: tuple[int, uuid.UUID] | None = None,
    in_transaction: InTransaction | None = None,
    conn: asyncpg.Connection | None = None,
    snapshot: BuySnapshot | None = None,
    trade_request_id: uuid.UUID | None = None,
) -> BuyResult:
    """Open a position (§4.3). Raises :class:`TradeError` (the reference's codes and texts).

    ``signal_execution=(signal_id, agent_id)`` writes that signal's ``success`` execution row in the
    trade's transaction; if the row already exists nothing is traded (:class:`AlreadyExecuted`).
    ``in_transaction(conn, result)`` runs inside the ledger transaction after the rows are written
    (the manual-trade service records its request outcome there). ``conn`` (not in a transaction) is used
    instead of a pool connection: the intake's fan-out lanes keep one each. ``snapshot`` (the agent's, for
    the wallet of its trading mode: ``wallet_address`` None) spares the first plan its own read; a
    re-plan reads afresh.
    """
    ctx = await _context(ctx)
    request = {
        "agent_id": agent_id,
        "token_address": (token_address or "").strip(),
        "symbol": clean_symbol(token_symbol),
        "signal_id": signal_id,
        "position_size": position_size,
        "wallet_address": wallet_address,
        "signal_execution": signal_execution,
        "in_transaction": in_transaction,
        "snapshot": snapshot,
        "trade_request_id": trade_request_id,
    }

    async def buy() -> BuyResult:
        if conn is not None:
            return await _buy(ctx, conn, **request)
        async with ctx.pool.acquire() as own:
            return await _buy(ctx, own, **request)

    return await _measured("purchase", buy())


async def _buy(
    ctx: ExecutionContext,
    conn: asyncpg.Connection,
    *,
    agent_id: uuid.UUID,
    token_address: str,
    symbol: str,
    signal_id: int | None,
    position_size: Decimal | None,
    wallet_address: str | None,
    signal_execution: tuple[int, uuid.UUID] | None,
    in_transaction: InTransaction | None,
    snapshot: BuySnapshot | None,
    trade_request_id: uuid.UUID | None,
) -> BuyResult:
    if not token_address:
        raise TradeError("VALIDATION_FAILED", "Token address is required")
    if token_address == SOL_MINT:
        raise TradeError("VALIDATION_FAILED", "Cannot buy SOL with SOL")

    prefetched = [snapshot] if snapshot is not None else []

    async def attempt() -> BuyResult:
        snap = prefetched.pop() if prefetched else None
        plan = await _plan_buy(ctx, conn, agent_id, token_address, position_size, wallet_address, snap)
        return await _commit_buy(
            ctx,
            conn,
            plan,
            agent_id=agent_id,
            token_address=token_address,
            symbol=symbol,
            signal_id=signal_id,
            signal_execution=signal_execution,
            in_transaction=in_transaction,
            trade_request_id=trade_request_id,
        )

    return await _until_stable(attempt, "Trade execution failed: the wallet kept changing during the trade")


async def _plan_buy(
    ctx: ExecutionContext,
    conn: asyncpg.Connection,
    agent_id: uuid.UUID,
    token: str,
    position_size: Decimal | None,
    wallet_address: str | None,
    prefetched: BuySnapshot | None = None,
) -> _BuyPlan:
    snap = prefetched or await Q.exec_buy_snapshot.fetch_one(
        conn, agent_id, wallet_address, token, SOL_MINT, into=BuySnapshot
    )
    if snap is None:
        raise TradeError("AGENT_NOT_FOUND", "Agent not found")
    if snap.wallet_address is None:
        if wallet_address:
            raise TradeError("WALLET_NOT_FOUND", "Wallet not found or does not belong to agent")
        raise TradeError("WALLET_NOT_FOUND", "No wallet found for agent")
    cfg = _load_config(snap.trading_config)
    wallet, wallet_type, mode = snap.wallet_address, snap.wallet_type, snap.trading_mode
    ctx.executor_for(wallet_type)
    if mode != wallet_type:
        raise TradeError(
            "TRADING_MODE_MISMATCH", f"Trading mode mismatch: agent is in '{mode}' mode but wallet is '{wallet_type}'"
        )
    balance = parse_balance(snap.sol_balance) if snap.sol_balance is not None else ZERO
    reserve = cfg.purchase_limits.minimum_agent_balance
    if balance <= 0:
        raise TradeError("INSUFFICIENT_BALANCE", "Insufficient SOL balance")
    if balance < reserve:
        raise TradeError("BELOW_MINIMUM_THRESHOLD", f"Balance below minimum threshold: {plain(reserve)} SOL")
    if snap.position_exists:
        raise TradeError("POSITION_EXISTS", f"Position already exists for token: {token}")
    if snap.open_positions >= ctx.max_open_positions:
        raise TradeError(
            "MAX_POSITIONS_EXCEEDED", f"Agent has reached maximum limit of {ctx.max_open_positions} open positions"
        )
    size = resolve_buy_size(balance, cfg, position_size, ctx.rng)
    decimals = await ctx.token_decimals(token, wallet_type)
    quote = await _quote_with_impact_guard(ctx, cfg, token, size, wallet, wallet_type)
    quote, debit = await _fit_reserve(
        ctx, cfg, quote, token, decimals, balance, position_size is not None, wallet, wallet_type
    )
    return _BuyPlan(
        cfg=cfg,
        raw_config=snap.trading_config,
        trading_mode=mode,
        wallet=wallet,
        wallet_type=wallet_type,
        balance=balance,
        quote=quote,
        debit=debit,
        decimals=decimals,
        prefetched=prefetched is not None,
        checks=statement_checks(ctx, snap) if prefetched is not None else None,
    )


def statement_checks(ctx: ExecutionContext, snap: BuySnapshot) -> BuyChecks | None:
    """The re-checks ``exec_record_buy`` can make itself, for a buy planned on a snapshot read earlier (the
    intake's: it must find the SOL balance unchanged, so the statement can compare it exactly) whose executor
    fills at the quote without touching anything outside the database. None when they must be made under the
    locks before the swap (a live wallet), or the snapshot lacks what they compare: the locked re-read is
    used then. A buy that reads its own snapshot just before (a manual trade, a re-plan) also takes that
    path, which accepts a balance that moved meanwhile as long as the reserve still holds."""
    if not isinstance(ctx.executor_for(snap.wallet_type), SimulationExecutor):
        return None
    if snap.agent_version is None or snap.token_balance_exists or snap.sol_balance is None:
        return None
    assert snap.wallet_type is not None
    return BuyChecks(
        sol_balance=snap.sol_balance,
        sol_symbol=snap.sol_symbol or "SOL",
        agent_version=snap.agent_version,
        wallet_type=snap.wallet_type,
        max_open_positions=ctx.max_open_positions,
    )


async def _quote_with_impact_guard(
    ctx: ExecutionContext, cfg: AgentTradingConfig, token: str, size: Decimal, wallet: str, wallet_type: str
) -> Quote:
    """§4.3 step 4: a quote whose price impact is within ``maxPriceImpact``, retrying at 90/80/70 %."""

    async def quote_for(sol: Decimal) -> Quote:
        return await _quote(
            ctx,
            SOL_MINT,
            token,
            sol_to_lamports(sol),
            wallet=wallet,
            wallet_type=wallet_type,
            token=token,
            failure=_BUY_FAILURE,
        )

    max_impact = cfg.purchase_limits.max_price_impact
    first = await quote_for(size)
    if not impact_requires_retry(first.price_impact, max_impact):
        return first
    assert max_impact is not None
    for smaller in price_impact_retry_sizes(size):
        quote = await quote_for(smaller)
        if retry_impact_accepted(quote.price_impact, max_impact):
            return quote
    raise price_impact_error(first.price_impact, max_impact)


def _estimate_buy(quote: Quote, decimals: int) -> BuyFill:
    """The figures of a buy that fills exactly as quoted: what it will debit, fees included."""
    return _bought(fill_at_quote(quote, "buy"), decimals, sol_usd=None)


async def _fit_reserve(
    ctx: ExecutionContext,
    cfg: AgentTradingConfig,
    quote: Quote,
    token: str,
    decimals: int,
    balance: Decimal,
    explicit: bool,
    wallet: str,
    wallet_type: str,
) -> tuple[Quote, Decimal]:
    """Make the buy keep ``minimumAgentBalance`` *including fees*.

    The reference sizes without fees, so a buy sized to leave exactly the reserve dipped below it by
    the fees. A computed size is shrunk once so that swap + protocol fee + network fee fit; an explicit
    size that does not fit is refused.
    """
    reserve = cfg.purchase_limits.minimum_agent_balance
    estimate = _estimate_buy(quote, decimals)
    if balance - estimate.debit_sol >= reserve:
        return quote, estimate.debit_sol
    if explicit:
        raise TradeError(
            "VIOLATES_MINIMUM_BALANCE",
            f"Position size would violate minimum balance requirement: {plain(reserve)} SOL",
        )
    calc_error = TradeError(
        "POSITION_CALCULATION_ERROR",
        f"Failed to calculate position size: Cannot maintain minimum balance: {plain(reserve)} SOL",
    )
    network = estimate.network_fee_sol or ZERO
    fee_rate = (estimate.input_amount - estimate.in_sol) / estimate.in_sol
    spendable = balance - reserve - network
    lamports = int((spendable / (1 + fee_rate) * LAMPORTS_PER_SOL).to_integral_value(rounding=ROUND_FLOOR))
    lamports -= RESERVE_MARGIN_LAMPORTS
    if lamports <= 0:
        raise calc_error
    smaller = await _quote(
        ctx, SOL_MINT, token, lamports, wallet=wallet, wallet_type=wallet_type, token=token, failure=_BUY_FAILURE
    )
    max_impact = cfg.purchase_limits.max_price_impact
    if max_impact is not None and not retry_impact_accepted(smaller.price_impact, max_impact):
        raise price_impact_error(smaller.price_impact, max_impact)
    estimate = _estimate_buy(smaller, decimals)
    if balance - estimate.debit_sol < reserve:
        raise calc_error
    return smaller, estimate.debit_sol


class _TradeTransaction:
    """One trade's transaction on ``conn``, opened together with the agent lock (the first lock of the
    documented order) in a single round trip, and committed with its NOTIFY events in another: the hot
    path of a fan-out to many agents is bound by round trips, not by Python."""

    def __init__(self, conn: asyncpg.Connection, agent_id: uuid.UUID) -> None:
        self.conn, self.agent_id = conn, agent_id
        self.events: list[str] = []

    async def begin(self) -> bool:
        """BEGIN and lock the agent row; False when the agent does not exist."""
        # Simple-query protocol (two statements, no parameters): the id is a UUID object, so its text is safe.
        agent = str(uuid.UUID(str(self.agent_id)))
        status = await self.conn.execute(f"BEGIN; SELECT 1 FROM agents WHERE id = '{agent}' FOR UPDATE")
        return status.endswith(" 1")

    async def commit(self) -> None:
        if self.events:
            await self.conn.execute(f"{_notify_sql(self.events)}; COMMIT")
        else:
            await self.conn.execute("COMMIT")

    async def rollback(self) -> None:
        if not self.conn.is_closed() and self.conn.is_in_transaction():
            await self.conn.execute("ROLLBACK")


async def _commit_buy(
    ctx: ExecutionContext,
    conn: asyncpg.Connection,
    plan: _BuyPlan,
    *,
    agent_id: uuid.UUID,
    token_address: str,
    symbol: str,
    signal_id: int | None,
    signal_execution: tuple[int, uuid.UUID] | None,
    in_transaction: InTransaction | None,
    trade_request_id: uuid.UUID | None = None,
) -> BuyResult:
    executor = ctx.executor_for(plan.wallet_type)
    sol_usd = await ctx.sol_usd_price()
    reserve = plan.cfg.purchase_limits.minimum_agent_balance
    execution_signal = signal_execution[0] if signal_execution else None
    trade = _TradeTransaction(conn, agent_id)
    try:
        if not await trade.begin():
            raise TradeError("AGENT_NOT_FOUND", "Agent not found")
        if plan.checks is not None:
            # Simulation: the record statement locks the balances and re-checks the plan itself (StalePlan if it
            # no longer holds); a second execution row or position violates a unique key, as below.
            locked = plan.checks.balances()
        else:
            state = await Q.exec_buy_locked_state.fetch_one(
                conn, agent_id, plan.wallet, sorted((SOL_MINT, token_address)), token_address, execution_signal
            )
            assert state is not None
            if state["already_executed"]:
                assert signal_execution is not None
                raise AlreadyExecuted(signal_execution[0], agent_id)
            locked = _balances_of(state)
            sol_now = locked[SOL_MINT][1] if SOL_MINT in locked else ZERO
            if (
                state["trading_mode"] != plan.trading_mode
                or state["trading_config"] != plan.raw_config
                or state["wallet_type"] != plan.wallet_type
                or state["position_exists"]
                or state["open_positions"] >= ctx.max_open_positions
                or sol_now - plan.debit < reserve
                # A plan made on an earlier snapshot is kept only if it was sized on the balance now locked.
                or (plan.prefetched and sol_now != plan.balance)
            ):
                raise StalePlan
        fill = await _execute(
            executor,
            plan.quote,
            wallet=plan.wallet,
            agent_id=agent_id,
            side="buy",
            intent={
                "kind": "buy",
                "token": token_address,
                **msgspec.structs.asdict(
                    BuyIntent(
                        token_symbol=symbol,
                        signal_id=signal_id,
                        signal_execution=signal_execution is not None,
                        trade_request_id=None if trade_request_id is None else str(trade_request_id),
                    )
                ),
            },
            failure=_BUY_FAILURE,
        )
        result = await record_buy_fill(
            conn,
            agent_id=agent_id,
            wallet_address=plan.wallet,
            token_address=token_address,
            token_symbol=symbol,
            cfg=plan.cfg,
            fill=fill,
            token_decimals=plan.decimals,
            sol_usd=sol_usd,
            signal_id=signal_id,
            signal_execution=signal_execution,
            locked_balances=locked,
            executor=executor,
            events=trade.events,
            checks=plan.checks,
        )
        if in_transaction is not None:
            await in_transaction(conn, result)
        await trade.commit()
        return result
    except asyncpg.UniqueViolationError as exc:
        await trade.rollback()
        if signal_execution and exc.constraint_name == "signal_executions_signal_id_agent_id_key":
            raise AlreadyExecuted(signal_execution[0], agent_id) from exc
        if exc.constraint_name == "agent_positions_agent_wallet_token_key":
            raise StalePlan from exc
        raise
    except BaseException:
        await trade.rollback()
        raise


def _balances_of(row: Mapping[str, Any]) -> dict[str, tuple[str, Decimal]]:
    tokens, symbols, values = row["balance_tokens"] or [], row["balance_symbols"] or [], row["balance_values"] or []
    return {t: (sym, parse_balance(v)) for t, sym, v in zip(tokens, symbols, values, strict=True)}


async def record_buy_fill(
    conn: asyncpg.Connection,
    *,
    agent_id: uuid.UUID,
    wallet_address: str,
    token_address: str,
    token_symbol: str | None,
    cfg: AgentTradingConfig,
    fill: Fill,
    token_decimals: int,
    sol_usd: Decimal | None,
    signal_id: int | None = None,
    signal_execution: tuple[int, uuid.UUID] | None = None,
    position_id: uuid.UUID | None = None,
    locked_balances: Mapping[str, tuple[str, Decimal]] | None = None,
    executor: SwapExecutor | None = None,
    events: list[str] | None = None,
    checks: BuyChecks | None = None,
) -> BuyResult:
    """Write a buy fill: SWAP row, SOL debit + token credit, position insert, execution row (one statement),
    then the events.

    The caller holds the agent lock (``Q.exec_lock_agent``) in ``conn``'s transaction; the balance rows
    are locked here unless ``locked_balances`` says they already are, or ``checks`` says the statement is to
    lock them and re-check the plan itself (``locked_balances`` is then what the plan expects; raises
    :class:`StalePlan`, nothing written, when it no longer holds). Crash-recovery settlement calls this with a
    fill it found on chain. Events are published now, or appended to ``events`` (encoded NOTIFY payloads)
    for the caller to send with its COMMIT.
    """
    symbol = clean_symbol(token_symbol)
    plan = plan_buy(cfg, _bought(fill, token_decimals, sol_usd))
    if plan.purchase_price <= 0 or not fits_numeric(plan.fill.output_amount, 30, AMOUNT_18):
        raise TradeError("INVALID_TRANSACTION", "Transaction missing required fields for position creation")
    if locked_balances is None:
        locked_balances = await _lock_balances(conn, wallet_address, [SOL_MINT, token_address])
    position_id = position_id or uuid.uuid4()
    tx_id = uuid.uuid4()
    bought = plan.fill
    deltas = balance_deltas("SWAP", SOL_MINT, bought.input_amount, token_address, bought.output_amount,
                            bought.network_fee_sol)  # fmt: skip
    balances = _new_balances(locked_balances, deltas, {SOL_MINT: "SOL", token_address: symbol})
    mints = sorted(balances)
    stop = plan.stop_loss
    position = await Q.exec_record_buy.fetch_one(
        conn,
        tx_id,
        agent_id,
        wallet_address,
        _usd_value(bought.value_usd),
        signal_id,
        _total_fees(bought.protocol_fee_sol, bought.network_fee_sol),
        fill.routes,
        bought.input_amount,
        token_address,
        symbol,
        bought.output_amount,
        bought.price,
        _slippage_percent(fill),
        _impact(fill),
        fill.signature,
        fill.payload,
        bought.protocol_fee_sol,
        bought.network_fee_sol,
        position_id,
        _q(sol_usd, SOL_8),
        mints,
        [balances[m][0] for m in mints],
        [format_balance(balances[m][1]) for m in mints],
        signal_execution[0] if signal_execution else None,
        plan.purchase_price,
        plan.purchase_amount,
        plan.total_invested_sol,
        plan.lowest_price,
        stop.current_stop_loss_percentage if stop else None,
        stop.peak_price if stop else None,
        checks.sol_balance if checks else None,
        checks.agent_version if checks else None,
        checks.wallet_type if checks else None,
        checks.max_open_positions if checks else None,
    )
    if position is None:
        assert checks is not None, "exec_record_buy wrote nothing without checks to fail"
        raise StalePlan
    messages = [
        (
            "position_created",
            {"agentId": agent_id, "walletAddress": wallet_address, "position": position_payload(position)},
        ),
        _balance_event(wallet_address, balances),
        _trade_event("buy", tx_id, position, bought, signalId=signal_id),
    ]
    await _fill_recorded(conn, agent_id, fill, executor, messages, into=events)
    return BuyResult(
        transaction_id=tx_id,
        position_id=position_id,
        input_amount=bought.input_amount,
        output_amount=bought.output_amount,
        purchase_price=plan.purchase_price,
        transaction_hash=fill.signature,
        stop_loss_initialized=stop is not None,
        stop_loss_percentage=stop.current_stop_loss_percentage if stop else None,
        signal_id=signal_id,
        agent_id=agent_id,
        wallet_address=wallet_address,
        token_address=token_address,
        debit_sol=bought.debit_sol,
    )


async def record_failed_transaction_fee(
    conn: asyncpg.Connection,
    *,
    agent_id: uuid.UUID,
    wallet_address: str,
    other_mint: str,
    fee_lamports: int,
    signature: str,
    error: str | None,
    locked_balances: Mapping[str, tuple[str, Decimal]],
) -> uuid.UUID:
    """Write the network fee of a live transaction that landed with an error: a fee-only SWAP row (SOL →
    ``other_mint``, nothing swapped; ledger rule in :mod:`app.trading.ledger`) and the SOL debit, with its
    balance event. Live settlement calls this holding the agent lock and ``locked_balances`` (SOL)."""
    remainder, network = split_fee_lamports(fee_lamports)
    tx_id = await Q.exec_insert_transaction.fetch_val(
        conn,
        agent_id,
        wallet_address,
        "SWAP",
        ZERO,
        None,
        network,
        None,
        SOL_MINT,
        "SOL",
        remainder,
        None,
        other_mint,
        None,
        ZERO,
        None,
        None,
        None,
        False,
        False,
        signature,
        {"failedOnChain": True, "error": error, "feeLamports": fee_lamports},
        None,
        network,
        None,
        None,
    )
    balances = await _apply_ledger(
        conn,
        agent_id=agent_id,
        wallet=wallet_address,
        locked=locked_balances,
        deltas=balance_deltas("SWAP", SOL_MINT, remainder, other_mint, ZERO, network),
        symbols={SOL_MINT: "SOL"},
    )
    await _publish(conn, agent_id, [_balance_event(wallet_address, balances)])
    return tx_id


async def link_settled_signal_buy(
    conn: asyncpg.Connection, *, signal_id: int, agent_id: uuid.UUID, transaction_id: uuid.UUID
) -> bool:
    """Make the (signal, agent) execution row ``success`` for a signal buy that live settlement recorded
    (its swap landed after the trade transaction gave up: ``SWAP_UNCONFIRMED``, or the process died
    between send and ledger write). Call inside settlement's ledger transaction, after
    :func:`record_buy_fill`.

    The row is inserted when the intake has none (its claim was rolled back, or has not committed yet:
    the insert then waits for it), and replaces the row the intake wrote for the pair (the "unconfirmed"
    failure, or what a re-claim decided while the swap was unresolved, e.g. ``WALLET_BUSY``): one row
    per pair, and ``success`` exactly when the buy exists. False when the pair already has a ``success``
    row for another buy (left alone: the landed swap is recorded all the same).
    """
    linked = await Q.exec_link_settled_signal_buy.fetch_val(conn, signal_id, agent_id, transaction_id)
    return linked is not None


# --------------------------------------------------------------------------------------------------
# Shared by the position operations


async def _position_snapshot(ctx: ExecutionContext, position_id: uuid.UUID) -> dict[str, Any] | None:
    return await Q.exec_position_snapshot.fetch_one(ctx.pool, position_id, SOL_MINT)


async def _lock_position_scope(
    conn: asyncpg.Connection, snap: Mapping[str, Any], tokens: Sequence[str]
) -> tuple[dict[str, tuple[str, Decimal]], dict[str, Any] | None]:
    """Agent → balances → position, the documented order. Returns (locked balances, position or None)."""
    await Q.exec_lock_agent.fetch_one(conn, snap["agent_id"])
    locked = await _lock_balances(conn, snap["wallet_address"], tokens)
    position = await Q.exec_lock_position.fetch_one(conn, snap["id"])
    return locked, position


@dataclass(frozen=True, slots=True)
class _PositionSwap:
    """A swap on an open position as planned from its unlocked snapshot: the quote the wallet's executor
    will execute, and what differs between a full sale, a take-profit sale and a DCA buy."""

    quote: Quote
    token_decimals: int
    side: Side
    intent: dict[str, Any]  # what the executor journals beside a live swap (settlement reads it back)
    record: Callable[..., Awaitable[Any]]  # the kind's record_*_fill, its own arguments bound
    # Under the locks, after the position's own checks: "changed" ends the operation without a trade,
    # StalePlan plans it again, a TradeError refuses it.
    confirm: Callable[[LockedBalances], Outcome | None] | None = None


async def _swap_on_position(
    ctx: ExecutionContext,
    position_id: uuid.UUID,
    *,
    result: Callable[..., R],
    moved: Callable[[Mapping[str, Any]], bool],
    plan: Callable[[Mapping[str, Any]], Awaitable[_PositionSwap]],
    failure: tuple[str, str],
    gave_up: str,
    owner: uuid.UUID | None = None,
    in_transaction: InTransaction | None = None,
) -> R:
    """The steps every swap on an open position shares (docs/worker.md §4): plan on an unlocked
    snapshot, then one transaction that locks agent → balances → position, re-checks, executes the
    quote and records its fill; planned again (at most :data:`STALE_RETRIES` times) while the position
    moves under the plan.

    A position that is gone answers ``result(outcome="already_closed")``. ``moved(row)`` says the
    position no longer has the state the caller decided on (``expected_*``): ``outcome="changed"``.
    Neither trades anything, so two ticks or two workers racing on one position trade once. ``owner``,
    when given, is the agent the position must belong to.
    """

    def untraded(outcome: Outcome) -> R:
        return result(outcome=outcome, position_id=position_id)

    async def attempt() -> R:
        snap = await _position_snapshot(ctx, position_id)
        if snap is None:
            return untraded("already_closed")
        if owner is not None and snap["agent_id"] != owner:
            raise TradeError("POSITION_MISMATCH", "Position does not belong to agent")
        if moved(snap):
            return untraded("changed")
        executor = ctx.executor_for(snap["wallet_type"])
        swap = await plan(snap)
        sol_usd = await ctx.sol_usd_price()
        async with transaction(ctx.pool) as conn:
            locked, position = await _lock_position_scope(conn, snap, [SOL_MINT, snap["token_address"]])
            if position is None:
                return untraded("already_closed")
            if moved(position):
                return untraded("changed")
            if position["updated_at"] != snap["updated_at"]:
                raise StalePlan
            outcome = swap.confirm(locked) if swap.confirm is not None else None
            if outcome is not None:
                return untraded(outcome)
            fill = await _execute(
                executor,
                swap.quote,
                wallet=snap["wallet_address"],
                agent_id=snap["agent_id"],
                side=swap.side,
                intent=swap.intent,
                failure=failure,
            )
            recorded = await swap.record(
                conn,
                position=position,
                fill=fill,
                token_decimals=swap.token_decimals,
                sol_usd=sol_usd,
                locked_balances=locked,
                executor=executor,
            )
            if in_transaction is not None:
                await in_transaction(conn, recorded)
            return recorded

    return await _until_stable(attempt, gave_up)


async def _record_position_swap(
    conn: asyncpg.Connection,
    *,
    position: Mapping[str, Any],
    fill: Fill,
    figures: BuyFill | SellFill,
    signal_id: int | None,
    sol_usd: Decimal | None,
    locked_balances: LockedBalances,
    is_dca: bool = False,
    is_take_profit: bool = False,
) -> tuple[uuid.UUID, dict[str, tuple[str, Decimal]]]:
    """The SWAP row of a fill on an open position and the balances it moves (the single ledger rule of
    :func:`app.trading.ledger.balance_deltas`): a sale swaps the position's token for SOL and removes a
    token balance it empties, a DCA buy swaps SOL for the token. Returns (row id, new balances)."""
    agent_id, wallet = position["agent_id"], position["wallet_address"]
    token, symbol = position["token_address"], position["token_symbol"]
    selling = isinstance(figures, SellFill)
    sol_leg, token_leg = (SOL_MINT, "SOL", Decimal(1)), (token, symbol, figures.price)
    (in_mint, in_symbol, in_price), (out_mint, out_symbol, out_price) = (
        (token_leg, sol_leg) if selling else (sol_leg, token_leg)
    )
    tx_id = await Q.exec_insert_transaction.fetch_val(
        conn,
        agent_id,
        wallet,
        "SWAP",
        _usd_value(figures.value_usd),
        signal_id,
        _total_fees(figures.protocol_fee_sol, figures.network_fee_sol),
        fill.routes,
        in_mint,
        in_symbol,
        figures.input_amount,
        in_price,
        out_mint,
        out_symbol,
        figures.output_amount,
        out_price,
        _slippage_percent(fill),
        _impact(fill),
        is_dca,
        is_take_profit,
        fill.signature,
        fill.payload,
        figures.protocol_fee_sol,
        figures.network_fee_sol,
        position["id"],
        _q(sol_usd, SOL_8),
    )
    balances = await _apply_ledger(
        conn,
        agent_id=agent_id,
        wallet=wallet,
        locked=locked_balances,
        deltas=balance_deltas(
            "SWAP", in_mint, figures.input_amount, out_mint, figures.output_amount, figures.network_fee_sol
        ),
        symbols={SOL_MINT: "SOL", token: symbol},
        drop_empty_tokens=selling,
    )
    return tx_id, balances


async def _history_inputs(conn: asyncpg.Connection, position: Mapping[str, Any]) -> tuple[int | None, Decimal]:
    """Signal inherited from the purchase row, and SOL already credited by take-profit sales."""
    row = await Q.exec_position_history_inputs.fetch_one(
        conn, position["purchase_transaction_id"], list(position["take_profit_transaction_ids"] or [])
    )
    assert row is not None
    proceeds = sum(
        (
            net_sol_proceeds(out, fee)
            for out, fee in zip(row["tp_output_amounts"], row["tp_network_fees"], strict=True)
            if out is not None
        ),
        ZERO,
    )
    return row["signal_id"], proceeds


async def _inherited_signal(conn: asyncpg.Connection, position: Mapping[str, Any]) -> int | None:
    """The signal a row of the position carries: its purchase's."""
    signal_id, _ = await _history_inputs(conn, {**position, "take_profit_transaction_ids": []})
    return signal_id


async def _close_position(
    conn: asyncpg.Connection,
    position: Mapping[str, Any],
    figures: HistoryFigures,
    *,
    sale_transaction_id: uuid.UUID | None,
    signal_id: int | None,
    reason: str,
    sol_usd: Decimal | None,
) -> uuid.UUID:
    """Delete the position and write its history row, in the transaction that closes it (fix of §16.12).
    Returns the history row's id."""
    await Q.exec_delete_position.execute(conn, position["id"])
    return await Q.exec_insert_history.fetch_val(
        conn,
        position["agent_id"],
        position["wallet_address"],
        position["token_address"],
        position["token_symbol"],
        figures.amount,
        figures.purchase_price,
        figures.sale_price,
        figures.change_percent,
        _usd_value(figures.profit_loss_usd),
        figures.profit_loss_sol,
        position["created_at"],
        position["purchase_transaction_id"],
        sale_transaction_id,
        signal_id,
        reason,
        position["id"],
        _q(sol_usd, SOL_8),
    )


def _closed_event(position: Mapping[str, Any]) -> tuple[str, dict]:
    return (
        "position_closed",
        {
            "agentId": position["agent_id"],
            "walletAddress": position["wallet_address"],
            "positionId": position["id"],
            "tokenAddress": position["token_address"],
        },
    )


def _updated_event(position: Mapping[str, Any]) -> tuple[str, dict]:
    return (
        "position_updated",
        {
            "agentId": position["agent_id"],
            "walletAddress": position["wallet_address"],
            "position": position_payload(position),
        },
    )


async def _sell_quote(
    ctx: ExecutionContext, snap: Mapping[str, Any], amount: Decimal, failure: tuple[str, str]
) -> tuple[Quote, int]:
    token = snap["token_address"]
    decimals = await ctx.token_decimals(token, snap["wallet_type"])
    raw = to_raw(amount, decimals)
    if raw <= 0:
        raise TradeError("ZERO_BALANCE", "No tokens to sell")
    quote = await _quote(
        ctx,
        token,
        SOL_MINT,
        raw,
        wallet=snap["wallet_address"],
        wallet_type=snap["wallet_type"],
        token=token,
        failure=failure,
    )
    return quote, decimals


# --------------------------------------------------------------------------------------------------
# Full sale


_SALE_FAILURE = ("EXECUTION_FAILED", "Sale execution failed")


async def execute_full_sale(
    ctx: ExecutionContext,
    *,
    agent_id: uuid.UUID,
    position_id: uuid.UUID,
    reason: str,
    expected_updated_at: datetime | None = None,
    in_transaction: InTransaction | None = None,
    trade_request_id: uuid.UUID | None = None,
) -> SaleResult:
    """Close a position completely (§4.5): sells the wallet's whole token balance (moon bag included).

    A position that is gone returns ``outcome="already_closed"``; with ``expected_updated_at`` a position
    changed since the caller's decision returns ``outcome="changed"``. Neither trades anything, so two
    ticks or two workers racing never sell twice.
    """
    if reason not in CLOSE_REASONS:
        raise TradeError("VALIDATION_FAILED", f"Invalid close reason: {reason}")
    ctx = await _context(ctx)
    sale = _full_sale(ctx, agent_id, position_id, reason, expected_updated_at, in_transaction, trade_request_id)
    return await _measured("sale", sale)


async def _full_sale(
    ctx: ExecutionContext,
    agent_id: uuid.UUID,
    position_id: uuid.UUID,
    reason: str,
    expected_updated_at: datetime | None,
    in_transaction: InTransaction | None,
    trade_request_id: uuid.UUID | None,
) -> SaleResult:
    def moved(row: Mapping[str, Any]) -> bool:
        return expected_updated_at is not None and row["updated_at"] != expected_updated_at

    async def plan(snap: Mapping[str, Any]) -> _PositionSwap:
        state = _position_state(snap)
        token_balance = parse_balance(snap["token_balance"]) if snap["token_balance"] is not None else None
        amount = token_balance if token_balance is not None else state.holding
        if amount <= 0:
            raise TradeError("ZERO_BALANCE", "No tokens to sell")
        quote, decimals = await _sell_quote(ctx, snap, amount, _SALE_FAILURE)

        def balance_unchanged(locked: LockedBalances) -> Outcome | None:
            # The sale sells the whole balance it was quoted for: one that moved must be quoted again.
            if locked.get(snap["token_address"], (None, None))[1] == token_balance:
                return None
            if expected_updated_at is not None:
                return "changed"
            raise StalePlan

        return _PositionSwap(
            quote=quote,
            token_decimals=decimals,
            side="sell",
            intent={
                "kind": "sale",
                "position_id": position_id,
                "reason": reason,
                "trade_request_id": None if trade_request_id is None else str(trade_request_id),
            },
            record=partial(record_sale_fill, reason=reason),
            confirm=balance_unchanged,
        )

    return await _swap_on_position(
        ctx,
        position_id,
        result=SaleResult,
        moved=moved,
        plan=plan,
        failure=_SALE_FAILURE,
        gave_up="Sale execution failed: the position kept changing during the sale",
        owner=agent_id,
        in_transaction=in_transaction,
    )


async def record_sale_fill(
    conn: asyncpg.Connection,
    *,
    position: Mapping[str, Any],
    fill: Fill,
    token_decimals: int,
    sol_usd: Decimal | None,
    reason: str,
    locked_balances: Mapping[str, tuple[str, Decimal]] | None = None,
    executor: SwapExecutor | None = None,
) -> SaleResult:
    """Write a full-sale fill: SWAP row → token debit + SOL credit → position delete → history row → events.

    ``position`` is the row locked ``FOR UPDATE`` (after the agent and balance locks) in ``conn``'s
    transaction. The history row is written here, in the same transaction (fix of §16.12).
    """
    if locked_balances is None:
        locked_balances = await _lock_balances(conn, position["wallet_address"], [SOL_MINT, position["token_address"]])
    signal_id, tp_proceeds = await _history_inputs(conn, position)
    sold = _sold(fill, token_decimals, sol_usd)
    plan = plan_full_sale(_position_state(position), sold, tp_net_proceeds=tp_proceeds, sol_usd=sol_usd)
    tx_id, balances = await _record_position_swap(
        conn,
        position=position,
        fill=fill,
        figures=sold,
        signal_id=signal_id,
        sol_usd=sol_usd,
        locked_balances=locked_balances,
    )
    history_id = await _close_position(
        conn, position, plan.history, sale_transaction_id=tx_id, signal_id=signal_id, reason=reason, sol_usd=sol_usd
    )
    messages = [
        _closed_event(position),
        _balance_event(position["wallet_address"], balances),
        _trade_event("sale", tx_id, position, sold, profitLossSol=plan.profit_loss_sol, closeReason=reason),
    ]
    await _fill_recorded(conn, position["agent_id"], fill, executor, messages)
    return SaleResult(
        outcome="executed",
        position_id=position["id"],
        transaction_id=tx_id,
        historical_swap_id=history_id,
        input_amount=sold.input_amount,
        output_amount=sold.out_sol,
        credit_sol=sold.credit_sol,
        sale_price=sold.price,
        profit_loss_sol=plan.profit_loss_sol,
        profit_loss_usd=_usd_value(plan.profit_loss_usd),
        change_percent=plan.change_percent,
        transaction_hash=fill.signature,
        close_reason=reason,
    )


# --------------------------------------------------------------------------------------------------
# Take-profit sale


_TP_FAILURE = ("TAKE_PROFIT_EXECUTION_FAILED", "Take-profit sale execution failed")


class TakeProfitIntent(msgspec.Struct, frozen=True, kw_only=True):
    """The slice of a take-profit decision the sale planner reads; a live sale journals it, so that
    settlement updates the position exactly as the trade transaction would have."""

    levels_executed: int
    activate_moon_bag: bool
    moon_bag_amount: Decimal


async def execute_take_profit_sale(
    ctx: ExecutionContext,
    *,
    position_id: uuid.UUID,
    sell_amount: Decimal,
    levels_executed: int,
    expected_levels_hit: int,
    activate_moon_bag: bool,
    moon_bag_amount: Decimal | None,
) -> TakeProfitResult:
    """Sell a slice of a position (§4.6), updating the position in the same transaction (§16.11).

    ``expected_levels_hit`` is the ``take_profit_levels_hit`` the decision was made on: if it moved (a
    racing tick already sold these levels) nothing is sold and ``outcome="changed"`` is returned.
    ``remaining_amount`` becomes the holding minus the tokens actually sold. When the slice empties the
    position (no moon bag kept), it is closed with its history row in the same transaction.
    """
    ctx = await _context(ctx)
    intent = TakeProfitIntent(
        levels_executed=levels_executed, activate_moon_bag=activate_moon_bag, moon_bag_amount=moon_bag_amount or ZERO
    )
    return await _measured("take_profit", _take_profit(ctx, position_id, sell_amount, expected_levels_hit, intent))


async def _take_profit(
    ctx: ExecutionContext,
    position_id: uuid.UUID,
    sell_amount: Decimal,
    expected_levels_hit: int,
    intent: TakeProfitIntent,
) -> TakeProfitResult:
    def moved(row: Mapping[str, Any]) -> bool:
        return row["take_profit_levels_hit"] != expected_levels_hit

    async def plan(snap: Mapping[str, Any]) -> _PositionSwap:
        holding = _position_state(snap).holding
        if not 0 < sell_amount <= holding:
            raise TradeError(
                "INVALID_SELL_AMOUNT", f"Invalid sell amount: {plain(sell_amount)} (remaining {plain(holding)})"
            )
        token_balance = parse_balance(snap["token_balance"]) if snap["token_balance"] is not None else ZERO
        amount = min(sell_amount, token_balance)
        if amount <= 0:
            raise TradeError("ZERO_BALANCE", "No tokens to sell")
        quote, decimals = await _sell_quote(ctx, snap, amount, _TP_FAILURE)
        return _PositionSwap(
            quote=quote,
            token_decimals=decimals,
            side="sell",
            intent={"kind": "take_profit", "position_id": position_id, **msgspec.structs.asdict(intent)},
            record=partial(record_take_profit_fill, intent=intent),
        )

    return await _swap_on_position(
        ctx,
        position_id,
        result=TakeProfitResult,
        moved=moved,
        plan=plan,
        failure=_TP_FAILURE,
        gave_up="Take-profit sale execution failed: the position kept changing",
    )


async def record_take_profit_fill(
    conn: asyncpg.Connection,
    *,
    position: Mapping[str, Any],
    intent: TakeProfitIntent,
    fill: Fill,
    token_decimals: int,
    sol_usd: Decimal | None,
    locked_balances: Mapping[str, tuple[str, Decimal]] | None = None,
    executor: SwapExecutor | None = None,
) -> TakeProfitResult:
    if locked_balances is None:
        locked_balances = await _lock_balances(conn, position["wallet_address"], [SOL_MINT, position["token_address"]])
    sold = _sold(fill, token_decimals, sol_usd)
    plan = plan_take_profit_sale(
        _position_state(position),
        intent,  # type: ignore[arg-type]  # the planner reads only these three fields of a decision
        sold,
        now=datetime.now(UTC),
        sol_usd=sol_usd,
    )
    signal_id = await _inherited_signal(conn, position)
    tx_id, balances = await _record_position_swap(
        conn,
        position=position,
        fill=fill,
        figures=sold,
        signal_id=signal_id,
        sol_usd=sol_usd,
        locked_balances=locked_balances,
        is_take_profit=True,
    )
    history_id = None
    if plan.closes_position and plan.history is not None:
        history_id = await _close_position(
            conn,
            position,
            plan.history,
            sale_transaction_id=tx_id,
            signal_id=signal_id,
            reason="take_profit",
            sol_usd=sol_usd,
        )
        position_event = _closed_event(position)
    else:
        updated = await Q.exec_update_position_after_take_profit.fetch_one(
            conn,
            position["id"],
            plan.remaining_amount,
            plan.take_profit_levels_hit,
            tx_id,
            plan.realized_profit_sol,
            plan.moon_bag_activated,
            plan.moon_bag_amount,
        )
        assert updated is not None
        position_event = _updated_event(updated)
    messages = [
        position_event,
        _balance_event(position["wallet_address"], balances),
        _trade_event("take_profit", tx_id, position, sold, profitLossSol=plan.profit_loss_sol),
    ]
    await _fill_recorded(conn, position["agent_id"], fill, executor, messages)
    return TakeProfitResult(
        outcome="executed",
        position_id=position["id"],
        transaction_id=tx_id,
        tokens_sold=sold.input_amount,
        credit_sol=sold.credit_sol,
        profit_loss_sol=plan.profit_loss_sol,
        remaining_amount=plan.remaining_amount,
        levels_hit=plan.take_profit_levels_hit,
        moon_bag_activated=plan.moon_bag_activated,
        position_closed=history_id is not None,
        historical_swap_id=history_id,
        transaction_hash=fill.signature,
    )


# --------------------------------------------------------------------------------------------------
# DCA buy


_DCA_FAILURE = ("DCA_EXECUTION_FAILED", "DCA buy execution failed")


async def execute_dca_buy(
    ctx: ExecutionContext, *, position_id: uuid.UUID, buy_amount_sol: Decimal, expected_dca_count: int
) -> DcaResult:
    """Add to a position (§4.7); the position's new average, amount and counters are written in the
    same transaction as the balances (§16.11). ``expected_dca_count`` is the count the decision was made
    on: a moved count (the level already bought) returns ``outcome="changed"`` and buys nothing."""
    ctx = await _context(ctx)
    return await _measured("dca_buy", _dca(ctx, position_id, buy_amount_sol, expected_dca_count))


async def _dca(
    ctx: ExecutionContext, position_id: uuid.UUID, buy_amount_sol: Decimal, expected_dca_count: int
) -> DcaResult:
    if buy_amount_sol <= 0:
        raise TradeError("INVALID_POSITION_SIZE", "DCA buy amount must be positive")

    def moved(row: Mapping[str, Any]) -> bool:
        return row["dca_count"] != expected_dca_count

    async def plan(snap: Mapping[str, Any]) -> _PositionSwap:
        cfg = _load_config(snap["trading_config"])
        balance = parse_balance(snap["sol_balance"]) if snap["sol_balance"] is not None else ZERO
        if balance < buy_amount_sol:
            raise TradeError(
                "INSUFFICIENT_BALANCE",
                f"Insufficient SOL balance for DCA: have {balance:.4f}, need {buy_amount_sol:.4f}",
            )
        token = snap["token_address"]
        decimals = await ctx.token_decimals(token, snap["wallet_type"])
        quote = await _quote(
            ctx,
            SOL_MINT,
            token,
            sol_to_lamports(buy_amount_sol),
            wallet=snap["wallet_address"],
            wallet_type=snap["wallet_type"],
            token=token,
            failure=_DCA_FAILURE,
        )
        debit = _estimate_buy(quote, decimals).debit_sol

        def sol_covers_debit(locked: LockedBalances) -> None:
            have = locked[SOL_MINT][1] if SOL_MINT in locked else ZERO
            if have < debit:
                raise TradeError(
                    "INSUFFICIENT_BALANCE", f"Insufficient SOL balance for DCA: have {have:.4f}, need {debit:.4f}"
                )

        return _PositionSwap(
            quote=quote,
            token_decimals=decimals,
            side="buy",
            intent={"kind": "dca", "position_id": position_id},
            record=partial(record_dca_fill, cfg=cfg),
            confirm=sol_covers_debit,
        )

    return await _swap_on_position(
        ctx,
        position_id,
        result=DcaResult,
        moved=moved,
        plan=plan,
        failure=_DCA_FAILURE,
        gave_up="DCA buy execution failed: the position kept changing",
    )


async def record_dca_fill(
    conn: asyncpg.Connection,
    *,
    position: Mapping[str, Any],
    cfg: AgentTradingConfig,
    fill: Fill,
    token_decimals: int,
    sol_usd: Decimal | None,
    locked_balances: Mapping[str, tuple[str, Decimal]] | None = None,
    executor: SwapExecutor | None = None,
) -> DcaResult:
    if locked_balances is None:
        locked_balances = await _lock_balances(conn, position["wallet_address"], [SOL_MINT, position["token_address"]])
    bought = _bought(fill, token_decimals, sol_usd)
    plan = plan_dca_buy(_position_state(position), cfg, bought, now=datetime.now(UTC))
    signal_id = await _inherited_signal(conn, position)
    tx_id, balances = await _record_position_swap(
        conn,
        position=position,
        fill=fill,
        figures=bought,
        signal_id=signal_id,
        sol_usd=sol_usd,
        locked_balances=locked_balances,
        is_dca=True,
    )
    stop = plan.stop_loss
    updated = await Q.exec_update_position_after_dca.fetch_one(
        conn,
        position["id"],
        plan.purchase_price,
        plan.purchase_amount,
        plan.total_invested_sol,
        plan.remaining_amount,
        plan.dca_count,
        tx_id,
        plan.tp_batch_start_level,
        stop.peak_price if stop else None,
        stop.current_stop_loss_percentage if stop else None,
        plan.total_take_profit_levels,
    )
    assert updated is not None
    messages = [
        _updated_event(updated),
        _balance_event(position["wallet_address"], balances),
        _trade_event("dca", tx_id, position, bought),
    ]
    await _fill_recorded(conn, position["agent_id"], fill, executor, messages)
    return DcaResult(
        outcome="executed",
        position_id=position["id"],
        transaction_id=tx_id,
        tokens_bought=bought.output_amount,
        debit_sol=bought.debit_sol,
        purchase_price=plan.purchase_price,
        dca_count=plan.dca_count,
        transaction_hash=fill.signature,
    )


# --------------------------------------------------------------------------------------------------
# Rug-pull burn


async def execute_burn(ctx: ExecutionContext, *, position_id: uuid.UUID) -> BurnResult:
    """Write a rug-pulled position off (§9.4): BURN the wallet's actual token balance (fix of §16.20),
    delete the position and write its history row with the loss (``close_reason = "rug_pull"``), in one
    transaction. Nothing is quoted or executed: the tokens are worthless."""
    ctx = await _context(ctx)
    return await _measured("burn", _burn(ctx, position_id))


async def _burn(ctx: ExecutionContext, position_id: uuid.UUID) -> BurnResult:
    snap = await _position_snapshot(ctx, position_id)
    if snap is None:
        return BurnResult(outcome="already_closed", position_id=position_id)
    sol_usd = await ctx.sol_usd_price()
    async with transaction(ctx.pool) as conn:
        locked, position = await _lock_position_scope(conn, snap, [snap["token_address"]])
        if position is None:
            return BurnResult(outcome="already_closed", position_id=position_id)
        return await record_burn(conn, position=position, sol_usd=sol_usd, locked_balances=locked)


async def record_burn(
    conn: asyncpg.Connection,
    *,
    position: Mapping[str, Any],
    sol_usd: Decimal | None,
    locked_balances: Mapping[str, tuple[str, Decimal]] | None = None,
) -> BurnResult:
    wallet, token, agent_id = position["wallet_address"], position["token_address"], position["agent_id"]
    if locked_balances is None:
        locked_balances = await _lock_balances(conn, wallet, [token])
    state = _position_state(position)
    held = locked_balances[token][1] if token in locked_balances else ZERO
    amount = quantize(burn_amount(held, state), AMOUNT_18)
    signal_id, tp_proceeds = await _history_inputs(conn, position)
    tx_id = None
    messages: list[tuple[str, Any]] = []
    if amount > 0:
        tx_id = await Q.exec_insert_transaction.fetch_val(
            conn,
            agent_id,
            wallet,
            "BURN",
            ZERO,
            signal_id,
            ZERO,
            None,
            token,
            position["token_symbol"],
            amount,
            ZERO,
            None,
            None,
            None,
            None,
            None,
            None,
            False,
            False,
            None,
            None,
            None,
            None,
            position["id"],
            _q(sol_usd, SOL_8),
        )
        balances = await _apply_ledger(
            conn,
            agent_id=agent_id,
            wallet=wallet,
            locked=locked_balances,
            deltas=balance_deltas("BURN", token, amount),
            symbols={token: position["token_symbol"]},
            drop_empty_tokens=True,
        )
        messages.append(_balance_event(wallet, balances))
    figures = _burn_history(state, tp_proceeds, sol_usd)
    history_id = await _close_position(
        conn,
        position,
        figures,
        sale_transaction_id=tx_id,
        signal_id=signal_id,
        reason=RUG_CLOSE_REASON,
        sol_usd=sol_usd,
    )
    messages.insert(0, _closed_event(position))
    messages.append(
        (
            "trade",
            {
                "kind": "burn",
                "transactionId": tx_id,
                "positionId": position["id"],
                "walletAddress": wallet,
                "tokenAddress": token,
                "amount": amount,
                "profitLossSol": figures.profit_loss_sol,
            },
        )
    )
    await _publish(conn, agent_id, messages)
    return BurnResult(
        outcome="executed",
        position_id=position["id"],
        transaction_id=tx_id,
        amount_burned=amount,
        historical_swap_id=history_id,
        profit_loss_sol=figures.profit_loss_sol,
    )


def _burn_history(state: PositionState, received: Decimal, sol_usd: Decimal | None) -> HistoryFigures:
    """A write-off's figures: whatever take-profit sales brought in, minus everything invested."""
    figures = closing_history(state, received, sol_usd)
    return msgspec.structs.replace(figures, change_percent=max(figures.change_percent, CHANGE_PERCENT_FLOOR))
