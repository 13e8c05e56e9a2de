"""Rows for test set-up, written with plain SQL so tests of one feature don't depend on another's API.

Shared by every test module: add functions, don't change the signatures of existing ones.
"""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal

import asyncpg

SOL_MINT = "So11111111111111111111111111111111111111112"


async def create_user(pool: asyncpg.Pool, email: str | None = None, password_hash: str | None = None) -> uuid.UUID:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    return await pool.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id", email.lower(), password_hash
    )


async def create_agent(
    pool: asyncpg.Pool, user_id: uuid.UUID, name: str = "test agent", trading_config: dict | None = None
) -> tuple[uuid.UUID, str]:
    """An agent with its simulation wallet; returns (agent_id, wallet_address)."""
    async with pool.acquire() as conn, conn.transaction():
        agent_id = await conn.fetchval(
            "INSERT INTO agents (user_id, name, trading_config) VALUES ($1, $2, $3) RETURNING id",
            user_id,
            name,
            trading_config,
        )
        wallet = "sim_" + secrets.token_hex(16)
        await conn.execute(
            "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'simulation')",
            wallet,
            agent_id,
        )
    return agent_id, wallet


async def deposit_sol(pool: asyncpg.Pool, agent_id: uuid.UUID, wallet: str, amount: Decimal | str) -> uuid.UUID:
    """A DEPOSIT row and the matching SOL balance, in one transaction (the ledger stays consistent)."""
    amount = Decimal(amount)
    async with pool.acquire() as conn, conn.transaction():
        tx_id = await conn.fetchval(
            """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                   transaction_time, input_mint, input_symbol, input_amount, input_price)
               VALUES ($1, $2, 'DEPOSIT', 0, now(), $3, 'SOL', $4, 0) RETURNING id""",
            agent_id,
            wallet,
            SOL_MINT,
            amount,
        )
        current = await conn.fetchval(
            "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2 FOR UPDATE",
            wallet,
            SOL_MINT,
        )
        new = Decimal(current or 0) + amount
        await conn.execute(
            """INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
               VALUES ($1, $2, $3, 'SOL', $4)
               ON CONFLICT (wallet_address, token_address)
               DO UPDATE SET balance = EXCLUDED.balance, last_updated = now()""",
            agent_id,
            wallet,
            SOL_MINT,
            format(new, "f"),
        )
    return tx_id


def access_headers(settings, user_id: uuid.UUID, email: str = "user@example.com") -> dict[str, str]:
    """Authorization header with a freshly minted access token for ``user_id``."""
    from app.api.auth import issue_access_token

    return {"Authorization": f"Bearer {issue_access_token(settings.jwt_secret, user_id, email)}"}
