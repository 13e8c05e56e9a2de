"""Replay market: deterministic generation, playback, and the simulated quoter's exact raw amounts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.market.replay import (
    DEFAULT_EPOCH,
    SAMPLE_FILE,
    ReplayMarket,
    SimulatedQuoter,
    build_sample_records,
    generate_price_path,
    liquidity_impact,
    sample_mint,
    write_jsonl,
)
from app.market.types import (
    SOL_MINT,
    ErrorCode,
    LiquidityChecker,
    MarketError,
    MetricsSource,
    PriceSource,
    Quoter,
    SolUsdSource,
    TokenMetrics,
)

A = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"
B = "9BB6NFEcjBCtnNLFko2FqVQBq8HHM13kCyYcdQbgpump"


def small_market(**kw) -> ReplayMarket:
    rows = [
        {"t": 0, "mint": SOL_MINT, "priceUsd": "150"},
        {
            "t": 0,
            "mint": A,
            "symbol": "AAA",
            "decimals": 6,
            "priceSol": "0.0001",
            "liquidityUsd": "30000",
            "mcap": "1000000",
            "holders": 321,
        },
        {"t": 0, "mint": B, "decimals": 9, "priceSol": "0.02"},
        {"t": 5, "mint": SOL_MINT, "priceUsd": "160"},
        {"t": 5, "mint": A, "priceSol": "0.0002", "liquidityUsd": "60000", "priceUsd": "0.033"},
        {"t": 10, "mint": A, "priceSol": None},
    ]
    kw.setdefault("manual", True)
    return ReplayMarket(rows, **kw)


# -- generation -------------------------------------------------------------------------------------


def test_price_path_is_deterministic_decimal():
    a = generate_price_path(7, steps=200, start="0.00002", vol_bps=80)
    assert a == generate_price_path(7, steps=200, start="0.00002", vol_bps=80)
    assert a != generate_price_path(8, steps=200, start="0.00002", vol_bps=80)
    assert len(a) == 200 and a[0] == Decimal("0.00002") and all(isinstance(p, Decimal) and p > 0 for p in a)
    assert all(len(p.as_tuple().digits) <= 10 for p in a)


def test_price_path_regimes_and_floor():
    pump = generate_price_path(1, steps=61, start="1", vol_bps=0, regimes=[(30, 100), (30, -100)])
    assert pump[30] == max(pump) and pump[30] > Decimal("1.3") and pump[60] < pump[30]
    crash = generate_price_path(1, steps=50, start="1", vol_bps=0, drift_bps=-9_000, floor="0.001")
    assert min(crash) == Decimal("0.001")


def test_shipped_sample_matches_generator_and_is_small(tmp_path):
    regenerated = tmp_path / "s.jsonl"
    write_jsonl(build_sample_records(), regenerated)
    assert regenerated.read_bytes() == SAMPLE_FILE.read_bytes()
    assert SAMPLE_FILE.stat().st_size < 200_000


async def test_sample_scenarios():
    m = ReplayMarket(manual=True)
    syms = {v: k for k, v in m.symbols.items()}
    assert set(syms) == {"STEADY", "PUMP", "RUG", "NINE"} and m.token_decimals(syms["NINE"]) == 9
    series: dict[str, list[Decimal]] = {s: [] for s in syms}
    rug_liq = []
    for _ in range(len(m.times)):
        prices = m.prices_now(m.mints)
        for s, mint in syms.items():
            if mint in prices:
                series[s].append(prices[mint].price_sol)
        rug_liq.append((await m.sol_pair_liquidity([syms["RUG"]]))[syms["RUG"]])
        sol = await m.sol_usd()
        assert Decimal(140) < sol.price < Decimal(160)
        m.step()
    pump = series["PUMP"]
    peak = pump.index(max(pump))
    assert max(pump) > 2 * pump[0] and pump[-1] < pump[peak] / 3  # pumps, then dumps
    assert len(series["RUG"]) < len(series["STEADY"]) == len(m.times)  # the rug vanishes
    assert rug_liq[0][0] > 10 and rug_liq[-1] == []


# -- playback ---------------------------------------------------------------------------------------


async def test_protocols_and_manual_stepping():
    m = small_market()
    for proto in (PriceSource, SolUsdSource, LiquidityChecker, MetricsSource):
        assert isinstance(m, proto)
    p = await m.prices([A, B])
    assert p[A].price_sol == Decimal("0.0001") and p[A].price_usd == Decimal("0.0150")  # 0.0001 × 150
    assert p[A].liquidity_usd == Decimal(30000) and p[A].observed_at == DEFAULT_EPOCH and p[A].source == "replay"
    assert (await m.sol_usd()).price == Decimal(150)
    assert await m.sol_pair_liquidity([A, B]) == {A: [Decimal(100)], B: None}  # 30000/2/150; B: unknown
    assert await m.token_metrics(A) == TokenMetrics(mcap=Decimal(1000000), liquidity=Decimal(30000), holder_count=321)
    assert m.step() == 5
    p = await m.prices([A])
    assert p[A].price_sol == Decimal("0.0002") and p[A].price_usd == Decimal("0.033")
    assert p[A].observed_at == DEFAULT_EPOCH + timedelta(seconds=5)
    assert m.step() == 10
    assert await m.prices([A]) == {} and await m.sol_pair_liquidity([A]) == {A: []}
    assert await m.token_metrics(A) is None
    assert (await m.prices([B]))[B].price_usd == Decimal("3.20")  # carried forward × new SOL/USD


async def test_loop_wraps_and_time_keeps_moving():
    m = small_market()
    assert m.period == 15
    m.step(3)
    assert m.offset == 0 and A in await m.prices([A])
    assert (await m.sol_usd()).observed_at == DEFAULT_EPOCH + timedelta(seconds=15)
    m.seek(14.5)
    assert await m.prices([A]) == {}
    nl = small_market(loop=False)
    nl.step(10)
    assert nl.offset == 10


async def test_real_time_playback_with_speed():
    now = [100.0]
    m = small_market(manual=False, speed=2.0, clock=lambda: now[0])
    assert (await m.sol_usd()).price == 150
    now[0] += 2.5  # 5 s of replay at 2×
    assert (await m.sol_usd()).price == 160
    now[0] += 5  # 15 s ⇒ wrapped to 0
    assert m.offset == 0 and (await m.sol_usd()).price == 150
    with pytest.raises(RuntimeError):
        m.step()


def test_iso_timestamps_and_file_loading(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(
        "# comment\n"
        f'{{"t": "2025-01-01T00:00:10Z", "mint": "{SOL_MINT}", "priceUsd": 151}}\n'
        f'{{"t": "2025-01-01T00:00:00Z", "mint": "{SOL_MINT}", "priceUsd": 150.5}}\n\n'
    )
    m = ReplayMarket(f, manual=True)
    assert m.times == [0, 10] and m._sol(Decimal(0)) == Decimal("150.5")
    with pytest.raises(ValueError):
        ReplayMarket([{"t": 0, "mint": A}])


async def test_unknown_and_sol_mints():
    m = small_market()
    unknown = "Unknown111111111111111111111111111111111111"
    assert await m.prices([unknown]) == {} and await m.sol_pair_liquidity([unknown]) == {unknown: []}
    sol = (await m.prices([SOL_MINT]))[SOL_MINT]
    assert sol.price_sol == 1 and sol.price_usd == 150
    assert m.token_decimals(SOL_MINT) == 9 and m.token_decimals(unknown) == 6 and m.token_decimals(B) == 9


# -- simulated quoter -------------------------------------------------------------------------------


def expected_out(
    amount: int, p_in: Decimal, p_out: Decimal, dec_in: int, dec_out: int, impact: Decimal, fill_bps: int
) -> int:
    """Independent integer-only reference: every Decimal as an exact integer ratio."""
    a_in, b_in = p_in.as_integer_ratio()
    a_out, b_out = p_out.as_integer_ratio()
    c, d = impact.as_integer_ratio()
    num = amount * a_in * b_out * 10**dec_out * (d - c) * (10_000 - fill_bps)
    den = b_in * a_out * 10**dec_in * d * 10_000
    return num // den


async def test_quote_is_jupiter_shaped():
    m = small_market()
    q = SimulatedQuoter(m, seed=3)
    assert isinstance(q, Quoter)
    quote = await q.quote(SOL_MINT, A, 1_000_000_000, taker="sim_wallet")
    size_usd = Decimal(150)
    impact = (size_usd / (Decimal(30000) + size_usd)).quantize(Decimal("1e-10"))
    assert quote.price_impact == -impact and quote.request_id == "sim-3-00000001"
    assert quote.out_amount == expected_out(10**9, Decimal(1), Decimal("0.0001"), 9, 6, impact, 0)
    assert quote.transaction is None and quote.slippage_bps == 50
    assert quote.other_amount_threshold == quote.out_amount * 9950 // 10_000
    p = quote.payload
    assert p["platformFee"] == {"feeBps": 10, "feeMint": SOL_MINT} and p["signatureFeeLamports"] == 5000
    assert p["rentFeeLamports"] == 0 and p["prioritizationFeeLamports"] == 100_000 and "swapUsdValue" not in p
    assert p["inAmount"] == "1000000000" and p["outAmount"] == str(quote.out_amount)
    assert (await q.quote(SOL_MINT, A, 10**9)).request_id == "sim-3-00000002"


@settings(max_examples=200, deadline=None)
# Found by hypothesis: 10^6 SOL into a pool of $0.01 rounded the impact to exactly 100 % (zero output).
@example(amount=10**15, direction="buy", fill_bps=0, price=Decimal("0.5"), liquidity=Decimal("0.01"),
         sol_usd=Decimal(1000))  # fmt: skip
@given(
    amount=st.integers(min_value=1, max_value=10**15),
    direction=st.sampled_from(["buy", "sell", "cross"]),
    fill_bps=st.integers(min_value=0, max_value=500),
    price=st.decimals(min_value=Decimal("1e-9"), max_value=Decimal(50), places=12),
    liquidity=st.one_of(st.none(), st.decimals(min_value=0, max_value=10**8, places=2)),
    sol_usd=st.decimals(min_value=1, max_value=1000, places=4),
)
def test_quoter_raw_amounts_are_exact_floors(amount, direction, fill_bps, price, liquidity, sol_usd):
    rows = [
        {"t": 0, "mint": SOL_MINT, "priceUsd": str(sol_usd)},
        {
            "t": 0,
            "mint": A,
            "decimals": 6,
            "priceSol": str(price),
            **({"liquidityUsd": str(liquidity)} if liquidity is not None else {}),
        },
        {"t": 0, "mint": B, "decimals": 9, "priceSol": "0.0123456789"},
    ]
    m = ReplayMarket(rows, manual=True)
    q = SimulatedQuoter(m, fill_slippage_bps=fill_bps)
    in_mint, out_mint = {"buy": (SOL_MINT, A), "sell": (A, SOL_MINT), "cross": (A, B)}[direction]
    p_in = Decimal(1) if in_mint == SOL_MINT else price
    p_out = {SOL_MINT: Decimal(1), A: price, B: Decimal("0.0123456789")}[out_mint]
    dec_in, dec_out = m.token_decimals(in_mint), m.token_decimals(out_mint)
    impact = Decimal(0)
    if liquidity:
        size = Decimal(amount).scaleb(-dec_in) * p_in * sol_usd
        impact = min(liquidity_impact(size, liquidity).quantize(Decimal("1e-10")), 1 - Decimal("1e-10"))
    want = expected_out(amount, p_in, p_out, dec_in, dec_out, impact, fill_bps)
    order = q.build_order(in_mint, out_mint, amount)
    assert order["outAmount"] == str(want)
    assert Decimal(order["priceImpactPct"]) == -impact
    assert 0 <= impact < 1


async def test_quoter_errors():
    m = small_market()
    q = SimulatedQuoter(m)
    for bad in (0, -5, 1.5, True):
        with pytest.raises(MarketError) as ei:
            await q.quote(SOL_MINT, A, bad)
        assert ei.value.code == ErrorCode.QUOTE_FAILED
    with pytest.raises(MarketError) as ei:  # too small to buy one raw unit ⇒ out 0 ⇒ like Jupiter
        await q.quote(A, SOL_MINT, 1)
    assert ei.value.code == ErrorCode.INVALID_RESPONSE
    m.step(2)  # A rugged
    with pytest.raises(MarketError) as ei:
        await q.quote(A, SOL_MINT, 10**6)
    assert ei.value.code == ErrorCode.JUPITER_API_ERROR and "No routes" in str(ei.value)


async def test_quoter_fill_slippage_and_custom_impact():
    m = small_market()
    flat = SimulatedQuoter(m, impact_model=lambda size, liq: Decimal(0))
    base = (await flat.quote(SOL_MINT, A, 10**9)).out_amount
    assert base == 10_000_000_000  # 1 SOL at 0.0001 SOL/token = 10 000 tokens of 6 decimals
    slipped = SimulatedQuoter(m, impact_model=lambda size, liq: Decimal(0), fill_slippage_bps=100)
    assert (await slipped.quote(SOL_MINT, A, 10**9)).out_amount == base * 99 // 100
    assert (await flat.quote(SOL_MINT, A, 10**9, slippage_bps=300)).other_amount_threshold == base * 97 // 100


def test_sample_mint_is_deterministic_base58():
    assert sample_mint(1, "X") == sample_mint(1, "X") != sample_mint(2, "X")
    assert 32 <= len(sample_mint(1, "X")) <= 44
