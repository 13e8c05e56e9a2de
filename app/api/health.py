"""Health probes for monitors, on the reference's paths; no authentication.

- ``/api/v1/health/live``: the process answers; no I/O.
- ``/api/v1/health/ready``: 200 only when the database answers, every migration is applied and a worker
  has beaten recently; otherwise 503 with the reasons.
- ``/api/v1/health``: every dependency's state and latency; 503 when the database is down, ``degraded``
  when only the worker or migrations are behind.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from litestar import Response, get
from litestar.datastructures import State
from litestar.response import Redirect

from app.api.serialization import now_iso
from app.db import Q

PROBE_TIMEOUT_S = 2.0
_STARTED = time.monotonic()


def _uptime() -> int:
    return int(time.monotonic() - _STARTED)


async def _probe(pool: asyncpg.Pool, state: State) -> dict[str, dict[str, Any]]:
    """Database, migrations and worker in one connection, bounded by PROBE_TIMEOUT_S."""
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S), pool.acquire() as conn:
            await Q.ping.fetch_val(conn)
            results["database"] = {"status": "healthy", "latency": round((time.perf_counter() - started) * 1000, 2)}
            applied = {row["migration_id"] for row in await Q.applied_migration_ids.fetch_all(conn)}
            pending = [m for m in state.expected_migrations if m not in applied]
            results["migrations"] = {"status": "unhealthy" if pending else "healthy", "pending": pending}
            stale_after = state.settings.worker_heartbeat_stale_s
            beat = await Q.freshest_worker_heartbeat.fetch_one(conn, stale_after)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        results.setdefault("database", {"status": "unhealthy", "error": type(exc).__name__})
        results.setdefault("migrations", {"status": "unknown"})
        results.setdefault("worker", {"status": "unknown"})
        return results
    age = beat["age_s"] if beat else None
    fresh = age is not None and age <= stale_after
    results["worker"] = {
        "status": "healthy" if fresh else "unhealthy",
        "lastHeartbeatAgeSeconds": None if age is None else round(age, 3),
        "liveWorkers": beat["live_workers"] if beat else 0,
    }
    return results


@get("/api/v1/health/live", sync_to_thread=False, include_in_schema=True, tags=["health"])
def live() -> dict[str, Any]:
    return {"alive": True, "timestamp": now_iso(), "uptime": _uptime()}


@get("/api/v1/health/ready", tags=["health"])
async def ready(state: State) -> Response[dict[str, Any]]:
    checks = await _probe(state.pool, state)
    reasons = []
    if checks["database"]["status"] != "healthy":
        reasons.append("database unreachable")
    elif checks["migrations"]["status"] != "healthy":
        reasons.append("migrations pending: " + ", ".join(checks["migrations"]["pending"]))
    if checks["database"]["status"] == "healthy" and checks["worker"]["status"] != "healthy":
        age = checks["worker"]["lastHeartbeatAgeSeconds"]
        reasons.append("no worker heartbeat" if age is None else f"worker heartbeat is {age:.0f}s old")
    if reasons:
        body = {
            "ready": False,
            "message": "Application not ready",
            "reasons": reasons,
            "checks": checks,
            "timestamp": now_iso(),
        }
        return Response(body, status_code=503)
    return Response({"ready": True, "checks": checks, "timestamp": now_iso()}, status_code=200)


@get("/api/v1/health", tags=["health"])
async def health(state: State) -> Response[dict[str, Any]]:
    services = await _probe(state.pool, state)
    if services["database"]["status"] != "healthy":
        status, code = "unhealthy", 503
    elif any(s["status"] != "healthy" for s in services.values()):
        status, code = "degraded", 200
    else:
        status, code = "healthy", 200
    body = {"status": status, "timestamp": now_iso(), "uptime": _uptime(), "services": services}
    return Response(body, status_code=code)


@get("/health", include_in_schema=False)
async def legacy_health() -> Redirect:
    return Redirect("/api/v1/health", status_code=302)


ROUTES = [live, ready, health, legacy_health]
