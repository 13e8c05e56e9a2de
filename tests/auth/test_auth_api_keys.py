"""API keys: CRUD exactly as api.md §4.3, ownership (404 for others' keys), scopes enforced per route, deletion
effective on the next request, and keys imported with a bcrypt hash verified (then cached) correctly. The cache's
invalidation across processes and listener outages: test_auth_key_cache.py."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import bcrypt
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from app.api.auth import IMPLIED_SCOPES, SCOPES, scoped
from app.api.deps import PrincipalDep
from app.auth.keys import address_allowed
from app.auth.runtime import auth_runtime
from tests.auth.helpers import bearer, eventually, register
from tests.factories import create_user
from tests.in_loop import InLoopClient

KEY_FORMAT = re.compile(r"^nex_[A-Za-z0-9_-]{32}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROUTE_SCOPES = sorted(SCOPES - {"full_access"})


def _probe(scope: str):
    @get(f"/test-only/scoped/{scope}", dependencies={"principal": scoped(scope)}, sync_to_thread=False)
    def probe(principal: PrincipalDep) -> dict[str, str | None]:
        return {"userId": str(principal.user_id), "apiKeyId": str(principal.api_key_id)}

    return probe


def _register_probes(app: Litestar) -> None:
    for scope in ROUTE_SCOPES:
        app.register(_probe(scope))


@pytest.fixture(scope="module", autouse=True)
def scope_probes(client: AsyncTestClient) -> None:
    """One route per scope, guarded exactly like the resource routes, on this module's app only."""
    _register_probes(client.app)


@pytest.fixture(scope="module")
def probed_in_loop_client(in_loop_client: InLoopClient) -> InLoopClient:
    """The scope probes on this module's in-loop app, for requests that must really run concurrently."""
    _register_probes(in_loop_client.app)
    return in_loop_client


@pytest.fixture
async def owner(client: AsyncTestClient) -> dict:
    return await register(client)


async def create_key(client: AsyncTestClient, access: str, scopes: list[str], name: str = "integration"):
    return await client.post("/api/v1/api-keys", json={"name": name, "scopes": scopes}, headers=bearer(access))


async def test_create_returns_the_key_once_and_stores_only_its_sha256(client: AsyncTestClient, pool, owner) -> None:
    response = await create_key(client, owner["accessToken"], ["signals", "agents"], name="  Signal engine  ")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "key", "prefix", "scopes", "createdAt", "expiresAt", "lastUsedAt", "allowedIps"}
    assert body["expiresAt"] is None  # the reference's keys never expire, and neither do keys created without one
    assert body["allowedIps"] is None  # nor are they tied to an address
    assert KEY_FORMAT.match(body["key"])
    assert body["prefix"] == body["key"][:8]
    assert body["name"] == "Signal engine"
    assert body["scopes"] == ["signals", "agents"]
    assert ISO_MS.match(body["createdAt"])
    row = await pool.fetchrow("SELECT key_hash, key_prefix FROM api_keys WHERE id = $1::uuid", body["id"])
    assert row["key_hash"] == hashlib.sha256(body["key"].encode()).hexdigest()
    assert row["key_prefix"] == body["prefix"]

    fetched = await client.get(f"/api/v1/api-keys/{body['id']}", headers=bearer(owner["accessToken"]))
    assert fetched.status_code == 200
    assert fetched.json() == {k: v for k, v in body.items() if k != "key"}


