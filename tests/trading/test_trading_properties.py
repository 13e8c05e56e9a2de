"""Property tests for the invariants the worker and the ledger rely on."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from fractions import Fraction

import msgspec
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.trading.config import (
    BalanceThresholds,
    PositionSizes,
    SizeRange,
    StopLossConfig,
    TrailingLevel,
    apply_config_patch,
    default_config,
    effective_dca_levels,
    effective_moon_bag,
    effective_take_profit_levels,
)
from app.trading.dca import evaluate_dca
from app.trading.errors import TradeError
from app.trading.ledger import apply_deltas, balance_deltas
from app.trading.position import PositionState
from app.trading.sizing import calculate_position_size, resolve_buy_size
from app.trading.stop_loss import evaluate_stop_loss, initial_stop_loss, stop_price
from app.trading.take_profit import evaluate_take_profit
from app.trading.trades import buy_fill, new_average_price, plan_buy, plan_dca_buy, plan_full_sale, sell_fill
from app.trading.units import SOL_MINT, from_raw, to_raw

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "Tok1111111111111111111111111111111111111111"
replace = msgspec.structs.replace
PROPS = settings(max_examples=150, deadline=None)


def dec(lo, hi, places):
    return st.decimals(min_value=D(lo), max_value=D(hi), places=places, allow_nan=False, allow_infinity=False)


prices = dec("0.000000001", "1000", 9)
ratios = dec("0.01", "30", 4)


@st.composite
def stop_loss_configs(draw, sane_levels: bool = False) -> StopLossConfig:
    """Any valid stop-loss config; ``sane_levels`` keeps each custom stopLoss below its change."""
    mode = draw(st.sampled_from(["fixed", "exponential", "zones", "custom"]))
    changes = draw(st.lists(dec("0.02", "5000", 2), min_size=1, max_size=5, unique=True))
    levels = tuple(
        TrailingLevel(change=c, stop_loss=draw(dec("0.01", min(c - D("0.01"), D(999)) if sane_levels else 999, 2)))
        for c in sorted(changes, reverse=True)
    )
    return StopLossConfig(enabled=True, default_percentage=draw(dec(-100, 0, 2)), mode=mode, trailing_levels=levels)


@PROPS
@given(purchase=prices, sl=stop_loss_configs(), path=st.lists(ratios, min_size=1, max_size=40))
def test_stop_never_loosens(purchase, sl, path):
    cfg = replace(default_config(), stop_loss=sl)
    init = initial_stop_loss(purchase, cfg)
    state = PositionState(
        purchase_price=purchase,
        purchase_amount=D(1),
        created_at=NOW,
        peak_price=init.peak_price,
        current_stop_loss_percentage=init.current_stop_loss_percentage,
    )
    level, stored = init.current_stop_loss_percentage, init.current_stop_loss_percentage
    for ratio in path:
        decision = evaluate_stop_loss(state, purchase * ratio, cfg, NOW)
        assert decision.new_percentage >= level
        assert decision.stored_percentage >= stored
        assert decision.triggered == (purchase * ratio <= stop_price(purchase, decision.new_percentage))
        level, stored = decision.new_percentage, decision.stored_percentage
        if decision.persist:
            state = replace(state, current_stop_loss_percentage=stored, peak_price=decision.new_peak)


TP_MODES = st.sampled_from(["aggressive", "moderate", "conservative"])


@PROPS
@given(
    mode=TP_MODES,
    amount=dec("0.000001", "1000000000", 6),
    steps=st.lists(st.tuples(ratios, st.booleans(), dec("0", "2", 3)), min_size=1, max_size=30),
)
def test_take_profit_levels_fire_once_and_spare_the_moon_bag(mode, amount, steps):
    cfg = apply_config_patch(None, {"takeProfit": {"enabled": True, "mode": mode}})[0]
    levels = effective_take_profit_levels(cfg.take_profit)
    state = PositionState(purchase_price=D(1), purchase_amount=amount, created_at=NOW)
    fired: set[tuple[int, int]] = set()
    for ratio, dca_now, dca_fraction in steps:
        if dca_now and dca_fraction > 0:  # an append-levels DCA between ticks
            added = (state.purchase_amount * dca_fraction).quantize(D("1e-6"))
            hit = state.take_profit_levels_hit
            state = replace(
                state,
                purchase_amount=state.purchase_amount + added,
                remaining_amount=state.holding + added,
                tp_batch_start_level=hit,
                total_take_profit_levels=hit + len(levels),
            )
        d = evaluate_take_profit(state, ratio, cfg)
        if not d.should_execute:
            continue
        if d.activate_moon_bag:
            retain = effective_moon_bag(cfg.take_profit).retain_percent
            assert d.moon_bag_amount == (state.purchase_amount * retain / 100).quantize(D("1e-18"))
        reserve = d.moon_bag_amount if d.activate_moon_bag else (state.moon_bag_amount or D(0))
        assert 0 < d.sell_amount <= state.holding - reserve
        start = state.take_profit_levels_hit - state.tp_batch_start_level
        keys = {(state.tp_batch_start_level, start + i) for i in range(d.levels_executed)}
        assert not keys & fired
        fired |= keys
        total = state.total_take_profit_levels or len(levels)
        assert state.take_profit_levels_hit + d.levels_executed <= total
        state = replace(
            state,
            remaining_amount=d.new_remaining_amount,
            take_profit_levels_hit=state.take_profit_levels_hit + d.levels_executed,
            moon_bag_activated=state.moon_bag_activated or d.activate_moon_bag,
            moon_bag_amount=d.moon_bag_amount if d.activate_moon_bag else state.moon_bag_amount,
        )
        if state.moon_bag_activated:
            assert state.holding >= state.moon_bag_amount


@PROPS
@given(
    mode=st.sampled_from(["aggressive", "moderate", "conservative"]),
    average=prices,
    ratio=dec("0.001", "2", 6),
    count=st.integers(0, 3),
)
def test_dca_never_triggers_above_its_level(mode, average, ratio, count):
    cfg = apply_config_patch(None, {"dca": {"enabled": True, "mode": mode, "maxDCACount": 10}})[0]
    state = PositionState(purchase_price=average, purchase_amount=D(1000), dca_count=count, created_at=NOW)
    price = average * ratio
    decision = evaluate_dca(state, price, cfg, NOW)
    levels = effective_dca_levels(cfg.dca)
    if decision.should_buy:
        assert decision.level == levels[count]
        assert (price - average) / average * 100 <= decision.level.drop_percent
        assert 0 < decision.buy_amount_sol <= price * 1000 * decision.level.buy_percent / 100
    elif count < len(levels):
        reached = (price - average) / average * 100 <= levels[count].drop_percent
        assert not reached or decision.reason == "DCA buy amount is below one lamport"


positive = dec("0.000001", "1000000", 6)


@PROPS
@given(invested=positive, amount=positive, debit=positive, tokens=positive)
def test_average_lies_between_old_average_and_fill(invested, amount, debit, tokens):
    average = Fraction(new_average_price(invested, amount, debit, tokens))
    old, fill = Fraction(invested) / Fraction(amount), Fraction(debit) / Fraction(tokens)
    slack = max(old, fill) * Fraction(1, 10**55)  # the 60-digit context rounds the last digit
    assert min(old, fill) - slack <= average <= max(old, fill) + slack


@st.composite
def swaps(draw):
    decimals = draw(st.integers(0, 18))
    return {
        "decimals": decimals,
        "in_lamports": draw(st.integers(1, 10**12)),
        "out_raw": draw(st.integers(1, 10**20)),
        "sell_lamports": draw(st.integers(1, 10**12)),
        "buy_protocol": draw(dec("0", "0.01", 9)),
        "buy_network": draw(dec("0", "0.001", 9)),
        "sell_protocol": draw(dec("0", "0.0001", 9)),
        "sell_network": draw(dec("0", "0.0001", 9)),
    }


@PROPS
@given(s=swaps(), start=dec("0", "100000", 9))
def test_buy_then_full_sale_conserves_value(s, start):
    buy = plan_buy(
        default_config(),
        buy_fill(
            input_lamports=s["in_lamports"],
            output_raw=s["out_raw"],
            token_decimals=s["decimals"],
            protocol_fee_sol=s["buy_protocol"],
            network_fee_sol=s["buy_network"],
        ),
    )
    b = buy.fill
    assume(start >= b.debit_sol)
    balances = {SOL_MINT: start}
    balances |= apply_deltas(
        balances, balance_deltas("SWAP", SOL_MINT, b.input_amount, TOKEN, b.output_amount, b.network_fee_sol)
    )
    assert balances[TOKEN] == from_raw(s["out_raw"], s["decimals"])
    state = PositionState(
        purchase_price=buy.purchase_price,
        purchase_amount=buy.purchase_amount,
        total_invested_sol=buy.total_invested_sol,
        created_at=NOW,
    )
    sale = plan_full_sale(
        state,
        sell_fill(
            input_raw=to_raw(balances[TOKEN], s["decimals"]),
            token_decimals=s["decimals"],
            output_lamports=s["sell_lamports"],
            protocol_fee_sol=min(s["sell_protocol"], from_raw(s["sell_lamports"], 9) / 2),
            network_fee_sol=s["sell_network"],
        ),
    )
    f = sale.fill
    assume(f.output_amount > 0)
    assume(balances[SOL_MINT] + f.credit_sol >= 0)  # the wallet can pay the sale's network fee
    balances |= apply_deltas(
        balances, balance_deltas("SWAP", TOKEN, f.input_amount, SOL_MINT, f.output_amount, f.network_fee_sol)
    )
    moved = balances[SOL_MINT] - start
    assert balances[TOKEN] == 0
    assert moved == f.credit_sol - b.debit_sol  # exact: the ledger applies the stored figures
    assert abs(moved - sale.profit_loss_sol) <= D("1e-8")  # only the 8-dp columns round


@st.composite
def sizing_configs(draw):
    minimum = draw(dec("0.01", "5", 2))
    medium = minimum + draw(dec("0.01", "20", 2))
    large = medium + draw(dec("0.01", "50", 2))

    def band():
        lo = draw(dec("0", "20", 3))
        return SizeRange(min=lo, max=lo + draw(dec("0", "20", 3)))

    base = default_config()
    calc = replace(
        base.position_calculator,
        sol_balance_thresholds=BalanceThresholds(minimum=minimum, medium=medium, large=large),
        position_sizes=PositionSizes(small=band(), medium=band(), large=band()),
        randomization=replace(base.position_calculator.randomization, enabled=draw(st.booleans())),
    )
    limits = replace(
        base.purchase_limits,
        minimum_agent_balance=draw(dec("0.1", "10", 3)),
        max_purchase_per_token=draw(dec("0.001", "30", 3)),
    )
    return replace(base, position_calculator=calc, purchase_limits=limits)


@PROPS
@given(
    cfg=sizing_configs(),
    balance=dec("0", "200", 9),
    seed=st.integers(0, 2**32),
    requested=st.none() | dec("-1", "50", 3),
)
def test_sizes_respect_every_limit(cfg, balance, seed, requested):
    limits = cfg.purchase_limits
    for compute in (
        lambda: calculate_position_size(balance, cfg, random.Random(seed)).size,
        lambda: resolve_buy_size(balance, cfg, requested, random.Random(seed)),
    ):
        try:
            size = compute()
        except TradeError:
            continue
        assert 0 < size <= balance
        assert size <= limits.max_purchase_per_token
        assert balance - size >= limits.minimum_agent_balance


@PROPS
@given(
    sl=stop_loss_configs(sane_levels=True),
    average=dec("0.000001", "100", 9),
    peak_ratio=dec("1", "50", 3),
    stored=dec("-100", "999.99", 2),
    headroom=dec("0.0001", "1", 4),
    out_raw=st.integers(10**3, 10**12),
    amount=dec("1", "1000000", 6),
)
def test_dca_buy_never_triggers_its_own_stop(sl, average, peak_ratio, stored, headroom, out_raw, amount):
    cfg = replace(default_config(), stop_loss=sl)
    state = PositionState(
        purchase_price=average,
        purchase_amount=amount,
        total_invested_sol=(average * amount).quantize(D("1e-8")),
        peak_price=average * peak_ratio,
        current_stop_loss_percentage=stored,
        created_at=NOW - timedelta(hours=1),
    )
    assume(state.total_invested_sol > 0)
    # The DCA fills somewhere above the default stop of the old average (below it the stop loss,
    # evaluated first, would already have sold), up to 50 % above the average.
    floor = 1 + sl.default_percentage / 100
    fill_price = average * (floor + (D("1.5") - floor) * headroom)
    tokens = from_raw(out_raw, 6)
    lamports = int((fill_price * tokens * 10**9).to_integral_value())
    assume(lamports > 0)
    plan = plan_dca_buy(
        state,
        cfg,
        buy_fill(
            input_lamports=lamports, output_raw=out_raw, token_decimals=6, protocol_fee_sol=None, network_fee_sol=None
        ),
        now=NOW,
    )
    after = replace(
        state,
        purchase_price=plan.purchase_price,
        purchase_amount=plan.purchase_amount,
        total_invested_sol=plan.total_invested_sol,
        peak_price=plan.stop_loss.peak_price,
        current_stop_loss_percentage=plan.stop_loss.current_stop_loss_percentage,
    )
    fill = plan.fill.price
    # Lamport rounding can nudge a fill onto the default stop itself: any stop fires there.
    assume(fill > stop_price(plan.purchase_price, sl.default_percentage))
    assert not evaluate_stop_loss(after, fill, cfg, NOW).triggered
