"""Settlement: resolve every unresolved live swap from chain facts, and record the ones that landed.

Runs (a) inline before a new order for a wallet (:meth:`Settlement.settle_wallet`, chain checks only:
the caller holds the agent lock, so recording waits for the service), and (b) as a worker service
(:func:`app.live.services.live_settlement_service`) over every swap whose lease lapsed: the executor
that journaled it crashed, timed out, or its ledger write failed.

For one swap (:meth:`Settlement.settle`):

* ``pending``/``sent``: ask the chain. Landed ⇒ ``confirmed`` with the wallet's balance deltas;
  landed with an error ⇒ ``failed``; not seen while the blockhash is still valid ⇒ leave it (ask again
  later); not seen and the blockhash is dead at finalized height ⇒ ``expired``. Nothing is ever
  re-sent from here.
* ``confirmed``: write the ledger through the execution module's ``record_*_fill`` in one transaction
  (agent → balances → position locks), ending with :func:`app.live.executor.mark_fill_settled`; a
  concurrent recorder makes that raise and this transaction roll back. The journaled intent (written
  by the execution module: :class:`~app.worker.execution.BuyIntent`,
  :class:`~app.worker.execution.TakeProfitIntent`) supplies what the chain cannot tell: the symbol,
  the signal and its execution row, the take-profit levels and moon bag.
* ``failed`` with a fee (landed with an error): after each recording pass, :meth:`Settlement.record_failed_fees`
  writes the fee as a fee-only SWAP row (docs/live-trading.md, "Fill amounts").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import msgspec

from app.config import Settings
from app.db import Q, transaction
from app.live import swaplog
from app.live.executor import SettlementMarker, fill_from_row
from app.live.swap import LiveSwapper, SwapError, expired_without_trade, failed_on_chain, wallet_flows
from app.live.swaplog import AlreadySettled, SwapRow
from app.logs import bind
from app.market.types import MarketError
from app.metrics import ERRORS_TOTAL
from app.trading.config import load_config
from app.trading.errors import TradeError
from app.trading.ledger import parse_balance
from app.trading.units import SOL_MINT
from app.worker.executor import Fill

log = logging.getLogger(__name__)

SolUsdPrice = Callable[[], Awaitable[Decimal | None]]
T = TypeVar("T")


class SettlementBlocked(Exception):
    """A landed swap that cannot be recorded automatically (its agent or position is gone)."""


async def _no_sol_usd() -> Decimal | None:
    return None


async def _lock_balances(conn: asyncpg.Connection, wallet: str, tokens: list[str]) -> dict[str, tuple[str, Decimal]]:
    rows = await Q.exec_lock_balances.fetch_all(conn, wallet, sorted(set(tokens)))
    return {r["token_address"]: (r["token_symbol"], parse_balance(r["balance"])) for r in rows}


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _journaled(intent: dict[str, Any], kind: str, into: type[T]) -> T:
    """The intent the execution module journaled for this swap; one it did not write cannot be settled
    automatically (guessing levels or a signal would record a different trade than was decided)."""
    try:
        return msgspec.convert(intent, into, strict=False)
    except msgspec.ValidationError as exc:
        raise SettlementBlocked(f"{kind} intent is incomplete: {exc}") from None


class Settlement:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        swapper: LiveSwapper,
        *,
        owner: str,
        sol_usd: SolUsdPrice = _no_sol_usd,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.swapper = swapper
        self.owner = owner
        self.sol_usd = sol_usd

    async def settle_wallet(self, wallet: str, *, record: bool = False) -> list[str]:
        """One pass over the wallet's lapsed unresolved swaps; returns their statuses afterwards."""
        return await self._pass(wallet=wallet, record=record)

    async def run_once(self, *, record: bool = True) -> list[str]:
        """One pass over every lapsed unresolved swap (the settlement service's tick)."""
        return await self._pass(wallet=None, record=record)

    async def _pass(self, *, wallet: str | None, record: bool) -> list[str]:
        seen: list[uuid.UUID] = []
        statuses: list[str] = []
        while True:
            row = await swaplog.claim(self.pool, self.owner, self.settings.live_lease_s, wallet=wallet, skip=seen)
            if row is None:
                break
            seen.append(row.id)
            statuses.append(await self.settle(row, record=record))
        if record:
            await self.record_failed_fees(wallet)
        return statuses

    async def record_failed_fees(self, wallet: str | None = None) -> int:
        """Write the fee of every landed failure the ledger lacks (``wallet``'s, or all), one transaction each;
        returns how many were written. Until its fee is written, a failure keeps its wallet busy
        (``live_unresolved_for_wallet``), so no order is sized on a SOL balance that still includes it."""
        written = 0
        for pending in await Q.live_failed_fees_unrecorded.fetch_all(self.pool, wallet):
            with bind(live_swap_id=str(pending["id"])):
                try:
                    written += await self._record_failed_fee(pending["id"])
                except (SettlementBlocked, TradeError, asyncpg.PostgresError) as exc:
                    code = getattr(exc, "code", None) or type(exc).__name__
                    ERRORS_TOTAL.labels("live_settlement", str(code)).inc()
                    # The journal's error column keeps the failure's own reason; this one is only logged.
                    log.warning("failed swap's fee not recorded yet: %s", exc)
        return written

    async def _record_failed_fee(self, swap_id: uuid.UUID) -> bool:
        from app.worker import execution

        try:
            async with transaction(self.pool) as conn:
                row = await swaplog.get(conn, swap_id)
                if row is None or row.status != "failed" or not row.fee_lamports:
                    return False
                if await Q.exec_lock_agent.fetch_one(conn, row.agent_id) is None:
                    raise SettlementBlocked(f"agent {row.agent_id} no longer exists")
                locked = await _lock_balances(conn, row.wallet_address, [SOL_MINT])
                transaction_id = await execution.record_failed_transaction_fee(
                    conn,
                    agent_id=row.agent_id,
                    wallet_address=row.wallet_address,
                    other_mint=row.token_mint,
                    fee_lamports=int(row.fee_lamports),
                    signature=row.signature,
                    error=row.error,
                    locked_balances=locked,
                )
                if await Q.live_mark_fee_recorded.fetch_val(conn, row.id, transaction_id) is None:
                    raise AlreadySettled(f"fee of live swap {row.id} was recorded meanwhile")
        except AlreadySettled:
            return False
        log.info(
            "failed live transaction's fee recorded in the ledger", extra={"fields": {"lamports": row.fee_lamports}}
        )
        return True

    async def settle(self, row: SwapRow, *, record: bool = True) -> str:
        """Advance one claimed swap as far as chain facts allow; the lease is released on the way out."""
        with bind(live_swap_id=str(row.id), signature=row.signature, wallet=row.wallet_address):
            try:
                if row.side == "withdrawal":
                    # Withdrawals share this journal, lease and loop; only reading the chain and writing
                    # the ledger row differ (docs/withdrawals.md). Imported here: it imports this module.
                    from app.withdrawals import settle_withdrawal

                    return await settle_withdrawal(self, row, record=record)
                status = row.status
                if status in ("pending", "sent"):
                    status = await self._resolve_from_chain(row)
                if status == "confirmed" and record:
                    fresh = await swaplog.get(self.pool, row.id)
                    assert fresh is not None
                    status = await self._record(fresh)
                return status
            except (MarketError, SwapError, SettlementBlocked, TradeError, asyncpg.PostgresError) as exc:
                fresh = await swaplog.get(self.pool, row.id)
                if fresh is not None and fresh.status not in swaplog.UNRESOLVED:
                    return fresh.status  # someone else resolved it meanwhile; our attempt rolled back
                code = getattr(exc, "code", None) or type(exc).__name__
                ERRORS_TOTAL.labels("live_settlement", str(code)).inc()
                log.warning("live swap settlement deferred: %s", exc)
                await swaplog.note_error(self.pool, row.id, f"settlement: {exc}")
                return row.status
            finally:
                await swaplog.release_lease(self.pool, row.id, self.owner)

    async def _resolve_from_chain(self, row: SwapRow) -> str:
        seen = await self.swapper.observe(
            row.signature, row.last_valid_block_height, wallet=row.wallet_address, token_mint=row.token_mint
        )
        if seen.kind in ("unseen", "processed"):
            return row.status
        if seen.kind == "expired":
            await swaplog.mark_without_trade(
                self.pool, row.id, "expired", "blockhash expired before landing",
                answer=expired_without_trade(row.signature),
            )  # fmt: skip
            log.info("live swap expired without landing; no trade")
            return "expired"
        assert seen.facts is not None
        if seen.kind == "failed":
            await swaplog.mark_without_trade(
                self.pool, row.id, "failed", f"landed with error {seen.err}", facts=seen.facts,
                answer=failed_on_chain(seen.err, row.signature),
            )  # fmt: skip
            return "failed"
        await swaplog.mark_confirmed(self.pool, row.id, seen.facts, wallet_flows(row.side, seen.facts))
        log.info("live swap found landed on chain", extra={"fields": {"slot": seen.facts.slot}})
        return "confirmed"

    async def _record(self, row: SwapRow) -> str:
        if row.status != "confirmed":
            return row.status
        fill = fill_from_row(row)
        sol_usd = await self.sol_usd()
        try:
            async with transaction(self.pool) as conn:
                await self._record_in(conn, row, fill, sol_usd)
        except AlreadySettled:
            fresh = await swaplog.get(self.pool, row.id)
            return fresh.status if fresh else "settled"
        log.info("live swap settled into the ledger")
        return "settled"

    async def _record_in(self, conn: asyncpg.Connection, row: SwapRow, fill: Fill, sol_usd: Decimal | None) -> None:
        from app.worker import execution, trade_requests

        intent = row.intent or {}
        kind = intent.get("kind") or ("buy" if row.side == "buy" else "sale")
        decimals = int((row.chain or {})["token_decimals"])
        marker = SettlementMarker()
        agent = await Q.exec_lock_agent.fetch_one(conn, row.agent_id)
        if agent is None:
            raise SettlementBlocked(f"agent {row.agent_id} no longer exists")
        tokens = [SOL_MINT, row.token_mint]
        if kind == "buy":
            buy = _journaled(intent, kind, execution.BuyIntent)
            locked = await _lock_balances(conn, row.wallet_address, tokens)
            result = await execution.record_buy_fill(
                conn,
                agent_id=row.agent_id,
                wallet_address=row.wallet_address,
                token_address=row.output_mint,
                token_symbol=buy.token_symbol,
                cfg=load_config(agent["trading_config"]),
                fill=fill,
                token_decimals=decimals,
                sol_usd=sol_usd,
                signal_id=buy.signal_id,
                locked_balances=locked,
                executor=marker,
            )
            if buy.signal_execution and buy.signal_id is not None:
                linked = await execution.link_settled_signal_buy(
                    conn, signal_id=buy.signal_id, agent_id=row.agent_id, transaction_id=result.transaction_id
                )
                if not linked:
                    log.error(
                        "landed signal buy recorded, but its execution row already points at another buy",
                        extra={"fields": {"signal_id": buy.signal_id, "transaction_id": str(result.transaction_id)}},
                    )
            if buy.trade_request_id:
                body = trade_requests.buy_response(result)
                await Q.trade_request_answer_settled.execute(conn, _uuid(buy.trade_request_id), body)
            return
        position_id = intent.get("position_id")
        if position_id is None:
            raise SettlementBlocked(f"{kind} intent without position_id")
        locked = await _lock_balances(conn, row.wallet_address, tokens)
        position = await Q.exec_lock_position.fetch_one(conn, _uuid(position_id))
        if position is None:
            raise SettlementBlocked(f"position {position_id} of a landed {kind} no longer exists")
        common: dict[str, Any] = {
            "position": position,
            "fill": fill,
            "token_decimals": decimals,
            "sol_usd": sol_usd,
            "locked_balances": locked,
            "executor": marker,
        }
        if kind == "sale":
            sale = await execution.record_sale_fill(conn, reason=intent.get("reason") or "manual", **common)
            if intent.get("trade_request_id"):
                body = trade_requests.sale_response(sale)
                await Q.trade_request_answer_settled.execute(conn, _uuid(intent["trade_request_id"]), body)
        elif kind == "dca":
            await execution.record_dca_fill(conn, cfg=load_config(agent["trading_config"]), **common)
        elif kind == "take_profit":
            await execution.record_take_profit_fill(
                conn, intent=_journaled(intent, kind, execution.TakeProfitIntent), **common
            )
        else:
            raise SettlementBlocked(f"unknown intent kind {kind!r}")
