"""CORS from CORS_ORIGIN: listed origins get credentials-enabled CORS, others nothing; X-API-Key is not a
cross-origin header (browsers must not carry API keys)."""

from __future__ import annotations

import msgspec
from litestar.testing import AsyncTestClient

from app.api.app import create_app
from app.config import Settings

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"}


async def test_listed_origin_is_allowed_with_credentials(settings: Settings, database_url: str) -> None:
    configured = msgspec.structs.replace(settings, cors_origin=" https://app.example.com , https://ops.example.com")
    async with AsyncTestClient(app=create_app(configured, database_url)) as client:
        response = await client.options(
            "/api/v1/auth/login", headers={"Origin": "https://ops.example.com", **PREFLIGHT}
        )
        assert response.status_code in (200, 204)
        assert response.headers["access-control-allow-origin"] == "https://ops.example.com"
        assert response.headers["access-control-allow-credentials"] == "true"

        simple = await client.get("/api/v1/health/live", headers={"Origin": "https://app.example.com"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example.com"

        other = await client.get("/api/v1/health/live", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers

        api_key_header = await client.options(
            "/api/v1/agents",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-api-key",
            },
        )
        assert api_key_header.status_code == 400


async def test_no_cors_origin_means_no_cors_headers(client: AsyncTestClient) -> None:
    response = await client.get("/api/v1/health/live", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers
