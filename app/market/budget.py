"""The request budget of one upstream account, shared by every client that spends it.

Why shared: Jupiter counts every endpoint (prices, tokens, quotes, swaps) against one bucket per account, and a
fan-out sends one quote per agent on ``WORKER_CONCURRENCY`` lanes. Each client retrying its own 429 would keep
hammering a limit the others already hit; here a 429 from any client pauses all of them until its
``Retry-After``, and an optional pace (``JUPITER_MAX_RPS``, ``SOLANA_RPC_MAX_RPS``) spaces requests so the limit
is not hit at all.

Entries yield to exits: requests marked ``bulk`` (buy quotes, token metrics) only take a slot within
``bulk_horizon`` (2 s) of now, so prices and sell quotes never queue behind a whole fan-out's entries.

Waiting is bounded: a request whose turn would come later than ``max_wait`` fails at once with
``RATE_LIMITED`` (nothing sent, its slot not taken) instead of queueing behind a budget it cannot get, so a
trade fails with a clear reason while its quote would still have been fresh.

The pace is a GCRA (generic cell rate algorithm: a token bucket kept as one timestamp): at most ``burst``
requests at once, then one every ``per / rate`` seconds. Any window of ``w`` seconds admits at most
``burst + w × rate / per`` requests, so set the rate a little under the plan's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.market.types import ErrorCode, MarketError
from app.metrics import UPSTREAM_RATE_LIMITED_TOTAL

Sleep = Callable[[float], Awaitable[Any]]  # asyncio.sleep, or a test's stand-in (re-exported by app.market.http)


class UpstreamBudget:
    def __init__(
        self,
        name: str,
        rate: float | None = None,
        per: float = 1.0,
        *,
        burst: int = 1,
        max_wait: float = 10.0,
        bulk_horizon: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate is not None and (rate <= 0 or per <= 0):
            raise ValueError(f"{name}: the request rate must be positive, got {rate} per {per} s")
        if burst < 1:
            raise ValueError(f"{name}: burst must be at least 1, got {burst}")
        self.name = name
        self.interval = None if rate is None else per / rate
        self.burst = burst
        self.max_wait = max_wait
        self.bulk_horizon = bulk_horizon
        self.clock = clock
        self.sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next request at the steady pace
        self._paused_until = 0.0
        self.paused_total = 0  # 429s that paused this budget (for tests and metrics)

    def pause(self, seconds: float) -> None:
        """The upstream said 429: nobody sends before ``seconds`` from now (a longer pause already set stays)."""
        self.paused_total += 1
        UPSTREAM_RATE_LIMITED_TOTAL.labels(self.name, "paused").inc()
        self._paused_until = max(self._paused_until, self.clock() + max(0.0, seconds))

    def _refuse(self, wait: float) -> MarketError:
        UPSTREAM_RATE_LIMITED_TOTAL.labels(self.name, "refused").inc()
        return MarketError(
            ErrorCode.RATE_LIMITED,
            f"{self.name}: request budget exhausted, next slot in {wait:.1f}s (over the {self.max_wait:.0f}s wait limit)",
            retryable=True,
            details={"retry_after": wait, "not_sent": True},
        )

    def _next_start(self, now: float) -> float:
        """When a request asking now could go: after any pause, and at the pace."""
        start = max(now, self._paused_until)
        if self.interval is not None:
            start = max(start, self._tat - (self.burst - 1) * self.interval)
        return start

    async def acquire(self, *, bulk: bool = False) -> None:
        """Wait for this request's turn; raise ``RATE_LIMITED`` (nothing sent) when it is beyond ``max_wait``.

        ``bulk`` requests (entries: buy quotes, token metrics) take a slot only once it is within
        ``bulk_horizon`` of now and wait unscheduled before that, so the schedule they fill never runs further
        ahead than the horizon: a price poll or an exit quote arriving during a large fan-out waits at most
        that long behind them, instead of behind every queued entry.
        """
        started = self.clock()
        now = started
        if bulk and self.interval is not None:
            while (ahead := self._next_start(now) - now) > self.bulk_horizon:
                if now - started + ahead > self.max_wait:
                    raise self._refuse(now - started + ahead)
                await self.sleep(ahead - self.bulk_horizon)
                if self.clock() == now:
                    break  # an injected sleep that does not move time: take the slot as it is
                now = self.clock()
        start = self._next_start(now)
        if start - started > self.max_wait:
            raise self._refuse(start - now)
        if self.interval is not None:
            # The slot is taken before sleeping, so concurrent callers line up one interval apart.
            self._tat = max(self._tat, start) + self.interval
        if start > now:
            await self.sleep(start - now)
        # A 429 seen by another caller while this one slept holds it back too (once per pause it set, so an
        # injected sleep that does not move the clock cannot spin here).
        waited_for = None
        while self._paused_until != waited_for and (remaining := self._paused_until - self.clock()) > 0:
            if remaining > self.max_wait:
                raise self._refuse(remaining)
            waited_for = self._paused_until
            await self.sleep(remaining)
