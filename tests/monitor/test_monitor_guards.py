"""What the monitor must never do (trade on stale or USD-guessed prices, write unchanged rows, sell twice)
and what it must keep doing (huge winners, positions opened elsewhere)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import asyncpg
import msgspec
import pytest

from app.events import CHANNEL
from app.market.http import RetryPolicy
from app.market.jupiter import JupiterPriceSource
from app.market.pyth import PythSolUsd
from app.market.types import MarketError
from app.metrics import REGISTRY
from app.worker.main import SERVICES
from app.worker.monitor import price_monitor_service
from app.worker.snapshots import snapshot_service
from tests.factories import open_position_sql
from tests.fakes.hermes import FakeHermes
from tests.fakes.jupiter import FakeJupiter
from tests.monitor.harness import (
    Harness,
    ReplayBundle,
    SlowQuoter,
    history,
    new_mint,
    path_records,
    position,
    trades,
)

D = Decimal
NO_STALE = {"staleTrade": {"enabled": False}}


@pytest.fixture(autouse=True)
async def _no_leftover_positions(pool: asyncpg.Pool) -> None:
    await pool.execute("DELETE FROM agent_positions")
    await pool.execute("DELETE FROM token_prices")


@contextlib.asynccontextmanager
async def listening(database_url: str) -> AsyncIterator[list[dict]]:
    """Every event published on ``nexgent_events`` while inside the block (decoded)."""
    events: list[dict] = []
    conn = await asyncpg.connect(database_url)
    decoder = msgspec.json.Decoder(float_hook=Decimal)
    await conn.add_listener(CHANNEL, lambda *args: events.append(decoder.decode(args[3])))
    try:
        yield events
    finally:
        await conn.close()


async def settle() -> None:
    """Let NOTIFY deliveries reach the listener."""
    for _ in range(20):
        await asyncio.sleep(0.01)


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_tracking_fields_are_written_only_when_they_change(pool, database_url, settings) -> None:
    mint = new_mint("PER")
    prices = ["0.001", "0.001", "0.0011", "0.00105", "0.0009", "0.00095"]
    h = Harness(pool, database_url, settings, path_records(mint, prices))
    agent_id, _ = await h.agent(NO_STALE)
    position_id = await h.buy(agent_id, mint)
    opened = await position(pool, position_id)

    async with listening(database_url) as events:
        same = await h.step()  # unchanged price: peak, stop and lowest all unchanged
        assert (same.evaluated, same.persisted) == (1, 0)
        assert (await position(pool, position_id))["updated_at"] == opened["updated_at"]

        up = await h.step()  # new peak: stop-loss fields written, stamped with the decision time
        assert up.persisted == 1
        row = await position(pool, position_id)
        assert (row["peak_price"], row["current_stop_loss_percentage"], row["lowest_price"]) == (
            D("0.0011"),
            D("-32.00"),
            D("0.001"),
        )
        assert row["last_stop_loss_update"] == h.clock()
        assert row["updated_at"] > opened["updated_at"]

        dip = await h.step()  # below the peak, above the lowest: nothing to write
        assert dip.persisted == 0
        assert (await position(pool, position_id))["updated_at"] == row["updated_at"]

        low = await h.step()  # new lowest only: the stop-loss fields and their timestamp stay
        assert low.persisted == 1
        lowered = await position(pool, position_id)
        assert (lowered["lowest_price"], lowered["peak_price"], lowered["last_stop_loss_update"]) == (
            D("0.0009"),
            D("0.0011"),
            row["last_stop_loss_update"],
        )

        assert (await h.step()).persisted == 0
        await settle()
    updates = [e for e in events if e["type"] == "position_updated"]
    assert [e["data"]["position"]["peakPrice"] for e in updates] == [D("0.0011"), D("0.0011")]
    assert {e["agentId"] for e in updates} == {str(agent_id)}
    batches = [e for e in events if e["type"] == "price_update_batch"]
    assert len(batches) == 5
    assert batches[0]["agentId"] == "*"
    assert batches[1]["data"]["updates"] == [
        {"tokenAddress": mint.lower(), "price": D("0.0011"), "priceUsd": D("0.165")}
    ]


async def test_stale_price_never_trades(pool, database_url, settings) -> None:
    mint = new_mint("STP")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.0005"]), market_lag_s=10)
    agent_id, _ = await h.agent(NO_STALE)
    position_id = await h.buy(agent_id, mint)

    report = await h.step()  # 0.0005 is below the −32 % stop, but observed 10 s ago (max age 4.5 s)
    assert report.rejected == {mint: "stale"}
    assert (report.evaluated, report.actions, report.unpriced) == (0, [], [])
    assert await position(pool, position_id) is not None
    assert await pool.fetchval("SELECT count(*) FROM token_prices WHERE mint = $1", mint) == 0

    h.market_lag_s = 0
    assert (await h.tick()).actions == [(position_id, "stop_loss")]


async def test_without_sol_usd_a_jupiter_price_never_trades(pool, database_url, settings) -> None:
    mint = new_mint("JUP")
    async with FakeJupiter() as jupiter, FakeHermes() as hermes, aiohttp.ClientSession() as session:
        pyth = PythSolUsd(session, base_url=hermes.url, retry=RetryPolicy(attempts=1))
        jupiter_prices = JupiterPriceSource(
            session, pyth, api_key="test-key", base_url=jupiter.price_url, retry=RetryPolicy(attempts=1)
        )
        h = Harness(
            pool,
            database_url,
            settings,
            path_records(mint, ["0.001"]),
            bundle=lambda replay: ReplayBundle(replay, price_source=jupiter_prices, sol_usd=pyth),
        )
        agent_id, _ = await h.agent(NO_STALE)
        position_id = await h.buy(agent_id, mint)
        jupiter.usd_prices[mint] = D("0.05")  # 0.05 USD ≈ 0.000346 SOL at 144.655: below the stop

        hermes.fail("latest", status=503, times=None)
        with pytest.raises(MarketError):
            await pyth.refresh()
        assert await pyth.sol_usd() is None
        report = await h.tick()
        # Nothing priced, nothing traded, and a missing price is not taken for a rug pull either.
        assert (report.priced, report.actions, report.unpriced) == ({}, [], [])
        assert await position(pool, position_id) is not None

        # A SOL/USD the price source accepts but that is older than SOL_USD_MAX_AGE_S still never trades.
        hermes.clear_faults()
        old = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())
        hermes.set_price(14_465_500_000, publish_time=old)
        await pyth.refresh()
        report = await h.tick()
        assert report.rejected == {mint: "no_sol_usd"}
        assert report.actions == []

        hermes.set_price(14_465_500_000)
        await pyth.refresh()
        report = await h.tick()
        assert report.priced == {mint: (D("0.05") / D("144.655")).quantize(D("1e-18"))}
        assert report.actions == [(position_id, "stop_loss")]
        sol_row = await pool.fetchrow(
            "SELECT price_usd, source FROM token_prices WHERE mint = 'So11111111111111111111111111111111111111112'"
        )
        assert (sol_row["price_usd"], sol_row["source"]) == (D("144.655"), "pyth")


async def test_a_winner_above_1000_percent_keeps_its_stop_loss(pool, database_url, settings) -> None:
    # Fixed mode at +1100 % gives a 1090 % stop: more than numeric(5,2) holds. The column keeps 999.99, the
    # trigger uses the true level (upstream's update threw here and the position lost all automation).
    mint = new_mint("BIG")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.012", "0.0125", "0.0124"]))
    agent_id, _ = await h.agent(NO_STALE)
    position_id = await h.buy(agent_id, mint)

    assert (await h.step()).persisted == 1
    row = await position(pool, position_id)
    assert (row["current_stop_loss_percentage"], row["peak_price"]) == (D("999.99"), D("0.012"))

    assert (await h.step()).persisted == 1  # a higher peak is still tracked
    assert (await position(pool, position_id))["peak_price"] == D("0.0125")

    # Peak +1150 % ⇒ stop 1140 % ⇒ 0.0124. With the stored 999.99 % the stop would be 0.01099999.
    report = await h.step()
    assert report.actions == [(position_id, "stop_loss")]
    assert [r["close_reason"] for r in await history(pool, position_id)] == ["stop_loss"]


async def test_two_monitors_on_the_same_tick_sell_once(pool, database_url, settings) -> None:
    mint = new_mint("RACE")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.0006"]))
    h.market.quoter = SlowQuoter(h.market.quoter, 0.3)
    agent_id, wallet = await h.agent(NO_STALE)
    position_id = await h.buy(agent_id, mint)
    # Lowest already below the tick's price: neither monitor has a field to write, so both reach execution.
    await pool.execute("UPDATE agent_positions SET lowest_price = 0.0001 WHERE id = $1", position_id)
    other = h.twin("monitor-test-2")
    h.replay.step()
    h.clock.advance(5)

    first, second = await asyncio.gather(h.monitor.tick(), other.tick())
    await asyncio.gather(h.monitor.drain(), other.drain())

    assert first.actions == second.actions == [(position_id, "stop_loss")]  # both decided to sell
    assert await position(pool, position_id) is None
    sales = [r for r in await trades(pool, position_id) if r["input_mint"] == mint]
    assert len(sales) == 1
    assert len(await history(pool, position_id)) == 1
    token_left = await pool.fetchval(
        "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, mint
    )
    assert token_left is None


async def test_two_monitors_racing_take_profit_and_dca_trade_once_per_level(pool, database_url, settings) -> None:
    tp_mint, dca_mint = new_mint("RTP"), new_mint("RDC")
    records = path_records(tp_mint, ["0.001", "0.0015"]) + path_records(dca_mint, ["0.001", "0.0008"])[1:]
    h = Harness(pool, database_url, settings, records)
    h.market.quoter = SlowQuoter(h.market.quoter, 0.2)
    config = {"stopLoss": {"enabled": False}, "takeProfit": {"enabled": True}, "dca": {"enabled": True}, **NO_STALE}
    agent_id, _ = await h.agent(config, "20")
    tp_position = await h.buy(agent_id, tp_mint)
    dca_position = await h.buy(agent_id, dca_mint)
    # Nothing to write back on this tick, so both monitors reach execution with the same decisions.
    await pool.execute("UPDATE agent_positions SET lowest_price = 0.0001 WHERE agent_id = $1", agent_id)
    other = h.twin("monitor-test-2")
    h.replay.step()
    h.clock.advance(5)

    reports = await asyncio.gather(h.monitor.tick(), other.tick())
    await asyncio.gather(h.monitor.drain(), other.drain())

    for report in reports:
        assert sorted(kind for _, kind in report.actions) == ["dca", "take_profit"]
    tp_row, dca_row = await position(pool, tp_position), await position(pool, dca_position)
    assert (tp_row["take_profit_levels_hit"], tp_row["remaining_amount"]) == (1, D(750))
    assert len([r for r in await trades(pool, tp_position) if r["is_take_profit"]]) == 1
    assert (dca_row["dca_count"], dca_row["purchase_amount"]) == (1, D(1750))
    assert len([r for r in await trades(pool, dca_position) if r["is_dca"]]) == 1


async def test_positions_opened_elsewhere_are_picked_up_even_from_an_empty_set(pool, database_url, settings) -> None:
    mint, other_mint = new_mint("TRK"), new_mint("TRK2")
    records = path_records(mint, ["0.001", "0.001"]) + path_records(other_mint, ["0.002", "0.002"])[1:]
    h = Harness(pool, database_url, settings, records, tracking_refresh_s=3600.0)
    assert (await h.tick()).tracked == 0
    await h.monitor.start_listening()
    try:
        agent_id, wallet = await h.agent(NO_STALE)
        # Another process opens a position: its position_created event refreshes the set at once.
        await h.buy(agent_id, mint)
        for _ in range(100):
            if mint in h.monitor.tracked:
                break
            await asyncio.sleep(0.02)
        report = await h.tick()
        assert (report.tracked, report.evaluated) == (1, 1)

        # A position written without any event (e.g. an import) is found by the periodic refresh.
        await open_position_sql(pool, agent_id, wallet, other_mint, purchase_price="0.002", amount="10")
        assert (await h.tick()).tracked == 1
        h.clock.advance(3600)
        assert (await h.tick()).tracked == 2
    finally:
        await h.monitor.stop_listening()


async def test_invalid_agent_config_skips_its_positions(pool, database_url, settings) -> None:
    mint = new_mint("CFG")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.0005"]))
    agent_id, _ = await h.agent(NO_STALE)
    position_id = await h.buy(agent_id, mint)
    await pool.execute(
        """UPDATE agents SET trading_config = '{"stopLoss": {"mode": "custom", "trailingLevels":
               [{"change": "x", "stopLoss": 90}]}}' WHERE id = $1""",
        agent_id,
    )
    errors = metric("errors_total", {"type": "monitor", "code": "INVALID_CONFIG"})
    report = await h.step()
    assert (report.evaluated, report.actions) == (0, [])
    assert await position(pool, position_id) is not None
    assert metric("errors_total", {"type": "monitor", "code": "INVALID_CONFIG"}) == errors + 1


