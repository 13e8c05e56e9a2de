"""Every exit path end to end: replay prices → monitor tick → execution → ledger, position and history rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import asyncpg
import pytest

from tests.monitor.harness import Harness, history, new_mint, path_records, position, trades

D = Decimal


@pytest.fixture(autouse=True)
async def _no_leftover_positions(pool: asyncpg.Pool) -> None:
    # The monitor tracks every open position of the database; earlier tests' positions would be unpriced
    # tokens here (and, with no SOL pair in this test's replay, written off as rug pulls).
    await pool.execute("DELETE FROM agent_positions")
    await pool.execute("DELETE FROM token_prices")


# Stop loss, one path per mode. Purchase price 0.001 SOL; the sale must happen at the last tick, not before.
STOP_LOSS_PATHS = {
    # default −32 % (stop 0.00068) until g ≥ 20; g 30 ⇒ 20 % ⇒ stop 0.0012 (spec §5.4 example).
    "fixed": ({"mode": "fixed"}, ["0.001", "0.00115", "0.0013", "0.00125", "0.00119"], "20.00"),
    # g 50 ⇒ 30.8099… ⇒ 30.81 % ⇒ stop 0.0013081.
    "exponential": ({"mode": "exponential"}, ["0.001", "0.0015", "0.00135", "0.00131", "0.0013"], "30.81"),
    # g 100 ⇒ keep 0.70 ⇒ 70 % ⇒ stop 0.0017 (inclusive).
    "zones": ({"mode": "zones"}, ["0.001", "0.002", "0.0018", "0.00171", "0.0017"], "70.00"),
    # g 150 ⇒ highest reached change is 100 ⇒ 95 % ⇒ stop 0.00195.
    "custom": (
        {
            "mode": "custom",
            "trailingLevels": [
                {"change": 200, "stopLoss": 98},
                {"change": 100, "stopLoss": 95},
                {"change": 50, "stopLoss": 90},
            ],
        },
        ["0.001", "0.0025", "0.002", "0.00196", "0.00195"],
        "95.00",
    ),
}


@pytest.mark.parametrize("mode", list(STOP_LOSS_PATHS))
async def test_stop_loss_sells_at_the_right_tick(pool, database_url, settings, mode: str) -> None:
    stop_loss, prices, level = STOP_LOSS_PATHS[mode]
    mint = new_mint("SL")
    h = Harness(pool, database_url, settings, path_records(mint, prices))
    agent_id, wallet = await h.agent({"stopLoss": stop_loss, "staleTrade": {"enabled": False}})
    position_id = await h.buy(agent_id, mint)
    opened = await position(pool, position_id)
    assert opened["purchase_price"] == D("0.001")
    assert opened["current_stop_loss_percentage"] == D("-32.00")

    for _ in prices[1:-1]:
        report = await h.step()
        assert report.actions == []
        assert await position(pool, position_id) is not None
    assert (await position(pool, position_id))["current_stop_loss_percentage"] == D(level)

    report = await h.step()

    assert report.actions == [(position_id, "stop_loss")]
    assert await position(pool, position_id) is None
    rows = await trades(pool, position_id)
    assert [(r["transaction_type"], r["input_mint"], r["output_mint"]) for r in rows] == [
        ("SWAP", "So11111111111111111111111111111111111111112", mint),
        ("SWAP", mint, "So11111111111111111111111111111111111111112"),
    ]
    sale = rows[1]
    assert sale["input_amount"] == opened["purchase_amount"]
    assert sale["input_price"] == D(prices[-1])
    closed = await history(pool, position_id)
    assert [(r["close_reason"], r["amount"], r["purchase_price"]) for r in closed] == [
        ("stop_loss", opened["purchase_amount"], D("0.001"))
    ]
    assert wallet


async def test_default_stop_loss_triggers_at_minus_32_percent_inclusive(pool, database_url, settings) -> None:
    mint = new_mint("SLD")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.00069", "0.00068"]))
    agent_id, _ = await h.agent({"staleTrade": {"enabled": False}})
    position_id = await h.buy(agent_id, mint)
    assert (await h.step()).actions == []
    assert (await h.step()).actions == [(position_id, "stop_loss")]
    assert [r["close_reason"] for r in await history(pool, position_id)] == ["stop_loss"]


async def test_take_profit_ladder_sells_in_slices_and_keeps_the_moon_bag(pool, database_url, settings) -> None:
    # Moderate template (§6.2 examples): +50 % sells 25 %, +160 % sells the 150 level, +300 % activates the
    # moon bag (10 %) and sells 25 %, +400 % sells the last 15 %; the moon bag stays until another exit.
    mint = new_mint("TP")
    prices = ["0.001", "0.0015", "0.0026", "0.004", "0.005", "0.0051"]
    h = Harness(pool, database_url, settings, path_records(mint, prices))
    agent_id, wallet = await h.agent({"takeProfit": {"enabled": True}, "staleTrade": {"enabled": False}})
    position_id = await h.buy(agent_id, mint)
    bought = (await position(pool, position_id))["purchase_amount"]
    assert bought == D(1000)

    expected = [  # remaining, levels hit, moon bag activated, moon bag amount
        (D(750), 1, False, None),
        (D(500), 2, False, None),
        (D(250), 3, True, D(100)),
        (D(100), 4, True, D(100)),
    ]
    for remaining, levels, moon, moon_amount in expected:
        report = await h.step()
        assert report.actions == [(position_id, "take_profit")]
        row = await position(pool, position_id)
        assert (row["remaining_amount"], row["take_profit_levels_hit"], row["moon_bag_activated"]) == (
            remaining,
            levels,
            moon,
        )
        if moon_amount is not None:
            assert row["moon_bag_amount"] == moon_amount
    assert (await h.step()).actions == []  # levels exhausted: the moon bag is held

    sales = [r for r in await trades(pool, position_id) if r["is_take_profit"]]
    assert [(r["input_amount"], r["input_price"]) for r in sales] == [
        (D(250), D("0.0015")),
        (D(250), D("0.0026")),
        (D(250), D("0.004")),
        (D(150), D("0.005")),
    ]
    assert await history(pool, position_id) == []
    assert wallet


async def test_dca_buy_updates_the_average_and_never_triggers_an_immediate_stop_loss(
    pool, database_url, settings
) -> None:
    # Domain §16.17: custom DCA −50 %/+300 % from 0.001 moves the average to ~0.000625; upstream kept the
    # old peak (+60 % over the new average ⇒ fixed stop +50 % ⇒ stop ≈ 0.00094 > price) and sold at once.
    mint = new_mint("DCA")
    prices = ["0.001", "0.0005", "0.0005", "0.0005", "0.00025"]
    h = Harness(pool, database_url, settings, path_records(mint, prices))
    agent_id, _ = await h.agent(
        {
            "stopLoss": {"defaultPercentage": -60},
            "dca": {
                "enabled": True,
                "mode": "custom",
                "levels": [{"dropPercent": -50, "buyPercent": 300}],
                "cooldownSeconds": 10,
            },
            "staleTrade": {"enabled": False},
        },
        deposit="20",
    )
    position_id = await h.buy(agent_id, mint)
    before = await position(pool, position_id)

    report = await h.step()

    assert report.actions == [(position_id, "dca")]
    after = await position(pool, position_id)
    assert after["dca_count"] == 1
    assert after["purchase_amount"] == D(4000)  # 1000 + 1.5 SOL / 0.0005
    invested = after["total_invested_sol"]
    assert invested > before["total_invested_sol"] + D("1.5")  # the DCA debit includes its fees
    assert after["purchase_price"] == (invested / D(4000)).quantize(D("1e-18"))
    assert after["current_stop_loss_percentage"] == D("-60.00")
    assert len(after["dca_transaction_ids"]) == 1

    for _ in range(2):  # same price, later ticks (cooldown over): no stop-loss sale, no second DCA
        h.clock.advance(30)
        assert (await h.step()).actions == []
        assert await position(pool, position_id) is not None

    # The stop still works on the new average: −60 % of ~0.000625 is ~0.00025.
    report = await h.step()
    assert report.actions == [(position_id, "stop_loss")]
    assert [r["close_reason"] for r in await history(pool, position_id)] == ["stop_loss"]


async def test_stale_trade_closes_after_the_minimum_hold(pool, database_url, settings) -> None:
    mint = new_mint("STL")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.00105", "0.00105"]))
    agent_id, _ = await h.agent(
        {"staleTrade": {"enabled": True, "minHoldTimeMinutes": 60, "minProfitPercent": 1, "maxProfitPercent": 10}}
    )
    position_id = await h.buy(agent_id, mint)

    h.clock.advance(59 * 60)
    assert (await h.step()).actions == []  # +5 % but held 59 minutes

    h.clock.advance(60)
    report = await h.step()
    assert report.actions == [(position_id, "stale_trade")]
    assert [r["close_reason"] for r in await history(pool, position_id)] == ["stale_trade"]


async def test_rug_pull_is_written_off_as_a_burn_after_two_verdicts(pool, database_url, settings) -> None:
    mint = new_mint("RUG")
    records = [*path_records(mint, ["0.001", "0.001"]), {"t": 10, "mint": mint, "priceSol": None}]
    h = Harness(pool, database_url, settings, records)
    agent_id, wallet = await h.agent({"staleTrade": {"enabled": False}})
    position_id = await h.buy(agent_id, mint)
    assert (await h.step()).actions == []

    first = await h.step()  # t=10: no price, no SOL pair ⇒ first verdict only
    assert first.unpriced == [mint]
    assert first.actions == []
    assert await position(pool, position_id) is not None

    second = await h.tick()
    assert second.rug_pulled == [mint]
    assert second.actions == [(position_id, "burn")]
    assert await position(pool, position_id) is None
    burns = [r for r in await trades(pool, position_id) if r["transaction_type"] == "BURN"]
    assert [(r["input_mint"], r["input_amount"]) for r in burns] == [(mint, D(1000))]
    balance = await pool.fetchval(
        "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, mint
    )
    assert balance in (None, "0")


async def test_a_price_back_before_the_second_verdict_resets_the_rug_check(pool, database_url, settings) -> None:
    mint = new_mint("RUG2")
    records = [
        *path_records(mint, ["0.001"]),
        {"t": 5, "mint": mint, "priceSol": None},
        {"t": 10, "mint": mint, "priceSol": "0.001"},
        {"t": 15, "mint": mint, "priceSol": None},
    ]
    h = Harness(pool, database_url, settings, records)
    agent_id, _ = await h.agent({"staleTrade": {"enabled": False}})
    position_id = await h.buy(agent_id, mint)
    for _ in range(3):
        assert (await h.step()).actions == []
    assert await position(pool, position_id) is not None


async def test_automation_off_for_the_positions_wallet_type_skips_it(pool, database_url, settings) -> None:
    # §16.22: the flag of the wallet holding the position counts, not the agent's current mode.
    mint = new_mint("AUT")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.0005", "0.0005"]))
    agent_id, _ = await h.agent()
    position_id = await h.buy(agent_id, mint)
    await pool.execute(
        "UPDATE agents SET trading_mode = 'live', automated_trading_live = true, automated_trading_simulation = false"
        " WHERE id = $1",
        agent_id,
    )
    report = await h.step()
    assert report.evaluated == 0 and report.actions == []
    await pool.execute(
        "UPDATE agents SET automated_trading_simulation = true, automated_trading_live = false WHERE id = $1",
        agent_id,
    )
    assert (await h.step()).actions == [(position_id, "stop_loss")]


def test_clock_helper_moves_forward() -> None:
    from tests.monitor.harness import Clock

    clock = Clock()
    start = clock()
    clock.advance(1.5)
    assert clock() - start == timedelta(seconds=1.5)
