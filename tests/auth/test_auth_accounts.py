"""Register, login, me: reference field names, e-mail normalisation, password policy, registration switch."""

from __future__ import annotations

import re

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.api.app import create_app
from app.config import Settings
from tests.auth.helpers import PASSWORD, bearer, from_ip, login, new_email, register

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_register_returns_tokens_and_user_in_reference_shape(client: AsyncTestClient, pool) -> None:
    email = new_email()
    body = await register(client, email=f"  {email.upper()}  ")
    assert set(body) == {"accessToken", "refreshToken", "user"}
    assert set(body["user"]) == {"id", "email", "createdAt"}
    assert body["user"]["email"] == email  # trimmed and lower-cased
    assert ISO_MS.match(body["user"]["createdAt"])
    stored = await pool.fetchrow("SELECT email, password_hash FROM users WHERE id = $1::uuid", body["user"]["id"])
    assert stored["email"] == email
    assert stored["password_hash"].startswith("$argon2id$")

    me = await client.get("/api/v1/auth/me", headers=bearer(body["accessToken"]))
    assert me.status_code == 200
    assert me.json() == body["user"]


async def test_login_normalises_the_email_and_answers_like_register(client: AsyncTestClient) -> None:
    email = new_email()
    registered = await register(client, email=email)
    response = await login(client, f" {email.upper()} ")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == registered["user"]
    assert body["accessToken"] != registered["accessToken"]
    me = await client.get("/api/v1/auth/me", headers=bearer(body["accessToken"]))
    assert me.json()["email"] == email


async def test_wrong_password_and_unknown_email_get_the_same_answer(client: AsyncTestClient) -> None:
    email = new_email()
    await register(client, email=email)
    wrong = await login(client, email, "Wrong-Password-1")
    unknown = await login(client, new_email(), "Wrong-Password-1")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": "Invalid email or password",
            "code": "AUTHENTICATION_ERROR",
            "details": None,
        }
    )


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Aa1!aaa", "Password must be at least 8 characters long"),
        ("Aa1!" + "a" * 125, "Password must be at most 128 characters long"),
        ("aaaa1!aa", "Password must contain at least one uppercase letter"),
        ("AAAA1!AA", "Password must contain at least one lowercase letter"),
        ("Aaaaa!aa", "Password must contain at least one number"),
        ("Aaaaa1aa", "Password must contain at least one special character"),
        ("Password1!", "Password is too common: it appears on lists of breached passwords"),
    ],
)
async def test_password_policy_names_the_failed_rule(client: AsyncTestClient, password: str, rule: str) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": new_email(), "password": password}, headers=from_ip()
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == rule
    assert body["code"] == "VALIDATION_ERROR"
    assert body["details"] == {"errors": [{"field": "password", "message": rule}]}


async def test_policy_accepts_the_boundaries(client: AsyncTestClient) -> None:
    await register(client, password="Aa1!aaaa")  # exactly 8
    await register(client, password="Aa1!" + "a" * 124)  # exactly 128


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "a b@example.com", "@example.com", "x" * 250 + "@ex.com"])
async def test_invalid_email_is_a_400_naming_the_field(client: AsyncTestClient, email: str) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}, headers=from_ip()
    )
    assert response.status_code == 400
    assert response.json()["details"]["errors"][0]["field"] == "email"


async def test_duplicate_email_in_any_case_is_refused(client: AsyncTestClient, pool) -> None:
    email = new_email()
    await register(client, email=email)
    response = await client.post(
        "/api/v1/auth/register", json={"email": email.upper(), "password": "Other-Pass-42"}, headers=from_ip()
    )
    assert response.status_code == 409
    assert response.json()["code"] == "CONFLICT"
    assert await pool.fetchval("SELECT count(*) FROM users WHERE lower(email) = $1", email) == 1
    # The original password still works: nothing was overwritten.
    assert (await login(client, email)).status_code == 200


async def test_bad_bodies_are_400_never_500(client: AsyncTestClient) -> None:
    for content in (b"{not json", b"[]", b'{"email": 5, "password": "x"}', b'{"email": "a@b.co"}'):
        response = await client.post(
            "/api/v1/auth/login", content=content, headers={"content-type": "application/json", **from_ip()}
        )
        assert response.status_code == 400, (content, response.text)
    empty_password = await login(client, new_email(), "")
    assert empty_password.status_code == 400


async def test_registration_can_be_switched_off(settings: Settings, database_url: str) -> None:
    closed = msgspec.structs.replace(settings, registration_enabled=False)
    async with AsyncTestClient(app=create_app(closed, database_url)) as client:
        response = await client.post("/api/v1/auth/register", json={"email": new_email(), "password": PASSWORD})
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"


async def test_me_answers_404_when_the_account_is_gone(client: AsyncTestClient, pool) -> None:
    body = await register(client)
    await pool.execute("DELETE FROM users WHERE id = $1::uuid", body["user"]["id"])
    response = await client.get("/api/v1/auth/me", headers=bearer(body["accessToken"]))
    assert response.status_code == 404
    assert response.json()["error"] == "User not found"
