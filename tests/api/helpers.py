"""Helpers of the resource-API tests (rows are written with plain SQL via tests/factories)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from app.auth.keys import generate_api_key
from app.trading.ledger import balance_deltas, parse_balance
from tests.factories import SOL_MINT, access_headers, create_user

USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
BONK = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"


@dataclass
class User:
    id: uuid.UUID
    email: str
    headers: dict[str, str]


async def new_user(pool: asyncpg.Pool, settings: Any) -> User:
    email = f"api-{uuid.uuid4().hex[:12]}@example.com"
    user_id = await create_user(pool, email)
    return User(user_id, email, access_headers(settings, user_id, email))


async def api_key_headers(pool: asyncpg.Pool, user_id: uuid.UUID, scopes: list[str]) -> dict[str, str]:
    raw, key_hash, prefix = generate_api_key()
    await pool.execute(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'test', $2, $3, $4)",
        user_id,
        key_hash,
        prefix,
        scopes,
    )
    return {"X-API-Key": raw}


async def balance_of(pool: asyncpg.Pool, wallet: str, mint: str = SOL_MINT) -> Decimal | None:
    text = await pool.fetchval(
        "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, mint
    )
    return None if text is None else parse_balance(text)


async def assert_ledger_consistent(pool: asyncpg.Pool, wallet: str) -> None:
    """The audit invariant: every balance equals the sum of the deltas of the wallet's rows."""
    rows = await pool.fetch(
        "SELECT transaction_type::text AS t, input_mint, input_amount, output_mint, output_amount, network_fee_sol,"
        " fees FROM agent_transactions WHERE wallet_address = $1",
        wallet,
    )
    expected: dict[str, Decimal] = {}
    for r in rows:
        for mint, delta in balance_deltas(
            r["t"],
            r["input_mint"],
            r["input_amount"],
            r["output_mint"],
            r["output_amount"],
            r["network_fee_sol"],
            r["fees"],
        ).items():
            expected[mint] = expected.get(mint, Decimal(0)) + delta
    stored = {
        r["token_address"]: parse_balance(r["balance"])
        for r in await pool.fetch("SELECT token_address, balance FROM agent_balances WHERE wallet_address = $1", wallet)
    }
    for mint in set(expected) | set(stored):
        assert stored.get(mint, Decimal(0)) == expected.get(mint, Decimal(0)), (mint, stored, expected)
        assert stored.get(mint, Decimal(0)) >= 0


async def create_agent_via_api(client, user: User, name: str = "Alpha agent") -> dict[str, Any]:
    response = await client.post("/api/v1/agents", json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def sim_wallet(pool: asyncpg.Pool, agent_id: str | uuid.UUID) -> str:
    return await pool.fetchval(
        "SELECT wallet_address FROM agent_wallets WHERE agent_id = $1 AND wallet_type = 'simulation'",
        uuid.UUID(str(agent_id)),
    )
