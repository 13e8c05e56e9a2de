"""Health probes on the reference's paths, against the real app and database."""

from __future__ import annotations

import asyncio

from app.worker.main import heartbeat_service, run_worker


async def test_live_needs_nothing(client) -> None:
    response = await client.get("/api/v1/health/live")
    assert response.status_code == 200
    body = response.json()
    assert body["alive"] is True and isinstance(body["uptime"], int)


async def test_ready_is_503_without_a_worker_then_200_with_one(client, settings, database_url, pool) -> None:
    await pool.execute("DELETE FROM worker_heartbeats")
    response = await client.get("/api/v1/health/ready")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["no worker heartbeat"]

    stopping = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, database_url, stopping=stopping, services=[heartbeat_service]))
    try:
        for _ in range(100):
            if (await client.get("/api/v1/health/ready")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        response = await client.get("/api/v1/health/ready")
        assert response.status_code == 200, response.text
        assert response.json()["checks"]["worker"]["liveWorkers"] == 1

        health = (await client.get("/api/v1/health")).json()
        assert health["status"] == "healthy"
        assert health["services"]["database"]["latency"] >= 0
        assert health["services"]["migrations"] == {"status": "healthy", "pending": []}
    finally:
        stopping.set()
        await worker
    # A worker that stopped cleanly marks itself stopped, so readiness drops at once.
    response = await client.get("/api/v1/health/ready")
    assert response.status_code == 503


async def test_stale_heartbeat_is_not_ready(client, pool) -> None:
    await pool.execute("DELETE FROM worker_heartbeats")
    await pool.execute(
        "INSERT INTO worker_heartbeats (worker_id, hostname, pid, beat_at) VALUES ('old', 'h', 1, now() - interval '1 hour')"
    )
    response = await client.get("/api/v1/health/ready")
    assert response.status_code == 503
    assert response.json()["reasons"][0].startswith("worker heartbeat is ")
    health = await client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"


async def test_pending_migration_makes_ready_fail(client, pool) -> None:
    await pool.execute("DELETE FROM _yoyo_migration WHERE migration_id = '0002.engine-extensions'")
    try:
        response = await client.get("/api/v1/health/ready")
        assert response.status_code == 503
        assert "migrations pending: 0002.engine-extensions" in response.json()["reasons"]
    finally:
        await pool.execute(
            "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
            "SELECT migration_hash, migration_id, created_at_utc FROM _yoyo_log "
            "WHERE migration_id = '0002.engine-extensions' AND operation = 'apply' LIMIT 1"
        )


async def test_legacy_health_redirects(client) -> None:
    response = await client.get("/health", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/api/v1/health"


async def test_errors_use_the_envelope_and_echo_request_ids(client) -> None:
    response = await client.get("/api/v1/nope", headers={"x-request-id": "abc-123"})
    assert response.status_code == 404
    assert response.json()["error"] == "Route not found: GET /api/v1/nope"
    assert response.headers["x-request-id"] == "abc-123"
    assert response.headers["x-content-type-options"] == "nosniff"
    bad = await client.get("/api/v1/health/live", headers={"x-request-id": "<script>"})
    assert bad.headers["x-request-id"] != "<script>"
