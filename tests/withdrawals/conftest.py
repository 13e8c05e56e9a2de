"""Shared set-up of the withdrawal tests: users, funded wallets, a simulated market, the audit.

Rows are set up with plain SQL (tests/factories) or through the real trade path (app.worker.execution with a
replay market); withdrawals always go through the real HTTP route (the shared ``in_loop_client``, so concurrent
requests really overlap and the in-loop fake chain can answer the app) or the real service.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from app.audit import run_audit
from app.auth.keys import generate_api_key
from app.config import Settings
from app.market.replay import ReplayMarket, SimulatedQuoter
from app.trading.ledger import parse_balance
from app.worker.execution import ExecutionContext
from app.worker.executor import SimulationExecutor
from tests.factories import SOL_MINT, access_headers, create_agent, create_user, deposit_sol

TOKEN = "Wdrw1111111111111111111111111111111111111111"  # 6 decimals, 0.001 SOL in the replay market
DESTINATION = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"  # a real 32-byte base58 public key
SOL_USD = Decimal(150)
FEE = Decimal("0.000005")


@dataclass
class Owner:
    id: uuid.UUID
    email: str
    headers: dict[str, str]
    agent_id: uuid.UUID
    wallet: str


async def new_owner(pool: asyncpg.Pool, settings: Settings, sol: str | None = "10") -> Owner:
    email = f"wd-{uuid.uuid4().hex[:12]}@example.com"
    user_id = await create_user(pool, email)
    agent_id, wallet = await create_agent(pool, user_id, "withdrawal agent")
    if sol is not None:
        await deposit_sol(pool, agent_id, wallet, Decimal(sol))
    return Owner(user_id, email, access_headers(settings, user_id, email), agent_id, wallet)


async def api_key_headers(pool: asyncpg.Pool, user_id: uuid.UUID) -> dict[str, str]:
    raw, key_hash, prefix = generate_api_key()
    await pool.execute(
        "INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'k', $2, $3, $4)",
        user_id,
        key_hash,
        prefix,
        ["full_access"],
    )
    return {"X-API-Key": raw}


async def balances(pool: asyncpg.Pool, wallet: str) -> dict[str, Decimal]:
    rows = await pool.fetch("SELECT token_address, balance FROM agent_balances WHERE wallet_address = $1", wallet)
    return {r["token_address"]: parse_balance(r["balance"]) for r in rows}


async def store_prices(pool: asyncpg.Pool, *, sol_usd: Decimal | None = SOL_USD, token_sol: str | None = None) -> None:
    """The latest prices as the worker's price monitor stores them (table token_prices)."""
    await pool.execute("DELETE FROM token_prices")
    if sol_usd is not None:
        await pool.execute(
            "INSERT INTO token_prices (mint, price_sol, price_usd, observed_at, source) VALUES ($1, 1, $2, now(), 't')",
            SOL_MINT,
            sol_usd,
        )
    if token_sol is not None:
        await pool.execute(
            "INSERT INTO token_prices (mint, price_sol, observed_at, source) VALUES ($1, $2, now(), 't')",
            TOKEN,
            Decimal(token_sol),
        )


async def assert_audit_clean(pool: asyncpg.Pool) -> None:
    findings = await run_audit(pool)
    assert findings == [], "\n".join(str(f) for f in findings)


def replay_market() -> ReplayMarket:
    return ReplayMarket(
        [
            {"t": 0, "mint": SOL_MINT, "priceUsd": str(SOL_USD)},
            {"t": 0, "mint": TOKEN, "symbol": "WDRW", "decimals": 6, "priceSol": "0.001", "liquidityUsd": "1e9"},
        ],
        manual=True,
        loop=False,
    )


def sim_context(pool: asyncpg.Pool, settings: Settings, market: ReplayMarket | None = None) -> ExecutionContext:
    """The real execution path for simulation wallets, quoting from a constant replay market."""
    market = market or replay_market()

    async def decimals(mint: str) -> int:
        return market.token_decimals(mint)

    return ExecutionContext(
        pool=pool,
        settings=settings,
        quoter=SimulatedQuoter(market),
        sol_usd=market,
        executor=SimulationExecutor(),
        rng=random.Random(7),
        market=market,
        decimals_lookup=decimals,
    )


def body(amount: Any, token: str = SOL_MINT, destination: str = DESTINATION) -> dict[str, Any]:
    return {"tokenAddress": token, "amount": amount, "destinationAddress": destination}
