"""Price paths through the replay market with the exact trades, prices and P/L they must leave in the ledger.

Fills come from the simulated venue at the replay price (no pool data ⇒ no price impact) with its fee
terms: a 10 bps protocol fee in SOL and 5 000 + 100 000 lamports of network fees per swap, charged in
simulation as in live trading. A 1 SOL buy at 0.001 therefore gets 1000 tokens and debits
1 + 0.001 + 0.000105 = 1.001105 SOL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from tests.monitor.harness import Harness, history, new_mint, path_records, position, trades

D = Decimal
SOL = "So11111111111111111111111111111111111111112"
BUY_DEBIT = D("1.001105")
NETWORK_FEE = D("0.000105")


@pytest.fixture(autouse=True)
async def _no_leftover_positions(pool: asyncpg.Pool) -> None:
    await pool.execute("DELETE FROM agent_positions")
    await pool.execute("DELETE FROM token_prices")


async def sol_balance(pool: asyncpg.Pool, wallet: str) -> Decimal:
    return D(
        await pool.fetchval(
            "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, SOL
        )
    )


def sale_credit(tokens: str, price: str) -> Decimal:
    gross = D(tokens) * D(price)
    return gross - (gross * D("0.001")).quantize(D("1e-8")) - NETWORK_FEE


async def test_pump_then_dump_sells_on_the_trailing_stop_with_the_exact_profit(pool, database_url, settings) -> None:
    mint = new_mint("PMP")
    prices = ["0.001", "0.0011", "0.0013", "0.0015", "0.00145", "0.00141", "0.0014"]
    h = Harness(pool, database_url, settings, path_records(mint, prices))
    agent_id, wallet = await h.agent({"staleTrade": {"enabled": False}})
    position_id = await h.buy(agent_id, mint)
    assert (await position(pool, position_id))["total_invested_sol"] == BUY_DEBIT
    assert await sol_balance(pool, wallet) == D(10) - BUY_DEBIT

    kinds = [(await h.step()).actions for _ in prices[1:]]

    # Peak 0.0015 (+50 %) ⇒ fixed stop +40 % ⇒ 0.0014, inclusive: the last tick sells.
    assert kinds == [[]] * 5 + [[(position_id, "stop_loss")]]
    (sale,) = [r for r in await trades(pool, position_id) if r["input_mint"] == mint]
    credit = sale_credit("1000", "0.0014")
    assert (sale["input_amount"], sale["input_price"], sale["output_amount"]) == (
        D(1000),
        D("0.0014"),
        D("1.4") - D("0.0014"),
    )
    (closed,) = await history(pool, position_id)
    assert closed["close_reason"] == "stop_loss"
    assert closed["profit_loss_sol"] == credit - BUY_DEBIT == D("0.39739")
    assert closed["change_percent"] == D("39.739")
    assert closed["sale_price"] == (credit / 1000).quantize(D("1e-18"))
    assert await sol_balance(pool, wallet) == D(10) - BUY_DEBIT + credit


async def test_slow_bleed_hits_the_default_stop(pool, database_url, settings) -> None:
    mint = new_mint("BLD")
    prices = ["0.001", *(str(D("0.001") - D("0.00004") * i) for i in range(1, 9))]  # −4 % per tick down to −32 %
    h = Harness(pool, database_url, settings, path_records(mint, prices))
    agent_id, _ = await h.agent({"staleTrade": {"enabled": False}})
    position_id = await h.buy(agent_id, mint)

    kinds = [(await h.step()).actions for _ in prices[1:]]

    assert kinds == [[]] * 7 + [[(position_id, "stop_loss")]]
    (closed,) = await history(pool, position_id)
    assert closed["profit_loss_sol"] == sale_credit("1000", "0.00068") - BUY_DEBIT == D("-0.32189")


async def test_dip_then_recover_with_dca_then_take_profit(pool, database_url, settings) -> None:
    # Moderate DCA (−20 % ⇒ buy 75 % of the position's value) then the +50 % take-profit level measured
    # from the new average.
    mint = new_mint("DIP")
    prices = ["0.001", "0.0008", "0.0009", "0.0014"]
    h = Harness(pool, database_url, settings, path_records(mint, prices))
    agent_id, _ = await h.agent(
        {"dca": {"enabled": True}, "takeProfit": {"enabled": True}, "staleTrade": {"enabled": False}}, deposit="20"
    )
    position_id = await h.buy(agent_id, mint)

    assert (await h.step()).actions == [(position_id, "dca")]
    row = await position(pool, position_id)
    dca_debit = D("0.6") + D("0.0006") + NETWORK_FEE  # 0.0008 × 1000 × 75 % = 0.6 SOL ⇒ 750 tokens
    assert (row["purchase_amount"], row["total_invested_sol"], row["dca_count"]) == (D(1750), BUY_DEBIT + dca_debit, 1)
    average = ((BUY_DEBIT + dca_debit) / 1750).quantize(D("1e-18"))
    assert row["purchase_price"] == average
    assert (row["tp_batch_start_level"], row["total_take_profit_levels"]) == (0, 4)

    assert (await h.step()).actions == []  # recovering, below +50 % of the average
    assert (await h.step()).actions == [(position_id, "take_profit")]  # 0.0014 ≥ 1.5 × ~0.000915
    row = await position(pool, position_id)
    assert (row["take_profit_levels_hit"], row["remaining_amount"]) == (1, D("1312.5"))
    (tp_sale,) = [r for r in await trades(pool, position_id) if r["is_take_profit"]]
    assert (tp_sale["input_amount"], tp_sale["input_price"]) == (D("437.5"), D("0.0014"))
    cost_basis = D("437.5") / 1750 * (BUY_DEBIT + dca_debit)
    assert row["realized_profit_sol"] == (sale_credit("437.5", "0.0014") - cost_basis).quantize(D("1e-8"))


async def test_flat_for_an_hour_closes_only_inside_the_stale_band(pool, database_url, settings) -> None:
    flat, band = new_mint("FLT"), new_mint("BND")
    records = path_records(flat, ["0.001"] * 13) + path_records(band, ["0.001"] * 13)[1:]
    h = Harness(pool, database_url, settings, records)
    default_agent, _ = await h.agent()  # stale band 1..10 %: a flat price never closes
    band_agent, _ = await h.agent({"staleTrade": {"minProfitPercent": -2, "maxProfitPercent": 3}})
    kept = await h.buy(default_agent, flat)
    closed = await h.buy(band_agent, band)
    h.clock.now = datetime.now(UTC)  # decisions count the hold time from here, just after the buys

    reports = []
    for _ in range(12):
        h.clock.advance(295)  # with the replay's 5 s steps: 5 minutes per tick
        reports.append(await h.step())

    assert all(r.actions == [] for r in reports[:-1])
    assert reports[-1].actions == [(closed, "stale_trade")]
    assert await position(pool, kept) is not None
    (row,) = await history(pool, closed)
    assert (row["close_reason"], row["profit_loss_sol"]) == ("stale_trade", sale_credit("1000", "0.001") - BUY_DEBIT)
