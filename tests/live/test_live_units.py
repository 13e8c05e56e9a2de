"""Pure pieces: quote rails with exact units, and fills whose ledger effect equals the chain's."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.live.executor import build_fill
from app.live.rails import (
    LiveRefused,
    check_daily_loss,
    check_open_positions,
    check_price_impact,
    check_slippage,
    min_out_for,
)
from app.live.swap import ChainFacts
from app.market.jupiter import parse_order
from app.trading.fees import extract_jupiter_fees
from app.trading.ledger import SOL_8, balance_deltas, quantize
from app.trading.trades import buy_fill, sell_fill
from app.trading.units import SOL_MINT

TOKEN = "TokenMint1111111111111111111111111111111111"


def order(**extra: object) -> dict:
    return {
        "requestId": "r1",
        "inputMint": SOL_MINT,
        "outputMint": TOKEN,
        "inAmount": "1000000000",
        "outAmount": "1000000000",
        "slippageBps": 100,
        "otherAmountThreshold": "990000000",
        **extra,
    }


def test_price_impact_units_are_exact_fractions() -> None:
    from_pct_string = parse_order(order(priceImpactPct="-0.0012"))
    from_percent_number = parse_order(order(priceImpact=Decimal("-0.12")))
    assert from_pct_string.price_impact == from_percent_number.price_impact == Decimal("-0.0012")
    check_price_impact(from_pct_string, Decimal("0.0012"))  # equal is allowed
    with pytest.raises(LiveRefused) as caught:
        check_price_impact(from_pct_string, Decimal("0.0011"))
    assert caught.value.code == "PRICE_IMPACT_TOO_HIGH"
    assert "0.12%" in caught.value.message and "0.11%" in caught.value.message


def test_slippage_guard_checks_bps_and_the_minimum_output() -> None:
    check_slippage(parse_order(order()), 100)
    assert min_out_for(1_000_000_000, 100) == 990_000_000
    with pytest.raises(LiveRefused, match="allows 100 bps"):
        check_slippage(parse_order(order()), 50)
    with pytest.raises(LiveRefused, match="minimum output 0"):
        check_slippage(parse_order(order(otherAmountThreshold="0")), 300)
    with pytest.raises(LiveRefused, match="below"):
        check_slippage(parse_order(order(otherAmountThreshold="900000000")), 300)
    check_slippage(parse_order({k: v for k, v in order().items() if k != "otherAmountThreshold"}), 100)


def test_loss_and_position_rails() -> None:
    check_daily_loss(Decimal("-0.49999999"), Decimal("0.5"))
    check_daily_loss(Decimal("-100"), None)
    with pytest.raises(LiveRefused) as caught:
        check_daily_loss(Decimal("-0.5"), Decimal("0.5"))
    assert caught.value.code == "DAILY_LOSS_LIMIT"
    check_open_positions(2, 3)
    check_open_positions(100, None)
    with pytest.raises(LiveRefused, match="3 of 3"):
        check_open_positions(3, 3)


def _ledger_sol_delta(side: str, fill) -> Decimal:
    """What the execution module's ledger rule debits/credits in SOL for this fill."""
    protocol, network = extract_jupiter_fees(fill.payload)
    network = quantize(network, SOL_8) if network is not None else None
    if side == "buy":
        figures = buy_fill(
            input_lamports=fill.input_amount_raw,
            output_raw=fill.output_amount_raw,
            token_decimals=6,
            protocol_fee_sol=protocol,
            network_fee_sol=network,
            total_input_lamports=fill.total_input_raw,
        )
        deltas = balance_deltas(
            "SWAP", SOL_MINT, figures.input_amount, TOKEN, figures.output_amount, figures.network_fee_sol
        )
    else:
        figures = sell_fill(
            input_raw=fill.input_amount_raw,
            token_decimals=6,
            output_lamports=fill.output_amount_raw,
            protocol_fee_sol=protocol,
            network_fee_sol=network,
            total_output_lamports=fill.total_output_raw,
        )
        deltas = balance_deltas(
            "SWAP", TOKEN, figures.input_amount, SOL_MINT, figures.output_amount, figures.network_fee_sol
        )
    return deltas[SOL_MINT]


@given(
    side=st.sampled_from(["buy", "sell"]),
    swapped=st.integers(min_value=10_000, max_value=10**13),
    fee=st.integers(min_value=5_000, max_value=2_000_000),
    rent=st.sampled_from([0, 2_039_280]),
    estimate=st.integers(min_value=0, max_value=3_000_000),
    tokens=st.integers(min_value=1, max_value=10**15),
)
def test_fill_from_chain_moves_the_ledger_exactly_like_the_chain(
    side: str, swapped: int, fee: int, rent: int, estimate: int, tokens: int
) -> None:
    if side == "buy":
        sol_delta, token_delta, mints = -(swapped + fee + rent), tokens, (SOL_MINT, TOKEN)
    else:
        sol_delta, token_delta, mints = swapped, -tokens, (TOKEN, SOL_MINT)  # SOL received, net of the fee
    facts = ChainFacts(
        slot=1, fee_lamports=fee, sol_delta=sol_delta, token_mint=TOKEN, token_delta=token_delta, token_decimals=6
    )
    payload = {"inputMint": mints[0], "outputMint": mints[1], "prioritizationFeeLamports": estimate}
    fill = build_fill(
        side=side,
        input_mint=mints[0],
        output_mint=mints[1],
        quoted_in=swapped if side == "buy" else tokens,
        quoted_out=tokens if side == "buy" else swapped,
        quote_payload=payload,
        price_impact=Decimal(0),
        slippage_bps=50,
        routes=[],
        signature="sig",
        request_id=None,
        facts=facts,
        execute_payload=None,
    )
    assert _ledger_sol_delta(side, fill) == Decimal(sol_delta).scaleb(-9)
