from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.trading.ledger import (
    AMOUNT_18,
    PCT_2,
    PCT_4,
    SOL_8,
    BalanceError,
    apply_delta,
    apply_deltas,
    balance_deltas,
    fits_numeric,
    format_balance,
    parse_balance,
    quantize,
    split_fee_lamports,
)
from app.trading.units import SOL_MINT, from_raw, sol_to_lamports, to_raw

TOKEN = "Tok1111111111111111111111111111111111111111"


def test_quantize_is_half_even_at_column_scales():
    assert quantize(D("0.125"), PCT_2) == D("0.12")
    assert quantize(D("0.135"), PCT_2) == D("0.14")
    assert quantize(D("0.000308459830"), SOL_8) == D("0.00030846")
    assert quantize(D(1) / D(3), AMOUNT_18) == D("0.333333333333333333")
    assert str(quantize(D("19.759"), PCT_4)) == "19.7590"


@pytest.mark.parametrize(
    ("value", "precision", "scale", "fits"),
    [
        ("999999.9999", 10, 4, True),
        ("-999999.9999", 10, 4, True),
        ("1000000", 10, 4, False),
        ("999999.99995", 10, 4, False),  # rounds up to 1000000.0000
        ("999.99", 5, 2, True),
        ("1000", 5, 2, False),
        ("999999999999.999999999999999999", 30, 18, True),
        ("1000000000000", 30, 18, False),
        ("NaN", 20, 8, False),
    ],
)
def test_fits_numeric(value, precision, scale, fits):
    assert fits_numeric(D(value), precision, scale) is fits


def test_deposit_burn_and_withdrawal():
    assert balance_deltas("DEPOSIT", SOL_MINT, D("2.5")) == {SOL_MINT: D("2.5")}
    assert balance_deltas("BURN", TOKEN, D(100)) == {TOKEN: D(-100)}
    assert balance_deltas("WITHDRAWAL", SOL_MINT, D(1), fees=D("0.000005")) == {SOL_MINT: D("-1.000005")}
    assert balance_deltas("WITHDRAWAL", TOKEN, D(7), fees=D("0.000005")) == {TOKEN: D(-7), SOL_MINT: D("-0.000005")}
    assert balance_deltas("withdrawal", TOKEN, D(7)) == {TOKEN: D(-7)}


def test_swap_charges_network_fee_once_and_never_the_protocol_fee():
    buy = balance_deltas("SWAP", SOL_MINT, D("1.001"), TOKEN, D("36614.551686"), network_fee_sol=D("0.000105"))
    assert buy == {SOL_MINT: D("-1.001105"), TOKEN: D("36614.551686")}
    sell = balance_deltas("SWAP", TOKEN, D(250), SOL_MINT, D("0.374625"), network_fee_sol=D("0.0001"))
    assert sell == {TOKEN: D(-250), SOL_MINT: D("0.374525")}
    assert balance_deltas("SWAP", SOL_MINT, D(1), TOKEN, D(5), network_fee_sol=None) == {SOL_MINT: D(-1), TOKEN: D(5)}


def test_a_failed_transactions_fee_row_debits_the_exact_fee():
    # 105001 lamports: 0.00010500 in the 8-decimal fee column, the last lamport in input_amount.
    row = balance_deltas("SWAP", SOL_MINT, D("0.000000001"), TOKEN, D(0), network_fee_sol=D("0.000105"))
    assert row == {SOL_MINT: D("-0.000105001")}
    assert balance_deltas("SWAP", SOL_MINT, D(0), TOKEN, D(0), network_fee_sol=D("0.000005")) == {
        SOL_MINT: D("-0.000005")
    }


@given(st.integers(min_value=1, max_value=10**15))
def test_a_fee_splits_into_its_row_and_debits_exactly(fee_lamports):
    remainder, network = split_fee_lamports(fee_lamports)
    assert remainder + network == D(fee_lamports).scaleb(-9)
    assert 0 <= remainder < D("1e-8") and quantize(network, SOL_8) == network
    deltas = balance_deltas("SWAP", SOL_MINT, remainder, TOKEN, D(0), network_fee_sol=network)
    assert deltas == {SOL_MINT: -D(fee_lamports).scaleb(-9)}


