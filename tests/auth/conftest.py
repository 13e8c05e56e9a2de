"""Auth tests run with a cheap argon2 cost (the hashes stay argon2id, only faster) and one trusted proxy, so each
test can speak from its own client IP (``X-Forwarded-For``) and the per-IP login budget never leaks between
tests. This ``settings`` override is what the shared ``client`` and ``in_loop_client`` fixtures use for tests in
this folder."""

from __future__ import annotations

import msgspec
import pytest

from app.config import Settings


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings, argon2_time_cost=1, argon2_memory_cost=1024, argon2_parallelism=1, trusted_proxies=1
    )
