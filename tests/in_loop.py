"""Serving the real app in the test's own event loop.

Litestar's ``AsyncTestClient`` runs the app through a blocking portal in another thread and blocks the test's
loop for the whole of each request: ``asyncio.gather`` of requests through it runs them one after another, and
a fake upstream or a worker task living in the test's loop is frozen while a request waits for it. Through
``serve_in_loop`` requests really overlap, and in-loop fakes and tasks keep running while the app works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar

from app.api.app import create_app
from app.config import Settings


class InLoopClient(httpx.AsyncClient):
    """An httpx client bound to one app; ``app`` is exposed like ``AsyncTestClient.app``."""

    def __init__(self, app: Litestar) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        self.app = app


@asynccontextmanager
async def serve_in_loop(app: Litestar) -> AsyncIterator[InLoopClient]:
    """Run ``app``'s lifespan in this loop and yield a client whose requests run in this loop too."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        # One task enters and leaves the lifespan: its task groups must not span two fixture tasks.
        async with app.lifespan():
            started.set()
            await stop.wait()

    server = asyncio.create_task(serve())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        waiter.cancel()
        server.result()  # the start-up failure
    try:
        async with InLoopClient(app) as http:
            yield http
    finally:
        stop.set()
        await server


@asynccontextmanager
async def in_loop_app_client(settings: Settings, database_url: str) -> AsyncIterator[InLoopClient]:
    """``serve_in_loop`` of the real app built from ``settings`` on ``database_url``."""
    async with serve_in_loop(create_app(settings, database_url)) as http:
        yield http
