"""Fixtures of the resource-API tests: real app, real database, one fresh user per test.

The wallet and signal rate limits (5 and 120 per minute) would trip across the tests of one module, which share
an app; each test starts with an empty limiter unless it is testing the limit itself.
"""

from __future__ import annotations

import pytest

from app.auth.runtime import auth_runtime
from tests.api.helpers import User, new_user


@pytest.fixture(autouse=True)
def _fresh_rate_limits(request: pytest.FixtureRequest) -> None:
    for name in ("client", "in_loop_client"):
        if name in request.fixturenames:
            auth_runtime(request.getfixturevalue(name).app.state).limiter.reset()


@pytest.fixture
async def user(pool, settings) -> User:
    return await new_user(pool, settings)


@pytest.fixture
async def other(pool, settings) -> User:
    """A second user: everything of ``user`` must be invisible to them."""
    return await new_user(pool, settings)
