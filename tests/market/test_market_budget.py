"""One request budget per upstream account (app/market/budget.py): pace, shared 429 pause, bounded waits.

The unit tests drive time with an injected clock; the fake-server tests use real time (short windows) because
what they prove is what Jupiter's sliding-window limit would see.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from app.market import build_market
from app.market.budget import UpstreamBudget
from app.market.jupiter import JupiterMetis, JupiterPriceSource, JupiterUltra
from app.market.types import SOL_MINT, ErrorCode, MarketError
from app.metrics import REGISTRY
from tests.fakes import FakeJupiter

TOKEN = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"
KEY = "test-key"


class FakeTime:
    """clock + sleep for a budget: sleeping moves the clock, and yields so other callers run."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def budget(t: FakeTime, **kw) -> UpstreamBudget:
    return UpstreamBudget("up", clock=t.clock, sleep=t.sleep, **kw)


async def test_pace_spaces_requests_after_the_burst() -> None:
    t = FakeTime()
    b = budget(t, rate=4, burst=2)
    start = t.now
    sent = []
    for _ in range(6):
        await b.acquire()
        sent.append(round(t.now - start, 6))
    assert sent == [0, 0, 0.25, 0.5, 0.75, 1.0]


async def test_concurrent_callers_take_consecutive_slots() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # records and yields; the clock stays at 0
        waits.append(seconds)
        await asyncio.sleep(0)

    b = UpstreamBudget("up", rate=10, clock=lambda: 0.0, sleep=sleep)
    await asyncio.gather(*(b.acquire() for _ in range(5)))
    # Each caller took its slot before sleeping, so they go out one interval apart, not all together at 0.1 s.
    assert sorted(waits) == pytest.approx([0.1, 0.2, 0.3, 0.4])


