"""The Litestar application: routes, error envelope, middleware, and the pool's lifespan."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from app.api.cors import cors_config
from app.api.deps import provide_pool, provide_settings
from app.api.errors import EXCEPTION_HANDLERS
from app.api.metrics import http_metrics_middleware
from app.api.middleware import add_response_headers, request_context_middleware
from app.api.openapi_doc import render_plugins
from app.api.ws import ws_lifespan
from app.auth.revocations import revocation_lifespan
from app.auth.seed import auth_startup
from app.config import Settings
from app.db import create_pool
from app.db.migrate import all_migration_ids

MAX_BODY_BYTES = 1_048_576  # the reference's 1 MB body limit; larger bodies get 413

# Each module under app/api that serves routes exposes ROUTES; listed here in matching order (literal paths
# such as /export are declared before /{id} inside each module).
ROUTE_MODULES = [
    "health",
    "auth_routes",
    "api_keys",
    "agents",
    "wallets",
    "balances",
    "positions",
    "transactions",
    "historical_swaps",
    "signals",
    "webhooks",
    "trades",
    "withdrawals",
    "live",
    "price_feeds",
    "metrics",
    "ws",
]


def collect_routes() -> list:
    handlers: list = []
    for name in ROUTE_MODULES:
        if importlib.util.find_spec(f"app.api.{name}") is not None:
            handlers.extend(importlib.import_module(f"app.api.{name}").ROUTES)
    return handlers


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

    app = Litestar(
        route_handlers=collect_routes(),
        dependencies={
            "pool": Provide(provide_pool, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_context_middleware],
        before_send=[add_response_headers],
        # After the pool (they read state.settings): the API-key revocation listener, and the WebSocket hub,
        # which stops (closing sockets) before the pool closes.
        lifespan=[pool_lifespan, revocation_lifespan(database_url), ws_lifespan(settings, database_url)],
        on_startup=[auth_startup],  # after the lifespans: the pool exists; seeds the admin (app.auth.seed)
        cors_config=cors_config(settings),
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Nexgent trading engine", version="0.1.0", path="/api/v1/docs", render_plugins=render_plugins()
        ),
        logging_config=None,  # app.logs configures logging; Litestar would replace it with its own
        debug=False,
    )
    # Outside routing, so 404/405 answers are counted too (labelled "unmatched").
    app.asgi_handler = http_metrics_middleware(app.asgi_handler)
    return app
