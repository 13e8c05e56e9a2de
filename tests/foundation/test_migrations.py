"""Migrations apply once under concurrency and roll back completely."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg

from app.db.migrate import all_migration_ids, apply_migrations, pending_migrations, rollback_migrations
from tests.dbutil import PROJECT_ROOT, create_database, drop_database, unique_name

TABLES = """SELECT table_name FROM information_schema.tables
            WHERE table_schema = 'public' AND table_name NOT LIKE '%yoyo%' ORDER BY 1"""


async def test_every_migration_rolls_back_and_reapplies(admin_url: str) -> None:
    name = unique_name("nx_rollback")
    url = await create_database(admin_url, name)
    try:
        applied = await asyncio.to_thread(apply_migrations, url)
        assert applied == all_migration_ids()
        conn = await asyncpg.connect(url)
        tables_after_apply = [r[0] for r in await conn.fetch(TABLES)]
        assert "agent_positions" in tables_after_apply

        # One at a time, newest first, so every .rollback.sql runs against exactly the state it expects.
        for _ in applied:
            assert len(await asyncio.to_thread(rollback_migrations, url, 1)) == 1
        assert [r[0] for r in await conn.fetch(TABLES)] == []
        assert await conn.fetchval("SELECT count(*) FROM pg_type WHERE typname = 'TransactionType'") == 0
        assert await asyncio.to_thread(pending_migrations, url) == all_migration_ids()

        assert await asyncio.to_thread(apply_migrations, url) == all_migration_ids()
        assert [r[0] for r in await conn.fetch(TABLES)] == tables_after_apply
        await conn.close()
    finally:
        await drop_database(admin_url, name)


async def test_two_processes_migrating_together_apply_each_migration_once(admin_url: str) -> None:
    name = unique_name("nx_race")
    url = await create_database(admin_url, name)
    code = "import sys; from app.db.migrate import apply_migrations; print(len(apply_migrations(sys.argv[1])))"
    try:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, url, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        outputs = [await p.communicate() for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        counts = sorted(int(out.decode().strip().splitlines()[-1]) for out, _ in outputs)
        assert counts == [0, len(all_migration_ids())]
        conn = await asyncpg.connect(url)
        log_rows = await conn.fetch(
            "SELECT migration_id, count(*) AS n FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1"
        )
        await conn.close()
        assert {r["migration_id"]: r["n"] for r in log_rows} == dict.fromkeys(all_migration_ids(), 1)
    finally:
        await drop_database(admin_url, name)