async def test_dca_refused_for_lack_of_sol_is_suspended_for_a_minute(pool, database_url, settings) -> None:
    mint = new_mint("DSU")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.0008"]))
    # 1.6 SOL, buy 1 SOL ⇒ ~0.6 left; the moderate DCA wants 0.0008 × 1000 × 75 % = 0.6 SOL plus fees.
    agent_id, _ = await h.agent({"dca": {"enabled": True}, **NO_STALE}, deposit="1.6")
    position_id = await h.buy(agent_id, mint)
    triggers = metric("dca_trigger_total")

    assert (await h.step()).actions == [(position_id, "dca")]
    assert (await position(pool, position_id))["dca_count"] == 0
    assert (await h.tick()).actions == []  # suspended, not retried every poll
    h.clock.advance(61)
    assert (await h.tick()).actions == [(position_id, "dca")]
    assert metric("dca_trigger_total") == triggers + 2


async def test_trigger_and_price_metrics_are_recorded(pool, database_url, settings) -> None:
    mint = new_mint("MET")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.0006"]))
    agent_id, _ = await h.agent(NO_STALE)
    await h.buy(agent_id, mint)
    stop_losses, evaluated = metric("stop_loss_trigger_total"), metric("positions_evaluated_total")
    fetches = metric("price_update_total", {"source": "replay", "status": "success"})

    await h.step()

    assert metric("stop_loss_trigger_total") == stop_losses + 1
    assert metric("positions_evaluated_total") == evaluated + 1
    assert metric("price_update_total", {"source": "replay", "status": "success"}) == fetches + 1
    assert metric("price_monitor_tick_seconds_count") >= 1
    assert metric("price_feed_staleness_seconds", {"feed": "replay"}) == 0.0
    assert metric("open_positions") == 1