def test_deltas_use_stored_scales():
    deltas = balance_deltas(
        "SWAP", SOL_MINT, D("1.0000000000000000004"), TOKEN, D("1.5"), network_fee_sol=D("0.000005001")
    )
    assert deltas[SOL_MINT] == D("-1.000005")  # input at 18 dp, fee at 8 dp


@pytest.mark.parametrize(
    "call",
    [
        lambda: balance_deltas("GIFT", SOL_MINT, D(1)),
        lambda: balance_deltas("DEPOSIT", SOL_MINT, D(0)),
        lambda: balance_deltas("DEPOSIT", SOL_MINT, D(-1)),
        lambda: balance_deltas("DEPOSIT", "", D(1)),
        lambda: balance_deltas("SWAP", SOL_MINT, D(1)),
        lambda: balance_deltas("SWAP", SOL_MINT, D(1), TOKEN, D(0)),
        lambda: balance_deltas("SWAP", SOL_MINT, D(1), TOKEN, D(1), network_fee_sol=D(-1)),
        # A SWAP that swapped nothing is only a landed failure's fee: SOL input under 1e-8 and a fee.
        lambda: balance_deltas("SWAP", SOL_MINT, D("0.00000001"), TOKEN, D(0), network_fee_sol=D("0.000005")),
        lambda: balance_deltas("SWAP", SOL_MINT, D(0), TOKEN, D(0)),
        lambda: balance_deltas("SWAP", SOL_MINT, D(0), TOKEN, D(0), network_fee_sol=D(0)),
        lambda: balance_deltas("SWAP", TOKEN, D(0), SOL_MINT, D(0), network_fee_sol=D("0.000005")),
        lambda: balance_deltas("SWAP", SOL_MINT, D("-1e-9"), TOKEN, D(0), network_fee_sol=D("0.000005")),
    ],
)
def test_malformed_rows_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_apply_delta_dust_and_overdraw():
    assert apply_delta(D(1), D("0.5")) == D("1.5")
    assert apply_delta(D(1), D(-1)) == 0
    assert apply_delta(D(1), D("-1.00000001")) == 0  # within the 1e-8 dust tolerance
    with pytest.raises(BalanceError, match="Balance cannot be negative"):
        apply_delta(D(1), D("-1.000000011"))
    assert apply_deltas({SOL_MINT: D(2)}, {SOL_MINT: D(-1), TOKEN: D(3)}) == {SOL_MINT: D(1), TOKEN: D(3)}


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("1.50", D("1.5"), "1.5"),
        (" 100 ", D(100), "100"),
        ("0E-8", D(0), "0"),
        ("-0", D(0), "0"),
        ("1e-9", D("0.000000001"), "0.000000001"),
        ("36614.551686000000000000", D("36614.551686"), "36614.551686"),
        ("2500000", D(2500000), "2500000"),  # no lamport guessing (§16.2)
    ],
)
def test_balance_text_round_trip(text, value, canonical):
    assert parse_balance(text) == value
    assert format_balance(parse_balance(text)) == canonical


@pytest.mark.parametrize("text", ["", "abc", "NaN", "Infinity"])
def test_invalid_balance_text(text):
    with pytest.raises(ValueError):
        parse_balance(text)


def test_raw_unit_conversions():
    assert from_raw(36614551686, 6) == D("36614.551686")
    assert to_raw(D("36614.551686"), 6) == 36614551686
    assert to_raw(D("0.0000019"), 6) == 1  # floors
    assert sol_to_lamports(D("0.0108")) == 10_800_000
    assert from_raw(2**64 - 1, 0) == D(2**64 - 1)
    with pytest.raises(TypeError):
        from_raw(1.5, 6)  # type: ignore[arg-type]
