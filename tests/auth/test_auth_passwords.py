"""Hashing: argon2id for new hashes, imported bcrypt hashes verified then upgraded on login, and the unknown
e-mail path spending one verify like a real account (counted, not timed)."""

from __future__ import annotations

import bcrypt
from litestar.testing import AsyncTestClient

from app.auth.passwords import PasswordHasher, is_common_password, policy_violation
from tests.auth.helpers import PASSWORD, hash_ops, login, new_email, register
from tests.factories import create_user


async def test_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id(client: AsyncTestClient, pool) -> None:
    email = new_email()
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    user_id = await create_user(pool, email=email, password_hash=legacy)

    bcrypt_before = hash_ops("verify", "bcrypt")
    assert (await login(client, email)).status_code == 200
    assert hash_ops("verify", "bcrypt") == bcrypt_before + 1
    upgraded = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    assert upgraded.startswith("$argon2id$")

    # From now on argon2 verifies it, and the same password still works.
    argon_before = hash_ops("verify", "argon2id")
    assert (await login(client, email)).status_code == 200
    assert hash_ops("verify", "argon2id") == argon_before + 1
    assert hash_ops("verify", "bcrypt") == bcrypt_before + 1


async def test_wrong_password_keeps_the_bcrypt_hash(client: AsyncTestClient, pool) -> None:
    email = new_email()
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    user_id = await create_user(pool, email=email, password_hash=legacy)
    assert (await login(client, email, "Not-The-One-1")).status_code == 401
    assert await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id) == legacy


async def test_bcrypt_2a_hash_of_a_long_password_matches_its_first_72_bytes(client: AsyncTestClient, pool) -> None:
    """node bcrypt (the reference) hashed only the first 72 bytes; bcrypt 5 would raise on the full password."""
    email, password = new_email(), "Long-Passphrase-1!" + "x" * 80
    legacy = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(4)).decode().replace("$2b$", "$2a$", 1)
    await create_user(pool, email=email, password_hash=legacy)
    assert (await login(client, email, password)).status_code == 200
    assert (await login(client, email, password)).status_code == 200  # and again after the argon2id upgrade


async def test_unknown_email_runs_one_dummy_verify(client: AsyncTestClient) -> None:
    dummy, argon = hash_ops("verify", "dummy"), hash_ops("verify", "argon2id")
    assert (await login(client, new_email(), "Whatever-123!")).status_code == 401
    assert hash_ops("verify", "dummy") == dummy + 1
    assert hash_ops("verify", "argon2id") == argon


async def test_account_without_password_hash_costs_the_same_as_unknown(client: AsyncTestClient, pool) -> None:
    email = new_email()
    await create_user(pool, email=email, password_hash=None)
    dummy = hash_ops("verify", "dummy")
    response = await login(client, email, "Whatever-123!")
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid email or password"
    assert hash_ops("verify", "dummy") == dummy + 1


async def test_wrong_password_runs_one_real_verify(client: AsyncTestClient) -> None:
    email = new_email()
    await register(client, email=email)
    dummy, argon = hash_ops("verify", "dummy"), hash_ops("verify", "argon2id")
    assert (await login(client, email, "Whatever-123!")).status_code == 401
    assert hash_ops("verify", "argon2id") == argon + 1
    assert hash_ops("verify", "dummy") == dummy


async def test_argon2_cost_change_rehashes_on_next_login(client: AsyncTestClient, pool) -> None:
    email = new_email()
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    user_id = await create_user(pool, email=email, password_hash=await stronger.hash(PASSWORD))
    assert (await login(client, email)).status_code == 200
    rehashed = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    assert "m=1024,t=1,p=1" in rehashed  # the configured parameters now


async def test_hasher_rejects_garbage_hashes_without_raising() -> None:
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    assert not (await hasher.verify("$2b$12$not-a-real-hash", PASSWORD)).ok
    assert not (await hasher.verify("$argon2id$garbage", PASSWORD)).ok
    assert not (await hasher.verify("plain-text", PASSWORD)).ok


def test_policy_counts_unicode_letters_and_symbols() -> None:
    assert policy_violation("Ünïcode-1") is None
    assert policy_violation("Pass word1") is None  # a space is a special character
    assert policy_violation("Passwörd1") == "Password must contain at least one special character"


def test_breached_favourites_are_refused_even_dressed_up() -> None:
    # On the list as they are, or once lower-cased and stripped of symbols at either end.
    for password in ("Password1!", "Qwerty123!", "!Iloveyou1 ", "Princess1#", "Trustno1."):
        assert is_common_password(password), password
        assert policy_violation(password) == "Password is too common: it appears on lists of breached passwords"
    assert is_common_password("PRINCESS1#")  # any case (the character rules refuse this one first)
    # Symbols inside the password are part of it: these are not on the list.
    for password in ("Pass!word1", "Correct-Horse-9", "TestPassword123!", "Qwerty123!x"):
        assert not is_common_password(password), password
    assert policy_violation("Correct-Horse-9") is None