async def test_the_worker_runs_the_monitor_and_snapshot_services(pool, database_url, settings) -> None:
    assert price_monitor_service in SERVICES and snapshot_service in SERVICES
    mint = new_mint("SVC")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.0005"]), worker_price_poll_ms=20)
    agent_id, _ = await h.agent(NO_STALE)
    await pool.execute("UPDATE agents SET trading_config = '{}' WHERE id = $1", agent_id)
    await open_position_sql(
        pool,
        agent_id,
        (await pool.fetchval("SELECT wallet_address FROM agent_wallets WHERE agent_id = $1", agent_id)),
        mint,
        purchase_price="0.001",
        amount="100",
        stop_loss_percentage="-32",
        peak_price="0.001",
    )
    h.clock.now = datetime.now(UTC)  # the service decides with the wall clock; the replay stamps with this one
    task = asyncio.create_task(price_monitor_service(h.ctx))
    try:
        for _ in range(200):
            if await pool.fetchval("SELECT count(*) FROM agent_positions WHERE token_address = $1", mint) == 0:
                break
            await asyncio.sleep(0.02)
        assert (
            await pool.fetchval("SELECT close_reason FROM agent_historical_swaps WHERE token_address = $1", mint)
            == "stop_loss"
        )
    finally:
        h.ctx.stopping.set()
        await asyncio.wait_for(task, 10)


