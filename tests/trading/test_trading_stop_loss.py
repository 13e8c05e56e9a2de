from datetime import UTC, datetime
from decimal import Decimal as D

import msgspec
import pytest

from app.trading.config import StopLossConfig, TrailingLevel, apply_config_patch, default_config
from app.trading.position import PositionState
from app.trading.stop_loss import (
    evaluate_stop_loss,
    initial_stop_loss,
    reset_after_dca,
    stop_loss_percent,
    stop_price,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def sl(mode="fixed", levels=(), default=-32, enabled=True) -> StopLossConfig:
    return StopLossConfig(
        enabled=enabled,
        default_percentage=D(default),
        mode=mode,
        trailing_levels=tuple(TrailingLevel(change=D(c), stop_loss=D(s)) for c, s in levels),
    )


def with_sl(**kwargs):
    return msgspec.structs.replace(default_config(), stop_loss=sl(**kwargs))


TABLE = [
    # gain, fixed, exponential, zones (d = −32)
    ("0", -32, -32, -32),
    ("10", -32, -32, -32),
    ("19.99", -32, -32, -32),
    ("20", 10, -32, 10),
    ("21", 11, "0.6614", "10.5"),
    ("25", 15, "3.6964", "12.5"),
    ("30", 20, "8.2155", 18),
    ("50", 40, "30.8099", 30),
    ("75", 65, "53.0966", "52.5"),
    ("100", 90, 90, 70),
    ("150", 140, 135, 120),
    ("200", 190, 180, 160),
    ("500", 490, 450, 425),
]


@pytest.mark.parametrize(("gain", "fixed", "exponential", "zones"), TABLE)
def test_reference_table(gain, fixed, exponential, zones):
    for mode, expected in (("fixed", fixed), ("exponential", exponential), ("zones", zones)):
        assert abs(stop_loss_percent(D(gain), sl(mode)) - D(expected)) < D("1e-4"), mode


def test_negative_gain_and_unknown_mode_use_default():
    assert stop_loss_percent(D(-5), sl("fixed")) == -32
    assert stop_loss_percent(D(100), msgspec.structs.replace(sl(), mode="bogus")) == -32


def test_custom_levels_take_the_highest_reached_change():
    cfg = sl("custom", [(50, 90), (100, 95), (200, 98)])
    assert stop_loss_percent(D(150), cfg) == 95
    assert stop_loss_percent(D(49), cfg) == -32
    assert stop_loss_percent(D(200), sl("custom", [(200, 98), (50, 90), (100, 95)])) == 98  # order irrelevant
    assert stop_loss_percent(D(300), sl("custom", [])) == -32


def position(stored=D(-32), peak=D(100), price=D(100)) -> PositionState:
    return PositionState(
        purchase_price=price,
        purchase_amount=D(10),
        current_stop_loss_percentage=stored,
        peak_price=peak,
        created_at=NOW,
    )


def test_trigger_is_inclusive():
    cfg = with_sl(mode="custom", levels=[(50, 90), (100, 95), (200, 98)])
    hit = evaluate_stop_loss(position(), D(68), cfg, NOW)
    assert hit.triggered and hit.stop_price == D(68)
    miss = evaluate_stop_loss(position(), D(80), cfg, NOW)
    assert not miss.triggered and miss.stop_price == D(68) and not miss.persist


def test_new_peak_raises_the_level():
    decision = evaluate_stop_loss(position(), D(200), with_sl(mode="custom", levels=[(50, 90)]), NOW)
    assert (decision.new_percentage, decision.new_peak, decision.persist) == (D(90), D(200), True)
    assert decision.stop_price == D(190) and not decision.triggered


def test_stored_peak_drives_the_level():
    decision = evaluate_stop_loss(
        position(peak=D(200)), D(198), with_sl(mode="custom", levels=[(50, 90), (100, 95)]), NOW
    )
    assert decision.new_percentage == 95 and decision.stop_price == D(195) and not decision.triggered


def test_drop_below_stop_triggers():
    decision = evaluate_stop_loss(
        position(stored=D(90), peak=D(200)), D(179), with_sl(mode="custom", levels=[(100, 90)]), NOW
    )
    assert decision.triggered and decision.stop_price == D(190)


def test_highest_matching_level_at_250():
    decision = evaluate_stop_loss(
        position(), D(250), with_sl(mode="custom", levels=[(50, 90), (100, 95), (200, 98)]), NOW
    )
    assert decision.new_percentage == 95 and decision.stop_price == D(195)


def test_unchanged_level_is_not_persisted_but_still_triggers():
    decision = evaluate_stop_loss(
        position(stored=D(90), peak=D(200)), D(150), with_sl(mode="custom", levels=[(50, 90)]), NOW
    )
    assert decision.new_percentage == 90 and not decision.persist
    assert decision.stop_price == D(190) and decision.triggered


def test_default_fixed_mode_scenario():
    cfg = default_config()
    start = position(stored=D(-32), peak=D("0.001"), price=D("0.001"))
    low = evaluate_stop_loss(start, D("0.00115"), cfg, NOW)
    assert low.new_percentage == -32 and low.stop_price == D("0.00068") and not low.triggered
    high = evaluate_stop_loss(start, D("0.0013"), cfg, NOW)
    assert high.new_percentage == 20 and high.stop_price == D("0.0012") and high.persist
    moved = msgspec.structs.replace(
        start, current_stop_loss_percentage=high.stored_percentage, peak_price=high.new_peak
    )
    assert evaluate_stop_loss(moved, D("0.00119"), cfg, NOW).triggered


def test_never_loosens_when_config_loosens():
    decision = evaluate_stop_loss(position(stored=D(50), peak=D(100)), D(100), default_config(), NOW)
    assert decision.new_percentage == 50 and decision.stop_price == D(150) and decision.triggered


def test_disabled_or_degenerate_positions_are_skipped():
    off = evaluate_stop_loss(position(), D(1), with_sl(enabled=False), NOW)
    assert not off.triggered and not off.persist and off.stop_price is None
    tiny = evaluate_stop_loss(position(price=D("1e-16"), peak=None, stored=None), D(0), default_config(), NOW)
    assert not tiny.triggered and not tiny.persist


def test_missing_state_is_initialised_and_persisted():
    fresh = position(stored=None, peak=None)
    decision = evaluate_stop_loss(fresh, D(100), default_config(), NOW)
    assert (decision.new_percentage, decision.new_peak, decision.persist) == (D(-32), D(100), True)


def test_levels_over_999_99_are_capped_in_storage_only():
    # fixed mode at +1500 % wants a +1490 % stop; numeric(5,2) tops out at 999.99 (§16.3)
    decision = evaluate_stop_loss(position(peak=D(1600)), D(1600), default_config(), NOW)
    assert decision.new_percentage == 1490 and decision.stored_percentage == D("999.99")
    assert decision.stop_price == D(1590) and not decision.triggered
    stored = position(stored=decision.stored_percentage, peak=decision.new_peak)
    again = evaluate_stop_loss(stored, D(1590), default_config(), NOW)
    assert again.triggered and again.new_percentage == 1490 and not again.persist


def test_tiny_prices_persist_every_peak_change():
    # upstream ignored peak moves under 0.0001 absolute: meaningless at 1e-6 prices (§16.6)
    start = position(stored=D(-32), peak=D("0.000001"), price=D("0.000001"))
    decision = evaluate_stop_loss(start, D("0.0000011"), default_config(), NOW)
    assert decision.persist and decision.new_peak == D("0.0000011")


def test_level_is_rounded_to_its_column_before_use():
    decision = evaluate_stop_loss(position(), D(121), with_sl(mode="exponential"), NOW)  # g = 21 ⇒ 0.6614
    assert decision.new_percentage == D("0.66") and decision.stop_price == D("100.66")


def test_initial_stop_loss():
    init = initial_stop_loss(D("0.0000273115"), default_config())
    assert (init.peak_price, init.current_stop_loss_percentage) == (D("0.0000273115"), D(-32))
    assert initial_stop_loss(D(1), with_sl(enabled=False)) is None


def test_dca_reset_prevents_the_self_triggering_stop():
    # §16.17: custom DCA −50 % / +300 % takes a 1.0 entry to an average of 0.625; keeping peak 1.0
    # (+60 %) in fixed mode would set +50 % ⇒ stop 0.9375 > price 0.5 ⇒ immediate sale.
    cfg = default_config()
    stale = PositionState(
        purchase_price=D("0.625"),
        purchase_amount=D(4),
        current_stop_loss_percentage=D(-32),
        peak_price=D(1),
        created_at=NOW,
    )
    assert evaluate_stop_loss(stale, D("0.5"), cfg, NOW).triggered  # the upstream bug
    reset = reset_after_dca(D("0.625"), D("0.5"), cfg)
    assert (reset.peak_price, reset.current_stop_loss_percentage) == (D("0.625"), D(-32))
    fixed = msgspec.structs.replace(stale, peak_price=reset.peak_price)
    decision = evaluate_stop_loss(fixed, D("0.5"), cfg, NOW)
    assert not decision.triggered and decision.stop_price == D("0.425")


def test_dca_reset_above_average():
    cfg = default_config()
    reset = reset_after_dca(D(1), D("1.5"), cfg)  # fill 50 % above average ⇒ fixed +40 %
    assert (reset.peak_price, reset.current_stop_loss_percentage) == (D("1.5"), D(40))
    assert stop_price(D(1), reset.current_stop_loss_percentage) < D("1.5")
    assert reset_after_dca(D(1), D(1), with_sl(enabled=False)) is None


def test_config_built_through_validation_works_too():
    cfg = apply_config_patch(None, {"stopLoss": {"mode": "zones"}})[0]
    assert evaluate_stop_loss(position(), D(150), cfg, NOW).new_percentage == 30
    assert stop_price(D(100), D(30)) == D(130)