async def test_a_key_with_an_expiry_works_until_then_and_is_refused_after(client: AsyncTestClient, pool, owner) -> None:
    access = owner["accessToken"]
    for bad, message in [("2001-01-01T00:00:00Z", "in the future"), ("next tuesday", "ISO-8601")]:
        refused = await client.post(
            "/api/v1/api-keys", json={"name": "x", "scopes": ["agents"], "expiresAt": bad}, headers=bearer(access)
        )
        assert refused.status_code == 400 and message in refused.text, refused.text

    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "expiring", "scopes": ["agents"], "expiresAt": in_an_hour.isoformat()},
        headers=bearer(access),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert ISO_MS.match(body["expiresAt"])
    assert abs(datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00")) - in_an_hour) < timedelta(seconds=1)
    listed = await client.get("/api/v1/api-keys", headers=bearer(access))
    assert [item["expiresAt"] for item in listed.json()["items"] if item["id"] == body["id"]] == [body["expiresAt"]]
    assert (await client.get("/test-only/scoped/agents", headers={"X-API-Key": body["key"]})).status_code == 200

    # Its time comes (moved by hand here): refused, whether the key was cached or not.
    await pool.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1::uuid", body["id"])
    deadline = time.monotonic() + 2
    while True:
        answer = await client.get("/test-only/scoped/agents", headers={"X-API-Key": body["key"]})
        if answer.status_code != 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert answer.status_code == 401
    assert (answer.json()["error"], answer.json()["code"]) == ("API key expired", "API_KEY_EXPIRED")


async def test_a_key_limited_to_addresses_works_only_from_them(client: AsyncTestClient, owner) -> None:
    access = owner["accessToken"]
    for bad, message in [
        ([], "1 to 50"),
        (["10.0.0.1"] * 51, "1 to 50"),
        (["not-an-ip"], "Not an IP address or network: 'not-an-ip'"),
        (["10.0.0.0/33"], "Not an IP address or network"),
    ]:
        refused = await client.post(
            "/api/v1/api-keys", json={"name": "x", "scopes": ["agents"], "allowedIps": bad}, headers=bearer(access)
        )
        assert refused.status_code == 400 and message in refused.text, refused.text

    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "tv", "scopes": ["agents"], "allowedIps": ["52.89.214.238", " 10.20.0.0/16", "2001:db8::/32"]},
        headers=bearer(access),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["allowedIps"] == ["52.89.214.238/32", "10.20.0.0/16", "2001:db8::/32"]
    fetched = await client.get(f"/api/v1/api-keys/{body['id']}", headers=bearer(access))
    assert fetched.json()["allowedIps"] == body["allowedIps"]

    async def status_from(address: str) -> tuple[int, str | None]:
        answer = await client.get(
            "/test-only/scoped/agents", headers={"X-API-Key": body["key"], "X-Forwarded-For": address}
        )
        return answer.status_code, answer.json().get("code") if answer.status_code != 200 else None

    # Twice each: the second answer comes from the verified-key cache, which must check the address too.
    for _ in range(2):
        assert await status_from("52.89.214.238") == (200, None)
        assert await status_from("10.20.3.4") == (200, None)
        assert await status_from("::ffff:10.20.9.9") == (200, None)  # IPv4 seen through a dual-stack socket
        assert await status_from("2001:db8:1::5") == (200, None)
        assert await status_from("10.21.0.1") == (403, "IP_NOT_ALLOWED")
        assert await status_from("2001:db9::1") == (403, "IP_NOT_ALLOWED")


def test_address_allowed_reads_addresses_it_cannot_parse_as_outside() -> None:
    assert address_allowed("192.0.2.7", ["192.0.2.0/24"])
    assert not address_allowed("testclient", ["0.0.0.0/0"])
    assert not address_allowed("", ["0.0.0.0/0"])
    assert address_allowed("::1", ["::1/128"]) and not address_allowed("::1", ["127.0.0.1/32"])


async def test_list_is_newest_first_inside_items(client: AsyncTestClient, owner) -> None:
    ids = [(await create_key(client, owner["accessToken"], ["history"], name=f"k{i}")).json()["id"] for i in range(3)]
    response = await client.get("/api/v1/api-keys", headers=bearer(owner["accessToken"]))
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["id"] for item in items] == ids[::-1]
    assert all("key" not in item for item in items)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["admin"]}, "scopes"),
        ({"name": "x", "scopes": ["signals", "signals:delete"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "", "scopes": ["signals"]}, "name"),
        ({"name": "   ", "scopes": ["signals"]}, "name"),
        ({"name": "x" * 101, "scopes": ["signals"]}, "name"),
    ],
)
async def test_invalid_create_bodies_are_400(client: AsyncTestClient, owner, body: dict, field: str) -> None:
    response = await client.post("/api/v1/api-keys", json=body, headers=bearer(owner["accessToken"]))
    assert response.status_code == 400
    assert response.json()["details"]["errors"][0]["field"] == field


