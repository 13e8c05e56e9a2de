"""Shared plumbing for the fake upstream servers.

Every fake is a :class:`FakeServer`: an ``aiohttp.web.Application`` served on ``127.0.0.1`` with an
ephemeral port, used as ``async with FakeX() as fake: ... fake.url``. Routes have names (e.g.
``"order"``); for the Solana RPC fake the route name is the JSON-RPC method.

Failure injection (queued per route, consumed in order; ``times=None`` = forever)::

    fake.fail("order", status=503, times=2)        # 5xx twice, then normal
    fake.fail("order", status=400, body={"error": "bad"})
    fake.rate_limit("price", retry_after="1")       # 429 + Retry-After
    fake.delay("quote", 2.0)                        # sleep before answering (client timeout)
    fake.malformed("search")                        # 200 with a body that is not JSON
    fake.drop("order")                              # close the connection without a response
    fake.clear_faults()

``fake.calls[route]`` counts requests per route (faulted ones included) and ``fake.requests`` keeps
``(route, method, path, query, headers, json_body)`` tuples for assertions.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

_decoder = msgspec.json.Decoder(float_hook=Decimal)
_encoder = msgspec.json.Encoder(decimal_format="number")
JSON_BODY = web.RequestKey("json_body", object)  # request[JSON_BODY] = decoded body (None if absent)


def dumps(obj: Any) -> bytes:
    """JSON with Decimals as numbers (like the real APIs' floats) but without float rounding."""
    return _encoder.encode(obj)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type="application/json", headers=headers)


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return _decoder.decode(raw) if raw else None
    except msgspec.DecodeError:
        return None


@dataclass
class Fault:
    kind: str  # status | rate_limit | delay | malformed | drop | custom
    times: int | None = 1
    status: int = 500
    body: Any = None
    retry_after: str | None = None
    delay: float = 0.0


class FakeServer:
    """Base class: subclasses add routes in :meth:`setup_routes` via :meth:`route`."""

    def __init__(self) -> None:
        self.app = web.Application(middlewares=[self._middleware])
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, str, str, dict[str, str], dict[str, str], Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        # The account's request limit, across every route (Jupiter counts all endpoints in one bucket).
        self.account_limit: tuple[int, float] | None = None
        self.accepted_at: deque[float] = deque()
        self.arrivals: list[tuple[str, float]] = []  # (route, monotonic time) of every request
        self.rate_limited = 0
        self.setup_routes()

    def setup_routes(self) -> None:
        raise NotImplementedError

    def route(self, method: str, path: str, handler: Any, name: str) -> None:
        self.app.router.add_route(method, path, handler, name=name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> FakeServer:
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.2, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Any:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults -----------------------------------------------------------------------------------
    def inject(self, route: str, fault: Fault) -> None:
        self.faults[route].append(fault)

    def fail(self, route: str, status: int = 500, *, times: int | None = 1, body: Any = None) -> None:
        self.inject(route, Fault("status", times, status=status, body=body))

    def rate_limit(self, route: str, retry_after: str | None = "1", *, times: int | None = 1) -> None:
        self.inject(route, Fault("rate_limit", times, status=429, retry_after=retry_after))

    def delay(self, route: str, seconds: float, *, times: int | None = 1) -> None:
        self.inject(route, Fault("delay", times, delay=seconds))

    def malformed(self, route: str, *, times: int | None = 1, body: str = '{"oops": ') -> None:
        self.inject(route, Fault("malformed", times, body=body))

    def drop(self, route: str, *, times: int | None = 1) -> None:
        self.inject(route, Fault("drop", times))

    def limit_account(self, requests: int, window_s: float) -> None:
        """Answer 429 (with ``Retry-After``, whole seconds) past ``requests`` in any sliding ``window_s``."""
        self.account_limit = (requests, window_s)

    def _over_account_limit(self) -> web.StreamResponse | None:
        if self.account_limit is None:
            return None
        requests, window_s = self.account_limit
        now = time.monotonic()
        while self.accepted_at and self.accepted_at[0] <= now - window_s:
            self.accepted_at.popleft()
        if len(self.accepted_at) >= requests:
            self.rate_limited += 1
            retry_after = max(1, math.ceil(self.accepted_at[0] + window_s - now))
            return json_response({"error": "Too many requests"}, 429, {"Retry-After": str(retry_after)})
        self.accepted_at.append(now)
        return None

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, route: str, kinds: tuple[str, ...] | None = None) -> Fault | None:
        queue = self.faults.get(route)
        if not queue or (kinds is not None and queue[0].kind not in kinds):
            return None
        fault = queue[0]
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
        return fault

    async def apply_fault(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        """Turn a fault into a response (None = proceed normally, e.g. after a delay)."""
        if fault.kind == "delay":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "rate_limit":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return json_response({"error": "Too many requests"}, 429, headers)
        if fault.kind == "malformed":
            return web.Response(body=str(fault.body).encode(), content_type="application/json")
        if fault.kind == "drop":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        return json_response(
            fault.body if fault.body is not None else {"error": f"injected {fault.status}"}, fault.status
        )

    def route_name(self, request: web.Request) -> str:
        return request.match_info.route.name or request.path

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        name = self.route_name(request)
        body = await read_json(request) if request.can_read_body else None
        request[JSON_BODY] = body
        name = self.route_name_for_body(name, body)
        self.calls[name] += 1
        self.arrivals.append((name, time.monotonic()))
        self.requests.append((name, request.method, request.path, dict(request.query), dict(request.headers), body))
        early = self.pre_check(request)
        if early is None:
            early = self._over_account_limit()
        if early is not None:
            return early
        fault = self.take_fault(name)
        if fault is not None:
            resp = await self.apply_fault(request, fault)
            if resp is not None:
                return resp
        return await handler(request)

    def pre_check(self, request: web.Request) -> web.StreamResponse | None:
        """Hook run before faults (e.g. API-key auth); a response short-circuits the request."""
        return None

    def route_name_for_body(self, name: str, body: Any) -> str:
        """Hook for fakes whose logical route lives in the body (JSON-RPC method)."""
        return name
