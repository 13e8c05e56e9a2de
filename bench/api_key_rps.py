"""API-key-authenticated requests per second against the same work without authentication (issue 3).

    uv run python bench/api_key_rps.py                       # ~1 min on 2 cores
    uv run python bench/api_key_rps.py --duration 10 --concurrency 64

Starts one API process (uvicorn, the real app of this checkout) on a throwaway database with two extra routes
that do identical work, listing one user's agents with the same named query:

* ``GET /bench/open``: no authentication (the user id is fixed at start);
* ``GET /bench/keyed``: ``scoped("agents")``, called with an API key (``X-API-Key``).

and also drives the real ``GET /api/v1/agents`` (API key, and JWT) and ``GET /api/v1/health/live`` (no DB at
all). API keys are answered from the process's key cache once the API's revocation listener (app.auth.revocations) is
connected; the run waits for it before measuring. Closed-loop load from this process (aiohttp, ``--concurrency``
connections); endpoints take turns in
``--rounds`` rounds of ``--duration`` seconds so load drift hits them alike. Prints requests/s per endpoint and
the ratio keyed/open (the cost of API-key authentication on a DB-backed endpoint; target >= 0.8).

The load generator shares the machine (and on a 2-core box, the cores) with the server and PostgreSQL: absolute
numbers are low, ratios are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DEFAULT_ADMIN_URL, REPO, create_database, drop_database, free_port, migrate

from app.api.auth import Principal, scoped
from app.auth.keys import generate_api_key
from app.auth.revocations import APPLICATION_NAME as KEY_LISTENER_APP
from app.auth.tokens import issue_access_token

SECRET = "bench-secret-0123456789-0123456789-0123456789"


def serve(port: int, database_url: str, user_id: str) -> None:
    """Child process: the real app plus the two bench routes, under uvicorn."""
    import uvicorn
    from litestar import get

    from app.api.app import create_app
    from app.config import load_settings
    from app.db import Q

    settings = load_settings({"APP_ENV": "production", "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"} | dict(os.environ))
    fixed_user = uuid.UUID(user_id)

    async def agents_of(pool, owner: uuid.UUID) -> list[dict]:
        rows = await Q.api_list_agents.fetch_all(pool, owner)
        return [{"id": str(row["id"]), "name": row["name"]} for row in rows]

    @get("/bench/open")
    async def open_route(pool: asyncpg.Pool) -> list[dict]:
        return await agents_of(pool, fixed_user)

    @get("/bench/keyed", dependencies={"principal": scoped("agents")})
    async def keyed_route(principal: Principal, pool: asyncpg.Pool) -> list[dict]:
        return await agents_of(pool, principal.user_id)

    app = create_app(settings, database_url)
    app.register(open_route)
    app.register(keyed_route)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")


async def populate(url: str) -> tuple[str, str, str]:
    conn = await asyncpg.connect(url)
    try:
        user_id = await conn.fetchval("INSERT INTO users (email) VALUES ('bench-rps@example.com') RETURNING id")
        await conn.execute("INSERT INTO agents (user_id, name) VALUES ($1, 'bench agent')", user_id)
        raw, key_hash, prefix = generate_api_key()
        await conn.execute(
            "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'rps', $2, $3, '{agents}')",
            user_id,
            key_hash,
            prefix,
        )
    finally:
        await conn.close()
    return str(user_id), raw, issue_access_token(SECRET, user_id, "bench-rps@example.com", session_id=uuid.uuid4())


async def load(base: str, path: str, headers: dict[str, str], concurrency: int, duration: float) -> float:
    """Requests per second completed with status 200 by ``concurrency`` closed-loop clients."""
    done = 0
    failures = 0
    deadline = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def client() -> None:
            nonlocal done, failures
            while time.perf_counter() < deadline:
                async with session.get(path) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{path}: {failures} non-200 answers")
    return done / elapsed


async def wait_live(base: str, proc: asyncio.subprocess.Process, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError("API exited during start")
            try:
                async with session.get(f"{base}/api/v1/health/live") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("API did not start")


async def wait_key_listener(url: str, within_s: float = 30.0) -> None:
    """Measure the API as it runs normally: with the key cache in use, i.e. its revocation listener connected."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + within_s
        while not await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
            KEY_LISTENER_APP,
        ):
            if time.monotonic() >= deadline:
                raise TimeoutError("the API's key revocation listener did not connect")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    url = await create_database(args.admin_url)
    proc = None
    try:
        await asyncio.to_thread(migrate, url)
        user_id, api_key, jwt = await populate(url)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PG"))}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", str(port), url, user_id, cwd=REPO, env=env
        )
        base = f"http://127.0.0.1:{port}"
        await wait_live(base, proc)
        await wait_key_listener(url)
        key_header = {"X-API-Key": api_key}
        endpoints = {
            "GET /bench/open (no auth, agents query)": ("/bench/open", {}),
            "GET /bench/keyed (API key, same query)": ("/bench/keyed", key_header),
            "GET /api/v1/agents (API key)": ("/api/v1/agents", key_header),
            "GET /api/v1/agents (JWT)": ("/api/v1/agents", {"Authorization": f"Bearer {jwt}"}),
            "GET /api/v1/health/live (no auth, no DB)": ("/api/v1/health/live", {}),
        }
        for path, headers in endpoints.values():  # warm-up: connections, prepared statements
            await load(base, path, headers, args.concurrency, 1.0)
        samples: dict[str, list[float]] = {name: [] for name in endpoints}
        for _ in range(args.rounds):
            for name, (path, headers) in endpoints.items():
                samples[name].append(await load(base, path, headers, args.concurrency, args.duration))
        rps = {name: statistics.median(values) for name, values in samples.items()}
        open_rps = rps["GET /bench/open (no auth, agents query)"]
        live_rps = rps["GET /api/v1/health/live (no auth, no DB)"]
        print(f"{'endpoint':<44} {'req/s':>9} {'x open':>8} {'x live':>8}")
        for name, value in rps.items():
            print(f"{name:<44} {value:>9.0f} {value / open_rps:>8.2f} {value / live_rps:>8.2f}")
        ratio = rps["GET /bench/keyed (API key, same query)"] / open_rps
        print(f"\nAPI-key authenticated / unauthenticated, same work: {ratio:.2f} (target >= 0.80)")
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await drop_database(args.admin_url, url)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
