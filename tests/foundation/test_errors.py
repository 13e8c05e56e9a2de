"""The error envelope for failures that are not the caller's fault."""

from __future__ import annotations

import asyncpg
from litestar import get


@get("/test-only/db-down", sync_to_thread=False)
def db_down() -> None:
    raise asyncpg.CannotConnectNowError("the database system is starting up")


@get("/test-only/bug", sync_to_thread=False)
def bug() -> None:
    raise RuntimeError("secret internal detail")


async def test_database_outage_is_503_with_retry_after(client) -> None:
    client.app.register(db_down)
    response = await client.get("/test-only/db-down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"


async def test_unexpected_errors_are_500_without_internal_text(client) -> None:
    client.app.register(bug)
    response = await client.get("/test-only/bug")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error", "code": "INTERNAL_ERROR", "details": None}
    assert "secret" not in response.text


async def test_malformed_json_and_oversized_bodies_are_4xx(client) -> None:
    bad = await client.post("/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert "error" in bad.json()
    huge = await client.post(
        "/api/v1/auth/login", content=b"x" * 1_100_000, headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