async def test_settled_positions_are_skipped_until_price_row_or_config_change(pool, database_url, settings) -> None:
    mint = new_mint("QUI")
    prices = ["0.001", "0.00102", "0.00101", "0.00101", "0.00101", "0.00101", "0.00101", "0.00101", "0.00065"]
    h = Harness(pool, database_url, settings, path_records(mint, prices))
    agent_id, _ = await h.agent(NO_STALE)
    position_id = await h.buy(agent_id, mint)

    first = await h.step()  # new peak: evaluated in full, written back
    assert (first.evaluated, first.quiet, first.persisted) == (1, 0, 1)
    settled = await h.step()  # new row version: evaluated in full, settled ⇒ quiet band (0.001, 0.00102)
    assert (settled.evaluated, settled.quiet, settled.persisted) == (1, 0, 0)
    assert (await h.step()).quiet == 1

    await pool.execute(  # the agent's config changes: the band is dropped
        """UPDATE agents SET trading_config = '{"staleTrade": {"enabled": false}, "dca": {"enabled": false}}'
           WHERE id = $1""",
        agent_id,
    )
    assert (await h.step()).quiet == 0
    assert (await h.step()).quiet == 1
    await pool.execute("UPDATE agent_positions SET updated_at = clock_timestamp() WHERE id = $1", position_id)
    assert (await h.step()).quiet == 0

    # Out of the band (below the stop): the full evaluation sells.
    assert (await h.step()).quiet == 1
    report = await h.step()
    assert (report.quiet, report.actions) == (0, [(position_id, "stop_loss")])
