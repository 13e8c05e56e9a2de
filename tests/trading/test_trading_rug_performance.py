from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from app.trading.performance import (
    ClosedTradeRow,
    OpenPositionValuation,
    hour_floor,
    performance_summary,
    snapshot_figures,
    window_start,
)
from app.trading.position import PositionState
from app.trading.rug import burn_amount, is_rug_pulled, sol_pair_liquidities
from app.trading.units import SOL_MINT

NOW = datetime(2026, 1, 1, 14, 37, 12, tzinfo=UTC)
TOKEN = "Tok1111111111111111111111111111111111111111"


def test_rug_predicate():
    assert is_rug_pulled(True, []) is True
    assert is_rug_pulled(True, [D("9.99"), D(3)]) is True
    assert is_rug_pulled(True, [D(3), D(10)]) is False
    assert is_rug_pulled(False, []) is None
    assert is_rug_pulled(True, None) is None
    assert is_rug_pulled(True, [D(40)], threshold=D(50)) is True


def test_sol_pair_liquidities_from_dexscreener_pairs():
    pairs = [
        {"baseToken": {"address": TOKEN}, "quoteToken": {"address": SOL_MINT}, "liquidity": {"quote": 41.2}},
        {"baseToken": {"address": TOKEN}, "quoteToken": {"address": "USDC"}, "liquidity": {"quote": 9000}},
        {"baseToken": {"address": "other"}, "quoteToken": {"address": SOL_MINT}, "liquidity": {"quote": 500}},
        {"baseToken": {"address": TOKEN}, "quoteToken": {"address": SOL_MINT}},
    ]
    assert sol_pair_liquidities(pairs, TOKEN) == [D("41.2"), D(0)]
    assert is_rug_pulled(True, sol_pair_liquidities(pairs, TOKEN)) is False


def test_burn_uses_the_actual_balance():
    position = PositionState(purchase_price=D(1), purchase_amount=D(1000), remaining_amount=D(750), created_at=NOW)
    assert burn_amount(D("749.5"), position) == D("749.5")  # not purchase_amount (§16.20)
    assert burn_amount(None, position) == D(750)
    assert burn_amount(D(0), position) == 0


def worked_example():
    a = OpenPositionValuation(
        position=PositionState(
            purchase_price=D("0.001"), purchase_amount=D(1000), total_invested_sol=D("1.0"), created_at=NOW
        ),
        price=D("0.0012"),
    )
    b = OpenPositionValuation(
        position=PositionState(
            purchase_price=D("0.001"),
            purchase_amount=D(1000),
            remaining_amount=D(750),
            total_invested_sol=D("1.0"),
            realized_profit_sol=D("0.12"),
            take_profit_levels_hit=1,
            created_at=NOW,
        ),
        price=D("0.0015"),
        tp_net_proceeds=D("0.37"),
    )
    closed = [
        ClosedTradeRow(D("0.3"), D(30)),
        ClosedTradeRow(D("-0.1"), D(-10)),
        ClosedTradeRow(D("0.05"), D(5)),
    ]
    return closed, [a, b]


def test_performance_worked_example():
    closed, positions = worked_example()
    summary = performance_summary(closed, positions, D("5.0"))
    assert summary.portfolio_balance_sol == D("7.325")
    assert summary.realized_profit_loss_sol == D("0.37")
    assert summary.unrealized_profit_loss_sol == D("0.575")
    assert summary.total_profit_loss_sol == D("0.945")
    assert summary.average_return == D("8.3333")
    assert summary.win_rate == D("66.6667")
    assert (summary.total_closed_trades, summary.total_open_positions) == (3, 2)


def test_snapshot_of_the_worked_example():
    _, positions = worked_example()
    figures = snapshot_figures(D("5.0"), positions)
    assert (figures.portfolio_balance_sol, figures.sol_balance, figures.positions_value_sol, figures.unrealized_pnl_sol) == (
        D("7.325"), D("5.0"), D("2.325"), D("0.575"),
    )  # fmt: skip


def test_empty_history_and_fallbacks():
    unpriced = OpenPositionValuation(
        position=PositionState(purchase_price=D(2), purchase_amount=D(3), created_at=NOW)  # nothing invested recorded
    )
    summary = performance_summary([], [unpriced], [D(1), D(2)])
    assert (summary.win_rate, summary.average_return, summary.total_closed_trades) == (0, 0, 0)
    assert summary.portfolio_balance_sol == D(9) and summary.unrealized_profit_loss_sol == 0


def test_withdrawals_are_not_losses():
    closed, positions = worked_example()
    before = performance_summary(closed, positions, D("5.0"))
    after = performance_summary(closed, positions, D("2.0"))  # 3 SOL withdrawn
    assert after.total_profit_loss_sol == before.total_profit_loss_sol
    assert after.portfolio_balance_sol == before.portfolio_balance_sol - 3


def test_hour_floor_and_window():
    assert hour_floor(NOW) == datetime(2026, 1, 1, 14, tzinfo=UTC)
    assert hour_floor(datetime(2026, 1, 1, 14, 37)) == datetime(2026, 1, 1, 14, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    assert hour_floor(datetime(2026, 1, 1, 16, 5, tzinfo=plus_two)) == datetime(2026, 1, 1, 14, tzinfo=UTC)
    assert window_start("24h", NOW) == NOW - timedelta(hours=24)
    assert window_start("all", NOW) is None
    with pytest.raises(ValueError):
        window_start("7d", NOW)
