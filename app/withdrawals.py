"""Withdrawals: SOL or a held SPL token leaves an agent's wallet for an outside address (docs/withdrawals.md).

The ledger rule is :mod:`app.trading.ledger`'s: a ``WITHDRAWAL`` row moves ``−input_amount`` of its mint and
``−fees`` of SOL, where ``fees`` is everything else the withdrawal cost the wallet (network fee, plus the rent of
a destination token account the transfer had to create). Every write takes the trade lock order in one DB
transaction: agent row → balance rows (token-address order) → position row.

* **Simulation**: one transaction locks, refuses an overdraw (:class:`WithdrawalRefused` 409 with the amount
  available), writes the row, moves the balances, adjusts the position, and stores the request.
* **Live**: the transfer is built and signed, then journaled in ``live_swaps`` (side ``withdrawal``) together
  with the request BEFORE it is sent, so the one-unresolved-per-wallet index serialises it with live swaps and
  the live settlement loop (:func:`settle_withdrawal`) finishes it from chain facts after a crash or a timeout.
  The ledger row is written only from what the chain says happened, exactly once (``mark_settled``).
* **Open positions** (:func:`plan_position_withdrawal`): tokens beyond the position's holding leave first; the
  rest leaves the position at its average cost, so a withdrawal is never a loss.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from app import events
from app.config import Settings
from app.db import Q, transaction
from app.live import guard, swaplog
from app.live.executor import default_instance_id
from app.live.keys import KeyStore, b58decode
from app.live.rails import LiveRefused
from app.live.settlement import Settlement, SettlementBlocked
from app.live.swap import DEFINITIVE_REJECTIONS, ChainFacts, Flows, LiveSwapper, Observation, SwapError
from app.live.swaplog import ONE_UNRESOLVED_INDEX, AlreadySettled, SwapRow
from app.logs import bind
from app.market.solana_rpc import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, SolanaRpc
from app.market.types import MarketError, RpcError
from app.trading._num import ZERO, exact, plain
from app.trading.errors import TradeError
from app.trading.ledger import (
    AMOUNT_18,
    SOL_8,
    BalanceError,
    apply_deltas,
    balance_deltas,
    format_balance,
    parse_balance,
    quantize,
)
from app.trading.position import PositionState
from app.trading.trades import HistoryFigures, closing_history, net_sol_proceeds
from app.trading.units import SOL_DECIMALS, SOL_MINT, from_raw, to_raw
from app.worker.execution import position_payload
from app.worker.prices import latest_prices

log = logging.getLogger(__name__)

SIM_NETWORK_FEE_SOL = Decimal("0.000005")  # one signature, what a real SOL or SPL transfer pays
SIGNATURE_FEE_LAMPORTS = 5_000
TOKEN_ACCOUNT_RENT_LAMPORTS = 2_039_280  # rent-exempt minimum of a 165-byte token account
SYSTEM_ACCOUNT_RENT_EXEMPT_LAMPORTS = 890_880  # below this (and above 0) a wallet cannot stay funded
ATA_PROGRAM_ID = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
MEMO_PROGRAM_ID = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
SYSTEM_PROGRAM_ID = "11111111111111111111111111111111"
SPL_MINT_SIZE = 82  # a Token-2022 mint longer than this carries extensions a plain transfer may not satisfy
TRANSFER_CHECKED = 12
CREATE_IDEMPOTENT = 1
MINT_DECIMALS_OFFSET = 44
MAX_AMOUNT = Decimal("1e12")  # amounts are numeric(30,18)
KEY_CONSTRAINT = "withdrawals_user_idempotency_key"
STALE_RETRIES = 3
_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]+$")


class WithdrawalRefused(Exception):
    """A withdrawal that did not happen: HTTP ``status``, stable ``code``, human ``message``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class WithdrawalRequest(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    wallet_address: str
    token_address: str
    amount: Decimal | None  # None = everything that can be withdrawn
    destination: str
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """What an Idempotency-Key is bound to: the same key with another fingerprint is a different request."""
        amount = "all" if self.amount is None else plain(self.amount)
        text = "\n".join((self.wallet_address, self.token_address, amount, self.destination))
        return hashlib.sha256(text.encode()).hexdigest()


class OwnedWallet(msgspec.Struct, frozen=True, kw_only=True):
    wallet_address: str
    agent_id: uuid.UUID
    wallet_type: str
    user_id: uuid.UUID


class Outcome(msgspec.Struct, frozen=True):
    withdrawal_id: uuid.UUID
    replayed: bool = False


# --------------------------------------------------------------------------------------------------
# Input rules (pure)


def validate_destination(destination: str, wallet_address: str, token_address: str) -> str:
    """A 32-byte base58 public key that is neither the wallet itself nor a mint address; 400 otherwise."""
    text = destination.strip()
    if not text or not _BASE58.match(text):
        raise WithdrawalRefused(
            400, "INVALID_DESTINATION", "destinationAddress must be a base58 Solana public key (no 0, O, I or l)"
        )
    size = len(b58decode(text)) if len(text) <= 64 else None
    if size != Pubkey.LENGTH:
        raise WithdrawalRefused(
            400,
            "INVALID_DESTINATION",
            f"destinationAddress must decode to a 32-byte Solana public key (it decodes to {size or 'over 44'} bytes)",
        )
    if text == wallet_address:
        raise WithdrawalRefused(400, "INVALID_DESTINATION", "Cannot withdraw to the wallet itself")
    if text in (token_address, SOL_MINT):
        raise WithdrawalRefused(400, "INVALID_DESTINATION", "destinationAddress is a token mint, not a wallet")
    return str(Pubkey.from_string(text))


def check_amount(amount: Decimal) -> Decimal:
    """An explicit amount: positive, at most 18 decimals (never silently rounded), below the column limit."""
    if not amount.is_finite() or amount <= 0:
        raise WithdrawalRefused(400, "VALIDATION_ERROR", "amount must be greater than 0")
    if amount >= MAX_AMOUNT:
        raise WithdrawalRefused(400, "VALIDATION_ERROR", "amount is too large")
    if amount != quantize(amount, AMOUNT_18):
        raise WithdrawalRefused(400, "VALIDATION_ERROR", "amount has more than 18 decimal places")
    return amount


def _insufficient(mint: str, requested: Decimal | None, available: Decimal, fee: Decimal) -> WithdrawalRefused:
    what = "SOL" if mint == SOL_MINT else "tokens"
    message = (
        f"Insufficient balance: {plain(available)} {what} can be withdrawn"
        if available > 0
        else "Insufficient balance: nothing can be withdrawn (the network fee is paid in SOL)"
    )
    return WithdrawalRefused(
        409,
        "INSUFFICIENT_BALANCE",
        message,
        {
            "tokenAddress": mint,
            "available": plain(available),
            "requested": "all" if requested is None else plain(requested),
            "networkFeeSol": plain(fee),
        },
    )


@exact
def withdrawable(mint: str, balances: Mapping[str, Decimal], fee_sol: Decimal) -> Decimal:
    """The most of ``mint`` that can leave with ``fee_sol`` of SOL paid on top."""
    sol = balances.get(SOL_MINT, ZERO)
    if mint == SOL_MINT:
        return max(ZERO, sol - fee_sol)
    return balances.get(mint, ZERO) if sol >= fee_sol else ZERO


def resolve_amount(mint: str, requested: Decimal | None, balances: Mapping[str, Decimal], fee_sol: Decimal) -> Decimal:
    """The amount to withdraw (``None`` = all that is available); 409 with the available amount otherwise."""
    available = withdrawable(mint, balances, fee_sol)
    amount = available if requested is None else requested
    if amount <= 0 or amount > available:
        raise _insufficient(mint, requested, available, fee_sol)
    return amount


# --------------------------------------------------------------------------------------------------
# The position rule (pure)


class PositionChange(msgspec.Struct, frozen=True, kw_only=True):
    """What a token withdrawal does to the open position of that token."""

    position_id: uuid.UUID
    withdrawn: Decimal  # tokens that left the position
    holding: Decimal  # tokens it still holds
    purchase_amount: Decimal
    remaining_amount: Decimal | None
    total_invested_sol: Decimal
    moon_bag_amount: Decimal | None
    cost_basis_sol: Decimal  # invested SOL that left with the tokens

    @property
    def closes(self) -> bool:
        return self.holding == 0


@exact
def plan_position_withdrawal(
    position: Mapping[str, Any], balance_before: Decimal, amount: Decimal
) -> PositionChange | None:
    """Withdrawn tokens come first from the wallet's tokens beyond the position's holding (deposits, dust);
    the rest leaves the position at its average cost: ``purchase_amount`` and ``remaining_amount`` drop by
    the tokens, ``total_invested_sol`` by their share of it. The average cost per token is unchanged, so the
    held tokens keep their cost basis under both formulas of :mod:`app.api.portfolio`, later take-profit
    sales keep their per-token cost, and a later sale's P/L is the P/L of the tokens actually sold. None when
    the position is untouched."""
    purchase: Decimal = position["purchase_amount"]
    remaining: Decimal | None = position["remaining_amount"]
    holding = purchase if remaining is None else remaining
    surplus = max(ZERO, balance_before - holding)
    withdrawn = min(holding, amount - surplus)
    if withdrawn <= 0:
        return None
    new_holding = holding - withdrawn
    new_purchase = max(ZERO, purchase - withdrawn)
    invested: Decimal = position["total_invested_sol"] or ZERO
    new_invested = quantize(invested * new_purchase / purchase, SOL_8) if purchase > 0 else invested
    moon_bag: Decimal | None = position["moon_bag_amount"]
    return PositionChange(
        position_id=position["id"],
        withdrawn=withdrawn,
        holding=new_holding,
        purchase_amount=new_purchase,
        remaining_amount=None if remaining is None else new_holding,
        total_invested_sol=new_invested,
        moon_bag_amount=None if moon_bag is None else min(moon_bag, new_holding),
        cost_basis_sol=invested - new_invested,
    )


def close_history(
    position: Mapping[str, Any], change: PositionChange, tp_proceeds: Decimal, sol_usd: Decimal | None
) -> HistoryFigures:
    """History of a position whose take-profit sales sold part of it and a withdrawal took the rest: the
    full-sale figures with the withdrawn tokens "sold" at their cost basis, so its P/L is what the take-profit
    sales realised and the withdrawn part adds nothing (``received − total_invested_sol``)."""
    state = PositionState(
        purchase_price=position["purchase_price"],
        purchase_amount=position["purchase_amount"],
        created_at=position["created_at"],
        total_invested_sol=position["total_invested_sol"] or ZERO,
    )
    return closing_history(state, tp_proceeds + change.cost_basis_sol, sol_usd)


# --------------------------------------------------------------------------------------------------
# Recording a withdrawal in the ledger (both paths)


class LedgerWithdrawal(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: uuid.UUID
    wallet: str
    mint: str
    symbol: str
    amount: Decimal  # whole tokens of ``mint`` that reached the destination
    fees_sol: Decimal  # every other SOL the withdrawal cost the wallet (network fee, created account rent)
    network_fee_sol: Decimal
    destination: str
    signature: str | None = None


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    transaction_id: uuid.UUID
    position_id: uuid.UUID | None = None
    position_action: str | None = None
    cost_basis_sol: Decimal | None = None


Locked = dict[str, tuple[str, Decimal]]


async def lock_balances(conn: asyncpg.Connection, wallet: str, mints: Sequence[str]) -> Locked:
    rows = await Q.wd_lock_balances.fetch_all(conn, wallet, sorted(set(mints)))
    return {r["token_address"]: (r["token_symbol"], parse_balance(r["balance"])) for r in rows}


async def usd_prices(conn: asyncpg.Connection | asyncpg.Pool, mint: str) -> tuple[Decimal | None, Decimal | None]:
    """(USD per token, SOL/USD) from the latest stored prices; None where nothing is known."""
    stored = await latest_prices(conn, [mint, SOL_MINT])
    sol = stored.get(SOL_MINT)
    sol_usd = sol.price_usd if sol is not None and sol.price_usd else None
    if mint == SOL_MINT:
        return sol_usd, sol_usd
    token = stored.get(mint)
    if token is None:
        return None, sol_usd
    if token.price_usd:
        return token.price_usd, sol_usd
    return (None if sol_usd is None else token.price_sol * sol_usd), sol_usd


@exact
def _usd_value(amount: Decimal, price: Decimal | None) -> Decimal:
    return ZERO if price is None else quantize(amount * price, SOL_8)


async def _write_balances(
    conn: asyncpg.Connection, w: LedgerWithdrawal, locked: Locked, new: Mapping[str, Decimal]
) -> None:
    upserts: dict[str, tuple[str, Decimal]] = {}
    for mint, value in new.items():
        symbol = locked[mint][0] if mint in locked else ("SOL" if mint == SOL_MINT else w.symbol)
        if mint != SOL_MINT and value == 0:
            # As a full sale does: an emptied token row goes; its ledger sum is 0, so the audit still balances.
            await Q.wd_delete_balance.execute(conn, w.wallet, mint)
        else:
            upserts[mint] = (symbol, value)
    mints = sorted(upserts)
    if mints:
        await Q.wd_upsert_balances.execute(
            conn,
            w.agent_id,
            w.wallet,
            mints,
            [upserts[m][0] for m in mints],
            [format_balance(upserts[m][1]) for m in mints],
        )
    await events.publish(
        conn,
        w.agent_id,
        "balance_update",
        {
            "walletAddress": w.wallet,
            "balances": [
                {
                    "tokenAddress": m,
                    "tokenSymbol": upserts[m][0] if m in upserts else w.symbol,
                    "balance": format_balance(new[m]),
                }
                for m in sorted(new)
            ],
        },
    )


async def _apply_position_change(
    conn: asyncpg.Connection,
    position: Mapping[str, Any],
    change: PositionChange,
    transaction_id: uuid.UUID,
    sol_usd: Decimal | None,
) -> str:
    if not change.closes:
        row = await Q.wd_reduce_position.fetch_one(
            conn,
            change.position_id,
            change.purchase_amount,
            change.remaining_amount,
            change.total_invested_sol,
            change.moon_bag_amount,
        )
        assert row is not None
        await events.publish(
            conn,
            position["agent_id"],
            "position_updated",
            {
                "agentId": position["agent_id"],
                "walletAddress": position["wallet_address"],
                "position": position_payload(row),
            },
        )
        return "reduced"
    await Q.wd_delete_position.execute(conn, change.position_id)
    tp_ids = list(position["take_profit_transaction_ids"] or [])
    if tp_ids:
        # Its take-profit sales realised P/L that the open position carried; the history keeps it.
        inputs = await Q.wd_position_close_inputs.fetch_one(conn, position["purchase_transaction_id"], tp_ids)
        assert inputs is not None
        proceeds = sum(
            (
                net_sol_proceeds(out, fee)
                for out, fee in zip(inputs["tp_output_amounts"], inputs["tp_network_fees"], strict=True)
                if out is not None
            ),
            ZERO,
        )
        figures = close_history(position, change, proceeds, sol_usd)
        await Q.wd_insert_history.execute(
            conn,
            position["agent_id"],
            position["wallet_address"],
            position["token_address"],
            position["token_symbol"],
            figures.amount,
            position["purchase_price"],
            figures.sale_price,
            figures.change_percent,
            figures.profit_loss_usd or ZERO,  # the column is NOT NULL: 0 when SOL/USD is unknown
            figures.profit_loss_sol,
            position["created_at"],
            position["purchase_transaction_id"],
            transaction_id,
            inputs["signal_id"],
            change.position_id,
            None if sol_usd is None else quantize(sol_usd, SOL_8),
        )
    await events.publish(
        conn,
        position["agent_id"],
        "position_closed",
        {
            "agentId": position["agent_id"],
            "walletAddress": position["wallet_address"],
            "positionId": change.position_id,
            "tokenAddress": position["token_address"],
        },
    )
    return "closed"


async def record_withdrawal(conn: asyncpg.Connection, w: LedgerWithdrawal, locked: Locked) -> Recorded:
    """Write one withdrawal: WITHDRAWAL row → balances → position → events, in the caller's transaction.

    The caller holds the agent lock and ``locked`` (the balance rows of ``w.mint`` and SOL); the position row
    is locked here, last. Raises :class:`TradeError` ``INSUFFICIENT_BALANCE`` instead of going negative.
    """
    current = {mint: value for mint, (_, value) in locked.items()}
    amount, fees = quantize(w.amount, AMOUNT_18), quantize(w.fees_sol, SOL_8)
    try:
        new = apply_deltas(current, balance_deltas("WITHDRAWAL", w.mint, amount, fees=fees))
    except BalanceError:
        raise TradeError("INSUFFICIENT_BALANCE", "Insufficient balance") from None
    position = None if w.mint == SOL_MINT else await Q.wd_lock_position.fetch_one(conn, w.agent_id, w.wallet, w.mint)
    change = None if position is None else plan_position_withdrawal(position, current.get(w.mint, ZERO), amount)
    token_usd, sol_usd = await usd_prices(conn, w.mint)
    if token_usd is None:
        log.info(
            "withdrawal valued at 0 USD: no stored price",
            extra={"fields": {"mint": w.mint, "sol_usd_known": sol_usd is not None}},
        )
    transaction_id = await Q.wd_insert_transaction.fetch_val(
        conn,
        w.agent_id,
        w.wallet,
        _usd_value(amount, token_usd),
        w.destination,
        fees,
        w.mint,
        w.symbol,
        amount,
        None if token_usd is None else quantize(token_usd, AMOUNT_18),
        w.signature,
        quantize(w.network_fee_sol, SOL_8),
        None if change is None else change.position_id,
        None if sol_usd is None else quantize(sol_usd, SOL_8),
    )
    await _write_balances(conn, w, locked, new)
    action = None
    if change is not None:
        assert position is not None
        action = await _apply_position_change(conn, position, change, transaction_id, sol_usd)
    await events.publish(
        conn,
        w.agent_id,
        "withdrawal",
        {
            "transactionId": transaction_id,
            "walletAddress": w.wallet,
            "tokenAddress": w.mint,
            "tokenSymbol": w.symbol,
            "amount": amount,
            "feesSol": fees,
            "destinationAddress": w.destination,
            "transactionHash": w.signature,
        },
    )
    return Recorded(
        transaction_id=transaction_id,
        position_id=None if change is None else change.position_id,
        position_action=action,
        cost_basis_sol=None if change is None else change.cost_basis_sol,
    )


# --------------------------------------------------------------------------------------------------
# Requests, idempotency, views


async def owned_wallet(conn: asyncpg.Connection | asyncpg.Pool, address: str, user_id: uuid.UUID) -> OwnedWallet:
    row = await Q.wd_owned_wallet.fetch_one(conn, address, user_id, into=OwnedWallet)
    if row is None:
        raise WithdrawalRefused(404, "NOT_FOUND", "Wallet not found")
    return row


async def find_replay(conn: asyncpg.Connection | asyncpg.Pool, request: WithdrawalRequest) -> Outcome | None:
    """The withdrawal this Idempotency-Key already made (422 when it was made for another request)."""
    if request.idempotency_key is None:
        return None
    row = await Q.wd_find_by_key.fetch_one(conn, request.user_id, request.idempotency_key)
    if row is None:
        return None
    if row["request_hash"] != request.fingerprint():
        raise WithdrawalRefused(
            422, "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key was already used with a different request"
        )
    return Outcome(row["id"], replayed=True)


async def _replay_after_race(
    pool: asyncpg.Pool, request: WithdrawalRequest, exc: asyncpg.UniqueViolationError
) -> Outcome:
    """A concurrent request with the same key committed first (ours rolled back): answer with its withdrawal."""
    if exc.constraint_name != KEY_CONSTRAINT:
        raise exc
    replay = await find_replay(pool, request)
    if replay is None:
        raise exc
    return replay


def status_of(view: Mapping[str, Any]) -> str:
    """completed | pending | failed | expired (a live withdrawal follows its journal row)."""
    if view["wallet_type"] == "simulation":
        return "completed"
    return {"settled": "completed", "failed": "failed", "expired": "expired"}.get(view["live_status"], "pending")


async def load_view(conn: asyncpg.Connection | asyncpg.Pool, withdrawal_id: uuid.UUID) -> dict[str, Any]:
    view = await Q.wd_view.fetch_one(conn, withdrawal_id)
    assert view is not None
    return view


async def withdrawn_cost_basis(conn: asyncpg.Connection) -> dict[uuid.UUID, Decimal]:
    """Per position: the invested SOL its withdrawals took out (``nexgent audit`` adds it back to the cash
    flows of the position's ledger rows when it checks a closed trade's P/L)."""
    return {r["position_id"]: r["cost_basis_sol"] for r in await Q.wd_withdrawn_cost_basis.fetch_all(conn)}


# --------------------------------------------------------------------------------------------------
# Simulation


async def withdraw_simulation(pool: asyncpg.Pool, request: WithdrawalRequest, wallet: OwnedWallet) -> Outcome:
    """The whole withdrawal in one DB transaction; a simulated network fee of 0.000005 SOL."""
    mint = request.token_address
    try:
        async with transaction(pool) as conn:
            if await Q.wd_lock_agent.fetch_one(conn, wallet.agent_id) is None:
                raise WithdrawalRefused(404, "NOT_FOUND", "Wallet not found")
            replay = await find_replay(conn, request)
            if replay is not None:
                return replay
            locked = await lock_balances(conn, wallet.wallet_address, [mint, SOL_MINT])
            balances = {m: value for m, (_, value) in locked.items()}
            amount = resolve_amount(mint, request.amount, balances, SIM_NETWORK_FEE_SOL)
            symbol = locked[mint][0]
            ledger = LedgerWithdrawal(
                agent_id=wallet.agent_id,
                wallet=wallet.wallet_address,
                mint=mint,
                symbol=symbol,
                amount=amount,
                fees_sol=SIM_NETWORK_FEE_SOL,
                network_fee_sol=SIM_NETWORK_FEE_SOL,
                destination=request.destination,
            )
            recorded = await record_withdrawal(conn, ledger, locked)
            withdrawal_id = uuid.uuid4()
            await Q.wd_insert.execute(
                conn,
                withdrawal_id,
                request.user_id,
                wallet.agent_id,
                wallet.wallet_address,
                "simulation",
                request.idempotency_key,
                request.fingerprint(),
                mint,
                symbol,
                amount,
                request.destination,
                None,
                recorded.transaction_id,
                recorded.position_id,
                recorded.position_action,
                recorded.cost_basis_sol,
            )
    except asyncpg.UniqueViolationError as exc:
        return await _replay_after_race(pool, request, exc)
    log.info(
        "simulated withdrawal recorded",
        extra={
            "fields": {
                "withdrawal_id": str(withdrawal_id),
                "wallet": wallet.wallet_address,
                "mint": mint,
                "amount": plain(amount),
            }
        },
    )
    return Outcome(withdrawal_id)


# --------------------------------------------------------------------------------------------------
# Live: the transfer transaction


class TransferPlan(msgspec.Struct, frozen=True, kw_only=True):
    withdrawal_id: uuid.UUID
    agent_id: uuid.UUID
    wallet: str
    mint: str
    symbol: str
    amount: Decimal
    amount_raw: int
    decimals: int
    token_program: str | None  # None for SOL
    destination: str
    destination_token_account: str | None
    creates_account: bool
    balances: dict[str, Decimal]  # the ledger the plan was made from; re-checked under the locks

    def quote_doc(self) -> dict[str, Any]:
        return {
            "kind": "transfer",
            "destination": self.destination,
            "destinationTokenAccount": self.destination_token_account,
            "amountRaw": str(self.amount_raw),
            "decimals": self.decimals,
            "tokenProgram": self.token_program,
            "createsAccount": self.creates_account,
        }


class SignedTransfer(msgspec.Struct, frozen=True, kw_only=True):
    wallet: str
    signature: str
    signed_transaction: str
    last_valid_block_height: int


def memo_instruction(withdrawal_id: uuid.UUID) -> Instruction:
    """Names the withdrawal on chain and makes every transfer unique: two identical transfers signed with the
    same blockhash would otherwise be one transaction (same signature), and the second would never land."""
    return Instruction(Pubkey.from_string(MEMO_PROGRAM_ID), f"nexgent withdrawal {withdrawal_id}".encode(), [])


def transfer_instructions(plan: TransferPlan) -> list[Instruction]:
    """SOL: one system transfer. SPL: create the destination's associated token account if it is missing
    (idempotent, the wallet pays its rent) and ``transferChecked`` from the wallet's associated account.
    Both end with the memo naming the withdrawal."""
    wallet, destination = Pubkey.from_string(plan.wallet), Pubkey.from_string(plan.destination)
    memo = memo_instruction(plan.withdrawal_id)
    if plan.token_program is None:
        return [transfer(TransferParams(from_pubkey=wallet, to_pubkey=destination, lamports=plan.amount_raw)), memo]
    mint, program = Pubkey.from_string(plan.mint), Pubkey.from_string(plan.token_program)
    source = get_associated_token_address(wallet, mint, program)
    target = get_associated_token_address(destination, mint, program)
    create = Instruction(
        Pubkey.from_string(ATA_PROGRAM_ID),
        bytes([CREATE_IDEMPOTENT]),
        [
            AccountMeta(wallet, is_signer=True, is_writable=True),
            AccountMeta(target, is_signer=False, is_writable=True),
            AccountMeta(destination, is_signer=False, is_writable=False),
            AccountMeta(mint, is_signer=False, is_writable=False),
            AccountMeta(Pubkey.from_string(SYSTEM_PROGRAM_ID), is_signer=False, is_writable=False),
            AccountMeta(program, is_signer=False, is_writable=False),
        ],
    )
    send = Instruction(
        program,
        bytes([TRANSFER_CHECKED]) + plan.amount_raw.to_bytes(8, "little") + bytes([plan.decimals]),
        [
            AccountMeta(source, is_signer=False, is_writable=True),
            AccountMeta(mint, is_signer=False, is_writable=False),
            AccountMeta(target, is_signer=False, is_writable=True),
            AccountMeta(wallet, is_signer=True, is_writable=False),
        ],
    )
    return [create, send, memo]


def ledger_from_chain(row: SwapRow, symbol: str, destination: str) -> LedgerWithdrawal:
    """The ledger row of a landed withdrawal, from chain facts only: the amount that left, and every other
    lamport the wallet lost (fee, and the rent of a token account the transfer created) as ``fees``."""
    chain = row.chain or {}
    facts = ChainFacts(**{k: chain[k] for k in ChainFacts.__struct_fields__ if k in chain})
    amount_raw = int(row.in_amount)
    other_lamports = -facts.sol_delta - (amount_raw if row.input_mint == SOL_MINT else 0)
    if other_lamports < 0:
        raise SwapError("CHAIN_MISMATCH", f"withdrawal {row.id} moved {facts.sol_delta} lamports for {amount_raw}")
    fees = from_raw(other_lamports, SOL_DECIMALS)
    if fees != quantize(fees, SOL_8):
        # The fee column has 8 decimals; reconciliation reports the lamports rounding leaves behind.
        log.warning("withdrawal cost is not a multiple of 10 lamports", extra={"fields": {"lamports": other_lamports}})
    return LedgerWithdrawal(
        agent_id=row.agent_id,
        wallet=row.wallet_address,
        mint=row.input_mint,
        symbol=symbol,
        amount=from_raw(amount_raw, facts.token_decimals if row.input_mint != SOL_MINT else SOL_DECIMALS),
        fees_sol=fees,
        network_fee_sol=from_raw(facts.fee_lamports, SOL_DECIMALS),
        destination=destination,
        signature=row.signature,
    )


def _check_landed(row_in_amount: int, mint: str, facts: ChainFacts) -> None:
    moved = -facts.sol_delta if mint == SOL_MINT else -facts.token_delta
    ok = moved >= row_in_amount if mint == SOL_MINT else moved == row_in_amount
    if not ok:
        raise SwapError("CHAIN_MISMATCH", f"withdrawal of {row_in_amount} {mint} moved {moved} on chain")


async def apply_observation(pool: asyncpg.Pool, row: SwapRow, seen: Observation) -> str:
    """Journal what the chain says about a sent withdrawal; returns the journal status afterwards."""
    if seen.kind in ("unseen", "processed"):
        return row.status
    if seen.kind == "expired":
        done = await swaplog.mark_without_trade(pool, row.id, "expired", "blockhash expired before landing")
    elif seen.kind == "failed":
        assert seen.facts is not None
        done = await swaplog.mark_without_trade(
            pool, row.id, "failed", f"landed with error {seen.err}", facts=seen.facts
        )
    else:
        assert seen.facts is not None
        _check_landed(int(row.in_amount), row.input_mint, seen.facts)
        done = await swaplog.mark_confirmed(pool, row.id, seen.facts, Flows(spent=int(row.in_amount), received=0))
    if not done:
        fresh = await swaplog.get(pool, row.id)
        return fresh.status if fresh else row.status
    return "confirmed" if seen.kind == "landed" else seen.kind


async def record_confirmed(pool: asyncpg.Pool, swap_id: uuid.UUID) -> str:
    """Write the ledger row of a confirmed withdrawal and mark its journal row settled, in one transaction."""
    row = await swaplog.get(pool, swap_id)
    if row is None or row.status != "confirmed":
        return row.status if row else "settled"
    try:
        async with transaction(pool) as conn:
            if await Q.wd_lock_agent.fetch_one(conn, row.agent_id) is None:
                raise SettlementBlocked(f"agent {row.agent_id} of withdrawal {row.id} no longer exists")
            request = await Q.wd_withdrawal_of_swap.fetch_one(conn, row.id)
            if request is None:
                raise SettlementBlocked(f"live withdrawal {row.id} has no withdrawal request row")
            ledger = ledger_from_chain(row, request["token_symbol"], request["destination_address"])
            locked = await lock_balances(conn, row.wallet_address, [row.input_mint, SOL_MINT])
            recorded = await record_withdrawal(conn, ledger, locked)
            await Q.wd_set_recorded.execute(
                conn,
                request["id"],
                recorded.transaction_id,
                recorded.position_id,
                recorded.position_action,
                recorded.cost_basis_sol,
            )
            await swaplog.mark_settled(conn, row.id, recorded.transaction_id)
    except AlreadySettled:
        fresh = await swaplog.get(pool, swap_id)
        return fresh.status if fresh else "settled"
    log.info("live withdrawal settled into the ledger", extra={"fields": {"live_swap_id": str(row.id)}})
    return "settled"


async def settle_withdrawal(settlement: Settlement, row: SwapRow, *, record: bool = True) -> str:
    """The live settlement loop's step for a ``withdrawal`` journal row (same lease, same claim, same rules:
    chain facts decide, nothing is re-sent, the ledger row is written once)."""
    status = row.status
    if status in ("pending", "sent"):
        seen = await settlement.swapper.observe(
            row.signature, row.last_valid_block_height, wallet=row.wallet_address, token_mint=row.input_mint
        )
        status = await apply_observation(settlement.pool, row, seen)
    if status == "confirmed" and record:
        status = await record_confirmed(settlement.pool, row.id)
    return status


class _Stale(Exception):
    """The ledger moved between planning and locking: plan again."""


class LiveWithdrawals:
    """Live withdrawals of one process: plan, sign, journal, send once, watch, record."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        rpc: SolanaRpc,
        keystore: KeyStore,
        *,
        instance_id: str | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool, self.settings, self.rpc, self.keystore = pool, settings, rpc, keystore
        self.instance_id = instance_id or default_instance_id()
        self.sleep, self.monotonic = sleep, monotonic
        self.swapper = LiveSwapper(rpc=rpc, keystore=keystore, settings=settings, sleep=sleep, monotonic=monotonic)
        self.settlement = Settlement(pool, settings, self.swapper, owner=self.instance_id, sol_usd=self._sol_usd)

    async def _sol_usd(self) -> Decimal | None:
        return (await usd_prices(self.pool, SOL_MINT))[1]

    async def withdraw(self, request: WithdrawalRequest, wallet: OwnedWallet) -> Outcome:
        with bind(wallet=wallet.wallet_address, agent_id=str(wallet.agent_id)):
            replay = await find_replay(self.pool, request)
            if replay is not None:
                return replay
            await self._gates(wallet.wallet_address)
            try:
                for _ in range(STALE_RETRIES):
                    plan = await self._plan(request, wallet)
                    signed = await self._sign(plan)
                    try:
                        journaled = await self._journal(request, plan, signed)
                    except _Stale:
                        continue
                    if isinstance(journaled, Outcome):
                        return journaled
                    swap_id, withdrawal_id = journaled
                    with bind(live_swap_id=str(swap_id), signature=signed.signature):
                        log.info("live withdrawal journaled, sending")
                        await self._send_and_watch(swap_id, signed)
                    return Outcome(withdrawal_id)
            except MarketError as exc:
                raise WithdrawalRefused(502, "EXTERNAL_SERVICE_ERROR", f"Solana RPC failed: {exc.message}") from None
        raise WithdrawalRefused(409, "CONCURRENT_MODIFICATION", "The wallet kept changing; try again")

    async def _gates(self, wallet: str) -> None:
        try:
            guard.check_enabled(self.settings)
            await guard.check_wallet_drift(self.pool, wallet)
        except LiveRefused as exc:
            raise WithdrawalRefused(409, exc.code, exc.message) from None
        if not self.keystore.has(wallet):
            raise WithdrawalRefused(409, "WALLET_NOT_LOADED", f"No private key loaded for wallet {wallet}")
        try:
            await self.settlement.settle_wallet(wallet, record=True)
        except MarketError as exc:
            raise WithdrawalRefused(502, "EXTERNAL_SERVICE_ERROR", f"Solana RPC failed: {exc.message}") from None
        if await swaplog.unresolved_for_wallet(self.pool, wallet):
            raise _busy(wallet)

    async def _mint_info(self, mint: str) -> tuple[int, str]:
        """(decimals, token program) read from the mint account; never guessed."""
        info = await self.rpc.get_account_info(mint)
        program = info.get("owner") if isinstance(info, dict) else None
        if program not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
            raise WithdrawalRefused(400, "UNSUPPORTED_TOKEN", f"{mint} is not an SPL token mint on chain")
        data = info.get("data") if isinstance(info, dict) else None
        raw = base64.b64decode(data[0]) if isinstance(data, list) and data else b""
        if len(raw) <= MINT_DECIMALS_OFFSET:
            raise WithdrawalRefused(502, "EXTERNAL_SERVICE_ERROR", f"Mint account of {mint} is unreadable")
        if program == TOKEN_2022_PROGRAM_ID and len(raw) > SPL_MINT_SIZE:
            raise WithdrawalRefused(
                400, "UNSUPPORTED_TOKEN", "Token-2022 mints with extensions (transfer fees, hooks) cannot be withdrawn"
            )
        return raw[MINT_DECIMALS_OFFSET], str(program)

    async def _plan(self, request: WithdrawalRequest, wallet: OwnedWallet) -> TransferPlan:
        mint = request.token_address
        rows = await Q.wd_read_balances.fetch_all(self.pool, wallet.wallet_address, [mint, SOL_MINT])
        balances = {r["token_address"]: parse_balance(r["balance"]) for r in rows}
        symbols = {r["token_address"]: r["token_symbol"] for r in rows}
        if withdrawable(mint, balances, ZERO) <= 0:
            raise _insufficient(mint, request.amount, ZERO, from_raw(SIGNATURE_FEE_LAMPORTS, SOL_DECIMALS))
        decimals, program, target, creates = SOL_DECIMALS, None, None, False
        if mint != SOL_MINT:
            decimals, program = await self._mint_info(mint)
            target = str(
                get_associated_token_address(
                    Pubkey.from_string(request.destination), Pubkey.from_string(mint), Pubkey.from_string(program)
                )
            )
            creates = await self.rpc.get_account_info(target) is None
        fee_lamports = SIGNATURE_FEE_LAMPORTS + (TOKEN_ACCOUNT_RENT_LAMPORTS if creates else 0)
        fee_sol = from_raw(fee_lamports, SOL_DECIMALS)
        amount = resolve_amount(mint, request.amount, balances, fee_sol)
        raw = to_raw(amount, decimals)
        if request.amount is not None and from_raw(raw, decimals) != amount:
            raise WithdrawalRefused(
                400, "VALIDATION_ERROR", f"amount has more decimal places than the token supports ({decimals})"
            )
        if raw <= 0:
            raise _insufficient(mint, request.amount, ZERO, fee_sol)
        _check_rent_exemption(balances.get(SOL_MINT, ZERO), raw if mint == SOL_MINT else 0, fee_lamports)
        return TransferPlan(
            withdrawal_id=uuid.uuid4(),
            agent_id=wallet.agent_id,
            wallet=wallet.wallet_address,
            mint=mint,
            symbol=symbols[mint],
            amount=from_raw(raw, decimals),
            amount_raw=raw,
            decimals=decimals,
            token_program=program,
            destination=request.destination,
            destination_token_account=target,
            creates_account=creates,
            balances=balances,
        )

    async def _sign(self, plan: TransferPlan) -> SignedTransfer:
        blockhash = await self.rpc.get_latest_blockhash()
        message = MessageV0.try_compile(
            Pubkey.from_string(plan.wallet), transfer_instructions(plan), [], Hash.from_string(blockhash.blockhash)
        )
        signed = self.keystore.sign(plan.wallet, VersionedTransaction.populate(message, [Signature.default()]))
        return SignedTransfer(
            wallet=plan.wallet,
            signature=str(signed.signatures[0]),
            signed_transaction=base64.b64encode(bytes(signed)).decode(),
            last_valid_block_height=blockhash.last_valid_block_height,
        )

    async def _journal(
        self, request: WithdrawalRequest, plan: TransferPlan, signed: SignedTransfer
    ) -> Outcome | tuple[uuid.UUID, uuid.UUID]:
        """Commit the signed transfer and the request together, under the agent and balance locks, with
        the ledger re-checked: after this, a crash can only leave a journal row settlement resolves."""
        withdrawal_id = plan.withdrawal_id
        try:
            async with transaction(self.pool) as conn:
                if await Q.wd_lock_agent.fetch_one(conn, plan.agent_id) is None:
                    raise WithdrawalRefused(404, "NOT_FOUND", "Wallet not found")
                replay = await find_replay(conn, request)
                if replay is not None:
                    return replay
                locked = await lock_balances(conn, plan.wallet, [plan.mint, SOL_MINT])
                if {m: v for m, (_, v) in locked.items()} != plan.balances:
                    raise _Stale
                try:
                    guard.check_enabled(self.settings)
                    await guard.check_wallet_drift(conn, plan.wallet)
                except LiveRefused as exc:
                    raise WithdrawalRefused(409, exc.code, exc.message) from None
                swap_id = await Q.live_insert_swap.fetch_val(
                    conn,
                    plan.agent_id,
                    plan.wallet,
                    "withdrawal",
                    "transfer",
                    plan.mint,
                    plan.mint,
                    Decimal(plan.amount_raw),
                    Decimal(plan.amount_raw),
                    None,
                    plan.quote_doc(),
                    {
                        "kind": "withdrawal",
                        "withdrawal_id": str(withdrawal_id),
                        "agentId": str(plan.agent_id),
                        "destination": plan.destination,
                    },
                    None,
                    signed.signature,
                    signed.signed_transaction,
                    signed.last_valid_block_height,
                    self.instance_id,
                    float(self.settings.live_lease_s),
                )
                await Q.wd_insert.execute(
                    conn,
                    withdrawal_id,
                    request.user_id,
                    plan.agent_id,
                    plan.wallet,
                    "live",
                    request.idempotency_key,
                    request.fingerprint(),
                    plan.mint,
                    plan.symbol,
                    plan.amount,
                    plan.destination,
                    swap_id,
                    None,
                    None,
                    None,
                    None,
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == ONE_UNRESOLVED_INDEX:
                raise _busy(plan.wallet) from None
            return await _replay_after_race(self.pool, request, exc)
        return swap_id, withdrawal_id

    async def _send_and_watch(self, swap_id: uuid.UUID, signed: SignedTransfer) -> None:
        """Send exactly once, then watch until the chain decides or the wait ends (settlement takes over)."""
        try:
            await self.rpc.send_transaction(
                signed.signed_transaction, skip_preflight=self.settings.live_skip_preflight, max_retries=0
            )
        except RpcError as exc:
            if exc.rpc_code in DEFINITIVE_REJECTIONS:
                await swaplog.mark_without_trade(
                    self.pool, swap_id, "failed", f"RPC rejected the transaction: {exc.rpc_message}"
                )
                return
            log.warning("live withdrawal send outcome unknown; settling by signature: %s", exc.message)
        except MarketError as exc:
            log.warning("live withdrawal send outcome unknown; settling by signature: %s", exc.message)
        else:
            await swaplog.mark_sent(self.pool, swap_id)
        try:
            row = await swaplog.get(self.pool, swap_id)
            assert row is not None
            seen = await self._watch(row)
            if seen is None:
                await swaplog.release_lease(self.pool, swap_id, self.instance_id)
                return
            if await apply_observation(self.pool, row, seen) == "confirmed":
                await record_confirmed(self.pool, swap_id)
        except (SwapError, SettlementBlocked, TradeError, asyncpg.PostgresError) as exc:
            log.warning("live withdrawal left to settlement: %s", exc)
            await swaplog.note_error(self.pool, swap_id, f"withdrawal: {exc}")
            await swaplog.release_lease(self.pool, swap_id, self.instance_id)

    async def _watch(self, row: SwapRow) -> Observation | None:
        deadline = self.monotonic() + self.settings.withdrawal_wait_s
        resend_every = self.settings.live_resend_interval_s
        next_resend = self.monotonic() + resend_every
        while True:
            try:
                seen: Observation | None = await self.swapper.observe(
                    row.signature, row.last_valid_block_height, wallet=row.wallet_address, token_mint=row.input_mint
                )
            except MarketError as exc:
                log.warning("live withdrawal status check failed: %s", exc.message)
                seen = None
            if seen is not None and seen.kind in ("landed", "failed", "expired"):
                return seen
            now = self.monotonic()
            if now >= deadline:
                return None
            if seen is not None and seen.kind == "unseen" and resend_every > 0 and now >= next_resend:
                await self.swapper.rebroadcast(row.signed_transaction)  # same bytes: lands at most once
                next_resend = now + resend_every
            await swaplog.extend_lease(self.pool, row.id, self.instance_id, self.settings.live_lease_s)
            await self.sleep(self.settings.live_confirm_poll_s)


def _busy(wallet: str) -> WithdrawalRefused:
    return WithdrawalRefused(
        409, "WALLET_BUSY", f"Wallet {wallet} has a live swap or withdrawal awaiting settlement; try again shortly"
    )


def _check_rent_exemption(sol_balance: Decimal, sol_out_lamports: int, fee_lamports: int) -> None:
    """A system account may be emptied, but not left between 0 and its rent-exempt minimum: such a transfer
    would fail on chain (and still cost the fee)."""
    left = to_raw(sol_balance, SOL_DECIMALS) - sol_out_lamports - fee_lamports
    if 0 < left < SYSTEM_ACCOUNT_RENT_EXEMPT_LAMPORTS:
        minimum = from_raw(SYSTEM_ACCOUNT_RENT_EXEMPT_LAMPORTS, SOL_DECIMALS)
        raise WithdrawalRefused(
            409,
            "RENT_EXEMPT_MINIMUM",
            f"The wallet would keep {plain(from_raw(left, SOL_DECIMALS))} SOL, below the rent-exempt minimum of "
            f"{plain(minimum)} SOL: withdraw all SOL or leave at least that much",
        )
