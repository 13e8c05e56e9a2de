"""The asyncpg pool: json/jsonb decoded to Python objects, and the one transaction helper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import msgspec

_encode = msgspec.json.Encoder(decimal_format="number")


def _encode_json(value: object) -> str:
    return _encode.encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog")


async def keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's server-side reset (advisory unlock, CLOSE ALL, UNLISTEN *, RESET ALL).

    asyncpg still rolls back a transaction left open and drops client-side listeners before calling this.
    Pooled connections never change session state (no SET, no session advisory locks, cursors only inside
    transactions; the one LISTEN on a pooled connection, ``app.api.trades.TradeWaiter``, is removed before
    release or the connection is terminated), and the reset query cost one more round trip on every release:
    on the worker's path it was paid twice per signal, on the API's once per request.
    """


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10, **kwargs: object) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=keep_session,
        command_timeout=60,
        server_settings={"application_name": "nexgent", "timezone": "UTC"},
        **kwargs,
    )


@asynccontextmanager
async def transaction(pool: asyncpg.Pool, *, isolation: str = "read_committed") -> AsyncIterator[asyncpg.Connection]:
    """Acquire a connection and run the block in one transaction (commit on success, rollback on error)."""
    async with pool.acquire() as conn, conn.transaction(isolation=isolation):
        yield conn
