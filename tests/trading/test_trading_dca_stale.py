from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import msgspec
import pytest

from app.trading.config import DcaLevel, apply_config_patch
from app.trading.dca import evaluate_dca
from app.trading.position import PositionState
from app.trading.stale import held_minutes, should_close_stale

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def dca_cfg(**dca):
    return apply_config_patch(None, {"dca": {"enabled": True, **dca}})[0]


def pos(**kw):
    return PositionState(**{"purchase_price": D("0.001"), "purchase_amount": D(1000), "created_at": NOW, **kw})


def test_moderate_levels():
    cfg = dca_cfg()
    miss = evaluate_dca(pos(), D("0.00095"), cfg, NOW)
    assert not miss.should_buy and miss.reason == "Price drop -5.00% has not reached next level (-20%)"
    hit = evaluate_dca(pos(), D("0.0008"), cfg, NOW)
    assert hit.should_buy and hit.buy_amount_sol == D("0.6") and hit.level_index == 0
    assert hit.reason == "Price dropped -20.00% (level: -20%)"
    assert evaluate_dca(pos(), D("0.00079"), cfg, NOW).should_buy


def test_aggressive_and_conservative():
    aggressive = dca_cfg(mode="aggressive")
    d = evaluate_dca(pos(), D("0.00089"), aggressive, NOW)
    assert d.should_buy and (d.level.drop_percent, d.level.buy_percent) == (-10, 100)
    assert evaluate_dca(pos(), D("0.0009"), aggressive, NOW).buy_amount_sol == D("0.9")
    conservative = dca_cfg(mode="conservative")
    assert not evaluate_dca(pos(), D("0.00085"), conservative, NOW).should_buy
    assert evaluate_dca(pos(), D("0.0008"), conservative, NOW).buy_amount_sol == D("0.8")


def test_custom_levels():
    cfg = dca_cfg(
        mode="custom", levels=[{"dropPercent": -12, "buyPercent": 30}, {"dropPercent": -25, "buyPercent": 60}]
    )
    d = evaluate_dca(pos(), D("0.00087"), cfg, NOW)
    assert d.should_buy and (d.level.drop_percent, d.level.buy_percent) == (-12, 30)
    assert d.buy_amount_sol == D("0.261")
    unsorted = msgspec.structs.replace(
        cfg, dca=msgspec.structs.replace(cfg.dca, levels=tuple(
            DcaLevel(drop_percent=D(p), buy_percent=D(50)) for p in (-30, -10, -20)
        ))
    )  # fmt: skip
    assert evaluate_dca(pos(), D("0.0009"), unsorted, NOW).level.drop_percent == -10


def test_limits_and_cooldown():
    assert evaluate_dca(pos(dca_count=2), D("0.0001"), dca_cfg(maxDCACount=5), NOW).reason == (
        "All DCA levels exhausted (2/2)"
    )
    assert evaluate_dca(pos(dca_count=3), D("0.0001"), dca_cfg(), NOW).reason == "Max DCA count reached (3/3)"
    recent = pos(last_dca_time=NOW - timedelta(seconds=10))
    assert evaluate_dca(recent, D("0.0008"), dca_cfg(), NOW).reason == "Cooldown active (20s remaining)"
    almost = pos(last_dca_time=NOW - timedelta(seconds=29, microseconds=500_000))
    assert evaluate_dca(almost, D("0.0008"), dca_cfg(), NOW).reason == "Cooldown active (1s remaining)"
    assert evaluate_dca(pos(last_dca_time=NOW - timedelta(seconds=30)), D("0.0008"), dca_cfg(), NOW).should_buy


def test_skips():
    assert evaluate_dca(pos(), D("0.0001"), apply_config_patch(None, {})[0], NOW).reason == "DCA disabled"
    moon = pos(remaining_amount=D(100), moon_bag_activated=True, moon_bag_amount=D(100))
    assert evaluate_dca(moon, D("0.0001"), dca_cfg(), NOW).reason == "Only moon bag remains — DCA disabled"
    custom_empty = dca_cfg(mode="custom", enabled=False)
    custom_empty = msgspec.structs.replace(custom_empty, dca=msgspec.structs.replace(custom_empty.dca, enabled=True))
    assert evaluate_dca(pos(), D("0.0001"), custom_empty, NOW).reason == "No DCA levels configured"


def test_buy_uses_remaining_amount():
    d = evaluate_dca(pos(remaining_amount=D(750)), D("0.0008"), dca_cfg(), NOW)
    assert d.buy_amount_sol == D("0.45")


def stale_pos(age_minutes, price="1.0"):
    return PositionState(purchase_price=D(price), purchase_amount=D(1), created_at=NOW - timedelta(minutes=age_minutes))


def stale_cfg(**stale):
    return apply_config_patch(None, {"staleTrade": stale})[0]


@pytest.mark.parametrize(
    ("age", "price", "close"),
    [
        (61, "1.05", True),
        (61, "1.01", True),
        (61, "1.099", True),
        (60, "1.05", True),  # exactly the minimum hold
        (59, "1.05", False),
        (61, "1.2", False),
        (61, "0.97", False),
        (61, "1.10", True),  # upper bound inclusive
    ],
)
def test_default_stale_window(age, price, close):
    assert should_close_stale(stale_pos(age), D(price), stale_cfg(), NOW) is close


@pytest.mark.parametrize(
    ("bounds", "price", "close"),
    [
        ((-5, -1), "0.97", True),
        ((-5, -1), "0.99", True),
        ((-5, -1), "0.90", False),
        ((-2, 3), "1.0", True),
        ((-2, 3), "1.02", True),
    ],
)
def test_custom_stale_windows(bounds, price, close):
    cfg = stale_cfg(minProfitPercent=bounds[0], maxProfitPercent=bounds[1])
    assert should_close_stale(stale_pos(90), D(price), cfg, NOW) is close


def test_stale_edge_configs():
    base = stale_cfg()
    inverted = msgspec.structs.replace(
        base, stale_trade=msgspec.structs.replace(base.stale_trade, min_profit_percent=D(10), max_profit_percent=D(1))
    )
    assert not any(should_close_stale(stale_pos(90), D(p), inverted, NOW) for p in ("1.01", "1.05", "1.1"))
    immediate = msgspec.structs.replace(
        base, stale_trade=msgspec.structs.replace(base.stale_trade, min_hold_time_minutes=D(0))
    )
    assert should_close_stale(stale_pos(0), D("1.05"), immediate, NOW)
    assert not should_close_stale(stale_pos(90), D("1.05"), stale_cfg(enabled=False), NOW)
    assert held_minutes(stale_pos(0), NOW + timedelta(seconds=90)) == D("1.5")
