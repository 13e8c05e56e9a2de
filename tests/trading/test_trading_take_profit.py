from datetime import UTC, datetime
from decimal import Decimal as D

import msgspec
import pytest

from app.trading.config import MoonBagConfig, TakeProfitLevel, apply_config_patch
from app.trading.position import PositionState
from app.trading.take_profit import evaluate_take_profit, is_only_moon_bag, take_profit_progress

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CFG = apply_config_patch(None, {"takeProfit": {"enabled": True}})[0]  # moderate levels, moon bag 300/10


def pos(price="0.001", amount=1000, remaining=None, hit=0, active=False, moon=None, start=0, total=None):
    return PositionState(
        purchase_price=D(price),
        purchase_amount=D(amount),
        remaining_amount=None if remaining is None else D(remaining),
        take_profit_levels_hit=hit,
        moon_bag_activated=active,
        moon_bag_amount=None if moon is None else D(moon),
        tp_batch_start_level=start,
        total_take_profit_levels=total,
        created_at=NOW,
    )


@pytest.mark.parametrize("scale", [D(1), D(100000)])  # purchase 0.001 and 100
def test_below_first_level(scale):
    d = evaluate_take_profit(pos(price=D("0.001") * scale), D("0.0013") * scale, CFG)
    assert not d.should_execute and d.reason == "Current gain 30.00% below next level 50%"
    assert d.new_remaining_amount == 1000


@pytest.mark.parametrize("scale", [D(1), D(100000)])
def test_first_level(scale):
    d = evaluate_take_profit(pos(price=D("0.001") * scale), D("0.0015") * scale, CFG)
    assert (d.should_execute, d.sell_amount, d.new_remaining_amount, d.activate_moon_bag) == (True, 250, 750, False)
    assert d.levels_executed == 1 and d.reason == "Triggered 1 level(s) at 50.00% gain"


def test_price_jump_executes_several_levels():
    d = evaluate_take_profit(pos(), D("0.0026"), CFG)
    assert [lv.target_percent for lv in d.levels_to_execute] == [50, 150]
    assert (d.sell_amount, d.new_remaining_amount, d.activate_moon_bag) == (500, 500, False)


def test_moon_bag_activates_at_its_trigger():
    d = evaluate_take_profit(pos(remaining=500, hit=2), D("0.004"), CFG)
    assert (d.activate_moon_bag, d.moon_bag_amount) == (True, 100)
    assert (d.sell_amount, d.new_remaining_amount) == (250, 250)


def test_final_level_forces_the_moon_bag():
    d = evaluate_take_profit(pos(remaining=250, hit=3), D("0.005"), CFG)
    assert (d.activate_moon_bag, d.moon_bag_amount, d.sell_amount, d.new_remaining_amount) == (True, 100, 150, 100)
    d = evaluate_take_profit(pos(remaining=250, hit=3, active=True, moon=100), D("0.005"), CFG)
    assert (d.activate_moon_bag, d.moon_bag_amount, d.sell_amount, d.new_remaining_amount) == (False, 0, 150, 100)


def test_exhausted_levels_hold_the_moon_bag():
    position = pos(remaining=100, hit=4, active=True, moon=100)
    d = evaluate_take_profit(position, D("0.01"), CFG)
    assert not d.should_execute and d.reason == "All take-profit levels exhausted"
    assert is_only_moon_bag(position)


def test_moon_bag_reserve_caps_the_sale():
    tp = msgspec.structs.replace(
        CFG.take_profit,
        mode="custom",
        levels=(TakeProfitLevel(target_percent=D(50), sell_percent=D(80)),),
        moon_bag=MoonBagConfig(enabled=True, trigger_percent=D(50), retain_percent=D(30)),
    )  # 80 + 30 > 100: only reachable by bypassing validation, as in upstream's test
    d = evaluate_take_profit(pos(), D("0.0015"), msgspec.structs.replace(CFG, take_profit=tp))
    assert (d.sell_amount, d.new_remaining_amount, d.moon_bag_amount) == (700, 300, 300)


def test_append_levels_model():
    d = evaluate_take_profit(pos(amount=1375, remaining=875, hit=2, start=2, total=6), D("0.0015"), CFG)
    assert d.should_execute and [lv.target_percent for lv in d.levels_to_execute] == [50]
    assert (d.sell_amount, d.new_remaining_amount) == (D("343.75"), D("531.25"))
    d = evaluate_take_profit(pos(amount=1375, remaining=875, hit=6, start=2, total=6), D("0.01"), CFG)
    assert d.reason == "All take-profit levels exhausted"
    d = evaluate_take_profit(pos(amount=1375, hit=4, start=4, total=8), D("0.0013"), CFG)
    assert d.reason == "Current gain 30.00% below next level 50%"


def test_batch_past_the_list():
    d = evaluate_take_profit(pos(hit=4, start=0, total=8), D("0.01"), CFG)
    assert not d.should_execute and d.reason == "No more levels in current batch"


def test_nothing_left_but_the_moon_bag():
    d = evaluate_take_profit(pos(remaining=100, hit=3, active=True, moon=100, total=5), D("0.005"), CFG)
    assert not d.should_execute and d.reason == "No tokens available to sell (only moon bag remains)"


def test_disabled():
    cfg = apply_config_patch(None, {})[0]
    assert evaluate_take_profit(pos(), D(1), cfg).reason == "Take-profit disabled"


def test_preset_modes_run_their_templates():
    aggressive = apply_config_patch(None, {"takeProfit": {"enabled": True, "mode": "aggressive"}})[0]
    d = evaluate_take_profit(pos(), D("0.00125"), aggressive)  # +25 %: aggressive's first level
    assert d.should_execute and d.sell_amount == 250
    d = evaluate_take_profit(pos(remaining=500, hit=2), D("0.002"), aggressive)  # +100 % = aggressive moon bag trigger
    assert d.activate_moon_bag and d.moon_bag_amount == 100


def test_sell_amounts_stay_on_the_18_decimal_grid():
    d = evaluate_take_profit(pos(amount="0.000000000000000003"), D("0.0015"), CFG)
    assert d.sell_amount == 0 and not d.should_execute  # 25 % of 3e-18 rounds down to nothing


def test_progress_and_moon_bag_helper():
    position = pos(remaining=250, hit=3)
    progress = take_profit_progress(position, CFG)
    assert (progress.levels_hit, progress.total_levels, progress.percent_complete) == (3, 4, 75)
    assert (progress.sold_amount, progress.sold_percent) == (750, 75)
    assert not is_only_moon_bag(position)
    assert is_only_moon_bag(pos(remaining="100.0000001", active=True, moon=100))
    assert not is_only_moon_bag(pos(remaining="100.00001", active=True, moon=100))