async def test_a_slot_beyond_max_wait_is_refused_without_being_taken() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # records, leaves the clock where it is
        waits.append(seconds)

    b = UpstreamBudget("up", rate=1, max_wait=2.5, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await b.acquire()  # slots at 0, 1 and 2 s
    assert waits == [1, 2]
    for _ in range(2):
        with pytest.raises(MarketError) as ei:
            await b.acquire()  # the slot at 3 s is more than 2.5 s away
        assert ei.value.code == ErrorCode.RATE_LIMITED and ei.value.details == {"retry_after": 3, "not_sent": True}
        assert "wait limit" in str(ei.value)
    now[0] = 1.0  # the refusals took nothing: the slot at 3 s is still the next one
    await b.acquire()
    assert waits == [1, 2, 2]


async def test_pause_holds_every_caller_and_only_extends() -> None:
    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("upstream_rate_limited_total", {"upstream": "up", "outcome": outcome}) or 0

    before = count("paused"), count("refused")
    t = FakeTime()
    b = budget(t)  # no pace: only 429 pauses
    await b.acquire()
    assert t.slept == []
    b.pause(3)
    b.pause(1)  # a shorter pause does not shorten the first
    await b.acquire()
    assert t.slept == [3]
    b.pause(30)
    with pytest.raises(MarketError) as ei:
        await b.acquire()
    assert ei.value.code == ErrorCode.RATE_LIMITED and ei.value.details["retry_after"] == 30
    assert (count("paused") - before[0], count("refused") - before[1]) == (3, 1)


async def test_a_pause_set_while_waiting_for_a_slot_is_honoured() -> None:
    t = FakeTime()
    b = budget(t, rate=1)
    await b.acquire()
    waiter = asyncio.create_task(b.acquire())  # its slot is 1 s away
    await asyncio.sleep(0)
    b.pause(5)  # another caller's 429 arrives meanwhile
    await waiter
    assert t.now - 1000.0 >= 5


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        UpstreamBudget("x", rate=0)
    with pytest.raises(ValueError, match="burst"):
        UpstreamBudget("x", rate=1, burst=0)


# -- against the fake Jupiter's account limit -------------------------------------------------------------


@pytest.fixture
async def limited_jupiter():
    async with FakeJupiter(api_key=KEY) as fake:
        fake.sol_per_token[TOKEN] = Decimal("0.0000271")
        yield fake


async def test_paced_clients_stay_under_the_account_limit(http_session, limited_jupiter) -> None:
    """Quotes from two kinds of client (Ultra, Metis) on 6 concurrent lanes share one paced budget: the fake's
    account limit (10 per 0.5 s, across routes) is never hit. Without the budget, the same load is refused."""
    limited_jupiter.limit_account(10, 0.5)
    shared = UpstreamBudget("jupiter", rate=10)
    ultra = JupiterUltra(http_session, api_key=KEY, base_url=limited_jupiter.ultra_url, budget=shared)
    metis = JupiterMetis(http_session, api_key=KEY, base_url=limited_jupiter.swap_url, budget=shared)

    async def lane(i: int) -> None:
        client = ultra if i % 2 else metis
        await client.quote(SOL_MINT, TOKEN, 1_000_000 + i)
        await client.quote(SOL_MINT, TOKEN, 2_000_000 + i)

    started = time.monotonic()
    await asyncio.gather(*(lane(i) for i in range(6)))
    assert limited_jupiter.rate_limited == 0
    assert time.monotonic() - started >= 1.0  # 12 requests at 10/s: the pace really held them back

    limited_jupiter.limit_account(10, 5.0)  # a fresh, longer window: all 12 land inside it even on a slow machine
    limited_jupiter.accepted_at.clear()
    bare = JupiterUltra(http_session, api_key=KEY, base_url=limited_jupiter.ultra_url, sleep=_instant)
    results = await asyncio.gather(*(bare.quote(SOL_MINT, TOKEN, 1_000 + i) for i in range(12)), return_exceptions=True)
    assert limited_jupiter.rate_limited > 0
    assert any(isinstance(r, MarketError) and r.code == ErrorCode.RATE_LIMITED for r in results)


async def _instant(_: float) -> None:
    await asyncio.sleep(0)


async def test_one_429_pauses_the_other_clients_of_the_account(http_session, limited_jupiter) -> None:
    shared = UpstreamBudget("jupiter")
    ultra = JupiterUltra(http_session, api_key=KEY, base_url=limited_jupiter.ultra_url, budget=shared)
    prices = JupiterPriceSource(
        http_session, sol_usd=None, api_key=KEY, base_url=limited_jupiter.price_url, budget=shared
    )
    limited_jupiter.rate_limit("order", retry_after="1")
    await ultra.quote(SOL_MINT, TOKEN, 1_000_000)  # 429, waits 1 s in the budget, then succeeds
    assert shared.paused_total == 1
    refused_at = _time_of(limited_jupiter, "order", 0)
    await prices.http.get(limited_jupiter.price_url, params={"ids": TOKEN})
    # The price call came after the pause ended, though it never saw a 429 itself.
    assert _time_of(limited_jupiter, "price", 0) - refused_at >= 0.95


def _time_of(fake: FakeJupiter, route: str, index: int) -> float:
    return [at for name, at in fake.arrivals if name == route][index]


async def test_a_long_retry_after_fails_every_client_at_once_with_nothing_sent(http_session, limited_jupiter) -> None:
    shared = UpstreamBudget("jupiter", max_wait=10)
    ultra = JupiterUltra(http_session, api_key=KEY, base_url=limited_jupiter.ultra_url, budget=shared)
    metis = JupiterMetis(http_session, api_key=KEY, base_url=limited_jupiter.swap_url, budget=shared)
    limited_jupiter.rate_limit("order", retry_after="120")
    with pytest.raises(MarketError) as first:
        await ultra.quote(SOL_MINT, TOKEN, 1_000_000)
    assert first.value.code == ErrorCode.RATE_LIMITED
    with pytest.raises(MarketError) as second:
        await metis.quote(SOL_MINT, TOKEN, 1_000_000)
    assert second.value.code == ErrorCode.RATE_LIMITED and second.value.details["not_sent"] is True
    assert limited_jupiter.calls["quote"] == 0 and limited_jupiter.calls["order"] == 1


async def test_market_shares_one_jupiter_budget_across_its_clients(live_market_options) -> None:
    market = build_market("jupiter", **live_market_options, jupiter_max_rps=5, solana_rpc_max_rps=20)
    async with market as m:
        budgets = {id(m.quoter.http.budget), id(m.metis.http.budget), id(m.price_source.http.budget),
                   id(m.metrics.http.budget)}  # fmt: skip
        assert budgets == {id(m.jupiter_budget)}
        assert m.jupiter_budget.interval == pytest.approx(0.2)
        assert m.jupiter_budget.max_wait == 5.0  # half the 10 s quote timeout: a wait never ends as a "timeout"
        assert m.rpc.http.budget is m.rpc_budget and m.rpc_budget.interval == pytest.approx(0.05)
        assert m.liquidity.budget.interval == pytest.approx(0.2) and m.liquidity.budget.burst == 300


# -- entries yield to prices and exits ------------------------------------------------------------------------


async def test_bulk_requests_keep_the_schedule_within_the_horizon() -> None:
    """100 entry quotes at 50 a second fill 2 s of slots; a price poll arriving 0.1 s in goes within the horizon
    (0.1 s here), ahead of most of them, not behind all of them."""
    b = UpstreamBudget("jupiter", rate=50, bulk_horizon=0.1, max_wait=10)
    sent: list[str] = []

    async def request(kind: str) -> None:
        await b.acquire(bulk=kind == "entry")
        sent.append(kind)

    entries = [asyncio.create_task(request("entry")) for _ in range(100)]
    await asyncio.sleep(0.1)
    asked = time.monotonic()
    await request("price")
    waited = time.monotonic() - asked
    assert sent.index("price") < 50  # by order, whatever the machine's speed; it is last without the horizon
    assert waited < 1.0  # the horizon plus slack; about 2 s behind the entries otherwise
    await asyncio.gather(*entries)
    assert len(sent) == 101


async def test_a_bulk_request_that_cannot_get_a_slot_in_time_is_refused_before_waiting() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    b = UpstreamBudget("up", rate=1, bulk_horizon=1, max_wait=3, clock=lambda: now[0], sleep=sleep)
    b._tat = 5.0  # five seconds of slots already taken
    with pytest.raises(MarketError) as ei:
        await b.acquire(bulk=True)
    assert ei.value.code == ErrorCode.RATE_LIMITED and waits == []
    b._tat = 2.5
    await b.acquire(bulk=True)  # waits unscheduled until its slot is within the horizon, then takes it
    assert waits == [1.5, 1.0] and now[0] == 2.5 and b._tat == 3.5


async def test_buy_quotes_are_bulk_and_sell_quotes_are_not(http_session, limited_jupiter) -> None:
    asked: list[bool] = []

    class Recording(UpstreamBudget):
        async def acquire(self, *, bulk: bool = False) -> None:
            asked.append(bulk)

    ultra = JupiterUltra(http_session, api_key=KEY, base_url=limited_jupiter.ultra_url, budget=Recording("j"))
    await ultra.quote(SOL_MINT, TOKEN, 1_000_000)
    await ultra.quote(TOKEN, SOL_MINT, 1_000_000)
    assert asked == [True, False]
