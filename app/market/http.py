"""One retrying JSON-over-HTTP helper used by every adapter.

Why one helper: every upstream (Jupiter, DexScreener, Hermes, Solana RPC) needs the same rules and
getting them subtly different per adapter is how bots double-submit or give up too early:

* explicit per-call timeouts (connect + total);
* up to ``attempts`` tries with exponential backoff on timeouts, connection errors and 5xx;
* 429: wait ``Retry-After`` (seconds or HTTP date) when it is within ``max_retry_after``, otherwise
  fail fast with ``RATE_LIMITED`` so the caller can back off for real; with an
  :class:`~app.market.budget.UpstreamBudget` the wait pauses every client of that upstream, and each attempt
  first takes its turn in the budget's pace;
* any other 4xx fails at once (retrying a bad request or a bad key only burns rate limit);
* bodies are decoded with ``float_hook=Decimal`` so JSON numbers never pass through float;
  undecodable bodies raise ``INVALID_RESPONSE``.

``sleep`` is injectable so tests run the retry schedule instantly.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from app.market.budget import Sleep, UpstreamBudget
from app.market.types import ErrorCode, MarketError

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(float_hook=Decimal)
# Decimals go out as JSON numbers, so a decoded body echoed back (Metis quoteResponse) keeps its
# exact number text and type.
_encoder = msgspec.json.Encoder(decimal_format="number")


def decode_json(body: bytes | str) -> Any:
    """Decode JSON with numbers as int/Decimal (never float). Raises msgspec.DecodeError."""
    return _decoder.decode(body)


def timeout(total: float, connect: float | None = None) -> aiohttp.ClientTimeout:
    """Client timeout with an explicit connect bound (default: a third of total, at most 5 s)."""
    return aiohttp.ClientTimeout(total=total, connect=connect if connect is not None else min(5.0, total / 3))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt budget and backoff. Default = spec §10.1: 3 attempts, waits 1 s then 2 s."""

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 8.0
    max_retry_after: float = 10.0

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1`` (attempt counts from 1)."""
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


NO_RETRY = RetryPolicy(attempts=1)


def outcome_unknown(exc: MarketError) -> bool:
    """For a non-idempotent request that failed: may the server have acted on it anyway?
    Only a connect failure or a 4xx rejection proves it did not."""
    if exc.details.get("not_sent"):
        return False
    return exc.status is None or exc.status >= 500 or exc.code == ErrorCode.INVALID_RESPONSE


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class JsonHttp:
    """Retrying JSON client bound to a shared session (it never owns or closes the session)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        name: str,
        timeout: aiohttp.ClientTimeout,
        retry: RetryPolicy = RetryPolicy(),
        headers: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
        budget: UpstreamBudget | None = None,
    ) -> None:
        self.session = session
        self.name = name
        self.timeout = timeout
        self.retry = retry
        self.headers = dict(headers or {})
        self.sleep = sleep
        self.budget = budget

    async def get(self, url: str, **kw: Any) -> Any:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> Any:
        return await self.request("POST", url, **kw)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        error_code: str = ErrorCode.FETCH_FAILED,
        retry: RetryPolicy | None = None,
        call_timeout: aiohttp.ClientTimeout | None = None,
        bulk: bool = False,
    ) -> Any:
        """Send and decode. Raises MarketError; ``error_code`` names HTTP-status failures. ``bulk`` marks a
        request that yields to the others in the upstream's budget (entries, not prices or exits)."""
        policy = retry or self.retry
        hdrs = {**self.headers, **(headers or {})}
        data = None
        if json is not None:
            data = _encoder.encode(json)
            hdrs.setdefault("Content-Type", "application/json")
        last: MarketError | None = None
        for attempt in range(1, policy.attempts + 1):
            wait: float | None = None
            paused = False  # a 429 paused the shared budget: its acquire() does this call's waiting
            if self.budget is not None:
                await self.budget.acquire(bulk=bulk)  # may raise RATE_LIMITED, marked not sent
            try:
                async with self.session.request(
                    method, url, params=params, data=data, headers=hdrs, timeout=call_timeout or self.timeout
                ) as resp:
                    body = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
                # Never reached the server: callers of non-idempotent requests rely on this mark.
                code = ErrorCode.TIMEOUT if isinstance(exc, TimeoutError) else ErrorCode.FETCH_FAILED
                last = MarketError(
                    code,
                    f"{self.name}: cannot connect for {method} {url}: {exc!r}",
                    retryable=True,
                    details={"not_sent": True},
                )
            except TimeoutError:
                last = MarketError(ErrorCode.TIMEOUT, f"{self.name}: {method} {url} timed out", retryable=True)
            except aiohttp.ClientError as exc:
                last = MarketError(
                    ErrorCode.FETCH_FAILED, f"{self.name}: {method} {url} failed: {exc!r}", retryable=True
                )
            else:
                text = body[:500].decode("utf-8", "replace")
                if status == 429:
                    ra = parse_retry_after(retry_after)
                    last = MarketError(
                        ErrorCode.RATE_LIMITED,
                        f"{self.name}: HTTP 429 rate limited: {text}",
                        retryable=True,
                        status=429,
                        details={"retry_after": ra},
                    )
                    if self.budget is not None:
                        # Everyone using this upstream waits; this call's next attempt waits in acquire().
                        self.budget.pause(ra if ra is not None else policy.delay(attempt))
                        paused = True
                    if ra is not None and ra > policy.max_retry_after:
                        raise last
                    wait = ra
                elif status >= 500:
                    last = MarketError(error_code, f"{self.name}: HTTP {status}: {text}", retryable=True, status=status)
                elif status >= 400:
                    raise MarketError(error_code, f"{self.name}: HTTP {status}: {text}", status=status)
                else:
                    try:
                        return decode_json(body)
                    except msgspec.DecodeError as exc:
                        raise MarketError(
                            ErrorCode.INVALID_RESPONSE,
                            f"{self.name}: malformed JSON from {url}: {exc}; body starts {text[:120]!r}",
                            status=status,
                        ) from None
            if attempt < policy.attempts:
                delay = policy.delay(attempt) if wait is None else wait
                log.warning(
                    "%s: %s (attempt %d/%d), retrying in %.2fs", self.name, last, attempt, policy.attempts, delay
                )
                if not paused:
                    await self.sleep(delay)
        assert last is not None
        raise last