async def test_unknown_scope_error_names_it(client: AsyncTestClient, owner) -> None:
    response = await create_key(client, owner["accessToken"], ["agents", "wallets"])
    assert "wallets" in response.json()["error"]


async def test_duplicate_scopes_collapse(client: AsyncTestClient, owner) -> None:
    response = await create_key(client, owner["accessToken"], ["agents", "agents", "signals"])
    assert response.json()["scopes"] == ["agents", "signals"]


async def test_other_users_keys_are_404_and_bad_ids_400(client: AsyncTestClient, owner) -> None:
    other = await register(client)
    key_id = (await create_key(client, owner["accessToken"], ["agents"])).json()["id"]
    for method in ("GET", "DELETE"):
        foreign = await client.request(method, f"/api/v1/api-keys/{key_id}", headers=bearer(other["accessToken"]))
        assert (foreign.status_code, foreign.json()["error"]) == (404, "API key not found")
        missing = await client.request(method, f"/api/v1/api-keys/{uuid.uuid4()}", headers=bearer(owner["accessToken"]))
        assert missing.status_code == 404
        malformed = await client.request(method, "/api/v1/api-keys/not-a-uuid", headers=bearer(owner["accessToken"]))
        assert (malformed.status_code, malformed.json()["error"]) == (400, "Invalid API key ID format")
    listed = await client.get("/api/v1/api-keys", headers=bearer(other["accessToken"]))
    assert key_id not in [item["id"] for item in listed.json()["items"]]
    # The owner's key survived the other user's delete attempt.
    assert (await client.get(f"/api/v1/api-keys/{key_id}", headers=bearer(owner["accessToken"]))).status_code == 200


@pytest.mark.parametrize("scope", ROUTE_SCOPES)
async def test_each_scope_is_enforced(client: AsyncTestClient, owner, scope: str) -> None:
    holder = (await create_key(client, owner["accessToken"], [scope])).json()["key"]
    others = [s for s in ROUTE_SCOPES if s != scope and scope not in IMPLIED_SCOPES.get(s, ())]
    lacking = (await create_key(client, owner["accessToken"], others)).json()["key"]

    allowed = await client.get(f"/test-only/scoped/{scope}", headers={"X-API-Key": holder})
    assert allowed.status_code == 200
    assert allowed.json()["userId"] == owner["user"]["id"]

    denied = await client.get(f"/test-only/scoped/{scope}", headers={"X-API-Key": lacking})
    assert denied.status_code == 403
    assert denied.json()["error"] == f"API key missing required scope: {scope}"


async def test_an_ingest_only_key_sends_signals_and_reads_nothing(client: AsyncTestClient, owner) -> None:
    ingest = (await create_key(client, owner["accessToken"], ["signals:write"])).json()["key"]
    reader = (await create_key(client, owner["accessToken"], ["signals"])).json()["key"]
    signal = {
        "tokenAddress": "So11111111111111111111111111111111111111112",
        "signalType": "ingest",
        "signalStrength": 3,
    }

    sent = await client.post("/api/v1/trading-signals", json=signal, headers={"X-API-Key": ingest})
    assert sent.status_code == 201, sent.text
    signal_id = sent.json()["id"]
    for method, path in [
        ("GET", "/api/v1/trading-signals"),
        ("GET", f"/api/v1/trading-signals/{signal_id}"),
        ("DELETE", f"/api/v1/trading-signals/{signal_id}"),
        ("GET", "/api/v1/trading-signals/export"),
        ("GET", "/api/v1/agents"),
    ]:
        refused = await client.request(method, path, headers={"X-API-Key": ingest})
        assert refused.status_code == 403, (method, path, refused.text)
    # The reference's `signals` scope keeps sending (it implies signals:write) and reading.
    signal["signalType"] = "ingest-2"
    assert (await client.post("/api/v1/trading-signals", json=signal, headers={"X-API-Key": reader})).status_code == 201
    assert (await client.get(f"/api/v1/trading-signals/{signal_id}", headers={"X-API-Key": reader})).status_code == 200


