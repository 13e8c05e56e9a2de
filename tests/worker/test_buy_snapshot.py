"""A buy planned on a snapshot read earlier (the intake reads all agents' snapshots in one query): the locked
re-checks reject a plan the snapshot no longer supports, and the re-plan reads the wallet afresh."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from app.db import Q
from app.trading.errors import TradeError
from app.trading.units import SOL_MINT
from app.worker.execution import BuySnapshot, execute_buy
from tests.factories import create_agent, create_user, deposit_sol
from tests.worker.helpers import STEADY, execution_context, no_randomization

D = Decimal


async def snapshot_of(pool, agent) -> BuySnapshot:
    snap = await Q.exec_buy_snapshot.fetch_one(pool, agent, None, STEADY, SOL_MINT, into=BuySnapshot)
    assert snap is not None
    return snap


async def funded(pool, amount: str):
    user = await create_user(pool)
    agent, wallet = await create_agent(pool, user, trading_config=no_randomization())
    await deposit_sol(pool, agent, wallet, amount)
    return agent


async def test_a_buy_is_sized_on_the_locked_balance_not_on_an_older_snapshot(pool, settings):
    ctx = execution_context(pool, settings)
    agent = await funded(pool, "6")  # the medium bracket: 1 SOL without randomization
    stale = msgspec.structs.replace(await snapshot_of(pool, agent), sol_balance="3")  # the small one: 0.1 SOL

    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY, snapshot=stale)

    assert buy.input_amount >= D("1.0")


async def test_a_position_missing_from_the_snapshot_is_found_under_the_locks(pool, settings):
    ctx = execution_context(pool, settings)
    agent = await funded(pool, "6")
    stale = await snapshot_of(pool, agent)
    await execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=D("1"))

    try:
        await execute_buy(ctx, agent_id=agent, token_address=STEADY, snapshot=stale)
    except TradeError as err:
        assert err.code == "POSITION_EXISTS", err
    else:
        raise AssertionError("bought a second position for the same token")
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE agent_id = $1", agent) == 1
