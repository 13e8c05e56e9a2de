"""Manual trades (``POST /trades/execute``, ``POST /agent-positions/{agentId}/{positionId}/close``) run here.

The API inserts a ``trade_requests`` row and waits for its answer; this service executes it through the
same path as every other trade (:mod:`app.worker.execution`), exactly once:

* a pending request is claimed with ``FOR NO KEY UPDATE SKIP LOCKED`` and the claim is held while the trade
  runs, so two workers never run one request;
* the trade's own ledger transaction inserts the request's outcome (``trade_request_outcomes``, keyed by the
  request), so "traded" and "answered" commit together; a worker that dies after that commit leaves an
  outcome that the next claim just reports, and one that dies before it leaves nothing, so the trade runs
  (once) on the next claim;
* a request nobody picked up within ``TRADE_REQUEST_TTL_S`` is answered ``REQUEST_EXPIRED`` instead of
  trading long after the user gave up waiting.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from app.config import Settings
from app.db import Q
from app.logs import bind
from app.worker import components
from app.worker.execution import (
    BuyResult,
    ExecutionContext,
    SaleResult,
    TradeError,
    execute_buy,
    execute_full_sale,
)
from app.worker.intake import INFRASTRUCTURE_ERRORS, drain_on_notify

log = logging.getLogger(__name__)

CHANNEL = "trade_request_created"


class RequestRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    user_id: uuid.UUID
    agent_id: uuid.UUID
    kind: str
    params: dict[str, Any]
    created_at: datetime
    expired: bool


def buy_response(result: BuyResult) -> dict[str, Any]:
    """The reference's 200 body of ``POST /trades/execute`` (numbers as Decimal → JSON numbers)."""
    return {
        "success": True,
        "transactionId": str(result.transaction_id),
        "positionId": str(result.position_id) if result.position_id else None,
        "inputAmount": result.input_amount,
        "outputAmount": result.output_amount,
        "purchasePrice": result.purchase_price,
        "transactionHash": result.transaction_hash,
        "stopLossInitialized": result.stop_loss_initialized,
        "stopLossPercentage": result.stop_loss_percentage,
        "signalId": result.signal_id,
    }


def sale_response(result: SaleResult) -> dict[str, Any]:
    """The reference's 200 body of the position close route."""
    return {
        "success": True,
        "transactionId": str(result.transaction_id),
        "historicalSwapId": str(result.historical_swap_id),
        "positionId": str(result.position_id),
        "inputAmount": result.input_amount,
        "outputAmount": result.output_amount,
        "salePrice": result.sale_price,
        "profitLossSol": result.profit_loss_sol,
        "profitLossUsd": result.profit_loss_usd,
        "changePercent": result.change_percent,
        "transactionHash": result.transaction_hash,
    }


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _failure_details(err: TradeError) -> dict[str, Any] | None:
    """What a failed request keeps besides its code: a live swap's signature, so the client can follow a swap
    whose outcome settlement decides later (``SWAP_UNCONFIRMED``)."""
    signature = getattr(err, "signature", None)
    return {"signature": signature} if signature else None


async def _run(ctx: ExecutionContext, request: RequestRow) -> None:
    """Execute the request; its outcome row is written inside the trade's ledger transaction."""

    async def record(conn: asyncpg.Connection, result: Any) -> None:
        body = buy_response(result) if isinstance(result, BuyResult) else sale_response(result)
        await Q.trade_request_record_outcome.execute(conn, request.id, body)

    params = request.params
    if request.kind == "buy":
        await execute_buy(
            ctx,
            agent_id=request.agent_id,
            token_address=params["tokenAddress"],
            token_symbol=params.get("tokenSymbol"),
            signal_id=params.get("signalId"),
            position_size=_decimal(params.get("positionSize")),
            wallet_address=params.get("walletAddress"),
            in_transaction=record,
            trade_request_id=request.id,
        )
        return
    sale = await execute_full_sale(
        ctx,
        agent_id=request.agent_id,
        position_id=uuid.UUID(params["positionId"]),
        reason=params.get("reason") or "manual",
        in_transaction=record,
        trade_request_id=request.id,
    )
    if not sale.success:
        raise TradeError("POSITION_ALREADY_CLOSED", "Position is already closed")


async def claim_and_execute(ctx: ExecutionContext, settings: Settings) -> bool:
    """Claim the oldest pending request and answer it. False when there was none."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        request = await Q.trade_request_claim.fetch_one(conn, settings.trade_request_ttl_s, into=RequestRow)
        if request is None:
            return False
        with bind(trade_request_id=str(request.id), agent_id=str(request.agent_id)):
            if await Q.trade_request_has_outcome.fetch_val(conn, request.id):
                # Executed before its worker died: only the answer was missing.
                await Q.trade_request_finish_from_outcome.execute(conn, request.id)
                return True
            if request.expired:
                await Q.trade_request_finish.execute(
                    conn, request.id, "failed", None, "REQUEST_EXPIRED",
                    "The trade request expired before a worker could execute it",
                )  # fmt: skip
                return True
            try:
                await _run(ctx, request)
            except TradeError as err:
                log.info("manual trade refused", extra={"fields": {"code": err.code, "error": err.message}})
                await Q.trade_request_finish.execute(
                    conn, request.id, "failed", _failure_details(err), err.code, err.message
                )
                return True
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as exc:
                log.exception("manual trade crashed")
                await Q.trade_request_finish.execute(
                    conn, request.id, "failed", None, "INTERNAL_ERROR", f"Trade execution failed: {type(exc).__name__}"
                )
                return True
            await Q.trade_request_finish_from_outcome.execute(conn, request.id)
            return True


async def drain_requests(ctx: ExecutionContext, settings: Settings, stopping: asyncio.Event | None = None) -> int:
    done = 0
    while stopping is None or not stopping.is_set():
        if not await claim_and_execute(ctx, settings):
            break
        done += 1
    return done


async def trade_requests_service(worker: Any) -> None:
    """Worker service: execute manual trades on every ``trade_request_created`` and on each poll."""
    ctx = await components.execution(worker)
    await drain_on_notify(
        worker,
        CHANNEL,
        lambda: drain_requests(ctx, worker.settings, worker.stopping),
        name="trade requests",
        logger=log,
    )
