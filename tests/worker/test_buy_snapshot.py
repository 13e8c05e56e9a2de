"""A buy planned on a snapshot read earlier (the intake reads all agents' snapshots in one query): the locked
re-checks reject a plan the snapshot no longer supports, and the re-plan reads the wallet afresh. For a
simulation wallet those re-checks are made by the record statement itself (``BuyChecks``)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from app.db import Q
from app.trading.config import load_config
from app.trading.errors import TradeError
from app.trading.units import SOL_MINT, sol_to_lamports
from app.worker.execution import (
    BuyChecks,
    BuySnapshot,
    StalePlan,
    execute_buy,
    record_buy_fill,
    statement_checks,
)
from app.worker.executor import fill_at_quote
from tests.factories import create_agent, create_user, deposit_sol
from tests.worker.helpers import STEADY, execution_context, no_randomization, sol_balance, token_balance

D = Decimal


async def snapshot_of(pool, agent) -> BuySnapshot:
    snap = await Q.exec_buy_snapshot.fetch_one(pool, agent, None, STEADY, SOL_MINT, into=BuySnapshot)
    assert snap is not None
    return snap


async def funded_wallet(pool, amount: str = "6"):
    user = await create_user(pool)
    agent, wallet = await create_agent(pool, user, trading_config=no_randomization())
    await deposit_sol(pool, agent, wallet, amount)
    return agent, wallet


async def funded(pool, amount: str):
    return (await funded_wallet(pool, amount))[0]


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


# --- the record statement's own re-checks (simulation) ---------------------------------------------------


async def balances_text(pool, wallet) -> str:
    return await pool.fetchval(
        "SELECT string_agg(token_address || '=' || balance, ',' ORDER BY token_address) FROM agent_balances "
        "WHERE wallet_address = $1",
        wallet,
    )


def checks_of(snap: BuySnapshot, ctx) -> BuyChecks:
    checks = statement_checks(ctx, snap)
    assert checks is not None, "a simulation buy on a snapshot is re-checked by its record statement"
    return checks


async def record_checked(pool, ctx, agent, wallet, checks: BuyChecks):
    """Record a 0.5 SOL buy of STEADY as the intake's simulation buys do: agent lock, then one statement."""
    fill = fill_at_quote(await ctx.quoter.quote(SOL_MINT, STEADY, sol_to_lamports(Decimal("0.5"))), "buy")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", agent)
        return await record_buy_fill(
            conn,
            agent_id=agent,
            wallet_address=wallet,
            token_address=STEADY,
            token_symbol="STDY",
            cfg=load_config(None),
            fill=fill,
            token_decimals=await ctx.token_decimals(STEADY, "simulation"),
            sol_usd=Decimal("150"),
            locked_balances=checks.balances(),
            checks=checks,
        )


async def test_the_record_statement_writes_a_buy_whose_plan_still_holds(pool, settings):
    ctx = execution_context(pool, settings)
    agent, wallet = await funded_wallet(pool)
    checks = checks_of(await snapshot_of(pool, agent), ctx)

    result = await record_checked(pool, ctx, agent, wallet, checks)

    assert await sol_balance(pool, wallet) == Decimal(6) - result.debit_sol
    assert await token_balance(pool, wallet, STEADY) == result.output_amount
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE agent_id = $1", agent) == 1


async def _balance_moved(pool, agent, wallet, checks):
    await deposit_sol(pool, agent, wallet, "1")
    return checks


async def _agent_changed(pool, agent, wallet, checks):
    await pool.execute("UPDATE agents SET name = 'renamed' WHERE id = $1", agent)  # any change: a new row version
    return checks


async def _token_balance_appeared(pool, agent, wallet, checks):
    await pool.execute(
        "INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance) "
        "VALUES ($1, $2, $3, 'STDY', '5')",
        agent,
        wallet,
        STEADY,
    )
    return checks


async def _other_wallet_type(pool, agent, wallet, checks):
    return msgspec.structs.replace(checks, wallet_type="live")


async def _cap_reached(pool, agent, wallet, checks):
    return msgspec.structs.replace(checks, max_open_positions=0)


@pytest.mark.parametrize(
    "change", [_balance_moved, _agent_changed, _token_balance_appeared, _other_wallet_type, _cap_reached]
)
async def test_the_record_statement_writes_nothing_when_the_plan_no_longer_holds(pool, settings, change):
    ctx = execution_context(pool, settings)
    agent, wallet = await funded_wallet(pool)
    checks = await change(pool, agent, wallet, checks_of(await snapshot_of(pool, agent), ctx))
    before = await balances_text(pool, wallet)

    with pytest.raises(StalePlan):
        await record_checked(pool, ctx, agent, wallet, checks)

    assert (
        await pool.fetchval(
            "SELECT count(*) FROM agent_transactions WHERE agent_id = $1 AND transaction_type = 'SWAP'", agent
        )
        == 0
    )
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE agent_id = $1", agent) == 0
    assert await balances_text(pool, wallet) == before


async def test_a_config_changed_after_the_snapshot_is_bought_on_the_new_config(pool, settings):
    ctx = execution_context(pool, settings)
    agent = await funded(pool, "6")  # the medium bracket: 1 SOL without randomization
    snap = await snapshot_of(pool, agent)
    smaller = no_randomization(positionCalculator={"positionSizes": {"medium": {"min": 0.5, "max": 0.5}}})
    await pool.execute("UPDATE agents SET trading_config = $2 WHERE id = $1", agent, smaller)

    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY, snapshot=snap)

    assert Decimal("0.5") <= buy.input_amount < Decimal("0.6")


async def test_a_token_balance_that_appeared_after_the_snapshot_is_added_to_not_overwritten(pool, settings):
    ctx = execution_context(pool, settings)
    agent, wallet = await funded_wallet(pool)
    snap = await snapshot_of(pool, agent)
    await _token_balance_appeared(pool, agent, wallet, None)

    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY, snapshot=snap)

    assert await token_balance(pool, wallet, STEADY) == Decimal(5) + buy.output_amount


async def test_a_live_buy_is_rechecked_under_the_locks_before_its_swap_not_by_its_record_statement(pool, settings):
    ctx = execution_context(pool, settings, live_executor=object())  # any live executor: it is not called here
    snap = msgspec.structs.replace(await snapshot_of(pool, (await funded_wallet(pool))[0]), wallet_type="live")

    assert statement_checks(ctx, snap) is None
    assert statement_checks(ctx, msgspec.structs.replace(snap, wallet_type="simulation")) is not None
