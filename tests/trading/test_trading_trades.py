"""Worked examples of domain §4.3, §4.5, §4.6, §6.3 and §7.4.

Our fee fix (ledger docstring, §16.5) changes two of the spec's buy-side numbers: simulation now
debits the protocol fee, so the §4.3 buy costs 1.001105 SOL (spec: 1.000105) and the §4.5 P/L is
0.19759 SOL (spec: 0.19859). Every other figure is the spec's.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from app.trading.config import apply_config_patch, default_config
from app.trading.dca import evaluate_dca
from app.trading.errors import TradeError
from app.trading.fees import extract_jupiter_fees
from app.trading.ledger import apply_deltas, balance_deltas
from app.trading.position import PositionState
from app.trading.stop_loss import stop_price
from app.trading.take_profit import evaluate_take_profit
from app.trading.trades import (
    buy_fill,
    check_sell_amount,
    net_sol_proceeds,
    new_average_price,
    plan_buy,
    plan_dca_buy,
    plan_full_sale,
    plan_take_profit_sale,
    sell_fill,
)
from app.trading.units import SOL_MINT

TOKEN = "Tok1111111111111111111111111111111111111111"
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def order(input_mint, output_mint, in_amount, out_amount, network_lamports):
    return {
        "inputMint": input_mint,
        "outputMint": output_mint,
        "inAmount": str(in_amount),
        "outAmount": str(out_amount),
        "platformFee": {"feeBps": 10, "feeMint": SOL_MINT},
        "signatureFeeLamports": 5000,
        "prioritizationFeeLamports": network_lamports - 5000,
        "rentFeeLamports": 0,
    }


def test_buy_worked_example():
    protocol, network = extract_jupiter_fees(order(SOL_MINT, TOKEN, 1_000_000_000, 36614551686, 105_000))
    plan = plan_buy(
        default_config(),
        buy_fill(
            input_lamports=1_000_000_000,
            output_raw=36614551686,
            token_decimals=6,
            protocol_fee_sol=protocol,
            network_fee_sol=network,
            sol_usd=D(150),
        ),
    )
    fill = plan.fill
    assert fill.in_sol == D("1.0") and fill.output_amount == D("36614.551686")
    assert fill.price == D("0.000027311545654739") == plan.purchase_price == plan.lowest_price
    assert (fill.protocol_fee_sol, fill.network_fee_sol) == (D("0.001"), D("0.000105"))
    assert fill.input_amount == D("1.001")  # fee fix: the protocol fee is spent (spec: recorded only)
    assert fill.debit_sol == D("1.001105") == plan.total_invested_sol  # spec: 1.000105
    assert fill.value_usd == D("150.15")  # gross SOL × 150 (spec: 150, without the fee)
    assert plan.purchase_amount == D("36614.551686")
    assert plan.stop_loss.current_stop_loss_percentage == D(-32)
    assert plan.stop_loss.peak_price == plan.purchase_price
    assert abs(stop_price(plan.purchase_price, D(-32)) - D("0.0000185718")) < D("1e-10")


def test_buy_live_uses_total_input_and_swap_usd_value():
    fill = buy_fill(
        input_lamports=300_000_000,
        output_raw=10_000_000,
        token_decimals=6,
        protocol_fee_sol=D("0.0003"),
        network_fee_sol=D("0.000105"),
        total_input_lamports=300_030_000,
        sol_usd=D(150),
        swap_usd_value=D("45.01"),
    )
    assert fill.input_amount == D("0.30003") and fill.debit_sol == D("0.300135")
    assert fill.price == D("0.03")  # fee-exclusive
    assert fill.value_usd == D("45.01")


def test_unknown_sol_usd_gives_no_usd_figures():
    fill = buy_fill(input_lamports=1, output_raw=1, token_decimals=0, protocol_fee_sol=None, network_fee_sol=None)
    assert fill.value_usd is None and fill.debit_sol == D("0.000000001")


def test_degenerate_fills_are_refused():
    with pytest.raises(TradeError) as info:
        buy_fill(input_lamports=1000, output_raw=0, token_decimals=6, protocol_fee_sol=None, network_fee_sol=None)
    assert info.value.code == "INVALID_TRANSACTION"
    with pytest.raises(TradeError) as info:
        sell_fill(input_raw=1000, token_decimals=6, output_lamports=0, protocol_fee_sol=None, network_fee_sol=None)
    assert info.value.code == "INVALID_SALE_PRICE"


def test_full_sale_worked_example():
    position = PositionState(
        purchase_price=D("0.000027311545654739"),
        purchase_amount=D("36614.551686"),
        total_invested_sol=D("1.001105"),
        created_at=NOW,
    )
    protocol, network = extract_jupiter_fees(order(TOKEN, SOL_MINT, 36614551686, 1_200_000_000, 105_000))
    plan = plan_full_sale(
        position,
        sell_fill(
            input_raw=36614551686,
            token_decimals=6,
            output_lamports=1_200_000_000,
            protocol_fee_sol=protocol,
            network_fee_sol=network,
            sol_usd=D(150),
        ),
        sol_usd=D(150),
    )
    fill = plan.fill
    assert (fill.out_sol, fill.protocol_fee_sol, fill.network_fee_sol) == (D("1.2"), D("0.0012"), D("0.000105"))
    assert fill.output_amount == D("1.1988") and fill.credit_sol == D("1.198695")  # spec: credit 1.198695
    assert plan.received_sol == D("1.198695")
    assert plan.profit_loss_sol == D("0.19759")  # spec 0.19859 − the 0.001 buy-side protocol fee
    assert plan.change_percent == D("19.7590")
    assert plan.profit_loss_usd == D("29.6385")
    assert fill.value_usd == D("180")
    h = plan.history
    assert (h.amount, h.purchase_price, h.profit_loss_sol) == (
        position.purchase_amount,
        position.purchase_price,
        D("0.19759"),
    )
    assert abs(h.sale_price - D("0.0000327382")) < D("1e-10")


def test_buy_then_sale_moves_sol_by_exactly_the_profit():
    buy = plan_buy(
        default_config(),
        buy_fill(
            input_lamports=1_000_000_000,
            output_raw=36614551686,
            token_decimals=6,
            protocol_fee_sol=D("0.001"),
            network_fee_sol=D("0.000105"),
        ),
    )
    balances = {SOL_MINT: D(5)}
    f = buy.fill
    balances |= apply_deltas(
        balances, balance_deltas("SWAP", SOL_MINT, f.input_amount, TOKEN, f.output_amount, f.network_fee_sol)
    )
    position = PositionState(
        purchase_price=buy.purchase_price,
        purchase_amount=buy.purchase_amount,
        total_invested_sol=buy.total_invested_sol,
        created_at=NOW,
    )
    sale = plan_full_sale(
        position,
        sell_fill(
            input_raw=36614551686,
            token_decimals=6,
            output_lamports=1_200_000_000,
            protocol_fee_sol=D("0.0012"),
            network_fee_sol=D("0.000105"),
        ),
    )
    s = sale.fill
    balances |= apply_deltas(
        balances, balance_deltas("SWAP", TOKEN, s.input_amount, SOL_MINT, s.output_amount, s.network_fee_sol)
    )
    assert balances[TOKEN] == 0
    assert balances[SOL_MINT] - D(5) == sale.profit_loss_sol == D("0.19759")


FEE_CFG = apply_config_patch(None, {"takeProfit": {"enabled": True}})[0]


def tp_sale(position, decision, tokens_raw, lamports, sol_usd=D(150)):
    protocol, network = extract_jupiter_fees(order(TOKEN, SOL_MINT, tokens_raw, lamports, 100_000))
    return plan_take_profit_sale(
        position,
        decision,
        sell_fill(
            input_raw=tokens_raw,
            token_decimals=6,
            output_lamports=lamports,
            protocol_fee_sol=protocol,
            network_fee_sol=network,
            sol_usd=sol_usd,
        ),
        now=NOW,
        sol_usd=sol_usd,
    )


def test_take_profit_then_stop_loss_worked_example():
    position = PositionState(
        purchase_price=D("0.001"), purchase_amount=D(1000), total_invested_sol=D("1.0001"), created_at=NOW
    )
    decision = evaluate_take_profit(position, D("0.0015"), FEE_CFG)
    assert decision.sell_amount == D(250)
    check_sell_amount(position, decision.sell_amount)
    plan = tp_sale(position, decision, 250_000_000, 375_000_000)
    assert plan.fill.protocol_fee_sol == D("0.000375")
    assert plan.fill.credit_sol == D("0.374525")
    assert plan.cost_basis_sol == D("0.250025")
    assert plan.profit_loss_sol == D("0.1245")
    assert plan.change_percent == D(50)
    assert (plan.remaining_amount, plan.take_profit_levels_hit, plan.realized_profit_sol) == (D(750), 1, D("0.1245"))
    assert not plan.closes_position and plan.history is None and plan.last_take_profit_time == NOW
    assert not plan.moon_bag_activated and plan.moon_bag_amount is None

    after = PositionState(
        purchase_price=D("0.001"),
        purchase_amount=D(1000),
        total_invested_sol=D("1.0001"),
        remaining_amount=plan.remaining_amount,
        take_profit_levels_hit=plan.take_profit_levels_hit,
        realized_profit_sol=plan.realized_profit_sol,
        created_at=NOW,
    )
    protocol, network = extract_jupiter_fees(order(TOKEN, SOL_MINT, 750_000_000, 600_000_000, 100_000))
    sale = plan_full_sale(
        after,
        sell_fill(
            input_raw=750_000_000,
            token_decimals=6,
            output_lamports=600_000_000,
            protocol_fee_sol=protocol,
            network_fee_sol=network,
        ),
        tp_net_proceeds=net_sol_proceeds(plan.fill.output_amount, plan.fill.network_fee_sol),
    )
    assert sale.fill.credit_sol == D("0.5993")
    assert sale.received_sol == D("0.973825")
    assert sale.profit_loss_sol == D("-0.026275")
    assert sale.change_percent == D("-2.6275")
    assert sale.profit_loss_usd is None  # no SOL/USD known
    assert (sale.history.amount, sale.history.sale_price) == (D(1000), D("0.000973825"))


def test_take_profit_sales_that_empty_the_position_close_it():
    cfg = apply_config_patch(
        None,
        {"takeProfit": {"enabled": True, "mode": "custom", "levels": [{"targetPercent": 50, "sellPercent": 100}],
                        "moonBag": {"enabled": False}}},
    )[0]  # fmt: skip
    position = PositionState(
        purchase_price=D("0.001"), purchase_amount=D(1000), total_invested_sol=D("1.0001"), created_at=NOW
    )
    decision = evaluate_take_profit(position, D("0.0015"), cfg)
    assert decision.sell_amount == D(1000)
    plan = tp_sale(position, decision, 1_000_000_000, 1_500_000_000)
    assert plan.profit_loss_sol == D("0.4983")  # 1.5 − 0.0015 − 0.0001 − 1.0001
    assert plan.remaining_amount == 0 and plan.closes_position
    h = plan.history
    assert (h.profit_loss_sol, h.sale_price, h.change_percent, h.profit_loss_usd) == (
        D("0.4983"), D("0.0014983"), D("49.83"), D("74.745"),
    )  # fmt: skip


def test_moon_bag_activation_is_recorded_and_keeps_the_position_open():
    position = PositionState(
        purchase_price=D("0.001"),
        purchase_amount=D(1000),
        total_invested_sol=D("1.0001"),
        remaining_amount=D(250),
        take_profit_levels_hit=3,
        created_at=NOW,
    )
    decision = evaluate_take_profit(position, D("0.005"), FEE_CFG)
    assert (decision.sell_amount, decision.activate_moon_bag, decision.moon_bag_amount) == (D(150), True, D(100))
    plan = tp_sale(position, decision, 150_000_000, 750_000_000)
    assert plan.moon_bag_activated and plan.moon_bag_amount == D(100)
    assert plan.remaining_amount == D(100) and plan.take_profit_levels_hit == 4 and not plan.closes_position


def test_invalid_take_profit_amounts():
    position = PositionState(purchase_price=D(1), purchase_amount=D(10), remaining_amount=D(4), created_at=NOW)
    for amount in (D(0), D("4.000001")):
        with pytest.raises(TradeError) as info:
            check_sell_amount(position, amount)
        assert info.value.code == "INVALID_SELL_AMOUNT"


@pytest.mark.parametrize(
    ("invested", "amount", "debit", "tokens", "average"),
    [
        ("1.0", 1000, "0.5", 600, "0.0009375"),
        ("1.0", 1000, "0.8", 1000, "0.0009"),
        ("1.64", 1800, "0.6", 1000, "0.0008"),
    ],
)
def test_average_price_examples(invested, amount, debit, tokens, average):
    assert new_average_price(D(invested), D(amount), D(debit), D(tokens)) == D(average)


def test_average_chain():
    first = new_average_price(D("1.0"), D(1000), D("0.64"), D(800))
    assert abs(first - D("0.000911")) < D("1e-6")
    assert new_average_price(D("1.64"), D(1800), D("0.6"), D(1000)) == D("0.0008")


def test_full_simulated_dca_example():
    cfg = apply_config_patch(None, {"dca": {"enabled": True}})[0]
    position = PositionState(
        purchase_price=D("0.001"),
        purchase_amount=D(1000),
        total_invested_sol=D("1.0"),
        created_at=NOW,
        current_stop_loss_percentage=D(-32),
        peak_price=D("0.0012"),
    )
    decision = evaluate_dca(position, D("0.0008"), cfg, NOW)
    assert decision.should_buy and decision.buy_amount_sol == D("0.6")
    plan = plan_dca_buy(
        position,
        cfg,
        buy_fill(
            input_lamports=600_000_000,
            output_raw=750_000_000,
            token_decimals=6,
            protocol_fee_sol=D(0),
            network_fee_sol=D("0.000105"),
        ),
        now=NOW,
    )
    assert plan.fill.debit_sol == D("0.600105")
    assert (plan.total_invested_sol, plan.purchase_amount) == (D("1.600105"), D(1750))
    assert plan.purchase_price == D("0.000914345714285714")
    assert (plan.dca_count, plan.last_dca_time, plan.remaining_amount) == (1, NOW, None)
    assert (plan.tp_batch_start_level, plan.total_take_profit_levels) == (0, 4)
    # stop re-based on the new average: peak = average, default level, far below the fill
    assert plan.stop_loss.peak_price == plan.purchase_price
    assert plan.stop_loss.current_stop_loss_percentage == D(-32)
    after = PositionState(
        purchase_price=plan.purchase_price,
        purchase_amount=plan.purchase_amount,
        total_invested_sol=plan.total_invested_sol,
        dca_count=plan.dca_count,
        last_dca_time=NOW,
        created_at=NOW,
    )
    later = NOW + timedelta(minutes=5)
    trigger = D("0.000731476571428571")
    assert evaluate_dca(after, trigger, cfg, later).should_buy
    assert not evaluate_dca(after, trigger + D("1e-15"), cfg, later).should_buy


def test_append_levels_example():
    cfg = apply_config_patch(None, {"dca": {"enabled": True}, "takeProfit": {"enabled": True}})[0]
    position = PositionState(
        purchase_price=D("0.001"),
        purchase_amount=D(1000),
        remaining_amount=D(750),
        take_profit_levels_hit=1,
        total_invested_sol=D("1.0001"),
        realized_profit_sol=D("0.1245"),
        created_at=NOW,
    )
    decision = evaluate_dca(position, D("0.0008"), cfg, NOW)
    assert decision.buy_amount_sol == D("0.45")
    plan = plan_dca_buy(
        position,
        cfg,
        buy_fill(
            input_lamports=450_000_000,
            output_raw=562_500_000,
            token_decimals=6,
            protocol_fee_sol=None,
            network_fee_sol=D("0.000105"),
        ),
        now=NOW,
    )
    assert plan.fill.debit_sol == D("0.450105")
    assert (plan.purchase_amount, plan.remaining_amount, plan.total_invested_sol) == (
        D("1562.5"),
        D("1312.5"),
        D("1.450205"),
    )
    assert plan.purchase_price == D("0.0009281312")
    assert (plan.tp_batch_start_level, plan.total_take_profit_levels) == (1, 5)
    after = PositionState(
        purchase_price=plan.purchase_price,
        purchase_amount=plan.purchase_amount,
        remaining_amount=plan.remaining_amount,
        total_invested_sol=plan.total_invested_sol,
        take_profit_levels_hit=1,
        tp_batch_start_level=plan.tp_batch_start_level,
        total_take_profit_levels=plan.total_take_profit_levels,
        created_at=NOW,
    )
    assert not evaluate_take_profit(after, D("0.0013921967"), cfg).should_execute  # just under +50 %
    tp = evaluate_take_profit(after, D("0.0013921968"), cfg)
    assert tp.should_execute and tp.sell_amount == D("390.625")
    assert tp.levels_to_execute[0].target_percent == 50
