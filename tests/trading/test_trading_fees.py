from decimal import Decimal as D

import pytest

from app.trading.fees import extract_jupiter_fees, swap_usd_value
from app.trading.units import SOL_MINT

TOKEN = "Tok1111111111111111111111111111111111111111"

SELL_ORDER = {
    "inputMint": TOKEN,
    "outputMint": SOL_MINT,
    "inAmount": "36614551686",
    "outAmount": "308151371",
    "feeBps": 10,
    "feeMint": SOL_MINT,
    "platformFee": {"feeBps": 10, "feeMint": SOL_MINT},
    "signatureFeeLamports": 5000,
    "prioritizationFeeLamports": 336158,
    "rentFeeLamports": 0,
}


def test_live_sell_uses_execute_result():
    payload = {"orderResponse": SELL_ORDER, "executeResponse": {"outputAmountResult": "308459830"}}
    protocol, network = extract_jupiter_fees(payload)
    assert protocol == D("0.00030845983")  # 308459830 × 10 / 10000 / 1e9 ≈ 0.00030846
    assert network == D("0.000341158")


def test_simulated_sell_uses_quote_amount_wrapped_or_flat():
    expected = (D("0.000308151371"), D("0.000341158"))
    assert extract_jupiter_fees({"orderResponse": SELL_ORDER}) == expected
    assert extract_jupiter_fees(SELL_ORDER) == expected


def test_buy_uses_input_side():
    order = {
        "inputMint": SOL_MINT,
        "outputMint": TOKEN,
        "inAmount": "300000000",
        "platformFee": {"feeBps": "10", "feeMint": SOL_MINT},
        "signatureFeeLamports": "5000",
        "prioritizationFeeLamports": 100000,
        "rentFeeLamports": 0,
    }
    payload = {"orderResponse": order, "executeResponse": {"inputAmountResult": "300000000"}}
    assert extract_jupiter_fees(payload) == (D("0.0003"), D("0.000105"))
    assert extract_jupiter_fees(order) == (D("0.0003"), D("0.000105"))


@pytest.mark.parametrize(
    ("changes", "protocol"),
    [
        ({"platformFee": {"feeBps": 0}, "feeBps": 0}, D(0)),
        ({"platformFee": None, "feeBps": None}, D(0)),
        ({"platformFee": {"feeBps": 10, "feeMint": TOKEN}}, None),
        ({"inputMint": TOKEN, "outputMint": "Other111111111111111111111111111111111111"}, None),
        ({"outAmount": "0"}, None),
        ({"platformFee": {"feeBps": None, "feeMint": None}, "feeBps": 20}, D("0.000616302742")),
    ],
)
def test_protocol_fee_edge_cases(changes, protocol):
    assert extract_jupiter_fees({**SELL_ORDER, **changes})[0] == protocol


def test_network_fee_defaults_and_missing_payload():
    order = {k: v for k, v in SELL_ORDER.items() if not k.endswith("FeeLamports")}
    assert extract_jupiter_fees(order)[1] == D(0)
    assert extract_jupiter_fees(None) == (None, None)
    assert extract_jupiter_fees({"executeResponse": {"outputAmountResult": "1"}}) == (None, None)
    assert extract_jupiter_fees({**SELL_ORDER, "signatureFeeLamports": "garbage"})[1] == D("0.000336158")


def test_swap_usd_value_lookup_order():
    assert swap_usd_value({"swapUsdValue": 150.0}) == D("150.0")
    assert swap_usd_value({"executeResponse": {"swapUsdValue": D("12.5")}, "orderResponse": {"swapUsdValue": 1}}) == D(
        "12.5"
    )
    assert swap_usd_value({"orderResponse": {"swapUsdValue": 3}}) == D(3)
    assert swap_usd_value({"swapUsdValue": "150"}) is None
    assert swap_usd_value(None) is None
