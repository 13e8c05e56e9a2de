"""How a quoted swap becomes a fill: the ``SwapExecutor`` seam between the trade path and the chain.

Every trade (buy, full sale, take-profit sale, DCA buy) goes through :mod:`app.worker.execution`, which
quotes, takes its locks, re-checks, then asks the wallet's executor to *execute* the quote and records
the resulting :class:`Fill` in the same database transaction. Simulation fills straight from the quote;
the live executor (issue 7) signs and submits it, keeping its own write-ahead swap log so that a fill
that landed on chain but was never recorded (crash between send and commit) can be settled later with
:func:`app.worker.execution.record_buy_fill` / ``record_sale_fill``.

``on_recorded`` is called inside the ledger transaction after the fill's rows are written, so an
executor can mark its own bookkeeping (the live swap-log row) settled atomically with the ledger.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

import asyncpg
import msgspec

from app.market.types import Quote, Quoter

Side = Literal["buy", "sell"]


class Fill(msgspec.Struct, kw_only=True):
    """What a swap actually did, in raw units (lamports for SOL, base units for tokens).

    ``input_amount_raw``/``output_amount_raw`` are the swapped amounts (Jupiter's ``inputAmountResult``/
    ``outputAmountResult``): fee-exclusive. ``total_input_raw`` (buy side) includes the protocol fee;
    ``total_output_raw`` (sell side) is net of it; None when the venue does not report them (then the
    trade planners derive them from the payload's fee terms). ``payload`` is stored as
    ``agent_transactions.swap_payload`` and is what fees are extracted from.
    """

    side: Side
    input_mint: str
    output_mint: str
    input_amount_raw: int
    output_amount_raw: int
    total_input_raw: int | None = None
    total_output_raw: int | None = None
    signature: str | None = None
    request_id: str | None = None
    price_impact: Decimal = Decimal(0)  # signed fraction, as the quote reported it
    slippage_bps: int = 0
    routes: list = msgspec.field(default_factory=list)
    payload: dict = msgspec.field(default_factory=dict)


@runtime_checkable
class SwapExecutor(Protocol):
    """Executes a quote for a wallet. ``intent`` describes the trade for the executor's own records
    (agent, token, position, amounts, reason); ``side`` is ``"buy"`` (SOL → token) or ``"sell"``."""

    async def execute(
        self, quote: Quote, *, wallet_address: str, agent_id: uuid.UUID, side: Side, intent: dict[str, Any]
    ) -> Fill: ...

    async def on_recorded(self, conn: asyncpg.Connection, fill: Fill) -> None: ...


@runtime_checkable
class QuotingSwapExecutor(SwapExecutor, Quoter, Protocol):
    """An executor that quotes its own swaps (live wallets: a Metis quote, or an Ultra order built for
    the wallet). The trade path sizes, impact-guards and fee-estimates a trade on the quote it then
    hands back to :meth:`execute`, so what was planned is what gets executed."""


def fill_at_quote(quote: Quote, side: Side) -> Fill:
    """The fill of a swap that executes exactly as quoted: what simulation wallets get, and what a trade
    is planned on before its quote is executed."""
    return Fill(
        side=side,
        input_mint=quote.input_mint,
        output_mint=quote.output_mint,
        input_amount_raw=quote.in_amount,
        output_amount_raw=quote.out_amount,
        signature=None,
        request_id=quote.request_id,
        price_impact=quote.price_impact,
        slippage_bps=quote.slippage_bps,
        routes=list(quote.route_plan),
        payload=quote.payload,
    )


class SimulationExecutor:
    """Fills a simulation wallet's swap exactly at its quote.

    Fees are charged, unlike the reference (§16.5): with no ``total_*`` amounts reported, the trade
    planners (:mod:`app.trading.trades`) add the order's protocol fee to a buy's gross input and take it
    off a sale's proceeds, exactly as ``protocol_fee_sol`` is stored; the network fee (the order's fee
    lamports) is debited by the ledger rule. Simulated and live P/L are therefore comparable.
    """

    name = "simulation"

    async def execute(
        self, quote: Quote, *, wallet_address: str, agent_id: uuid.UUID, side: Side, intent: dict[str, Any]
    ) -> Fill:
        return fill_at_quote(quote, side)

    async def on_recorded(self, conn: asyncpg.Connection, fill: Fill) -> None:
        return None
