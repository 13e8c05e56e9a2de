"""Small helpers shared by the auth tests."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

from litestar.testing import AsyncTestClient

from app.metrics import REGISTRY
from tests.in_loop import InLoopClient

PASSWORD = "Correct-Horse-9"
_ip_counter = itertools.count(1)


def from_ip() -> dict[str, str]:
    """Headers making the request come from a fresh client IP (the tests trust one proxy hop)."""
    n = next(_ip_counter)
    return {"X-Forwarded-For": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"}


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: AsyncTestClient, email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/register", json={"email": email or new_email(), "password": password}, headers=from_ip()
    )
    assert response.status_code == 201, response.text
    return response.json()


async def login(client: AsyncTestClient, email: str, password: str = PASSWORD, **extra: Any):
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password, **extra}, headers=from_ip()
    )


def hash_ops(op: str, scheme: str) -> float:
    return REGISTRY.get_sample_value("password_hash_operations_total", {"op": op, "scheme": scheme}) or 0.0


async def eventually(condition: Callable[[], bool], within_s: float = 2.0) -> bool:
    """Poll a plain condition every 10 ms; False if it still fails after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def refused_within(
    http: InLoopClient, path: str, headers: dict[str, str], error: str, within_s: float = 2.0
) -> bool:
    """Poll ``path`` until it answers 401: True when that 401 says ``error``, False when it still answers 200
    after ``within_s`` (any other answer fails the test). For revocations that reach a cache by notice."""
    deadline = time.monotonic() + within_s
    while True:
        answer = await http.get(path, headers=headers)
        if answer.status_code == 401:
            return answer.json()["error"] == error
        assert answer.status_code == 200, answer.text
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
