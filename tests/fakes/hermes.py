"""Fake Pyth Hermes: ``GET /v2/updates/price/latest`` (route ``latest``) and the SSE stream
``GET /v2/updates/price/stream`` (route ``stream``). Base URL for the client: ``fake.url``.

Knobs:

* ``price`` (int mantissa, default 14465500000), ``expo`` (default -8), ``conf``,
  ``publish_time`` (unix seconds; None = now). :meth:`set_price` changes them and pushes an event to
  every open stream at once.
* ``extra_feeds``: parsed entries placed *before* the SOL entry in every body (clients must pick
  the entry whose id matches, not the first). Ids are hex without ``0x``, like Hermes.
* ``omit_expo``: drop ``expo`` from the price object (client must default to -8).
* Stream: sends the current price on connect and then every ``stream_interval`` seconds;
  ``stream_disconnect_after = N`` ends each connection after N events; ``stream_silent = True``
  keeps the connection open without sending (health-check path). Connection failures: the base
  faults on route ``stream`` (e.g. ``fail("stream", 503, times=5)``). ``stream_connections``
  counts accepted connections.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, dumps, json_response

SOL_FEED = "ef0d8b6fda2ceba41da15d4095d1da392a0d2f8ed0c6c7bc0f4cfac8c280b56d"


class FakeHermes(FakeServer):
    def __init__(self) -> None:
        self.feed_id = SOL_FEED
        self.price = 14_465_500_000
        self.expo = -8
        self.conf = 1_234_567
        self.publish_time: int | None = None
        self.omit_expo = False
        self.extra_feeds: list[dict[str, Any]] = []
        self.stream_interval = 0.05
        self.stream_disconnect_after: int | None = None
        self.stream_silent = False
        self.stream_connections = 0
        self._changed = asyncio.Event()
        super().__init__()

    def setup_routes(self) -> None:
        self.route("GET", "/v2/updates/price/latest", self._latest, "latest")
        self.route("GET", "/v2/updates/price/stream", self._stream, "stream")

    def set_price(self, price: int, expo: int | None = None, publish_time: int | None = None) -> None:
        self.price = price
        if expo is not None:
            self.expo = expo
        self.publish_time = publish_time
        self._changed.set()
        self._changed = asyncio.Event()

    def payload(self) -> dict[str, Any]:
        t = self.publish_time if self.publish_time is not None else int(time.time())
        price: dict[str, Any] = {"price": str(self.price), "conf": str(self.conf), "expo": self.expo, "publish_time": t}
        if self.omit_expo:
            del price["expo"]
        entry = {
            "id": self.feed_id,
            "price": price,
            "ema_price": dict(price),
            "metadata": {"slot": 200_000_000, "proof_available_time": t, "prev_publish_time": t - 1},
        }
        return {"binary": {"encoding": "hex", "data": ["504e4155deadbeef"]}, "parsed": [*self.extra_feeds, entry]}

    def _check_ids(self, request: web.Request) -> web.Response | None:
        ids = [i.lower().removeprefix("0x") for i in request.query.getall("ids[]", [])]
        if not ids:
            return json_response({"error": "missing ids[]"}, 400)
        if self.feed_id not in ids:
            return json_response({"error": f"Price ids not found: {ids}"}, 404)
        return None

    async def _latest(self, request: web.Request) -> web.Response:
        return self._check_ids(request) or json_response(self.payload())

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        bad = self._check_ids(request)
        if bad is not None:
            return bad
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        self.stream_connections += 1
        sent = 0
        while True:
            if not self.stream_silent:
                await resp.write(b"data:" + dumps(self.payload()) + b"\n\n")
                sent += 1
                if self.stream_disconnect_after is not None and sent >= self.stream_disconnect_after:
                    break
            try:
                await asyncio.wait_for(self._changed.wait(), self.stream_interval)
            except TimeoutError:
                pass
        await resp.write_eof()
        return resp
