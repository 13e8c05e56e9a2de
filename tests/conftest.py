"""Shared fixtures: a real PostgreSQL for every test that needs one.

The session migrates one template database; each test module gets its own clone of it (``database_url``,
``pool``), so modules never see each other's rows and a clone costs a file copy, not a migration run.
Tests inside a module share the clone: create your own users/agents (``tests/factories.py``) rather than
assuming an empty table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from app.api.app import create_app
from app.config import Settings, load_settings
from app.db import create_pool
from app.db.migrate import apply_migrations
from tests.dbutil import admin_database_url, create_database, drop_database, unique_name
from tests.in_loop import InLoopClient, in_loop_app_client


@pytest.fixture(scope="session")
def admin_url() -> str:
    return admin_database_url()


@pytest.fixture(scope="session")
async def template_db(admin_url: str) -> AsyncIterator[str]:
    name = unique_name("nx_tmpl")
    url = await create_database(admin_url, name)
    await asyncio.to_thread(apply_migrations, url)
    yield name
    await drop_database(admin_url, name)


@pytest.fixture(scope="module")
async def database_url(admin_url: str, template_db: str) -> AsyncIterator[str]:
    name = unique_name("nx_test")
    url = await create_database(admin_url, name, template=template_db)
    yield url
    await drop_database(admin_url, name)


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(
        {
            "APP_ENV": "test",
            "JWT_SECRET": "test-secret-0123456789-0123456789-abcdef",
            "SIM_RANDOM_SEED": "7",
            "WORKER_HEARTBEAT_S": "0.2",
            "WORKER_HEARTBEAT_STALE_S": "5",
            "LOG_LEVEL": "WARNING",
        }
    )


@pytest.fixture(scope="module")
async def client(settings: Settings, database_url: str) -> AsyncIterator[AsyncTestClient]:
    """An HTTP client for the real app on this module's database (lifespan runs: the pool is real)."""
    app = create_app(settings, database_url)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
async def in_loop_client(settings: Settings, database_url: str) -> AsyncIterator[InLoopClient]:
    """Like ``client``, but the app runs in the test's own event loop (tests/in_loop.py): use it whenever requests
    must really run concurrently, or the app must run alongside a fake or worker task of the test's loop.
    ``client`` blocks the loop for the whole of each request, so ``gather`` through it is sequential."""
    async with in_loop_app_client(settings, database_url) as http:
        yield http


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    yield "asyncio"
