"""The shared retrying JSON helper: retry classes, 429 handling, timeouts, decoding."""

from __future__ import annotations

import time
from decimal import Decimal
from email.utils import formatdate

import aiohttp
import pytest

from app.market.http import JsonHttp, RetryPolicy, parse_retry_after, timeout
from app.market.types import ErrorCode, MarketError
from tests.fakes import FakeJupiter

MINT = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"


@pytest.fixture
async def jup():
    async with FakeJupiter(api_key=None) as fake:
        fake.usd_prices[MINT] = Decimal("0.00412345678901234567")
        yield fake


def client(session, sleep, **kw) -> JsonHttp:
    return JsonHttp(session, name="t", timeout=timeout(kw.pop("total", 2.0)), sleep=sleep, **kw)


async def get(http: JsonHttp, jup: FakeJupiter):
    return await http.get(jup.price_url, params={"ids": MINT})


async def test_numbers_decode_as_decimal_never_float(http_session, no_sleep, jup):
    data = await get(client(http_session, no_sleep), jup)
    usd = data[MINT]["usdPrice"]
    assert isinstance(usd, Decimal) and usd == Decimal("0.00412345678901234567")
    assert data[MINT]["blockId"] == 348_000_000 and isinstance(data[MINT]["blockId"], int)


async def test_5xx_is_retried_with_exponential_backoff_then_succeeds(http_session, no_sleep, jup):
    jup.fail("price", 503, times=2)
    data = await get(client(http_session, no_sleep), jup)
    assert MINT in data
    assert jup.calls["price"] == 3
    assert no_sleep.delays == [1.0, 2.0]


async def test_5xx_exhausts_attempts_with_status_and_body_in_message(http_session, no_sleep, jup):
    jup.fail("price", 502, times=None, body={"error": "bad gateway"})
    with pytest.raises(MarketError) as ei:
        await get(client(http_session, no_sleep), jup)
    assert ei.value.code == ErrorCode.FETCH_FAILED and ei.value.retryable and ei.value.status == 502
    assert "502" in str(ei.value) and "bad gateway" in str(ei.value)
    assert jup.calls["price"] == 3


async def test_4xx_is_not_retried(http_session, no_sleep, jup):
    jup.fail("price", 400, body={"error": "invalid ids"})
    with pytest.raises(MarketError) as ei:
        await get(client(http_session, no_sleep), jup)
    assert ei.value.status == 400 and not ei.value.retryable
    assert jup.calls["price"] == 1 and no_sleep.delays == []


async def test_429_waits_retry_after_then_succeeds(http_session, no_sleep, jup):
    jup.rate_limit("price", retry_after="3")
    assert MINT in await get(client(http_session, no_sleep), jup)
    assert no_sleep.delays == [3.0] and jup.calls["price"] == 2


async def test_429_without_retry_after_uses_backoff(http_session, no_sleep, jup):
    jup.rate_limit("price", retry_after=None, times=2)
    assert MINT in await get(client(http_session, no_sleep), jup)
    assert no_sleep.delays == [1.0, 2.0]


async def test_429_with_excessive_retry_after_fails_fast(http_session, no_sleep, jup):
    jup.rate_limit("price", retry_after="120")
    with pytest.raises(MarketError) as ei:
        await get(client(http_session, no_sleep, retry=RetryPolicy(max_retry_after=10)), jup)
    assert ei.value.code == ErrorCode.RATE_LIMITED and ei.value.retryable
    assert ei.value.details["retry_after"] == 120.0
    assert jup.calls["price"] == 1 and no_sleep.delays == []


async def test_429_persisting_ends_rate_limited(http_session, no_sleep, jup):
    jup.rate_limit("price", retry_after="0", times=None)
    with pytest.raises(MarketError) as ei:
        await get(client(http_session, no_sleep), jup)
    assert ei.value.code == ErrorCode.RATE_LIMITED and jup.calls["price"] == 3


async def test_timeout_is_retried_then_reported(http_session, no_sleep, jup):
    jup.delay("price", 0.5, times=None)
    http = client(http_session, no_sleep, total=0.1, retry=RetryPolicy(attempts=2))
    with pytest.raises(MarketError) as ei:
        await get(http, jup)
    assert ei.value.code == ErrorCode.TIMEOUT and ei.value.retryable
    assert jup.calls["price"] == 2


async def test_timeout_then_success(http_session, no_sleep, jup):
    jup.delay("price", 0.5)
    assert MINT in await get(client(http_session, no_sleep, total=0.2), jup)


async def test_dropped_connection_is_retried(http_session, no_sleep, jup):
    jup.drop("price")
    assert MINT in await get(client(http_session, no_sleep), jup)
    assert jup.calls["price"] == 2


async def test_connection_refused_is_fetch_failed(http_session, no_sleep):
    http = client(http_session, no_sleep, retry=RetryPolicy(attempts=2))
    with pytest.raises(MarketError) as ei:
        await http.get("http://127.0.0.1:9/nothing")
    assert ei.value.code == ErrorCode.FETCH_FAILED and ei.value.retryable
    assert no_sleep.delays == [1.0]


async def test_malformed_json_is_invalid_response_not_retried(http_session, no_sleep, jup):
    jup.malformed("price")
    with pytest.raises(MarketError) as ei:
        await get(client(http_session, no_sleep), jup)
    assert ei.value.code == ErrorCode.INVALID_RESPONSE and "malformed JSON" in ei.value.message
    assert jup.calls["price"] == 1


def test_retry_after_parsing():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    assert 25 <= parse_retry_after(formatdate(now + 30, usegmt=True), now=now) <= 30
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_backoff_schedule_is_capped():
    p = RetryPolicy(attempts=6, base_delay=1, max_delay=5)
    assert [p.delay(i) for i in range(1, 6)] == [1, 2, 4, 5, 5]


def test_timeout_has_explicit_connect_bound():
    t = timeout(10)
    assert isinstance(t, aiohttp.ClientTimeout) and t.total == 10 and t.connect == 10 / 3
    assert timeout(30).connect == 5.0 and timeout(30, 1).connect == 1
