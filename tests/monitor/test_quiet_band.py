"""The monitor's fast path may skip a position only where a full evaluation would do nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.trading.config import load_config
from app.trading.evaluate import Hold, evaluate_position
from app.trading.ledger import AMOUNT_18, quantize
from app.trading.position import PositionState
from app.worker.quiet_band import QuietBand, quiet_band

D = Decimal
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)

stop_losses = st.one_of(
    st.builds(
        lambda mode, default, enabled: {"enabled": enabled, "mode": mode, "defaultPercentage": default},
        st.sampled_from(["fixed", "exponential", "zones"]),
        st.integers(-100, 0),
        st.booleans(),
    ),
    st.builds(
        lambda default: {
            "mode": "custom",
            "defaultPercentage": default,
            "trailingLevels": [
                {"change": 200, "stopLoss": 150},
                {"change": 50, "stopLoss": 30},
                {"change": 20, "stopLoss": 5},
            ],
        },
        st.integers(-60, -5),
    ),
)
configs = st.builds(
    lambda sl, tp, tp_mode, stale, lo, width, hold, dca, dca_mode, max_dca: {
        "stopLoss": sl,
        "takeProfit": {"enabled": tp, "mode": tp_mode},
        "staleTrade": {
            "enabled": stale,
            "minProfitPercent": lo,
            "maxProfitPercent": lo + width,
            "minHoldTimeMinutes": hold,
        },
        "dca": {"enabled": dca, "mode": dca_mode, "maxDCACount": max_dca},
    },
    stop_losses,
    st.booleans(),
    st.sampled_from(["aggressive", "moderate", "conservative"]),
    st.booleans(),
    st.integers(-30, 20),
    st.integers(0, 30),
    st.integers(1, 120),
    st.booleans(),
    st.sampled_from(["aggressive", "moderate", "conservative"]),
    st.integers(1, 4),
)
averages = st.sampled_from([D("0.001"), D("0.0000271154"), D("1.5"), D("0.000000012345678901")])
factors = st.one_of(
    st.decimals(min_value=D("0.2"), max_value=D("12"), places=3),
    st.decimals(min_value=D("0.7"), max_value=D("1.3"), places=3),  # around the stale and DCA bands
)


@st.composite
def positions(draw) -> PositionState:
    average = draw(averages)
    amount = D(1000)
    hit = draw(st.integers(0, 4))
    moon = draw(st.booleans()) and hit > 0
    return PositionState(
        purchase_price=average,
        purchase_amount=amount,
        created_at=NOW - timedelta(minutes=draw(st.integers(0, 180))),
        remaining_amount=amount - D(100) * hit if hit else None,
        total_invested_sol=average * amount,
        current_stop_loss_percentage=None,
        peak_price=quantize(average * draw(st.decimals(D(1), D(4), places=2)), AMOUNT_18),
        lowest_price=quantize(average * draw(st.decimals(D("0.3"), D(1), places=2)), AMOUNT_18),
        dca_count=draw(st.integers(0, 3)),
        last_dca_time=NOW - timedelta(seconds=draw(st.integers(0, 100))) if draw(st.booleans()) else None,
        take_profit_levels_hit=hit,
        moon_bag_activated=moon,
        moon_bag_amount=D(100) if moon else None,
    )


def settle(state: PositionState, price: Decimal, cfg, now: datetime) -> PositionState | None:
    """Apply the write-backs of repeated evaluations at ``price`` until nothing changes (what persisting
    does); None when the position would trade at that price."""
    for _ in range(4):
        action = evaluate_position(state, price, cfg, now)
        if not isinstance(action, Hold):
            return None
        update = action.update
        if not update.changed:
            return state
        state = msgspec.structs.replace(
            state,
            peak_price=update.peak_price,
            current_stop_loss_percentage=update.current_stop_loss_percentage,
            lowest_price=update.lowest_price,
        )
    return None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    raw=configs,
    start=positions(),
    factor=factors,
    where=st.fractions(min_value=0, max_value=1),
    later_s=st.integers(0, 3 * 3600),
)
def test_inside_the_band_a_full_evaluation_does_nothing(raw, start, factor, where, later_s) -> None:
    cfg = load_config(raw)
    price = quantize(start.purchase_price * factor, AMOUNT_18)
    assume(price > 0)
    state = settle(start, price, cfg, NOW)
    assume(state is not None)
    band = quiet_band(state, price, cfg, NOW)
    assume(band is not None)
    assert band.contains(price, NOW)

    lo = band.lo if band.lo is not None else D(0)
    hi = band.hi if band.hi is not None else price * 3
    candidate = quantize(lo + (hi - lo) * D(where.numerator) / D(where.denominator), AMOUNT_18)
    later = NOW + timedelta(seconds=later_s)
    for probe, when in ((candidate, NOW), (candidate, later), (price, later)):
        if not band.contains(probe, when):
            continue
        action = evaluate_position(state, probe, cfg, when)
        assert isinstance(action, Hold), (probe, when, band, action)
        assert not action.update.changed, (probe, when, band, action.update)


def test_examples() -> None:
    cfg = load_config({"staleTrade": {"enabled": False}})
    state = PositionState(
        purchase_price=D("0.001"),
        purchase_amount=D(1000),
        created_at=NOW,
        current_stop_loss_percentage=D("-32.00"),
        peak_price=D("0.00115"),
        lowest_price=D("0.0009"),
    )
    # Stop at −32 % ⇒ 0.00068, but the stored lowest 0.0009 is the lower bound; the peak is the upper one.
    assert quiet_band(state, D("0.001"), cfg, NOW) == QuietBand(lo=D("0.0009"), hi=D("0.00115"))
    assert quiet_band(state, D("0.0013"), cfg, NOW) is None  # a new peak: not settled at that price
    tighter = msgspec.structs.replace(state, peak_price=D("0.0012"))  # +20 % ⇒ the stop must move to +10 %
    assert quiet_band(tighter, D("0.001"), cfg, NOW) is None

    young = load_config({"staleTrade": {"enabled": True, "minHoldTimeMinutes": 60}})
    band = quiet_band(state, D("0.00105"), young, NOW)  # +5 % is inside the 1..10 % stale band
    assert band == QuietBand(lo=D("0.0009"), hi=D("0.00115"), until=NOW + timedelta(minutes=60))
    assert not band.contains(D("0.00105"), NOW + timedelta(minutes=60))

    no_low = msgspec.structs.replace(state, lowest_price=None)
    assert quiet_band(no_low, D("0.001"), cfg, NOW) is None
