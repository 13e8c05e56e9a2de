"""Prometheus metrics: who may scrape, route-template labels, and the gauges read from the database."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import msgspec
import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api.app import create_app
from app.api.metrics import http_metrics_middleware, is_loopback_client
from app.worker.main import heartbeat_service, run_worker
from app.worker.metrics_server import metrics_server_service
from tests.factories import create_agent, create_user

TOKEN = "scrape-token-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture(scope="module")
async def token_client(settings, database_url) -> AsyncIterator[AsyncTestClient]:
    app = create_app(msgspec.structs.replace(settings, metrics_token=TOKEN), database_url)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_without_token_only_loopback_may_scrape(client) -> None:
    # The test client's peer is "testclient", not a loopback address.
    for path in ("/metrics", "/api/v1/metrics"):
        response = await client.get(path)
        assert response.status_code == 403, path
        assert response.json()["code"] == "AUTHORIZATION_ERROR"


@pytest.mark.parametrize(
    ("client_addr", "headers", "allowed"),
    [
        (("127.0.0.1", 5000), [], True),
        (("127.3.4.5", 5000), [], True),
        (("::1", 5000), [], True),
        (("10.0.0.7", 5000), [], False),
        (("203.0.113.9", 5000), [], False),
        (("testclient", 50000), [], False),
        (None, [], False),
        (("127.0.0.1", 5000), [(b"x-forwarded-for", b"203.0.113.9")], False),
        (("127.0.0.1", 5000), [(b"forwarded", b"for=203.0.113.9")], False),
    ],
)
def test_loopback_rule(client_addr, headers, allowed) -> None:
    assert is_loopback_client({"type": "http", "client": client_addr, "headers": headers}) is allowed


async def test_token_is_required_when_configured(token_client) -> None:
    for path in ("/metrics", "/api/v1/metrics"):
        assert (await token_client.get(path)).status_code == 401
        wrong = await token_client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        basic = await token_client.get(path, headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
        ok = await token_client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-type"].startswith("text/plain")
        assert "# TYPE api_requests_total counter" in ok.text


async def test_http_series_use_route_templates_and_unmatched(token_client) -> None:
    await token_client.get("/api/v1/health/live")
    await token_client.get(f"/api/v1/no-such-route/{uuid.uuid4()}")
    await token_client.delete("/api/v1/health/live")  # 405: no handler for the method
    text = (await token_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text
    found = samples(text)
    assert found[("api_requests_total", (("method", "GET"), ("path", "/api/v1/health/live"), ("status", "200")))] >= 1
    assert found[("api_requests_total", (("method", "GET"), ("path", "unmatched"), ("status", "404")))] >= 1
    assert found[("api_requests_total", (("method", "DELETE"), ("path", "unmatched"), ("status", "405")))] >= 1
    assert found[("api_request_latency_seconds_count", (("method", "GET"), ("path", "/api/v1/health/live")))] >= 1
    assert "no-such-route" not in text


async def test_path_parameters_are_labelled_by_template() -> None:
    @get("/things/{thing_id:uuid}", sync_to_thread=False)
    def thing(thing_id: FromPath[uuid.UUID]) -> dict[str, str]:
        return {"id": str(thing_id)}

    app = Litestar(route_handlers=[thing])
    app.asgi_handler = http_metrics_middleware(app.asgi_handler)
    async with AsyncTestClient(app=app) as test_client:
        for _ in range(3):
            assert (await test_client.get(f"/things/{uuid.uuid4()}")).status_code == 200
        assert (await test_client.get("/things/not-a-uuid")).status_code in (400, 404)
    from app.metrics import REGISTRY

    key = {"method": "GET", "path": "/things/{thing_id}", "status": "200"}
    assert REGISTRY.get_sample_value("api_requests_total", key) >= 3


async def test_gauges_come_from_the_database(token_client, pool) -> None:
    user = await create_user(pool)
    agent_id, wallet = await create_agent(pool, user)
    await pool.execute(
        """INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_price,
               purchase_amount) VALUES ($1, $2, 'MintForMetrics1111111111111111111111111111', 'MET', 0.001, 1000)""",
        agent_id,
        wallet,
    )
    await pool.execute(
        """INSERT INTO trading_signals (token_address, signal_type, signal_strength, created_at, processed_at)
           VALUES ('A', 'BUY', 3, now() - interval '42 seconds', NULL),
                  ('B', 'BUY', 3, now() - interval '5 seconds', NULL),
                  ('C', 'BUY', 3, now() - interval '1 hour', now())"""
    )
    if await pool.fetchval("SELECT to_regclass('token_prices') IS NOT NULL"):
        await pool.execute(
            """INSERT INTO token_prices (mint, price_sol, observed_at, source)
               VALUES ('MintForMetrics1111111111111111111111111111', $1, now() - interval '90 seconds', 'replay')
               ON CONFLICT (mint) DO UPDATE SET observed_at = EXCLUDED.observed_at""",
            Decimal("0.002"),
        )
    text = (await token_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text
    found = samples(text)
    open_positions = await pool.fetchval("SELECT count(*) FROM agent_positions")
    unprocessed = await pool.fetchval("SELECT count(*) FROM trading_signals WHERE processed_at IS NULL")
    assert found[("open_positions", ())] == open_positions >= 1
    assert found[("queue_depth", (("queue_name", "trading_signals"),))] == unprocessed >= 2
    assert 42 <= found[("worker_lag_seconds", ())] < 3600
    assert found[("db_pool_connections", (("state", "max"),))] == 10
    assert found[("db_pool_connections", (("state", "in_use"),))] >= 0
    if await pool.fetchval("SELECT to_regclass('token_prices') IS NOT NULL"):
        assert found[("price_feed_staleness_seconds", (("feed", "replay"),))] >= 90
    await pool.execute("UPDATE trading_signals SET processed_at = now() WHERE processed_at IS NULL")
    found = samples((await token_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text)
    assert found[("worker_lag_seconds", ())] == 0
    assert found[("queue_depth", (("queue_name", "trading_signals"),))] == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_worker_serves_its_own_metrics_on_loopback(settings, database_url) -> None:
    port = _free_port()
    worker_settings = msgspec.structs.replace(settings, worker_metrics_port=port)
    stopping = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            worker_settings, database_url, stopping=stopping, services=[heartbeat_service, metrics_server_service]
        )
    )
    try:
        body = None
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                        body = await response.text()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        assert body is not None and "# TYPE signal_to_fill_latency_seconds histogram" in body
        # A second worker on the same host and port logs the clash and keeps working.
        stopping2 = asyncio.Event()
        second = asyncio.create_task(
            run_worker(worker_settings, database_url, stopping=stopping2, services=[metrics_server_service])
        )
        await asyncio.sleep(0.3)
        assert not second.done()
        stopping2.set()
        await asyncio.wait_for(second, 10)
    finally:
        stopping.set()
        await asyncio.wait_for(worker, 10)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"http://127.0.0.1:{port}/metrics"):
                pass
