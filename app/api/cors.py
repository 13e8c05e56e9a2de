"""CORS from ``CORS_ORIGIN`` (comma-separated, trimmed). Empty means no cross-origin browser access at all.

As upstream: credentials allowed, and only ``Content-Type`` and ``Authorization`` may be sent cross-origin, so
browser pages cannot present ``X-API-Key`` (API keys are for servers). ``x-request-id`` is exposed so browser
clients can quote it in bug reports.
"""

from __future__ import annotations

from litestar.config.cors import CORSConfig

from app.config import Settings


def allowed_origins(settings: Settings) -> list[str]:
    return [origin.strip() for origin in settings.cors_origin.split(",") if origin.strip()]


def cors_config(settings: Settings) -> CORSConfig | None:
    origins = allowed_origins(settings)
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        allow_credentials=True,
        expose_headers=["x-request-id", "Retry-After"],
    )
