"""Pyth Hermes SOL/USD: exact expo maths, snapshot, SSE stream, reconnect and polling fallback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.market.pyth import SOL_USD_FEED_ID, PythSolUsd, parse_price_update
from app.market.types import SolUsdSource
from tests.fakes import SOL_FEED


async def until(cond: Callable[[], bool], limit: float = 3.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def body(*entries):
    return {"binary": {"encoding": "hex", "data": []}, "parsed": list(entries)}


def entry(feed: str, price: str, expo: int | None = -8, t: int = 1_700_000_000):
    p = {"price": price, "conf": "1", "publish_time": t}
    if expo is not None:
        p["expo"] = expo
    return {"id": feed, "price": p}


@pytest.mark.parametrize(
    ("price", "expo", "expected"),
    [
        ("14465500000", -8, Decimal("144.655")),
        ("14465500001", -8, Decimal("144.65500001")),
        ("1", -8, Decimal("0.00000001")),
        ("123", 2, Decimal("12300")),
        ("7", 0, Decimal(7)),
        ("14465500000", None, Decimal("144.655")),  # missing expo ⇒ -8
    ],
)
def test_expo_maths_is_exact(price, expo, expected):
    value, when = parse_price_update(body(entry(SOL_FEED, price, expo)))
    assert value == expected and isinstance(value, Decimal)
    assert when == datetime.fromtimestamp(1_700_000_000, UTC)


def test_feed_selection():
    other = entry("aa" * 32, "100", -8)
    sol = entry(SOL_FEED, "15000000000", -8)
    assert parse_price_update(body(other, sol))[0] == Decimal(150)  # matching id, not the first
    assert parse_price_update(body(other, {**sol, "id": "0x" + SOL_FEED.upper()}))[0] == Decimal(150)
    assert parse_price_update(body(entry("bb" * 32, "200", 0)))[0] == Decimal(200)  # else the first
    assert parse_price_update(body(entry(SOL_FEED, "0"))) is None
    assert parse_price_update(body(entry(SOL_FEED, "-5"))) is None
    assert parse_price_update({"parsed": []}) is None and parse_price_update([]) is None


def pyth(session, fake, sleep, **kw) -> PythSolUsd:
    kw.setdefault("health_timeout", 2.0)
    return PythSolUsd(session, base_url=fake.url, sleep=sleep, **kw)


async def test_snapshot(http_session, fake_hermes, no_sleep):
    fake_hermes.publish_time = 1_700_000_123
    p = pyth(http_session, fake_hermes, no_sleep)
    assert isinstance(p, SolUsdSource)
    assert await p.sol_usd() is None
    got = await p.refresh()
    assert got.price == Decimal("144.655") and got.source == "pyth"
    assert got.observed_at == datetime.fromtimestamp(1_700_000_123, UTC)
    _, _, _, query, _, _ = fake_hermes.requests[-1]
    assert query["ids[]"] == SOL_USD_FEED_ID


async def test_none_until_a_real_answer_never_a_default(http_session, fake_hermes, no_sleep):
    fake_hermes.fail("latest", 503, times=None)
    fake_hermes.fail("stream", 503, times=None)
    p = pyth(http_session, fake_hermes, no_sleep, fallback_polls=1, poll_interval=0.01)
    async with p:
        await until(lambda: fake_hermes.calls["stream"] >= 8)
        assert await p.sol_usd() is None and await p.wait_ready(0.01) is None
        fake_hermes.clear_faults()
        assert (await p.wait_ready(3)).price == Decimal("144.655")


async def test_stream_updates_and_staleness(http_session, fake_hermes, no_sleep):
    async with pyth(http_session, fake_hermes, no_sleep) as p:
        first = await p.wait_ready(3)
        assert first.price == Decimal("144.655")
        await until(lambda: p.mode == "stream" and fake_hermes.stream_connections == 1)
        t = int(time.time()) + 5
        fake_hermes.set_price(15_012_345_678, publish_time=t)
        await until(lambda: p.latest.price == Decimal("150.12345678"))
        assert p.latest.observed_at == datetime.fromtimestamp(t, UTC)
        assert not p.latest.is_stale(datetime.fromtimestamp(t + 30, UTC), max_age=_td(30))
        assert p.latest.is_stale(datetime.fromtimestamp(t + 31, UTC), max_age=_td(30))
    assert p.mode == "idle"


def _td(s: float):
    from datetime import timedelta

    return timedelta(seconds=s)


async def test_out_of_order_updates_do_not_go_back_in_time(http_session, fake_hermes, no_sleep):
    async with pyth(http_session, fake_hermes, no_sleep) as p:
        fake_hermes.set_price(15_000_000_000, publish_time=2_000_000_000)
        await until(lambda: p.latest is not None and p.latest.price == Decimal(150))
        fake_hermes.set_price(10_000_000_000, publish_time=1_999_999_000)
        await asyncio.sleep(0.2)
        assert p.latest.price == Decimal(150)


async def test_stream_disconnect_reconnects(http_session, fake_hermes, no_sleep):
    fake_hermes.stream_disconnect_after = 1
    async with pyth(http_session, fake_hermes, no_sleep) as p:
        await until(lambda: fake_hermes.stream_connections >= 3)
        assert p.latest is not None
    assert no_sleep.delays[:2] == [1, 1]  # productive connections reconnect after the first delay


async def test_stream_failures_back_off_then_fall_back_to_polling(http_session, fake_hermes, no_sleep):
    fake_hermes.fail("stream", 503, times=6)
    fake_hermes.fail("latest", 500, times=1)  # startup snapshot fails (3 attempts share one fault)
    p = pyth(http_session, fake_hermes, no_sleep, fallback_polls=2, poll_interval=10)
    async with p:
        await until(lambda: fake_hermes.stream_connections >= 1)
        assert p.latest is not None
    # the startup snapshot retried once (1 s), then 1,2,4,8,16 between stream attempts, then two
    # 10 s polls, then the stream is tried again (and works).
    assert no_sleep.delays[:8] == [1.0, 1, 2, 4, 8, 16, 10, 10]
    assert fake_hermes.calls["stream"] == 7
    assert fake_hermes.calls["latest"] == 2 + 2


async def test_silent_stream_triggers_health_reconnect(http_session, fake_hermes, no_sleep):
    fake_hermes.stream_silent = True
    async with pyth(http_session, fake_hermes, no_sleep, health_timeout=0.1) as p:
        await until(lambda: fake_hermes.stream_connections >= 3)
        assert p.latest is not None  # from the startup snapshot
    assert no_sleep.delays[:2] == [1, 2]  # silent connections count as failures


async def test_max_stream_age_recycles_connection(http_session, fake_hermes, no_sleep):
    async with pyth(http_session, fake_hermes, no_sleep, max_stream_age=0.1):
        await until(lambda: fake_hermes.stream_connections >= 3)


async def test_stop_is_idempotent_and_clean(http_session, fake_hermes, no_sleep):
    p = pyth(http_session, fake_hermes, no_sleep)
    await p.start()
    await p.start()  # no second task
    await p.wait_ready(3)
    await p.stop()
    await p.stop()
    assert p.mode == "idle" and p._task is None
