"""The Litestar application: routes, error envelope, middleware, and the pool's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from app.api import health
from app.api.deps import provide_pool, provide_settings
from app.api.errors import EXCEPTION_HANDLERS
from app.api.middleware import add_response_headers, request_context_middleware
from app.config import Settings
from app.db import create_pool
from app.db.migrate import all_migration_ids

MAX_BODY_BYTES = 1_048_576  # the reference's 1 MB body limit; larger bodies get 413

ROUTE_HANDLERS: list = [*health.ROUTES]


def create_app(settings: Settings, database_url: str) -> Litestar:
    @asynccontextmanager
    async def pool_lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.expected_migrations = all_migration_ids()
        app.state.pool = await create_pool(database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        try:
            yield
        finally:
            await app.state.pool.close()

    return Litestar(
        route_handlers=ROUTE_HANDLERS,
        dependencies={
            "pool": Provide(provide_pool, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_context_middleware],
        before_send=[add_response_headers],
        lifespan=[pool_lifespan],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(title="Nexgent trading engine", version="0.1.0", path="/api/v1/docs"),
        logging_config=None,  # app.logs configures logging; Litestar would replace it with its own
        debug=False,
    )
