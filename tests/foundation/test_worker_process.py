"""The real ``nexgent worker`` process beats, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from tests.dbutil import PROJECT_ROOT


async def test_worker_process_heartbeats_and_stops_on_sigterm(database_url: str, pool) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "WORKER_HEARTBEAT_S": "0.2", "LOG_LEVEL": "INFO"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        worker_id = None
        for _ in range(200):
            worker_id = await pool.fetchval(
                "SELECT worker_id FROM worker_heartbeats WHERE pid = $1 AND stopped_at IS NULL", proc.pid
            )
            if worker_id:
                break
            await asyncio.sleep(0.05)
        assert worker_id, "worker never wrote a heartbeat"
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, stderr.decode()
    assert "worker stopped" in stderr.decode()
    assert await pool.fetchval("SELECT stopped_at IS NOT NULL FROM worker_heartbeats WHERE worker_id = $1", worker_id)
