"""Pyth Hermes SOL/USD (§10.5, peers §5.7): REST snapshot + SSE stream in a background task.

Lifecycle (owner calls :meth:`PythSolUsd.start` / :meth:`stop`, or uses ``async with``): one REST
snapshot, then the SSE stream. When the stream errors or goes quiet for ``health_timeout`` it is
reopened after 1, 2, 4, 8, 16 s; after five unproductive reconnects the task polls REST every
``poll_interval`` for ``fallback_polls`` rounds and then tries the stream again. Streams are
recycled proactively after ``max_stream_age`` (Hermes cuts them at ~24 h).

Unlike upstream there is no invented 100 USD start value (§16.21): :meth:`sol_usd` is None until
Hermes has answered, and ``observed_at`` is the feed's ``publish_time`` so staleness is real.
Prices are ``int(price) × 10^expo`` computed exactly with ``Decimal.scaleb``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from app.market.http import JsonHttp, RetryPolicy, Sleep, decode_json, timeout
from app.market.types import SolUsd, to_int

log = logging.getLogger(__name__)

HERMES_URL = "https://hermes.pyth.network"
SOL_USD_FEED_ID = "0xef0d8b6fda2ceba41da15d4095d1da392a0d2f8ed0c6c7bc0f4cfac8c280b56d"
DEFAULT_EXPO = -8


def _norm_id(feed_id: str) -> str:
    return feed_id.lower().removeprefix("0x")


def parse_price_update(payload: Any, feed_id: str = SOL_USD_FEED_ID) -> tuple[Decimal, datetime | None] | None:
    """(price, publish time) from a Hermes ``latest``/stream JSON body, or None if unusable.

    Uses the ``parsed`` entry whose id equals the feed id, else the first entry (§10.5). A missing
    ``expo`` means -8 (upstream's default); a present 0 is honoured as 10^0.
    """
    parsed = payload.get("parsed") if isinstance(payload, dict) else None
    if not isinstance(parsed, list) or not parsed:
        return None
    want = _norm_id(feed_id)
    entry = next((e for e in parsed if isinstance(e, dict) and _norm_id(str(e.get("id", ""))) == want), parsed[0])
    price = entry.get("price") if isinstance(entry, dict) else None
    if not isinstance(price, dict):
        return None
    raw, expo = to_int(price.get("price")), price.get("expo")
    expo = DEFAULT_EXPO if expo is None else to_int(expo)
    if raw is None or expo is None or raw <= 0:
        return None
    published = to_int(price.get("publish_time"))
    when = datetime.fromtimestamp(published, UTC) if published else None
    return Decimal(raw).scaleb(expo), when


class PythSolUsd:
    """SolUsdSource backed by Hermes. ``mode`` is one of idle/stream/reconnecting/polling."""

    name = "pyth"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = HERMES_URL,
        feed_id: str = SOL_USD_FEED_ID,
        request_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        reconnect_delays: tuple[float, ...] = (1, 2, 4, 8, 16),
        poll_interval: float = 10.0,
        fallback_polls: int = 30,
        health_timeout: float = 30.0,
        max_stream_age: float = 23 * 3600,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.feed_id = feed_id if feed_id.startswith("0x") else f"0x{feed_id}"
        self.connect_timeout = connect_timeout
        self.reconnect_delays = reconnect_delays
        self.poll_interval = poll_interval
        self.fallback_polls = fallback_polls
        self.health_timeout = health_timeout
        self.max_stream_age = max_stream_age
        self.sleep = sleep
        self.clock = clock
        self.http = JsonHttp(
            session, name="pyth", timeout=timeout(request_timeout, connect_timeout), retry=retry, sleep=sleep
        )
        self.mode = "idle"
        self.stream_connects = 0
        self._latest: SolUsd | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- SolUsdSource -----------------------------------------------------------------------------
    async def sol_usd(self) -> SolUsd | None:
        return self._latest

    @property
    def latest(self) -> SolUsd | None:
        return self._latest

    async def wait_ready(self, within: float | None = None) -> SolUsd | None:
        """Wait up to ``within`` seconds for the first real value (None if none arrived)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._ready.wait()
        return self._latest

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="pyth-sol-usd")

    async def stop(self) -> None:
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()  # repeated: a cancel racing a completing await can be lost on 3.11
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("pyth: background task failed: %r", task.exception())
        self.mode = "idle"

    async def __aenter__(self) -> PythSolUsd:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- data -------------------------------------------------------------------------------------
    def _accept(self, payload: Any) -> bool:
        parsed = parse_price_update(payload, self.feed_id)
        if parsed is None:
            return False
        price, published = parsed
        observed = published or self.clock()
        if self._latest is not None and observed < self._latest.observed_at:
            return True  # out-of-order update: the connection works, the value is older
        self._latest = SolUsd(price=price, observed_at=observed, source=self.name)
        self._ready.set()
        return True

    async def refresh(self) -> SolUsd | None:
        """One REST snapshot. Raises MarketError on transport failure; the last value is kept."""
        data = await self.http.get(
            f"{self.base_url}/v2/updates/price/latest", params=[("ids[]", self.feed_id), ("parsed", "true")]
        )
        if not self._accept(data):
            log.warning("pyth: snapshot without a usable SOL/USD price")
        return self._latest

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            log.warning("pyth: snapshot failed, keeping last value: %s", exc)

    async def _run(self) -> None:
        await self._refresh_quietly()
        failures = 0
        while True:
            productive = await self._stream_once()
            failures = 0 if productive else failures + 1
            if failures > len(self.reconnect_delays):
                self.mode = "polling"
                log.warning("pyth: stream unavailable, polling every %ss", self.poll_interval)
                for _ in range(self.fallback_polls):
                    await self._refresh_quietly()
                    await self.sleep(self.poll_interval)
                failures = 0
                continue
            self.mode = "reconnecting"
            await self.sleep(self.reconnect_delays[max(failures - 1, 0)] if self.reconnect_delays else 0)

    async def _stream_once(self) -> bool:
        """Consume one SSE connection; True if it delivered at least one valid price."""
        self.mode = "stream"
        self.stream_connects += 1
        loop = asyncio.get_running_loop()
        opened = last_msg = loop.time()
        got = False
        data: list[bytes] = []
        try:
            async with self.session.get(
                f"{self.base_url}/v2/updates/price/stream",
                params=[("ids[]", self.feed_id), ("parsed", "true")],
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout),
            ) as resp:
                if resp.status != 200:
                    log.warning("pyth: stream HTTP %s", resp.status)
                    return False
                while loop.time() - opened < self.max_stream_age:
                    remaining = self.health_timeout - (loop.time() - last_msg)
                    try:
                        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel.
                        async with asyncio.timeout(max(remaining, 0)):
                            line = await resp.content.readline()
                    except TimeoutError:
                        log.warning("pyth: no stream message for %ss, reconnecting", self.health_timeout)
                        break
                    if not line:
                        break
                    line = line.rstrip(b"\r\n")
                    if line.startswith(b"data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        body, data = b"\n".join(data), []
                        try:
                            if self._accept(decode_json(body)):
                                got, last_msg = True, loop.time()
                        except msgspec.DecodeError:
                            log.warning("pyth: malformed stream event %r", body[:120])
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("pyth: stream error: %r", exc)
        return got
