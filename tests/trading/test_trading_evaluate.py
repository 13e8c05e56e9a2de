from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import msgspec

from app.trading.config import apply_config_patch
from app.trading.evaluate import DcaBuy, Hold, PositionState, SellAll, SellPartial, evaluate_position

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
ALL_ON = apply_config_patch(None, {"dca": {"enabled": True}, "takeProfit": {"enabled": True}})[0]


def pos(age_minutes=5, **kw):
    base = {
        "purchase_price": D("0.001"),
        "purchase_amount": D(1000),
        "total_invested_sol": D("1.0"),
        "current_stop_loss_percentage": D(-32),
        "peak_price": D("0.001"),
        "lowest_price": D("0.001"),
        "created_at": NOW - timedelta(minutes=age_minutes),
    }
    return PositionState(**{**base, **kw})


def test_stop_loss_comes_first():
    action = evaluate_position(pos(), D("0.00068"), ALL_ON, NOW)
    assert isinstance(action, SellAll) and action.reason == "stop_loss" and action.stop_price == D("0.00068")
    # the DCA level (−20 %) is also reached, but the stop wins
    assert action.update.lowest_price == D("0.00068") and action.update.lowest_changed


def test_take_profit_before_stale_and_dca():
    action = evaluate_position(pos(age_minutes=600), D("0.0015"), ALL_ON, NOW)
    assert isinstance(action, SellPartial) and action.decision.sell_amount == 250
    assert action.update.stop_loss_changed and action.update.peak_price == D("0.0015")
    assert action.update.current_stop_loss_percentage == 40


def test_stale_trade():
    action = evaluate_position(pos(age_minutes=61), D("0.00105"), ALL_ON, NOW)
    assert isinstance(action, SellAll) and action.reason == "stale_trade"
    assert isinstance(evaluate_position(pos(age_minutes=59), D("0.00105"), ALL_ON, NOW), Hold)


def test_dca_last():
    action = evaluate_position(pos(), D("0.0008"), ALL_ON, NOW)
    assert isinstance(action, DcaBuy) and action.decision.buy_amount_sol == D("0.6")
    assert action.update.lowest_price == D("0.0008") and not action.update.stop_loss_changed


def test_hold_reports_state_changes_only_when_needed():
    quiet = evaluate_position(pos(), D("0.00101"), ALL_ON, NOW)
    assert isinstance(quiet, Hold)
    assert quiet.update.stop_loss_changed  # new peak
    assert not quiet.update.lowest_changed and quiet.update.changed
    same = evaluate_position(pos(peak_price=D("0.00101")), D("0.00101"), ALL_ON, NOW)
    assert not same.update.changed


def test_automation_off_does_nothing():
    action = evaluate_position(pos(), D("0.0001"), ALL_ON, NOW, automated=False)
    assert isinstance(action, Hold) and not action.update.changed


def test_actions_encode_as_tagged_json():
    action = evaluate_position(pos(), D("0.00068"), ALL_ON, NOW)
    data = msgspec.json.decode(msgspec.json.encode(action))
    assert data["type"] == "sell" and data["reason"] == "stop_loss"
