"""Events from the worker to WebSocket clients, carried by PostgreSQL NOTIFY on one channel.

Published inside the transaction that made the change, so a client never hears about a trade that was
rolled back (NOTIFY is delivered at commit). Payload: ``{"type", "agentId", "data"}`` as JSON, at most
~8 kB (PostgreSQL's NOTIFY limit): send ids and small objects, not whole histories.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

CHANNEL = "nexgent_events"
_encoder = msgspec.json.Encoder(decimal_format="number")


async def publish(conn: asyncpg.Connection | asyncpg.Pool, agent_id: uuid.UUID | str, type_: str, data: Any) -> None:
    payload = _encoder.encode({"type": type_, "agentId": str(agent_id), "data": data}).decode()
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
