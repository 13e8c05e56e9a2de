"""Login timing parity: does an unknown e-mail answer as slowly as a wrong password? (issue 3)

    uv run python bench/login_timing.py                  # production argon2 cost, ~1 min on 2 cores
    uv run python bench/login_timing.py --samples 40

Runs the real app in-process (Litestar test client, no network) on a throwaway database with the default
argon2id cost, and alternates four kinds of failed login, each from its own client IP and e-mail so neither
the rate limit nor the lockout interferes:

* wrong password for an existing account (argon2id verify);
* unknown e-mail (the dummy argon2id verify);
* existing account without a password hash (dummy verify);
* wrong password for an account imported with a bcrypt-12 hash (bcrypt verify; such hashes become argon2id
  at the next successful login, so this case ends once its owner logs in).

Prints the median and p90 latency of each and the ratio of each median to the wrong-password median. Parity
means the unknown-e-mail ratio is close to 1 (the tests check the mechanism by counting verifies instead,
because wall-clock assertions are flaky).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import bcrypt
from litestar.testing import AsyncTestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DEFAULT_ADMIN_URL, create_database, drop_database, migrate

from app.api.app import create_app
from app.auth.passwords import PasswordHasher
from app.config import load_settings

PASSWORD = "Correct-Horse-9"
WRONG = "Wrong-Password-1"


async def populate(url: str, count: int) -> dict[str, list[str]]:
    hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)
    argon_hash = await hasher.hash(PASSWORD)
    bcrypt_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    emails: dict[str, list[str]] = {"wrong password": [], "unknown e-mail": [], "no password hash": [], "bcrypt-12": []}
    conn = await asyncpg.connect(url)
    try:
        for n in range(count):
            for kind, stored in (
                ("wrong password", argon_hash),
                ("no password hash", None),
                ("bcrypt-12", bcrypt_hash),
            ):
                email = f"{kind.replace(' ', '-')}-{n}-{uuid.uuid4().hex[:6]}@example.com"
                await conn.execute("INSERT INTO users (email, password_hash) VALUES ($1, $2)", email, stored)
                emails[kind].append(email)
            emails["unknown e-mail"].append(f"nobody-{n}-{uuid.uuid4().hex[:6]}@example.com")
    finally:
        await conn.close()
    return emails


async def run(args: argparse.Namespace) -> None:
    url = await create_database(args.admin_url)
    try:
        await asyncio.to_thread(migrate, url)
        emails = await populate(url, args.samples)
        settings = load_settings({"APP_ENV": "test", "LOG_LEVEL": "WARNING", "TRUSTED_PROXIES": "1"})
        timings: dict[str, list[float]] = {kind: [] for kind in emails}
        async with AsyncTestClient(app=create_app(settings, url)) as client:
            n = 0
            for index in range(args.samples):
                for kind, addresses in emails.items():
                    n += 1
                    headers = {"X-Forwarded-For": f"10.9.{n // 256 % 256}.{n % 256}"}
                    body = {"email": addresses[index], "password": WRONG}
                    started = time.perf_counter()
                    response = await client.post("/api/v1/auth/login", json=body, headers=headers)
                    elapsed = time.perf_counter() - started
                    if response.status_code != 401:
                        raise RuntimeError(f"{kind}: {response.status_code} {response.text}")
                    if index >= args.warmup:
                        timings[kind].append(elapsed)
        base = statistics.median(timings["wrong password"])
        print(f"{'failed login':<22} {'median ms':>10} {'p90 ms':>8} {'x wrong password':>17}")
        for kind, values in timings.items():
            median = statistics.median(values)
            p90 = statistics.quantiles(values, n=10)[-1]
            print(f"{kind:<22} {median * 1000:>10.1f} {p90 * 1000:>8.1f} {median / base:>17.2f}")
    finally:
        await drop_database(args.admin_url, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--samples", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
