"""Tokens: refresh rotation with reuse detection, type confusion both ways, logout revocation, lifetimes,
locked accounts refused at refresh, and API keys never reaching JWT-only routes."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from litestar.testing import AsyncTestClient

from app.api.auth import issue_access_token
from app.auth.tokens import AUDIENCE, ISSUER, TokenError, read_token
from tests.auth.helpers import bearer, from_ip, login, new_email, register


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def do_refresh(client: AsyncTestClient, token: str):
    return await client.post("/api/v1/auth/refresh", json={"refreshToken": token}, headers=from_ip())


async def me(client: AsyncTestClient, access: str):
    return await client.get("/api/v1/auth/me", headers=bearer(access))


async def test_token_claims_and_lifetimes(client: AsyncTestClient) -> None:
    email = new_email()
    session = await register(client, email=email)
    access, refresh = claims(session["accessToken"]), claims(session["refreshToken"])
    assert access["type"] == "access" and refresh["type"] == "refresh"
    assert access["exp"] - access["iat"] == 15 * 60
    assert refresh["exp"] - refresh["iat"] in (24 * 3600, 24 * 3600 - 1)
    assert access["sid"] == refresh["sid"]
    assert (access["iss"], access["aud"]) == (ISSUER, AUDIENCE)
    assert {"userId", "email", "jti"} <= set(access)

    remembered = (await login(client, email, rememberMe=True)).json()
    lifetime = claims(remembered["refreshToken"])["exp"] - claims(remembered["refreshToken"])["iat"]
    assert lifetime in (30 * 86400, 30 * 86400 - 1)


async def test_refresh_rotates_and_keeps_the_session_expiry(client: AsyncTestClient) -> None:
    session = await register(client)
    response = await do_refresh(client, session["refreshToken"])
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert set(rotated) == {"accessToken", "refreshToken"}
    assert rotated["refreshToken"] != session["refreshToken"]
    assert claims(rotated["refreshToken"])["exp"] == claims(session["refreshToken"])["exp"]
    assert (await me(client, rotated["accessToken"])).status_code == 200
    # The rotated token works in turn.
    assert (await do_refresh(client, rotated["refreshToken"])).status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client: AsyncTestClient, pool) -> None:
    session = await register(client)
    first = (await do_refresh(client, session["refreshToken"])).json()
    second = (await do_refresh(client, first["refreshToken"])).json()

    replay = await do_refresh(client, session["refreshToken"])  # the stolen/old token comes back
    assert replay.status_code == 401
    assert replay.json()["error"] == "Refresh token has been revoked"
    assert replay.json()["code"] == "REFRESH_TOKEN_REUSED"

    # Every token of the family is dead now: the newest refresh token and the access tokens minted from it.
    assert (await do_refresh(client, second["refreshToken"])).status_code == 401
    for access in (session["accessToken"], first["accessToken"], second["accessToken"]):
        response = await me(client, access)
        assert response.status_code == 401
        assert response.json()["error"] == "Token has been revoked"
    sid = claims(session["refreshToken"])["sid"]
    assert await pool.fetchval("SELECT revoked_reason FROM auth_sessions WHERE id = $1::uuid", sid) == "refresh_reuse"


async def test_reuse_in_one_session_leaves_other_sessions_alone(client: AsyncTestClient) -> None:
    email = new_email()
    one = await register(client, email=email)
    other = (await login(client, email)).json()
    await do_refresh(client, one["refreshToken"])
    await do_refresh(client, one["refreshToken"])  # reuse: session one revoked
    assert (await me(client, other["accessToken"])).status_code == 200
    assert (await do_refresh(client, other["refreshToken"])).status_code == 200


async def test_token_types_are_enforced_both_ways(client: AsyncTestClient) -> None:
    session = await register(client)
    as_access = await me(client, session["refreshToken"])
    assert as_access.status_code == 401
    assert as_access.json()["error"] == "Invalid token type"
    as_refresh = await do_refresh(client, session["accessToken"])
    assert as_refresh.status_code == 401
    assert as_refresh.json()["error"] == "Invalid token type"


async def test_bad_tokens_get_the_reference_messages(client: AsyncTestClient, settings) -> None:
    session = await register(client)
    user_id = uuid.UUID(session["user"]["id"])
    expired = issue_access_token(
        settings.jwt_secret, user_id, "x@example.com", now=datetime.now(UTC) - timedelta(hours=1)
    )
    forged = issue_access_token("another-secret-0123456789-0123456789", user_id, "x@example.com")
    foreign_audience = jwt.encode({**claims(session["accessToken"]), "aud": "elsewhere"}, settings.jwt_secret)
    cases = {
        expired: "Token expired",
        forged: "Invalid token",
        foreign_audience: "Invalid token",
        "not.a.jwt": "Invalid token",
    }
    for token, message in cases.items():
        response = await me(client, token)
        assert (response.status_code, response.json()["error"]) == (401, message)
    assert (await client.get("/api/v1/auth/me")).json()["error"] == "Authorization header required"
    basic = await client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})
    assert basic.json()["error"] == "Invalid authorization header format"
    lowercase = await client.get("/api/v1/auth/me", headers={"Authorization": f"bearer {session['accessToken']}"})
    assert lowercase.status_code == 401
    garbage_refresh = await do_refresh(client, "garbage")
    assert (garbage_refresh.status_code, garbage_refresh.json()["error"]) == (401, "Invalid or expired refresh token")
    missing = await client.post("/api/v1/auth/refresh", json={}, headers=from_ip())
    assert missing.status_code == 400


async def test_logout_revokes_the_access_token_and_its_session(client: AsyncTestClient) -> None:
    session = await register(client)
    response = await client.post("/api/v1/auth/logout", headers=bearer(session["accessToken"]))
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Logged out successfully"}
    after = await me(client, session["accessToken"])
    assert (after.status_code, after.json()["error"]) == (401, "Token has been revoked")
    assert (await do_refresh(client, session["refreshToken"])).status_code == 401


async def test_logout_with_only_a_refresh_token(client: AsyncTestClient) -> None:
    """An expired access token must not prevent logging out (the reference required a live one)."""
    session = await register(client)
    response = await client.post("/api/v1/auth/logout", json={"refreshToken": session["refreshToken"]})
    assert response.status_code == 200
    assert (await do_refresh(client, session["refreshToken"])).status_code == 401
    assert (await me(client, session["accessToken"])).status_code == 401  # same session: revoked too


async def test_logout_needs_some_valid_token(client: AsyncTestClient) -> None:
    assert (await client.post("/api/v1/auth/logout")).status_code == 401
    response = await client.post("/api/v1/auth/logout", json={"refreshToken": "garbage"})
    assert response.status_code == 401
    malformed = await client.post("/api/v1/auth/logout", content=b"{oops", headers={"content-type": "application/json"})
    assert malformed.status_code == 400


async def test_logout_cannot_revoke_another_users_session(client: AsyncTestClient) -> None:
    mine, theirs = await register(client), await register(client)
    response = await client.post(
        "/api/v1/auth/logout", json={"refreshToken": theirs["refreshToken"]}, headers=bearer(mine["accessToken"])
    )
    assert response.status_code == 200
    assert (await do_refresh(client, theirs["refreshToken"])).status_code == 200
    assert (await me(client, mine["accessToken"])).status_code == 401


async def test_refresh_refuses_a_locked_account_without_burning_the_token(client: AsyncTestClient, pool) -> None:
    session = await register(client)
    user_id = uuid.UUID(session["user"]["id"])
    await pool.execute(
        "UPDATE users SET failed_login_attempts = 5, locked_until = now() + interval '10 minutes' WHERE id = $1",
        user_id,
    )
    locked = await do_refresh(client, session["refreshToken"])
    assert locked.status_code == 423
    assert 590 <= int(locked.headers["retry-after"]) <= 600
    await pool.execute("UPDATE users SET failed_login_attempts = 0, locked_until = NULL WHERE id = $1", user_id)
    assert (await do_refresh(client, session["refreshToken"])).status_code == 200


async def test_refresh_for_a_deleted_user_is_refused(client: AsyncTestClient, pool) -> None:
    session = await register(client)
    await pool.execute("DELETE FROM users WHERE id = $1::uuid", session["user"]["id"])
    assert (await do_refresh(client, session["refreshToken"])).status_code == 401


async def test_api_key_never_reaches_a_jwt_only_route(client: AsyncTestClient) -> None:
    session = await register(client)
    created = await client.post(
        "/api/v1/api-keys", json={"name": "all", "scopes": ["full_access"]}, headers=bearer(session["accessToken"])
    )
    key = created.json()["key"]
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        response = await client.get("/api/v1/api-keys", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] in ("Invalid token", "Authorization header required")


def test_remembered_access_tokens_are_rechecked_for_expiry_type_secret_and_bytes() -> None:
    """read_token remembers verified access tokens by their exact string (app.auth.tokens): a remembered token
    must still expire on time, and no other string, secret or expected type may ride on it."""
    secret, other_secret = "s" * 40, "t" * 40
    user_id = uuid.uuid4()
    almost_expired = issue_access_token(
        secret, user_id, "a@example.com", now=datetime.now(UTC) - timedelta(minutes=15) + timedelta(seconds=1)
    )
    token = issue_access_token(secret, user_id, "a@example.com", session_id=uuid.uuid4())
    for _ in range(2):  # the second read is answered from the memo
        assert read_token(secret, token, "access")["userId"] == user_id
        assert read_token(secret, almost_expired, "access")["userId"] == user_id

    first = read_token(secret, token, "access")
    first["userId"] = "changed by a caller"
    assert read_token(secret, token, "access")["userId"] == user_id  # callers get copies

    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"  # 6 significant bits
    with pytest.raises(TokenError) as refused:
        read_token(secret, tampered, "access")
    assert refused.value.reason == "invalid"
    with pytest.raises(TokenError) as refused:
        read_token(other_secret, token, "access")
    assert refused.value.reason == "invalid"
    with pytest.raises(TokenError) as refused:
        read_token(secret, token, "refresh")
    assert refused.value.reason == "type"

    time.sleep(max(0.0, claims(almost_expired)["exp"] - time.time()) + 0.05)
    with pytest.raises(TokenError) as refused:
        read_token(secret, almost_expired, "access")
    assert refused.value.reason == "expired"