async def test_full_access_and_jwt_pass_every_scope(client: AsyncTestClient, owner) -> None:
    full = (await create_key(client, owner["accessToken"], ["full_access"])).json()["key"]
    for scope in ROUTE_SCOPES:
        assert (await client.get(f"/test-only/scoped/{scope}", headers={"X-API-Key": full})).status_code == 200
        as_bearer = await client.get(f"/test-only/scoped/{scope}", headers=bearer(full))
        assert as_bearer.status_code == 200
        with_jwt = await client.get(f"/test-only/scoped/{scope}", headers=bearer(owner["accessToken"]))
        assert (with_jwt.status_code, with_jwt.json()["apiKeyId"]) == (200, "None")


async def test_unknown_and_malformed_keys(client: AsyncTestClient, owner) -> None:
    unknown = await client.get("/test-only/scoped/agents", headers={"X-API-Key": "nex_" + "A" * 32})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "Invalid API key")
    # A value that does not look like a key is ignored in X-API-Key, then Authorization decides.
    ignored = await client.get("/test-only/scoped/agents", headers={"X-API-Key": "short"})
    assert (ignored.status_code, ignored.json()["error"]) == (401, "Authorization required")
    # X-API-Key wins over Authorization.
    key = (await create_key(client, owner["accessToken"], ["signals"])).json()["key"]
    both = await client.get(
        "/test-only/scoped/agents", headers={"X-API-Key": key, "Authorization": f"Bearer {owner['accessToken']}"}
    )
    assert both.status_code == 403


async def test_deleted_key_is_refused_on_the_next_request(client: AsyncTestClient, owner) -> None:
    created = (await create_key(client, owner["accessToken"], ["agents"])).json()
    assert (await client.get("/test-only/scoped/agents", headers={"X-API-Key": created["key"]})).status_code == 200
    deleted = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=bearer(owner["accessToken"]))
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True, "message": "API key deleted successfully"}
    after = await client.get("/test-only/scoped/agents", headers={"X-API-Key": created["key"]})
    assert (after.status_code, after.json()["error"]) == (401, "Invalid API key")
    again = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=bearer(owner["accessToken"]))
    assert again.status_code == 404


async def _imported_key(pool, prefix_length: int, scopes: list[str], cost: int = 4) -> tuple[str, uuid.UUID]:
    """A key as a Nexgent database documented it: bcrypt hash in key_hash, a display prefix in key_prefix."""
    raw = "nex_" + uuid.uuid4().hex[:32]
    user_id = await create_user(pool)
    key_id = await pool.fetchval(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'imported', $2, $3, $4) "
        "RETURNING id",
        user_id,
        bcrypt.hashpw(raw.encode(), bcrypt.gensalt(cost)).decode(),
        raw[:prefix_length],
        scopes,
    )
    return raw, key_id


@pytest.mark.parametrize("prefix_length", [8, 12])
async def test_bcrypt_imported_key_is_verified_then_cached(client: AsyncTestClient, pool, prefix_length: int) -> None:
    raw, _ = await _imported_key(pool, prefix_length, ["agents"])
    verifier = auth_runtime(client.app.state).api_keys
    checks = verifier.bcrypt_checks
    for _ in range(3):
        assert (await client.get("/test-only/scoped/agents", headers={"X-API-Key": raw})).status_code == 200
    assert verifier.bcrypt_checks == checks + 1  # one bcrypt, then the cache
    assert (await client.get("/test-only/scoped/signals", headers={"X-API-Key": raw})).status_code == 403
    wrong = raw[:-1] + ("x" if raw[-1] != "x" else "y")  # same prefix, wrong secret
    assert (await client.get("/test-only/scoped/agents", headers={"X-API-Key": wrong})).status_code == 401


