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


async def open_position_sql(
    pool: asyncpg.Pool,
    agent_id: uuid.UUID,
    wallet: str,
    token: str,
    *,
    purchase_price: Decimal | str,
    amount: Decimal | str,
    symbol: str = "TKN",
    stop_loss_percentage: Decimal | str | None = None,
    peak_price: Decimal | str | None = None,
    lowest_price: Decimal | str | None = None,
    created_at: object = None,
) -> uuid.UUID:
    """An open position bought for ``purchase_price × amount`` SOL, written with plain SQL as the buy would:
    a SWAP row SOL → token, the SOL debit and token credit, and the position row. The wallet must hold the
    SOL (``deposit_sol``). Returns the position id."""
    price, tokens = Decimal(purchase_price), Decimal(amount)
    cost = (price * tokens).quantize(Decimal("1e-8"))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", agent_id)
        tx_id = await conn.fetchval(
            """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                   transaction_time, input_mint, input_symbol, input_amount, input_price, output_mint, output_symbol,
                   output_amount, output_price, fees)
               VALUES ($1, $2, 'SWAP', 0, now(), $3, 'SOL', $4, 1, $5, $6, $7, $8, 0) RETURNING id""",
            agent_id,
            wallet,
            SOL_MINT,
            cost,
            token,
            symbol,
            tokens,
            price,
        )
        balances = dict(
            await conn.fetch(
                """SELECT token_address, balance FROM agent_balances
                   WHERE wallet_address = $1 AND token_address = ANY($2::text[]) ORDER BY token_address FOR UPDATE""",
                wallet,
                [SOL_MINT, token],
            )
        )
        sol = Decimal(balances.get(SOL_MINT, "0")) - cost
        if sol < 0:
            raise ValueError("open_position_sql: deposit SOL first")
        for mint, sym, value in ((SOL_MINT, "SOL", sol), (token, symbol, Decimal(balances.get(token, "0")) + tokens)):
            await conn.execute(
                """INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (wallet_address, token_address)
                   DO UPDATE SET balance = EXCLUDED.balance, last_updated = now()""",
                agent_id,
                wallet,
                mint,
                sym,
                format(value.normalize(), "f") if value else "0",
            )
        return await conn.fetchval(
            """INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol,
                   purchase_transaction_id, purchase_price, purchase_amount, total_invested_sol,
                   current_stop_loss_percentage, peak_price, lowest_price, last_stop_loss_update, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                       CASE WHEN $9::numeric IS NULL THEN NULL ELSE now() END, coalesce($12::timestamptz, now()))
               RETURNING id""",
            agent_id,
            wallet,
            token,
            symbol,
            tx_id,
            price,
            tokens,
            cost,
            None if stop_loss_percentage is None else Decimal(stop_loss_percentage),
            None if peak_price is None else Decimal(peak_price),
            Decimal(lowest_price) if lowest_price is not None else price,
            created_at,
        )
