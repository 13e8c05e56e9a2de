"""Protocol and network fees from a stored Jupiter swap payload (domain §4.2).

Accepts both payload shapes: ``{orderResponse, executeResponse}`` (live) and the flat order JSON
(simulation). Numbers may arrive as JSON numbers or numeric strings; anything unparsable counts as
0, as upstream does. Results are exact SOL Decimals; the caller quantizes them for storage.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.trading._num import ZERO, exact, to_decimal
from app.trading.units import LAMPORTS_PER_SOL, SOL_MINT

_BPS = Decimal(10_000)


def _num(value: Any) -> Decimal:
    return to_decimal(value) or ZERO


def _coalesce(first: Any, second: Any) -> Any:
    return second if first is None else first


def _resolve(payload: Any) -> tuple[dict | None, dict | None]:
    if not isinstance(payload, dict):
        return None, None
    if "orderResponse" in payload or "executeResponse" in payload:
        order, execute = payload.get("orderResponse"), payload.get("executeResponse")
        return (order if isinstance(order, dict) else None, execute if isinstance(execute, dict) else None)
    return payload, None


def _protocol_fee(order: dict, execute: dict | None) -> Decimal | None:
    platform = order.get("platformFee") if isinstance(order.get("platformFee"), dict) else {}
    fee_bps = _num(_coalesce(platform.get("feeBps"), order.get("feeBps")))
    fee_mint = _coalesce(platform.get("feeMint"), order.get("feeMint"))
    if fee_bps <= 0:
        return ZERO
    if fee_mint and fee_mint != SOL_MINT:
        return None
    input_is_sol = order.get("inputMint") == SOL_MINT
    if not input_is_sol and order.get("outputMint") != SOL_MINT:
        return None
    if execute is not None:
        lamports = _num(execute.get("inputAmountResult" if input_is_sol else "outputAmountResult"))
    else:
        lamports = _num(order.get("inAmount" if input_is_sol else "outAmount"))
    if not lamports:
        return None
    return lamports * fee_bps / _BPS / LAMPORTS_PER_SOL


@exact
def extract_jupiter_fees(payload: dict | None) -> tuple[Decimal | None, Decimal | None]:
    """``(protocol_fee_sol, network_fee_sol)``; ``None`` where the payload cannot tell."""
    order, execute = _resolve(payload)
    if order is None:
        return None, None
    network = sum(
        (_num(order.get(k)) for k in ("signatureFeeLamports", "prioritizationFeeLamports", "rentFeeLamports")),
        ZERO,
    )
    return _protocol_fee(order, execute), network / LAMPORTS_PER_SOL


def swap_usd_value(payload: dict | None) -> Decimal | None:
    """``swapUsdValue`` from the flat payload, then ``executeResponse``, then ``orderResponse``.

    Only real JSON numbers count (upstream checks ``typeof === 'number'``), never strings.
    """
    if not isinstance(payload, dict):
        return None
    for source in (payload, payload.get("executeResponse"), payload.get("orderResponse")):
        if isinstance(source, dict):
            value = source.get("swapUsdValue")
            if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
                number = to_decimal(value)
                if number is not None:
                    return number
    return None
