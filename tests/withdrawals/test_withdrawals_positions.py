"""Token withdrawals of a token with an open position: the surplus first, then the position at its average cost;
closing it when its last token leaves. A withdrawal never shows up as a loss and the audit stays clean, also for
the closed trade the position later becomes."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from app.trading.ledger import SOL_8, quantize
from app.worker.execution import execute_buy, execute_full_sale, execute_take_profit_sale
from tests.factories import SOL_MINT
from tests.withdrawals.conftest import (
    FEE,
    TOKEN,
    Owner,
    assert_audit_clean,
    balances,
    body,
    new_owner,
    sim_context,
    store_prices,
)

D = Decimal
URL = "/api/v1/wallets/{}/withdraw"


async def _open(pool, settings, sol: str = "10", size: str = "2") -> tuple[Owner, dict]:
    owner = await new_owner(pool, settings, sol=sol)
    await execute_buy(sim_context(pool, settings), agent_id=owner.agent_id, token_address=TOKEN, position_size=D(size))
    return owner, await _position(pool, owner)


async def _position(pool: asyncpg.Pool, owner: Owner) -> dict | None:
    row = await pool.fetchrow("SELECT * FROM agent_positions WHERE agent_id = $1", owner.agent_id)
    return None if row is None else dict(row)


async def _performance(http, owner: Owner) -> dict[str, Decimal]:
    resp = await http.get(f"/api/v1/agents/{owner.agent_id}/performance", headers=owner.headers)
    assert resp.status_code == 200, resp.text
    return {k: D(str(v)) for k, v in resp.json().items()}


async def test_partial_withdrawal_reduces_the_position_at_its_average_cost(in_loop_client, pool, settings) -> None:
    owner, position = await _open(pool, settings)
    await store_prices(pool, token_sol="0.0015")
    bought, invested = position["purchase_amount"], position["total_invested_sol"]
    before = await _performance(in_loop_client, owner)
    amount = quantize(bought / 4, 6)

    resp = await in_loop_client.post(
        URL.format(owner.wallet), json=body(str(amount), token=TOKEN), headers=owner.headers
    )

    assert resp.status_code == 201, resp.text
    after_position = await _position(pool, owner)
    assert after_position["purchase_amount"] == bought - amount
    assert after_position["remaining_amount"] is None
    assert after_position["total_invested_sol"] == quantize(invested * (bought - amount) / bought, SOL_8)
    assert after_position["purchase_price"] == position["purchase_price"]
    effect = resp.json()["position"]
    assert effect["action"] == "reduced" and effect["id"] == str(position["id"])
    assert D(effect["costBasisSol"]) == invested - after_position["total_invested_sol"]
    assert resp.json()["transaction"]["inputAmount"] == str(amount.normalize())
    wallet = await balances(pool, owner.wallet)
    assert wallet[TOKEN] == bought - amount

    # The withdrawn quarter takes its quarter of the unrealised P/L with it: nothing is realised, nothing lost.
    after = await _performance(in_loop_client, owner)
    assert after["realizedProfitLossSol"] == before["realizedProfitLossSol"]
    assert abs(after["unrealizedProfitLossSol"] - before["unrealizedProfitLossSol"] * 3 / 4) <= D("2e-8")
    await assert_audit_clean(pool)

    # Selling the rest later reports the P/L of the tokens sold; the audit adds back the withdrawn cost basis.
    sale = await execute_full_sale(
        sim_context(pool, settings), agent_id=owner.agent_id, position_id=position["id"], reason="manual"
    )
    assert sale.profit_loss_sol == quantize(sale.credit_sol - after_position["total_invested_sol"], SOL_8)
    cash = await pool.fetchval(
        "SELECT sum(CASE WHEN input_mint = $2 THEN -input_amount - coalesce(network_fee_sol, 0)"
        "                ELSE output_amount - coalesce(network_fee_sol, 0) END)"
        " FROM agent_transactions WHERE position_id = $1 AND transaction_type = 'SWAP'",
        position["id"],
        SOL_MINT,
    )
    # What the audit must add back (up to the 8-decimal rounding of total_invested_sol).
    assert D(effect["costBasisSol"]) > 0
    assert abs(sale.profit_loss_sol - cash - D(effect["costBasisSol"])) <= D("2e-8")
    await assert_audit_clean(pool)


async def test_tokens_beyond_the_position_leave_first(in_loop_client, pool, settings) -> None:
    owner, position = await _open(pool, settings)
    await pool.execute(
        """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
               transaction_time, input_mint, input_symbol, input_amount)
           VALUES ($1, $2, 'DEPOSIT', 0, now(), $3, 'WDRW', 100)""",
        owner.agent_id,
        owner.wallet,
        TOKEN,
    )
    await pool.execute(
        "UPDATE agent_balances SET balance = ($3::numeric + 100)::text WHERE wallet_address = $1 AND token_address = $2",
        owner.wallet,
        TOKEN,
        position["purchase_amount"],
    )

    surplus = await in_loop_client.post(URL.format(owner.wallet), json=body("60", token=TOKEN), headers=owner.headers)
    assert surplus.status_code == 201 and surplus.json()["position"] is None
    assert await _position(pool, owner) == position

    into = await in_loop_client.post(URL.format(owner.wallet), json=body("50", token=TOKEN), headers=owner.headers)
    assert into.status_code == 201
    reduced = await _position(pool, owner)
    assert reduced["purchase_amount"] == position["purchase_amount"] - 10
    assert (await balances(pool, owner.wallet))[TOKEN] == reduced["purchase_amount"]
    await assert_audit_clean(pool)


async def test_withdrawing_every_token_closes_the_position_without_a_trade(in_loop_client, pool, settings) -> None:
    owner, position = await _open(pool, settings)
    await store_prices(pool, token_sol="0.0009")  # an unrealised loss that must not become a realised one
    before = await _performance(in_loop_client, owner)
    sol_before = (await balances(pool, owner.wallet))[SOL_MINT]

    resp = await in_loop_client.post(URL.format(owner.wallet), json=body("all", token=TOKEN), headers=owner.headers)

    assert resp.status_code == 201, resp.text
    assert resp.json()["amount"] == str(position["purchase_amount"].normalize())
    assert resp.json()["position"]["action"] == "closed"
    assert await _position(pool, owner) is None
    assert await balances(pool, owner.wallet) == {SOL_MINT: sol_before - FEE}
    assert await pool.fetchval("SELECT count(*) FROM agent_historical_swaps WHERE agent_id = $1", owner.agent_id) == 0
    after = await _performance(in_loop_client, owner)
    assert after["realizedProfitLossSol"] == before["realizedProfitLossSol"] == 0
    assert (after["totalClosedTrades"], after["totalOpenPositions"], after["winRate"]) == (0, 0, 0)
    assert after["unrealizedProfitLossSol"] == 0
    await assert_audit_clean(pool)


async def test_closing_after_take_profit_keeps_the_realised_profit(in_loop_client, pool, settings) -> None:
    owner, position = await _open(pool, settings)
    market_ctx = sim_context(pool, settings)
    market_ctx.market.seek(0)
    tp = await execute_take_profit_sale(
        market_ctx,
        position_id=position["id"],
        sell_amount=quantize(position["purchase_amount"] / 2, 6),
        levels_executed=1,
        expected_levels_hit=0,
        activate_moon_bag=False,
        moon_bag_amount=None,
    )
    assert tp.outcome == "executed"
    await store_prices(pool, token_sol="0.001")
    before = await _performance(in_loop_client, owner)

    resp = await in_loop_client.post(URL.format(owner.wallet), json=body("all", token=TOKEN), headers=owner.headers)

    assert resp.status_code == 201, resp.text
    assert resp.json()["position"]["action"] == "closed"
    history = await pool.fetchrow("SELECT * FROM agent_historical_swaps WHERE position_id = $1", position["id"])
    assert history["close_reason"] == "withdrawal"
    assert history["sale_transaction_id"] == uuid.UUID(resp.json()["transaction"]["id"])
    after = await _performance(in_loop_client, owner)
    # The take-profit P/L moves from the open position into the closed trade, unchanged (to the 8th decimal).
    assert abs(after["realizedProfitLossSol"] - before["realizedProfitLossSol"]) <= D("1e-8")
    assert after["totalClosedTrades"] == 1 and after["totalOpenPositions"] == 0
    await assert_audit_clean(pool)
