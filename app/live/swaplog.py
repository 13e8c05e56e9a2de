"""The write-ahead swap log (table ``live_swaps``): every state change of a live swap, in order.

Rules this module enforces (docs/live-trading.md walks through why they are enough):

1. The intent — quote, signed transaction, its signature and ``lastValidBlockHeight`` — is committed
   BEFORE the transaction is sent (:func:`journal`). A crash at any later point leaves a row that names
   the exact transaction to look up on chain.
2. At most one unresolved swap (pending/sent/confirmed) per wallet, enforced by a partial unique index:
   a new order cannot be journaled until the previous one is settled from chain.
3. Terminal states come only from chain facts: ``confirmed`` (landed, balance deltas stored) then
   ``settled`` (ledger written), ``failed`` (landed with an error, or provably never forwarded),
   ``expired`` (never seen and its blockhash is dead at finalized height).
4. ``settled`` is set by :func:`mark_settled` inside the ledger transaction and only from
   ``confirmed``: whoever commits first records the trade, the other's ledger write rolls back.

A lease (``lease_owner``/``lease_until``) marks a swap an executor is still watching; settlement
leaves leased rows alone and takes over when a lease lapses (the process died or gave up waiting).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from app.db import Q, transaction
from app.live.rails import LiveRefused
from app.live.swap import ChainFacts, Flows, Prepared, SwapError

UNRESOLVED = ("pending", "sent", "confirmed")
ONE_UNRESOLVED_INDEX = "live_swaps_one_unresolved_per_wallet"


class SwapRow(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    agent_id: uuid.UUID
    wallet_address: str
    side: str
    swap_api: str
    input_mint: str
    output_mint: str
    in_amount: Decimal
    quoted_out_amount: Decimal
    min_out_amount: Decimal | None
    quote: dict
    intent: dict
    request_id: str | None
    signature: str
    signed_transaction: str
    last_valid_block_height: int
    status: str
    error: str | None
    slot: int | None
    fee_lamports: int | None
    actual_in_amount: Decimal | None
    actual_out_amount: Decimal | None
    sol_delta_lamports: Decimal | None
    chain: dict | None
    transaction_id: uuid.UUID | None
    lease_owner: str | None
    lease_until: datetime | None
    settle_attempts: int
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    resolved_at: datetime | None

    @property
    def token_mint(self) -> str:
        return self.output_mint if self.side == "buy" else self.input_mint


class AlreadySettled(Exception):
    """The swap was settled (or resolved) by someone else; the caller's ledger write must roll back."""


def halt_scopes(user_id: uuid.UUID | None) -> list[str]:
    return ["global"] if user_id is None else ["global", f"user:{user_id}"]


def _quote_doc(prepared: Prepared) -> dict[str, Any]:
    q = prepared.quote
    return {
        "requestId": q.request_id,
        "inAmount": str(q.in_amount),
        "outAmount": str(q.out_amount),
        "otherAmountThreshold": None if q.other_amount_threshold is None else str(q.other_amount_threshold),
        "priceImpact": str(q.price_impact),
        "slippageBps": q.slippage_bps,
        "payload": q.payload,
    }


async def check_halts(conn: asyncpg.Connection, user_id: uuid.UUID | None, *, lock: bool) -> None:
    query = Q.live_lock_halts if lock else Q.live_get_halts
    for row in await query.fetch_all(conn, halt_scopes(user_id)):
        if row["halted"]:
            who = "globally" if row["scope"] == "global" else "for this user"
            reason = f": {row['reason']}" if row["reason"] else ""
            raise LiveRefused("KILL_SWITCH", f"Live trading is halted {who}{reason}")


async def journal(
    pool: asyncpg.Pool,
    prepared: Prepared,
    *,
    agent_id: uuid.UUID,
    side: str,
    intent: dict[str, Any],
    lease_owner: str,
    lease_s: float,
    gates: Callable[[asyncpg.Connection], Awaitable[None]],
) -> uuid.UUID:
    """Commit the intent (status ``pending``, leased by ``lease_owner``) after ``gates(conn)`` passed
    in the same transaction (:func:`app.live.guard.check_order` reads the kill switch ``FOR SHARE``,
    so a halt committed before this point refuses the order)."""
    q = prepared.quote
    try:
        async with transaction(pool) as conn:
            await gates(conn)
            return await Q.live_insert_swap.fetch_val(
                conn,
                agent_id,
                prepared.wallet,
                side,
                prepared.swap_api,
                q.input_mint,
                q.output_mint,
                Decimal(q.in_amount),
                Decimal(q.out_amount),
                None if q.other_amount_threshold is None else Decimal(q.other_amount_threshold),
                _quote_doc(prepared),
                msgspec.to_builtins(intent),
                prepared.request_id,
                prepared.signature,
                prepared.signed_transaction,
                prepared.last_valid_block_height,
                lease_owner,
                float(lease_s),
            )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == ONE_UNRESOLVED_INDEX:
            raise LiveRefused(
                "WALLET_BUSY", f"Wallet {prepared.wallet} has a live swap awaiting settlement; try again shortly"
            ) from None
        raise


