"""Password policy and hashing: argon2id for every new hash, bcrypt hashes (imported from a Nexgent database)
still verified and flagged for re-hashing. Hashing runs in worker threads (argon2 and bcrypt release the GIL),
bounded by a semaphore so a burst of logins cannot pin every core and 64 MiB per argon2 call at once.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import os
import secrets
import string
from pathlib import Path

import argon2
import bcrypt
import msgspec

from app.metrics import PASSWORD_HASH_OPERATIONS

MIN_LENGTH = 8
MAX_LENGTH = 128
ADMIN_MIN_LENGTH = 12
# bcrypt reads at most 72 bytes of the password; the reference (node bcrypt) silently ignored the rest, so an
# imported hash of a longer password only matches those first 72 bytes. bcrypt 5 raises instead of truncating.
BCRYPT_MAX_BYTES = 72
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


# 19,646 passwords seen most often in breaches: Django's list (django/contrib/auth/common-passwords.txt.gz,
# Django 5.2, BSD-3-Clause), compiled by Royce Williams from breach corpora. Loaded on first use.
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt.gz")


@functools.cache
def _common_passwords() -> frozenset[str]:
    return frozenset(gzip.decompress(COMMON_PASSWORDS_FILE.read_bytes()).decode().split())


def is_common_password(password: str) -> bool:
    """Whether ``password`` is a breached favourite dressed up to pass the character rules: compared lower-cased,
    with symbols and spaces at either end stripped, so ``Password1!`` is ``password1``, which is on the list."""
    lowered = password.lower()
    core = lowered.strip(string.punctuation + string.whitespace)
    return lowered in _common_passwords() or core in _common_passwords()


def policy_violation(password: str, min_length: int = MIN_LENGTH) -> str | None:
    """The first rule ``password`` breaks, as a message for the client; None when it satisfies all of them."""
    if len(password) < min_length:
        return f"Password must be at least {min_length} characters long"
    if len(password) > MAX_LENGTH:
        return f"Password must be at most {MAX_LENGTH} characters long"
    if not any(c.isupper() for c in password):
        return "Password must contain at least one uppercase letter"
    if not any(c.islower() for c in password):
        return "Password must contain at least one lowercase letter"
    if not any(c.isdigit() for c in password):
        return "Password must contain at least one number"
    if all(c.isalnum() for c in password):
        return "Password must contain at least one special character"
    if is_common_password(password):
        return "Password is too common: it appears on lists of breached passwords"
    return None


def is_bcrypt_hash(stored: str) -> bool:
    return stored.startswith(BCRYPT_PREFIXES)


class Verification(msgspec.Struct, frozen=True):
    ok: bool
    needs_rehash: bool = False


class PasswordHasher:
    """argon2id with configurable cost (tests lower it); ``verify`` understands argon2 and bcrypt hashes."""

    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int, concurrency: int | None = None) -> None:
        self._argon2 = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        self._slots = asyncio.Semaphore(concurrency or max(1, os.cpu_count() or 1))
        self._dummy_hash: str | None = None

    async def _in_thread(self, fn, *args):
        async with self._slots:
            return await asyncio.to_thread(fn, *args)

    async def hash(self, password: str) -> str:
        PASSWORD_HASH_OPERATIONS.labels("hash", "argon2id").inc()
        return await self._in_thread(self._argon2.hash, password)

    async def verify(self, stored: str, password: str) -> Verification:
        if is_bcrypt_hash(stored):
            PASSWORD_HASH_OPERATIONS.labels("verify", "bcrypt").inc()
            ok = await self._in_thread(_bcrypt_matches, stored, password)
            return Verification(ok, needs_rehash=ok)
        PASSWORD_HASH_OPERATIONS.labels("verify", "argon2id").inc()
        ok = await self._in_thread(self._argon2_matches, stored, password)
        return Verification(ok, needs_rehash=ok and self._argon2.check_needs_rehash(stored))

    async def warm_up(self) -> None:
        """Create the dummy hash up front, so the first unknown e-mail costs one verify like every later one."""
        if self._dummy_hash is None:
            self._dummy_hash = await self._in_thread(self._argon2.hash, secrets.token_urlsafe(16))

    async def dummy_verify(self, password: str) -> None:
        """Spend what verifying a real account costs, for an e-mail that has no account (no timing oracle)."""
        await self.warm_up()
        PASSWORD_HASH_OPERATIONS.labels("verify", "dummy").inc()
        await self._in_thread(self._argon2_matches, self._dummy_hash, password)

    def _argon2_matches(self, stored: str, password: str) -> bool:
        try:
            return self._argon2.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False


def _bcrypt_matches(stored: str, password: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode()[:BCRYPT_MAX_BYTES], stored.encode())
    except ValueError:  # a malformed stored hash never matches
        return False
