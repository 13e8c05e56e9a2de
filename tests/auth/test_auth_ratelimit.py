"""Rate limits: login 5/min and refresh 10/min per IP with 429 + Retry-After, the sliding window itself, the
principal-keyed variant other routes use (per API key, per IP for JWT callers), and trusted-proxy client IPs."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from litestar import get, post
from litestar.params import FromPath
from litestar.testing import AsyncTestClient

from app.api.auth import issue_access_token, jwt_only, scoped
from app.api.deps import PrincipalDep
from app.auth.ratelimit import LOGIN, RateLimit, SlidingWindowLimiter, client_ip, rate_limit_guard
from app.auth.runtime import auth_runtime
from tests.auth.helpers import bearer, from_ip, new_email, register

PER_CALLER = RateLimit("test_per_caller", 3, 60, "Slow down.", key="principal")
PER_IP = RateLimit("test_per_ip", 2, 60, "Too many.")


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module", autouse=True)
def limited_routes(client: AsyncTestClient) -> None:
    @get("/test-only/limited/keyed", dependencies={"principal": scoped("signals", rate_limit=PER_CALLER)})
    async def keyed(principal: PrincipalDep) -> dict[str, str]:
        return {"ok": "yes"}

    @post("/test-only/limited/jwt", dependencies={"principal": jwt_only(rate_limit=PER_CALLER)}, status_code=200)
    async def jwt_limited(principal: PrincipalDep) -> dict[str, str]:
        return {"ok": "yes"}

    @get("/test-only/limited/public/{thing:str}", guards=[rate_limit_guard(PER_IP)])
    async def public(thing: FromPath[str]) -> dict[str, str]:
        return {"thing": thing}

    for handler in (keyed, jwt_limited, public):
        client.app.register(handler)


@pytest.fixture
def ticks(client: AsyncTestClient) -> Iterator[Ticks]:
    limiter = auth_runtime(client.app.state).limiter
    fake = Ticks()
    limiter.clock = fake
    yield fake
    limiter.reset()
    limiter.clock = __import__("time").monotonic


async def test_sixth_login_in_a_minute_gets_429_with_retry_after(client: AsyncTestClient, ticks: Ticks) -> None:
    ip = from_ip()
    body = {"email": new_email(), "password": "Whatever-123!"}
    statuses = []
    for _ in range(5):
        statuses.append((await client.post("/api/v1/auth/login", json=body, headers=ip)).status_code)
        ticks.now += 1
    assert statuses == [401] * 5
    limited = await client.post("/api/v1/auth/login", json=body, headers=ip)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "55"  # the first attempt leaves the window 55 s from now
    assert limited.json()["retryAfter"] == 55
    assert limited.json()["error"] == "Too many login attempts. Please try again later."
    assert limited.json()["code"] == "RATE_LIMITED"

    # Other callers are not affected, and the budget comes back as the window slides.
    assert (await client.post("/api/v1/auth/login", json=body, headers=from_ip())).status_code != 429
    ticks.now += 55
    assert (await client.post("/api/v1/auth/login", json=body, headers=ip)).status_code != 429


async def test_login_limit_runs_before_body_parsing(client: AsyncTestClient, ticks: Ticks) -> None:
    ip = from_ip()
    for _ in range(5):
        await client.post("/api/v1/auth/login", content=b"{broken", headers=ip)
    assert (await client.post("/api/v1/auth/login", content=b"{broken", headers=ip)).status_code == 429


async def test_eleventh_refresh_in_a_minute_gets_429(client: AsyncTestClient, ticks: Ticks) -> None:
    ip = from_ip()
    statuses = [
        (await client.post("/api/v1/auth/refresh", json={"refreshToken": "x"}, headers=ip)).status_code
        for _ in range(11)
    ]
    assert statuses == [401] * 10 + [429]


async def test_registration_is_limited_per_ip(client: AsyncTestClient, ticks: Ticks) -> None:
    ip = from_ip()
    statuses = [
        (
            await client.post("/api/v1/auth/register", json={"email": new_email(), "password": "weak"}, headers=ip)
        ).status_code
        for _ in range(6)
    ]
    assert statuses == [400] * 5 + [429]


async def test_principal_keyed_limit_counts_each_api_key_separately(client: AsyncTestClient, ticks: Ticks) -> None:
    owner = await register(client)
    keys = [
        (
            await client.post(
                "/api/v1/api-keys", json={"name": f"k{i}", "scopes": ["signals"]}, headers=bearer(owner["accessToken"])
            )
        ).json()["key"]
        for i in range(2)
    ]
    ip = from_ip()  # same IP for both keys: the budget is per key, not per address
    first = [
        (await client.get("/test-only/limited/keyed", headers={"X-API-Key": keys[0], **ip})).status_code
        for _ in range(4)
    ]
    assert first == [200, 200, 200, 429]
    assert (await client.get("/test-only/limited/keyed", headers={"X-API-Key": keys[1], **ip})).status_code == 200
    # A JWT caller is counted by IP.
    jwt_ip = from_ip()
    statuses = [
        (await client.post("/test-only/limited/jwt", headers={**bearer(owner["accessToken"]), **jwt_ip})).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


async def test_authentication_runs_before_the_principal_keyed_limit(client: AsyncTestClient, ticks: Ticks) -> None:
    """Unauthenticated calls answer 401 and do not spend a caller's budget (the reference's order)."""
    ip = from_ip()
    for _ in range(5):
        assert (await client.post("/test-only/limited/jwt", headers=ip)).status_code == 401
    owner = await register(client)
    assert (
        await client.post("/test-only/limited/jwt", headers={**bearer(owner["accessToken"]), **ip})
    ).status_code == 200


async def test_ip_limit_is_per_path(client: AsyncTestClient, ticks: Ticks) -> None:
    ip = from_ip()
    a = [(await client.get("/test-only/limited/public/a", headers=ip)).status_code for _ in range(3)]
    assert a == [200, 200, 429]
    assert (await client.get("/test-only/limited/public/b", headers=ip)).status_code == 200


def test_window_slides_and_refusals_do_not_count() -> None:
    ticks = Ticks()
    limiter = SlidingWindowLimiter(clock=ticks)
    limit = RateLimit("unit", 2, 60, "x")
    assert limiter.hit(limit, "ip:a", "/p") is None
    ticks.now += 30
    assert limiter.hit(limit, "ip:a", "/p") is None
    assert limiter.hit(limit, "ip:a", "/p") == 30
    ticks.now += 29.5
    assert limiter.hit(limit, "ip:a", "/p") == 1  # refused attempts did not extend the wait
    ticks.now += 0.5
    assert limiter.hit(limit, "ip:a", "/p") is None  # the first hit left the window
    assert limiter.hit(limit, "ip:a", "/p") == 30


def test_sweep_forgets_idle_callers() -> None:
    ticks = Ticks()
    limiter = SlidingWindowLimiter(clock=ticks, sweep_every=3)
    limiter.hit(LOGIN, "ip:a", "/login")
    limiter.hit(LOGIN, "ip:b", "/login")
    ticks.now += 61
    limiter.hit(LOGIN, "ip:c", "/login")  # third call sweeps a and b
    assert set(limiter._hits) == {("login", "ip:c", "/login")}


class _Conn:
    def __init__(self, peer: str, forwarded: str | None) -> None:
        self.client = type("Address", (), {"host": peer})()
        self.headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (0, "1.1.1.1", "9.9.9.9"),  # no trusted proxy: the header is the client's to forge
        (1, "1.1.1.1", "1.1.1.1"),
        (1, "6.6.6.6, 1.1.1.1", "1.1.1.1"),  # a forged left entry is ignored
        (2, "6.6.6.6, 1.1.1.1, 2.2.2.2", "1.1.1.1"),
        (2, "1.1.1.1", "1.1.1.1"),  # fewer hops than configured: the leftmost known
        (1, None, "9.9.9.9"),
    ],
)
def test_client_ip_trusts_exactly_the_configured_hops(trusted: int, forwarded: str | None, expected: str) -> None:
    assert client_ip(_Conn("9.9.9.9", forwarded), trusted) == expected  # type: ignore[arg-type]


async def test_manual_trades_and_closes_share_one_budget_per_user(client: AsyncTestClient, ticks: Ticks) -> None:
    """60 a minute per user across buying and closing (api.md §25.5 #21: the reference limited neither), counted
    per user whatever the IP or path, and refused before the request is looked at."""
    trader, other = await register(client), await register(client)
    unknown_agent = "00000000-0000-4000-8000-000000000000"

    def attempt(session: dict, i: int):
        if i % 2:
            url = f"/api/v1/agent-positions/{unknown_agent}/00000000-0000-4000-8000-{i:012d}/close"
            return client.post(url, json={}, headers={**bearer(session["accessToken"]), **from_ip()})
        body = {"agentId": unknown_agent, "tokenAddress": "So11111111111111111111111111111111111111112"}
        return client.post("/api/v1/trades/execute", json=body, headers={**bearer(session["accessToken"]), **from_ip()})

    statuses = [(await attempt(trader, i)).status_code for i in range(60)]
    assert 429 not in statuses and set(statuses) <= {400, 404}
    refused = await attempt(trader, 60)
    assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
    assert refused.headers["Retry-After"] == "60" and refused.json()["retryAfter"] == 60
    assert (await attempt(other, 0)).status_code != 429  # another user's budget is untouched

    ticks.now += 60.5  # the window slid past the first requests
    assert (await attempt(trader, 1)).status_code != 429


async def test_a_flood_of_invalid_credentials_is_cut_off_per_ip(
    client: AsyncTestClient, ticks: Ticks, settings
) -> None:
    """30 credentials failing verification a minute per client IP (api.md §25.5); past that, any credential from
    that IP is refused before it is verified. Expired and missing credentials are not guesses and never count."""
    session = await register(client)
    good = bearer(session["accessToken"])
    guesser, neighbour, stale_client = from_ip(), from_ip(), from_ip()

    forged = {"Authorization": f"Bearer {session['accessToken']}x", **guesser}  # a bad signature counts
    assert (await client.get("/api/v1/auth/me", headers=forged)).status_code == 401
    for _ in range(29):  # and so does an unknown API key
        guess = {"X-API-Key": f"nex_{secrets.token_urlsafe(24)}", **guesser}
        assert (await client.get("/api/v1/agents", headers=guess)).status_code == 401
    cut_off = await client.get("/api/v1/auth/me", headers={**good, **guesser})  # even a valid token, from there
    assert cut_off.status_code == 429 and cut_off.json()["code"] == "RATE_LIMITED"
    assert int(cut_off.headers["Retry-After"]) >= 1
    assert (await client.get("/api/v1/auth/me", headers={**good, **neighbour})).status_code == 200

    expired = issue_access_token(
        settings.jwt_secret, uuid.UUID(session["user"]["id"]), session["user"]["email"],
        now=datetime.now(UTC) - timedelta(hours=1),
    )  # fmt: skip
    for _ in range(40):
        stale = await client.get("/api/v1/auth/me", headers={**bearer(expired), **stale_client})
        assert stale.status_code == 401 and stale.json()["error"] == "Token expired"
        assert (await client.get("/api/v1/auth/me", headers=stale_client)).status_code == 401  # no credential
    assert (await client.get("/api/v1/auth/me", headers={**good, **stale_client})).status_code == 200

    ticks.now += 61  # the guesses left the window
    assert (await client.get("/api/v1/auth/me", headers={**good, **guesser})).status_code == 200