async def mark_sent(pool: asyncpg.Pool, swap_id: uuid.UUID) -> None:
    await Q.live_mark_sent.execute(pool, swap_id)


async def mark_confirmed(
    pool: asyncpg.Pool, swap_id: uuid.UUID, facts: ChainFacts, flows: Flows, extra: dict[str, Any] | None = None
) -> bool:
    """Landed successfully: store the chain's balance deltas, the only amounts a ledger row may use
    (``extra``: e.g. Jupiter's execute response, kept so a later settlement builds the same fill)."""
    row = await Q.live_mark_confirmed.fetch_val(
        pool,
        swap_id,
        facts.slot,
        facts.fee_lamports,
        Decimal(flows.spent),
        Decimal(flows.received),
        Decimal(facts.sol_delta),
        msgspec.to_builtins(facts) | (extra or {}),
    )
    return row is not None


async def mark_without_trade(
    pool: asyncpg.Pool,
    swap_id: uuid.UUID,
    status: str,
    error: str,
    *,
    facts: ChainFacts | None = None,
    answer: SwapError | None = None,
) -> bool:
    """``failed`` or ``expired``: no trade, ever. A landed failure keeps its fee in ``fee_lamports``; settlement
    writes that fee to the ledger (:meth:`app.live.settlement.Settlement.record_failed_fees`).

    ``answer``: what a manual trade request still waiting on this swap (answered ``SWAP_UNCONFIRMED``) is told
    now, in the same transaction; the request is the one the swap's intent names.
    """
    assert status in ("failed", "expired")
    async with transaction(pool) as conn:
        intent = await Q.live_mark_resolved_without_trade.fetch_one(
            conn,
            swap_id,
            status,
            error,
            facts.slot if facts else None,
            facts.fee_lamports if facts else None,
            msgspec.to_builtins(facts) if facts else None,
        )
        if intent is None:
            return False
        request_id = (intent["intent"] or {}).get("trade_request_id")
        if answer is not None and request_id:
            await Q.trade_request_answer_without_trade.execute(conn, uuid.UUID(request_id), answer.code, answer.message)
    return True


async def mark_settled(conn: asyncpg.Connection, swap_id: uuid.UUID, transaction_id: uuid.UUID) -> None:
    """Inside the ledger transaction, after its rows: only a ``confirmed`` swap becomes ``settled``."""
    if await Q.live_mark_settled.fetch_val(conn, swap_id, transaction_id) is None:
        raise AlreadySettled(f"live swap {swap_id} is not awaiting a ledger row")


async def note_error(pool: asyncpg.Pool, swap_id: uuid.UUID, error: str, *, attempt: bool = True) -> None:
    await Q.live_note_error.execute(pool, swap_id, error[:2000], 1 if attempt else 0)


async def extend_lease(pool: asyncpg.Pool, swap_id: uuid.UUID, owner: str, lease_s: float) -> None:
    await Q.live_extend_lease.execute(pool, swap_id, owner, float(lease_s))


async def release_lease(pool: asyncpg.Pool, swap_id: uuid.UUID, owner: str) -> None:
    await Q.live_release_lease.execute(pool, swap_id, owner)


async def claim(
    pool: asyncpg.Pool, owner: str, lease_s: float, *, wallet: str | None = None, skip: list[uuid.UUID] | None = None
) -> SwapRow | None:
    """Lease the oldest unresolved swap nobody holds (optionally of one wallet, not in ``skip``)."""
    return await Q.live_claim_unresolved.fetch_one(pool, owner, wallet, float(lease_s), skip or [], into=SwapRow)


async def get(pool: asyncpg.Pool | asyncpg.Connection, swap_id: uuid.UUID) -> SwapRow | None:
    return await Q.live_get_swap.fetch_one(pool, swap_id, into=SwapRow)


async def unresolved_for_wallet(pool: asyncpg.Pool, wallet: str) -> list[dict[str, Any]]:
    return await Q.live_unresolved_for_wallet.fetch_all(pool, wallet)
