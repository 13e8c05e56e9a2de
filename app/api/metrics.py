"""Prometheus scrape endpoint (``/metrics``, alias ``/api/v1/metrics``) and HTTP request instrumentation.

Who may scrape (spec api.md §20.1 required a user JWT, which no scraper can hold):

- ``METRICS_TOKEN`` set: the request must carry ``Authorization: Bearer <METRICS_TOKEN>`` (compared in
  constant time); anything else answers 401.
- ``METRICS_TOKEN`` unset: only a loopback client (127.0.0.0/8, ::1) that did not come through a proxy (no
  ``X-Forwarded-For``/``Forwarded`` header) may scrape; anything else answers 403. Behind a reverse proxy on
  the same host every client looks local, so set a token there.

Gauges that describe the whole system (worker lag, queue depth, open positions, price-feed staleness) are
read from the database at scrape time: they are then right whichever process or machine did the work,
and every API replica reports the same value. Counters and histograms of the trading loop live in the
worker process, which serves them on its own port (``WORKER_METRICS_PORT``, see app.worker.metrics_server).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time

import asyncpg
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.errors import ApiError
from app.db import Q
from app.metrics import (
    API_REQUEST_LATENCY,
    API_REQUESTS_TOTAL,
    DB_POOL_CONNECTIONS,
    ERRORS_TOTAL,
    OPEN_POSITIONS,
    PRICE_FEED_STALENESS,
    QUEUE_DEPTH,
    REGISTRY,
    WORKER_LAG,
)

log = logging.getLogger(__name__)

SCRAPE_QUERY_TIMEOUT_S = 2.0
UNMATCHED = "unmatched"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROXY_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")


def http_metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Count and time every HTTP response by route template.

    Wraps the application's whole ASGI handler (outside routing) so 404/405 answers are counted too: they
    carry no route and are labelled ``unmatched``. Labels never contain raw paths, ids or addresses.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            template = scope.get("path_template") or UNMATCHED
            if scope.get("route_handler") is None:
                template = UNMATCHED
            API_REQUEST_LATENCY.labels(method, template).observe(time.perf_counter() - started)
            API_REQUESTS_TOTAL.labels(method, template, str(status)).inc()

    return middleware


def is_loopback_client(scope: Scope) -> bool:
    """A direct connection from this host (not relayed by a proxy, which would make everyone look local)."""
    headers = dict(scope.get("headers") or [])
    if any(name in headers for name in _PROXY_HEADERS):
        return False
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def authorize_scrape(request: Request, token: str | None) -> None:
    if token:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
            raise ApiError(
                401, "Metrics token required", "AUTHENTICATION_ERROR", headers={"WWW-Authenticate": "Bearer"}
            )
        return
    if not is_loopback_client(request.scope):
        raise ApiError(403, "Metrics are only served to local clients unless METRICS_TOKEN is set")


def refresh_pool_gauges(pool: asyncpg.Pool) -> None:
    size, idle = pool.get_size(), pool.get_idle_size()
    DB_POOL_CONNECTIONS.labels("in_use").set(size - idle)
    DB_POOL_CONNECTIONS.labels("idle").set(idle)
    DB_POOL_CONNECTIONS.labels("max").set(pool.get_max_size())


async def refresh_database_gauges(pool: asyncpg.Pool) -> None:
    """Worker lag, queue depth, open positions and feed staleness, in one short connection use."""
    async with asyncio.timeout(SCRAPE_QUERY_TIMEOUT_S), pool.acquire() as conn:
        WORKER_LAG.set(await Q.ops_oldest_unprocessed_signal_age.fetch_val(conn))
        QUEUE_DEPTH.labels("trading_signals").set(await Q.ops_unprocessed_signal_count.fetch_val(conn))
        OPEN_POSITIONS.set(await Q.ops_open_position_count.fetch_val(conn))
        # token_prices is the position-management cache of the last observation per mint; its freshest
        # row per source is how stale each feed is.
        if await conn.fetchval("SELECT to_regclass('token_prices') IS NOT NULL"):
            rows = await conn.fetch(
                "SELECT source, extract(epoch FROM now() - max(observed_at))::float8 AS age "
                "FROM token_prices GROUP BY source"
            )
            for row in rows:
                PRICE_FEED_STALENESS.labels(row["source"]).set(max(row["age"], 0.0))


async def _render(state: State) -> Response[bytes]:
    refresh_pool_gauges(state.pool)
    try:
        await refresh_database_gauges(state.pool)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Serve what we have: a scrape that fails whenever the database hiccups hides every other series.
        ERRORS_TOTAL.labels("metrics", "SCRAPE_QUERY_FAILED").inc()
        log.warning("metrics database gauges not refreshed", extra={"fields": {"error": type(exc).__name__}})
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@get("/metrics", include_in_schema=False)
async def metrics(request: Request, state: State) -> Response[bytes]:
    authorize_scrape(request, state.settings.metrics_token)
    return await _render(state)


@get("/api/v1/metrics", include_in_schema=False)
async def metrics_alias(request: Request, state: State) -> Response[bytes]:
    """The reference's path, guarded like ``/metrics`` (it required a user JWT no scraper can hold)."""
    authorize_scrape(request, state.settings.metrics_token)
    return await _render(state)


ROUTES = [metrics, metrics_alias]
