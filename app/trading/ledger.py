"""The one definition of how an ``agent_transactions`` row moves ``agent_balances``.

Execution applies these deltas inside the same DB transaction that inserts the row, and
``nexgent audit`` replays them over every stored row; both must agree to the last digit, so the
rule lives here and nowhere else.

Per row type (amounts in whole tokens of the named mint, SOL fees in SOL):

* ``DEPOSIT``: ``+input_amount`` of ``input_mint``.
* ``WITHDRAWAL``: ``−input_amount`` of ``input_mint`` and ``−fees`` (the network fee, SOL) of SOL.
* ``SWAP``: ``−input_amount`` of ``input_mint``, ``+output_amount`` of ``output_mint`` and
  ``−network_fee_sol`` of SOL. The protocol fee is already inside the amounts: a buy's
  ``input_amount`` is the gross SOL spent *including* the protocol fee, a sell's ``output_amount`` is
  the SOL received *net* of it. ``protocol_fee_sol`` is informational and never applied again.
  Unlike the reference engine we charge the protocol fee in simulation too (domain §16.5), so
  simulated and live P/L are comparable.
* ``BURN``: ``−input_amount`` of ``input_mint``.
* A ``SWAP`` with ``output_amount`` 0 is a live transaction that landed with an error: it swapped nothing and
  only paid its network fee. Its ``input_mint`` is SOL, ``network_fee_sol`` holds the fee to 8 decimals and
  ``input_amount`` the 0 to 9 lamports below them (:func:`split_fee_lamports`), so the row debits the exact fee.

Stored values are quantized to their column scale with ROUND_HALF_EVEN (:func:`quantize`) *before*
they are applied, and :func:`balance_deltas` quantizes again (idempotently), so a balance is always
exactly the sum of the deltas of its stored rows. A debit may leave at most ``1e-8`` of dust below
zero (it becomes 0); anything larger is refused: we never overdraw.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from app.trading._num import ZERO, exact, plain
from app.trading.units import SOL_MINT

# Column scales of the schema: numeric(20,8) for SOL/USD values, fees, P/L, invested SOL and
# snapshots; numeric(30,18) for amounts and prices; numeric(10,4) for change %, slippage and price
# impact; numeric(5,2) for the stop-loss percentage.
SOL_8 = 8
AMOUNT_18 = 18
PCT_4 = 4
PCT_2 = 2

NEGATIVE_DUST = Decimal("1e-8")
# A fee-only SWAP carries at most this much SOL in input_amount: the lamports below network_fee_sol's 8 decimals.
FEE_REMAINDER_LIMIT = Decimal("1e-8")

TX_TYPES = frozenset({"DEPOSIT", "WITHDRAWAL", "SWAP", "BURN"})


class BalanceError(ValueError):
    pass


@exact
def quantize(value: Decimal, scale: int) -> Decimal:
    """Round to ``scale`` decimals, half-even: the single rounding rule for every stored value."""
    return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN)


def quantize_opt(value: Decimal | None, scale: int) -> Decimal | None:
    return None if value is None else quantize(value, scale)


@exact
def fits_numeric(value: Decimal, precision: int, scale: int) -> bool:
    """Whether ``value`` can be stored in ``numeric(precision, scale)`` after rounding."""
    if not value.is_finite():
        return False
    try:
        rounded = quantize(value, scale)
    except InvalidOperation:
        return False
    return abs(rounded) < Decimal(1).scaleb(precision - scale)


def _positive(name: str, value: Decimal | None) -> Decimal:
    if value is None or not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a positive amount, got {value!r}")
    return quantize(value, AMOUNT_18)


def _fee(value: Decimal | None) -> Decimal:
    if value is None:
        return ZERO
    if not value.is_finite() or value < 0:
        raise ValueError(f"fee must be a non-negative amount, got {value!r}")
    return quantize(value, SOL_8)


@exact
def balance_deltas(
    tx_type: str,
    input_mint: str,
    input_amount: Decimal,
    output_mint: str | None = None,
    output_amount: Decimal | None = None,
    network_fee_sol: Decimal | None = None,
    fees: Decimal | None = None,
) -> dict[str, Decimal]:
    """Signed balance change per mint caused by one transaction row (see module docstring)."""
    kind = str(tx_type).upper()
    if kind not in TX_TYPES:
        raise ValueError(f"unknown transaction type {tx_type!r}")
    if not input_mint:
        raise ValueError("input_mint is required")
    fee_only_swap = kind == "SWAP" and output_amount is not None and output_amount == 0
    amount = ZERO if fee_only_swap else _positive("input_amount", input_amount)
    deltas: dict[str, Decimal] = {}

    def add(mint: str, delta: Decimal) -> None:
        deltas[mint] = deltas.get(mint, ZERO) + delta

    if kind == "DEPOSIT":
        add(input_mint, amount)
    elif kind == "BURN":
        add(input_mint, -amount)
    elif kind == "WITHDRAWAL":
        add(input_mint, -amount)
        if fee := _fee(fees):
            add(SOL_MINT, -fee)
    else:
        if not output_mint:
            raise ValueError("output_mint is required for SWAP")
        fee = _fee(network_fee_sol)
        if fee_only_swap:
            add(SOL_MINT, -_fee_only_remainder(input_mint, input_amount, fee) - fee)
            return deltas
        add(input_mint, -amount)
        add(output_mint, _positive("output_amount", output_amount))
        if fee:
            add(SOL_MINT, -fee)
    return deltas


def _fee_only_remainder(input_mint: str, input_amount: Decimal | None, fee: Decimal) -> Decimal:
    """The SOL input of a SWAP that swapped nothing, valid only as a landed failure's fee (module docstring)."""
    if (
        input_mint != SOL_MINT
        or input_amount is None
        or not input_amount.is_finite()
        or not ZERO <= input_amount < FEE_REMAINDER_LIMIT
        or input_amount + fee <= 0
    ):
        raise ValueError(
            "a SWAP with output_amount 0 must be a failed transaction's fee: SOL input below 1e-8 and a network fee"
        )
    return quantize(input_amount, AMOUNT_18)