async def _refused_within(client: AsyncTestClient, raw: str, within_s: float = 2.0) -> bool:
    """A change made by another process (plain SQL here) reaches this app's cache by NOTIFY, not synchronously."""
    deadline = time.monotonic() + within_s
    while (await client.get("/test-only/scoped/agents", headers={"X-API-Key": raw})).status_code == 200:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_cached_imported_key_dies_when_its_row_is_deleted_elsewhere(client: AsyncTestClient, pool) -> None:
    raw, key_id = await _imported_key(pool, 8, ["agents"])
    for _ in range(2):
        assert (await client.get("/test-only/scoped/agents", headers={"X-API-Key": raw})).status_code == 200
    await pool.execute("DELETE FROM api_keys WHERE id = $1", key_id)
    assert await _refused_within(client, raw)


async def test_cached_imported_key_dies_when_its_hash_is_replaced(client: AsyncTestClient, pool) -> None:
    raw, key_id = await _imported_key(pool, 8, ["agents"])
    for _ in range(2):
        assert (await client.get("/test-only/scoped/agents", headers={"X-API-Key": raw})).status_code == 200
    other = bcrypt.hashpw(b"nex_something-else-entirely-000000", bcrypt.gensalt(4)).decode()
    await pool.execute("UPDATE api_keys SET key_hash = $2 WHERE id = $1", key_id, other)
    assert await _refused_within(client, raw)


async def test_deleting_an_imported_key_through_the_api_revokes_it(client: AsyncTestClient, pool) -> None:
    raw = "nex_" + uuid.uuid4().hex[:32]
    session = await register(client)
    key_id = await pool.fetchval(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1::uuid, 'imported', $2, $3, "
        "'{agents}') RETURNING id",
        session["user"]["id"],
        bcrypt.hashpw(raw.encode(), bcrypt.gensalt(4)).decode(),
        raw[:8],
    )
    assert (await client.get("/test-only/scoped/agents", headers={"X-API-Key": raw})).status_code == 200
    await client.delete(f"/api/v1/api-keys/{key_id}", headers=bearer(session["accessToken"]))
    assert (await client.get("/test-only/scoped/agents", headers={"X-API-Key": raw})).status_code == 401


async def test_concurrent_first_uses_of_an_imported_key_share_one_bcrypt(
    probed_in_loop_client: InLoopClient, pool
) -> None:
    # Cost 10 (~60 ms): every request is past its lookup long before the first bcrypt finishes.
    raw, _ = await _imported_key(pool, 8, ["agents"], cost=10)
    verifier = auth_runtime(probed_in_loop_client.app.state).api_keys
    checks = verifier.bcrypt_checks
    responses = await asyncio.gather(
        *(probed_in_loop_client.get("/test-only/scoped/agents", headers={"X-API-Key": raw}) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [200] * 5
    assert verifier.bcrypt_checks == checks + 1


async def test_last_use_is_recorded_at_most_once_a_minute_without_evicting_the_key(
    probed_in_loop_client: InLoopClient, pool
) -> None:
    http = probed_in_loop_client
    owner = await register(http)
    created = await create_key(http, owner["accessToken"], ["agents"])
    key, key_id = created.json()["key"], created.json()["id"]
    assert created.json()["lastUsedAt"] is None
    verifier = auth_runtime(http.app.state).api_keys
    listener = http.app.state.revocations
    assert await eventually(lambda: verifier.live, within_s=10)

    notices = listener.notices
    assert (await http.get("/test-only/scoped/agents", headers={"X-API-Key": key})).status_code == 200

    async def recorded():
        return await pool.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1::uuid", key_id)

    first = None
    for _ in range(100):
        if (first := await recorded()) is not None:
            break
        await asyncio.sleep(0.02)
    assert first is not None, "the use was never recorded"
    shown = (await http.get(f"/api/v1/api-keys/{key_id}", headers=bearer(owner["accessToken"]))).json()["lastUsedAt"]
    assert ISO_MS.match(shown)

    hits = verifier.cache_hits
    for _ in range(3):
        assert (await http.get("/test-only/scoped/agents", headers={"X-API-Key": key})).status_code == 200
    await asyncio.sleep(0.2)
    assert verifier.cache_hits == hits + 3  # the timestamp write evicted nothing
    assert listener.notices == notices  # and sent no revocation notice
    assert await recorded() == first  # once a minute, not once a request
