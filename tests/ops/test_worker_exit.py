"""A worker whose service crashed reports it, so the process exits non-zero and gets restarted."""

from __future__ import annotations

import asyncio

from app.worker.main import WorkerContext, heartbeat_service, run_worker


async def crashing_service(ctx: WorkerContext) -> None:
    await ctx.sleep(0.05)
    raise RuntimeError("boom")


async def test_crash_is_not_a_clean_stop(settings, database_url) -> None:
    clean = await asyncio.wait_for(
        run_worker(settings, database_url, services=[heartbeat_service, crashing_service]), 20
    )
    assert clean is False


async def test_requested_stop_is_clean(settings, database_url) -> None:
    stopping = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, database_url, stopping=stopping, services=[heartbeat_service]))
    await asyncio.sleep(0.2)
    stopping.set()
    assert await asyncio.wait_for(worker, 20) is True


async def test_the_pool_opens_every_lane_at_start_and_keeps_it(settings, database_url) -> None:
    # Connections above the pool's minimum are closed after 5 idle minutes: sparse signals would reconnect.
    seen: list[tuple[int, int, int]] = []

    async def pool_sizes(ctx: WorkerContext) -> None:
        seen.append((ctx.pool.get_size(), ctx.pool.get_min_size(), ctx.pool.get_max_size()))
        await ctx.stopping.wait()

    stopping = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(settings, database_url, stopping=stopping, services=[heartbeat_service, pool_sizes])
    )
    await asyncio.sleep(0.2)
    stopping.set()
    assert await asyncio.wait_for(worker, 20) is True
    lanes = max(4, settings.worker_concurrency + 2)
    assert seen == [(lanes, lanes, lanes)]
