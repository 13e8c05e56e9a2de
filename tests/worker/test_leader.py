"""Leader election for the price monitor: one holder per database, hand-over on stop, loss and SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from app.worker.leader import lead, lock_key
from app.worker.main import WorkerContext

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Terms:
    """Records each term of a contender and how many contenders led at once."""

    holding = 0
    most_at_once = 0

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self.elected = asyncio.Event()
        self.stop: asyncio.Event | None = None

    async def body(self, stop: asyncio.Event) -> None:
        Terms.holding += 1
        Terms.most_at_once = max(Terms.most_at_once, Terms.holding)
        self.started += 1
        self.stop = stop
        self.elected.set()
        try:
            await stop.wait()
        finally:
            Terms.holding -= 1
            self.ended += 1


def contender(database_url: str, name: str) -> WorkerContext:
    return WorkerContext(settings=None, pool=None, database_url=database_url, worker_id=name)  # type: ignore[arg-type]


def campaign(ctx: WorkerContext, role: str, terms: Terms) -> asyncio.Task[None]:
    """``ctx`` contends for ``role`` (retrying and checking its lock every 50 ms); ``terms`` records its terms."""
    return asyncio.create_task(lead(ctx, role, terms.body, retry_s=0.05, check_s=0.05))


async def stopped(ctx: WorkerContext, task: asyncio.Task[None]) -> None:
    ctx.stopping.set()
    await asyncio.wait_for(task, 10)


def test_lock_key_is_stable_across_processes_and_releases() -> None:
    # Changing the derivation would let an old and a new release lead at the same time during an upgrade.
    assert lock_key("price_monitor") != lock_key("other")
    assert -(2**63) <= lock_key("price_monitor") < 2**63
    assert lock_key("price_monitor") == 4622168759348615266


async def test_one_leader_at_a_time_and_a_standby_takes_over_when_it_stops(database_url) -> None:
    Terms.holding = Terms.most_at_once = 0
    first, second = Terms(), Terms()
    a, b = contender(database_url, "a"), contender(database_url, "b")
    task_a = campaign(a, "t-handover", first)
    await asyncio.wait_for(first.elected.wait(), 10)
    task_b = campaign(b, "t-handover", second)
    try:
        await asyncio.sleep(0.5)  # ten retries of the standby
        assert not second.elected.is_set()

        await stopped(a, task_a)
        assert first.ended == 1
        await asyncio.wait_for(second.elected.wait(), 5)
        assert Terms.most_at_once == 1
    finally:
        await stopped(b, task_b)
    assert second.ended == 1


async def test_roles_are_independent(database_url) -> None:
    monitor, other = Terms(), Terms()
    a, b = contender(database_url, "a"), contender(database_url, "b")
    tasks = [
        campaign(a, "t-role-1", monitor),
        campaign(b, "t-role-2", other),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(monitor.elected.wait(), other.elected.wait()), 10)
    finally:
        await stopped(a, tasks[0])
        await stopped(b, tasks[1])


async def test_leader_steps_down_when_its_lock_session_is_lost_and_is_elected_again(database_url, pool) -> None:
    terms = Terms()
    ctx = contender(database_url, "a")
    task = campaign(ctx, "t-lost", terms)
    try:
        await asyncio.wait_for(terms.elected.wait(), 10)
        first_stop = terms.stop
        assert first_stop is not None and not first_stop.is_set()
        holder = await pool.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert holder is not None
        terms.elected.clear()
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", holder)

        await asyncio.wait_for(first_stop.wait(), 5)  # told to stop, not cancelled
        await asyncio.wait_for(terms.elected.wait(), 5)  # the lock was free again: a new term
        assert (terms.started, terms.ended) == (2, 1)
        assert terms.stop is not first_stop
    finally:
        await stopped(ctx, task)


_CHILD = """
import asyncio, sys
from app.worker.leader import lead
from app.worker.main import WorkerContext

