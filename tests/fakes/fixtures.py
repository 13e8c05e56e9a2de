"""Pytest fixtures for the fakes. Enable with ``pytest_plugins = ["tests.fakes.fixtures"]`` in the
root ``tests/conftest.py``, or import the fixtures by name into a sub-directory conftest.

* ``http_session``: a fresh ``aiohttp.ClientSession`` (closed after the test).
* ``fake_rpc``, ``fake_jupiter`` (linked to ``fake_rpc``), ``fake_dexscreener``, ``fake_hermes``:
  started servers, one per test.
* ``no_sleep``: a :class:`SleepRecorder` to pass as ``sleep=`` so backoff runs instantly while the
  requested delays are recorded in ``no_sleep.delays``.
* ``live_market_options``: ``build_market`` keyword arguments pointing every live source at the fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.dexscreener import FakeDexScreener
from tests.fakes.hermes import FakeHermes
from tests.fakes.jupiter import FakeJupiter
from tests.fakes.solana_rpc import FakeSolanaRpc


class SleepRecorder:
    """Drop-in for ``asyncio.sleep`` that records the delay and only yields to the loop."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def no_sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake_rpc() -> AsyncIterator[FakeSolanaRpc]:
    async with FakeSolanaRpc() as fake:
        yield fake


@pytest.fixture
async def fake_jupiter(fake_rpc: FakeSolanaRpc) -> AsyncIterator[FakeJupiter]:
    async with FakeJupiter(rpc=fake_rpc) as fake:
        yield fake


@pytest.fixture
async def fake_dexscreener() -> AsyncIterator[FakeDexScreener]:
    async with FakeDexScreener() as fake:
        yield fake


@pytest.fixture
async def fake_hermes() -> AsyncIterator[FakeHermes]:
    async with FakeHermes() as fake:
        yield fake


@pytest.fixture
def live_market_options(
    fake_jupiter: FakeJupiter,
    fake_rpc: FakeSolanaRpc,
    fake_hermes: FakeHermes,
    fake_dexscreener: FakeDexScreener,
    no_sleep: SleepRecorder,
) -> dict:
    return {
        "jupiter_api_key": "test-key",
        "jupiter_ultra_url": fake_jupiter.ultra_url,
        "jupiter_swap_url": fake_jupiter.swap_url,
        "jupiter_price_url": fake_jupiter.price_url,
        "jupiter_tokens_url": fake_jupiter.tokens_url,
        "dexscreener_url": fake_dexscreener.url,
        "pyth_url": fake_hermes.url,
        "solana_rpc_url": fake_rpc.url,
        "sleep": no_sleep,
    }
