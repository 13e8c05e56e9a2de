"""Property-based fuzzing of every documented route with schemathesis, authenticated as a real user.

A real uvicorn server (its own thread and event loop) serves the app on this module's database; schemathesis
reads our OpenAPI document (/api/v1/docs/openapi.json) and sends a bounded number of generated requests per
operation with a fresh access token each. Asserted for every response: no 5xx, and the body matches the
documented schema for its status code. Status codes the document does not list (401/404/429 on most
routes) are not judged here: the error envelope has its own tests.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.api.app import create_app
from tests.factories import access_headers, create_agent, create_user, deposit_sol

MAX_EXAMPLES = 10
# Generated bodies must not log the fuzzing user out or delete its password mid-run.
SKIPPED_OPERATIONS = ("/api/v1/auth/logout", "/api/v1/auth/logout-all", "/api/v1/auth/change-password")


@pytest.fixture(scope="module")
def served(settings, database_url) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, database_url), host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="schemathesis-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="module")
async def fuzz_user(pool):
    user_id = await create_user(pool)
    agent_id, wallet = await create_agent(pool, user_id, name="fuzzed agent")
    await deposit_sol(pool, agent_id, wallet, "10")
    # Routes that honestly answer 503 while a dependency is missing (no live worker for /health/ready, no SOL/USD
    # observed yet for /price-feeds/sol-usd) get that dependency, so a 5xx here is a bug.
    await pool.execute(
        "INSERT INTO worker_heartbeats (worker_id, hostname, pid, beat_at) VALUES ('fuzz', 'h', 1, now() + interval '1 hour')"
    )
    await pool.execute(
        """INSERT INTO token_prices (mint, price_sol, price_usd, observed_at, source)
           VALUES ('So11111111111111111111111111111111111111112', 1, 150, now(), 'replay')"""
    )
    return user_id, agent_id, wallet


def _aim_at_real_resources(case, agent_id, wallet) -> None:
    """Half the time use the user's real agent and wallet so handlers get past the 404 into their logic."""
    if random.Random(repr(case.path_parameters)).random() < 0.5:
        for name in list(case.path_parameters or {}):
            if "agent" in name.lower():
                case.path_parameters[name] = str(agent_id)
            elif "wallet" in name.lower():
                case.path_parameters[name] = wallet


class Fuzzer:
    def __init__(self, served: str, token_settings, user_id, agent_id, wallet: str) -> None:
        self.served, self.token_settings = served, token_settings
        self.user_id, self.agent_id, self.wallet = user_id, agent_id, wallet
        self.failures: list[str] = []
        self.statuses: Counter[int] = Counter()

    def run(self, operation) -> None:
        label = f"{operation.method.upper()} {operation.path}"

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def exercise(case) -> None:
            _aim_at_real_resources(case, self.agent_id, self.wallet)
            try:
                response = case.call_and_validate(
                    base_url=self.served,
                    headers=access_headers(self.token_settings, self.user_id),
                    checks=[not_a_server_error, response_schema_conformance],
                )
                self.statuses[response.status_code] += 1
            except Exception as exc:  # a failed check (FailureGroup) or a transport error: all reported at the end
                self.failures.append(f"{label}: {str(exc)[:600]}")

        exercise()


def test_no_server_errors_and_documented_bodies(served, fuzz_user, settings) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/api/v1/docs/openapi.json")
    fuzzer = Fuzzer(served, settings, *fuzz_user)
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED_OPERATIONS:
            continue
        operations += 1
        fuzzer.run(operation)
    requests = sum(fuzzer.statuses.values())
    print(f"\nschemathesis: {operations} operations, {requests} requests, statuses {dict(fuzzer.statuses)}")
    assert operations > 0
    assert not fuzzer.failures, "\n\n".join(fuzzer.failures[:20])


def test_schema_is_served_and_lists_the_api(served) -> None:
    with urllib.request.urlopen(f"{served}/api/v1/docs/openapi.json", timeout=5) as response:
        document = json.loads(response.read())
    assert document["openapi"].startswith("3.")
    assert "/api/v1/health/live" in document["paths"]
