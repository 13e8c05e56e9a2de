"""Properties of the real trade path (hypothesis, real PostgreSQL):

* whatever a position goes through (buy, take profits, DCA, a sale or a burn), the wallet's SOL moved by
  exactly the P/L its history row reports, and the ledger audit stays clean;
* a buy sized by the calculator never spends more than ``maxPurchasePerToken`` and never leaves less than
  ``minimumAgentBalance``, fees included (or it is refused with the reference's code)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.audit import run_audit
from app.db import create_pool
from app.trading.errors import TradeError
from app.worker.execution import (
    execute_burn,
    execute_buy,
    execute_dca_buy,
    execute_full_sale,
    execute_take_profit_sale,
)
from tests.factories import create_agent, create_user, deposit_sol
from tests.worker.helpers import STEADY, MarketBundle, PricedQuoter, execution_context, replay_market, sol_balance

ENTRY = Decimal("0.001")
step = st.one_of(
    st.tuples(st.just("price"), st.decimals("0.2", "5", places=3)),
    st.tuples(st.just("take_profit"), st.decimals("0.05", "0.6", places=2)),
    st.tuples(st.just("dca"), st.decimals("0.05", "1", places=3)),
)


async def scenario(database_url, app_settings, deposit, size, steps, close) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=3)
    try:
        quoter = PricedQuoter(ENTRY)
        ctx = execution_context(pool, app_settings, MarketBundle(replay_market(), quoter))
        agent, wallet = await create_agent(pool, await create_user(pool))
        await deposit_sol(pool, agent, wallet, deposit)
        buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=size)
        position = buy.position_id
        for kind, value in steps:
            row = await pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", position)
            try:
                if kind == "price":
                    quoter.price = ENTRY * value
                elif kind == "take_profit":
                    holding = row["remaining_amount"] or row["purchase_amount"]
                    await execute_take_profit_sale(
                        ctx, position_id=position, sell_amount=(holding * value).quantize(Decimal("1e-6")),
                        levels_executed=1, expected_levels_hit=row["take_profit_levels_hit"],
                        activate_moon_bag=False, moon_bag_amount=None,
                    )  # fmt: skip
                else:
                    await execute_dca_buy(
                        ctx, position_id=position, buy_amount_sol=value, expected_dca_count=row["dca_count"]
                    )
            except TradeError as err:
                assert err.code in ("INSUFFICIENT_BALANCE", "ZERO_BALANCE"), err
        if close == "sale":
            result = await execute_full_sale(ctx, agent_id=agent, position_id=position, reason="manual")
        else:
            result = await execute_burn(ctx, position_id=position)
        assert result.outcome == "executed"

        history = await pool.fetchrow("SELECT * FROM agent_historical_swaps WHERE position_id = $1", position)
        rows = await pool.fetchval("SELECT count(*) FROM agent_transactions WHERE position_id = $1", position)
        moved = await sol_balance(pool, wallet) - deposit
        assert abs(moved - history["profit_loss_sol"]) <= Decimal("1e-8") * rows
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, STEADY
            )
            == 0
        )
        never_above_entry = all(value <= 1 for kind, value in steps if kind == "price")
        if never_above_entry and not any(kind == "dca" for kind, _ in steps):
            assert history["profit_loss_sol"] < 0  # fees alone make a flat or falling trade a loss
        assert await run_audit(pool) == []
    finally:
        await pool.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    deposit=st.decimals("3", "40", places=2),
    size=st.decimals("0.01", "2", places=3),
    steps=st.lists(step, max_size=6),
    close=st.sampled_from(["sale", "burn"]),
)
def test_sol_moves_by_exactly_the_reported_pnl(database_url, settings, deposit, size, steps, close):
    asyncio.run(scenario(database_url, settings, deposit, size, steps, close))


async def sizing_scenario(database_url, app_settings, balance, reserve, cap, randomized) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=3)
    try:
        ctx = execution_context(pool, app_settings, MarketBundle(replay_market(), PricedQuoter(ENTRY)))
        config = {
            "purchaseLimits": {"minimumAgentBalance": reserve, "maxPurchasePerToken": cap},
            "positionCalculator": {"randomization": {"enabled": randomized}},
        }
        agent, wallet = await create_agent(pool, await create_user(pool), trading_config=config)
        await deposit_sol(pool, agent, wallet, balance)
        try:
            buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY)
        except TradeError as err:
            assert err.code in ("BELOW_MINIMUM_THRESHOLD", "POSITION_CALCULATION_ERROR"), err
            assert await sol_balance(pool, wallet) == balance
            return
        row = await pool.fetchrow("SELECT * FROM agent_transactions WHERE id = $1", buy.transaction_id)
        swapped = row["input_amount"] - row["protocol_fee_sol"]
        assert 0 < swapped <= Decimal(cap)
        assert await sol_balance(pool, wallet) == balance - buy.debit_sol >= Decimal(reserve)
    finally:
        await pool.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    balance=st.decimals("0.1", "30", places=4),
    reserve=st.decimals("0.1", "3", places=2),
    cap=st.decimals("0.01", "5", places=2),
    randomized=st.booleans(),
)
def test_a_computed_buy_keeps_the_minimum_balance_and_the_cap(
    database_url, settings, balance, reserve, cap, randomized
):
    asyncio.run(sizing_scenario(database_url, settings, balance, reserve, cap, randomized))