def split_fee_lamports(fee_lamports: int) -> tuple[Decimal, Decimal]:
    """(input_amount, network_fee_sol) of a failed transaction's fee-only SWAP row: the 8-decimal fee column
    holds whole 10-lamport units, input_amount the 0-9 lamports below them, so the two add up to the fee."""
    if isinstance(fee_lamports, bool) or not isinstance(fee_lamports, int) or fee_lamports <= 0:
        raise ValueError(f"fee_lamports must be a positive int, got {fee_lamports!r}")
    tens, lamports = divmod(fee_lamports, 10)
    return Decimal(lamports).scaleb(-9), Decimal(tens).scaleb(-8)


@exact
def apply_delta(current: Decimal, delta: Decimal) -> Decimal:
    new = current + delta
    if new >= 0:
        return new
    if new >= -NEGATIVE_DUST:
        return ZERO
    raise BalanceError("Balance cannot be negative")


@exact
def apply_deltas(balances: Mapping[str, Decimal], deltas: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """New balances for every mint touched by ``deltas`` (missing balances start at 0)."""
    return {mint: apply_delta(balances.get(mint, ZERO), delta) for mint, delta in deltas.items()}


def parse_balance(text: str) -> Decimal:
    """Balance column text → Decimal. No lamport guessing (§16.2): the column is whole tokens."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"invalid balance {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"invalid balance {text!r}")
    return value


def format_balance(value: Decimal) -> str:
    """Canonical balance text: plain digits, no exponent, no trailing zeros, ``0`` for zero."""
    if not value.is_finite():
        raise ValueError(f"invalid balance {value!r}")
    return plain(value)
