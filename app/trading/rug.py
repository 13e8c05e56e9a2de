"""Rug-pull detection and burns (domain §9.4).

A token that lost its price is checked against DexScreener: rug-pulled iff the lookup succeeded
and it has no SOL pair or its deepest SOL pair holds less than 10 SOL. A failed lookup is
"unknown", never a rug. The burn writes off the tokens the wallet actually holds, not
``purchase_amount`` (fix of §16.20: after a take-profit or a DCA the two differ and upstream's burn
then failed or burned the wrong amount).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from app.trading._num import ZERO, to_decimal
from app.trading.position import PositionState
from app.trading.units import SOL_MINT

RUG_LIQUIDITY_SOL = Decimal(10)


def is_rug_pulled(
    fetch_ok: bool, sol_pairs_liquidity: Iterable[Decimal] | None, threshold: Decimal = RUG_LIQUIDITY_SOL
) -> bool | None:
    """True/False, or None when the liquidity lookup failed (unknown)."""
    if not fetch_ok or sol_pairs_liquidity is None:
        return None
    liquidities = list(sol_pairs_liquidity)
    return not liquidities or max(liquidities) < threshold


def sol_pair_liquidities(pairs: Iterable[dict], token_address: str) -> list[Decimal]:
    """``liquidity.quote`` (SOL) of every DexScreener pair of ``token_address`` quoted in SOL."""
    found = []
    for pair in pairs:
        if not isinstance(pair, dict):
            continue
        base, quote = pair.get("baseToken") or {}, pair.get("quoteToken") or {}
        if base.get("address") != token_address or quote.get("address") != SOL_MINT:
            continue
        liquidity = pair.get("liquidity") or {}
        found.append(to_decimal(liquidity.get("quote")) or ZERO)
    return found


def burn_amount(token_balance: Decimal | None, position: PositionState) -> Decimal:
    """Tokens to write off: the wallet's balance row when it exists, else what the position holds.

    Zero means there is nothing to burn: the caller only deletes the position.
    """
    amount = position.holding if token_balance is None else token_balance
    return max(amount, ZERO)
