"""A writer that ignores the lock order cannot make a trade execute twice.

Every trade path takes the agent lock (``FOR UPDATE``) before it checks for an existing execution row or
position, so racers that follow the documented order are stopped by the pre-checks. These tests start a
writer that does not (an operator's SQL, a future bug) in the middle of a trade, between the locked re-checks
and the ledger write. Two guards hold: its foreign-key check on ``agents`` needs a ``KEY SHARE`` lock that the
trade's ``FOR UPDATE`` excludes, so it waits for the trade's commit; then it meets the trade's row and the
unique key refuses it (or, when its row reached the unique index first, PostgreSQL's deadlock detection
aborts one of the two). Exactly one execution row, exactly one position, and a ledger that agrees.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from app.market.types import Quote
from app.trading.units import SOL_MINT
from app.worker.execution import execute_buy
from app.worker.executor import Fill, SimulationExecutor
from tests.factories import create_agent, create_user, deposit_sol
from tests.worker.helpers import STEADY, execution_context, insert_signal, sol_balance


class RacedExecutor(SimulationExecutor):
    """Fills at the quote, after starting ``racer`` and seeing it blocked (once)."""

    def __init__(self, racer: Callable[[], Awaitable[None]]) -> None:
        self.racer: Callable[[], Awaitable[None]] | None = racer
        self.raced: asyncio.Task[None] | None = None

    async def execute(self, quote: Quote, **kwargs: Any) -> Fill:
        if self.racer is not None:
            self.raced = asyncio.create_task(self.racer())
            self.racer = None
            await asyncio.sleep(0.3)
            assert not self.raced.done(), "the racer was not held back by the trade's agent lock"
        return await super().execute(quote, **kwargs)


async def funded(pool: asyncpg.Pool) -> tuple[uuid.UUID, uuid.UUID, str]:
    user = await create_user(pool)
    agent, wallet = await create_agent(pool, user)
    await deposit_sol(pool, agent, wallet, "3")
    return user, agent, wallet


async def ledger_of(pool: asyncpg.Pool, agent: uuid.UUID) -> list[str]:
    rows = await pool.fetch("SELECT transaction_type FROM agent_transactions WHERE agent_id = $1", agent)
    return sorted(r["transaction_type"] for r in rows)


async def test_an_execution_row_racing_the_buy_leaves_exactly_one_row_and_one_outcome(pool, settings) -> None:
    """The racer's row enters the unique index before its foreign-key check waits for the agent lock, so the
    trade's own insert then waits for the racer: a deadlock, which PostgreSQL breaks by aborting one side
    (whichever detects it). Either way one row survives and the ledger agrees with it."""
    user, agent, wallet = await funded(pool)
    signal_id = await insert_signal(pool, user)

    async def racer() -> None:  # another writer's row for the pair, written without the agent lock
        await pool.execute(
            "INSERT INTO signal_executions (signal_id, agent_id, status, error) VALUES ($1, $2, 'failed', 'racer')",
            signal_id,
            agent,
        )

    ctx = execution_context(pool, settings)
    ctx.executor = executor = RacedExecutor(racer)
    try:
        bought = await execute_buy(
            ctx, agent_id=agent, token_address=STEADY, token_symbol="STEADY",
            signal_id=signal_id, signal_execution=(signal_id, agent),
        )  # fmt: skip
    except asyncpg.DeadlockDetectedError:
        bought = None
    assert executor.raced is not None
    racer_error = None
    try:
        await executor.raced
    except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as exc:
        racer_error = exc
    assert (bought is None) != (racer_error is not None), "exactly one of the two writers must have lost"

    rows = await pool.fetch("SELECT status, transaction_id FROM signal_executions WHERE signal_id = $1", signal_id)
    if bought is not None:
        assert [(r["status"], r["transaction_id"]) for r in rows] == [("success", bought.transaction_id)]
        assert await ledger_of(pool, agent) == ["DEPOSIT", "SWAP"]
        assert await sol_balance(pool, wallet) == Decimal(3) - bought.debit_sol
    else:
        assert [(r["status"], r["transaction_id"]) for r in rows] == [("failed", None)]
        assert await ledger_of(pool, agent) == ["DEPOSIT"]  # the trade rolled back whole
        assert await sol_balance(pool, wallet) == Decimal(3)
        assert not await pool.fetchval("SELECT count(*) FROM agent_positions WHERE agent_id = $1", agent)


async def test_a_position_racing_the_buy_waits_for_it_and_is_refused(pool, settings) -> None:
    _, agent, wallet = await funded(pool)

    async def racer() -> None:  # a position for the same token, written without the agent lock
        async with pool.acquire() as conn, conn.transaction():
            tx = await conn.fetchval(
                """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                       transaction_time, input_mint, input_amount, output_mint, output_amount)
                   VALUES ($1, $2, 'SWAP', 0, now(), $3, 0.1, $4, 100) RETURNING id""",
                agent, wallet, SOL_MINT, STEADY,
            )  # fmt: skip
            await conn.execute(
                """INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol,
                       purchase_transaction_id, purchase_price, purchase_amount)
                   VALUES ($1, $2, $3, 'STEADY', $4, 0.001, 100)""",
                agent, wallet, STEADY, tx,
            )  # fmt: skip

    ctx = execution_context(pool, settings)
    ctx.executor = executor = RacedExecutor(racer)
    bought = await execute_buy(ctx, agent_id=agent, token_address=STEADY, token_symbol="STEADY")

    assert executor.raced is not None
    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        await executor.raced
    assert refused.value.constraint_name == "agent_positions_agent_wallet_token_key"
    positions = await pool.fetch("SELECT id FROM agent_positions WHERE agent_id = $1", agent)
    assert [p["id"] for p in positions] == [bought.position_id]
    assert await ledger_of(pool, agent) == ["DEPOSIT", "SWAP"]  # the racer's SWAP rolled back with it
