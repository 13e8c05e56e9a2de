"""Raw on-chain units ↔ whole-token Decimals.

Swaps speak integers (lamports, token base units); the ledger speaks whole tokens. Conversions in
both directions are exact: ``from_raw`` is a pure scale shift and ``to_raw`` floors, so a quote never
asks for more than the balance holds.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from app.trading._num import exact

SOL_MINT = "So11111111111111111111111111111111111111112"
SOL_DECIMALS = 9
LAMPORTS_PER_SOL = 10**SOL_DECIMALS


@exact
def from_raw(raw: int, decimals: int) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError(f"raw amount must be int, got {type(raw).__name__}")
    return Decimal(raw).scaleb(-decimals)


def lamports_to_sol(lamports: int) -> Decimal:
    return from_raw(lamports, SOL_DECIMALS)


@exact
def to_raw(amount: Decimal, decimals: int) -> int:
    """Largest raw amount not exceeding ``amount`` whole tokens (``floor(amount × 10^decimals)``)."""
    return int(amount.scaleb(decimals).to_integral_value(rounding=ROUND_FLOOR))


def sol_to_lamports(sol: Decimal) -> int:
    return to_raw(sol, SOL_DECIMALS)