async def main():
    ctx = WorkerContext(settings=None, pool=None, database_url=sys.argv[1], worker_id="child")
    async def body(stop):
        print("leader", flush=True)
        await stop.wait()
    await lead(ctx, "t-kill", body, retry_s=0.05, check_s=0.05)

asyncio.run(main())
"""


@pytest.mark.timeout(60)
async def test_a_sigkilled_leader_is_replaced(database_url) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, database_url, cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE
    )
    standby = Terms()
    ctx = contender(database_url, "standby")
    task: asyncio.Task[None] | None = None
    try:
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"leader"
        task = campaign(ctx, "t-kill", standby)
        await asyncio.sleep(0.5)
        assert not standby.elected.is_set()

        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
        await child.wait()
        await asyncio.wait_for(standby.elected.wait(), 10)
        assert time.monotonic() - killed_at < 10
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        if task is not None:
            await stopped(ctx, task)


async def test_an_unreachable_database_is_retried_not_fatal() -> None:
    terms = Terms()
    ctx = contender("postgresql://postgres@127.0.0.1:1/nothing", "a")
    task = campaign(ctx, "t-away", terms)
    await asyncio.sleep(0.3)
    assert not task.done() and not terms.elected.is_set()
    await stopped(ctx, task)


async def test_no_other_session_can_take_a_held_lock(database_url, pool) -> None:
    # Neither a pooled connection nor a fresh one (another worker) gets the lock while its holder lives.
    terms = Terms()
    ctx = contender(database_url, "a")
    task = campaign(ctx, "t-session", terms)
    try:
        await asyncio.wait_for(terms.elected.wait(), 10)
        async with pool.acquire() as conn:
            assert not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key("t-session"))
        conn2: asyncpg.Connection = await asyncpg.connect(database_url)
        try:
            assert not await conn2.fetchval("SELECT pg_try_advisory_lock($1)", lock_key("t-session"))
        finally:
            await conn2.close()
    finally:
        await stopped(ctx, task)


async def _leaders(pool) -> list[str]:
    """application_name of every session holding the price-monitor lock in this database."""
    return await pool.fetch(
        "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database()) AND a.application_name LIKE 'nexgent-leader:price_monitor:%'"
    )


async def _eventually(check, within_s: float):
    deadline = time.monotonic() + within_s
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


@pytest.mark.timeout(120)
async def test_two_worker_processes_elect_one_monitor_and_the_survivor_takes_over(database_url, pool) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WORKER_HEARTBEAT_S": "0.5",
        "MONITOR_LEADER_RETRY_S": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    quiet = {"stdout": asyncio.subprocess.DEVNULL, "stderr": asyncio.subprocess.DEVNULL}
    command = (sys.executable, "-m", "app.cli", "worker")
    workers = [await asyncio.create_subprocess_exec(*command, cwd=PROJECT_ROOT, env=env, **quiet) for _ in range(2)]
    try:
        by_pid = {w.pid: w for w in workers}

        async def both_beating() -> bool:
            beating = await pool.fetchval(
                "SELECT count(*) FROM worker_heartbeats WHERE pid = ANY($1::int[]) AND stopped_at IS NULL", list(by_pid)
            )
            return beating == 2

        assert await _eventually(both_beating, 60), "the workers never started"
        [first] = await _eventually(lambda: _leaders(pool), 30)
        await asyncio.sleep(1.0)  # five retries of the standby: still one leader
        assert [r["application_name"] for r in await _leaders(pool)] == [first["application_name"]]

        leader = next(w for pid, w in by_pid.items() if f"-{pid}-" in first["application_name"])
        leader.send_signal(signal.SIGKILL)
        await leader.wait()
        survivor = next(w for w in workers if w is not leader)

        async def survivor_leads() -> list:
            rows = await _leaders(pool)
            return [r for r in rows if f"-{survivor.pid}-" in r["application_name"]]

        assert await _eventually(survivor_leads, 15), "the surviving worker never took the monitor over"
        assert len(await _leaders(pool)) == 1
    finally:
        for w in workers:
            if w.returncode is None:
                w.kill()
                await w.wait()
