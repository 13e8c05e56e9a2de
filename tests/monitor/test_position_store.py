"""The monitor evaluates an in-process copy of the positions: changes made by other processes must reach it by
the next tick, and a copy one tick behind must never cause a second sale."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.worker.position_store import TokenBook
from app.worker.quiet_band import QuietBand
from tests.monitor.harness import Harness, history, new_mint, path_records, position, trades

D = Decimal
NO_STALE = {"staleTrade": {"enabled": False}}


async def test_a_row_changed_by_plain_sql_is_evaluated_on_the_next_tick(pool, database_url, settings) -> None:
    mint = new_mint("SQL")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.00102", "0.00101", "0.00101", "0.00101"]))
    agent_id, _ = await h.agent(NO_STALE)
    position_id = await h.buy(agent_id, mint)
    await h.step()
    await h.step()
    assert (await h.step()).quiet == 1  # settled: served from memory, not evaluated

    # Another process raises the average: the −32 % stop (0.00102) is now above the price (0.00101).
    await pool.execute("UPDATE agent_positions SET purchase_price = 0.0015 WHERE id = $1", position_id)
    report = await h.step()

    assert (report.quiet, report.actions) == (0, [(position_id, "stop_loss")])
    assert [r["close_reason"] for r in await history(pool, position_id)] == ["stop_loss"]


async def test_a_sale_by_another_monitor_is_seen_and_never_repeated(pool, database_url, settings) -> None:
    mint = new_mint("OTH")
    h = Harness(pool, database_url, settings, path_records(mint, ["0.001", "0.001", "0.0006"]))
    agent_id, wallet = await h.agent(NO_STALE)
    position_id = await h.buy(agent_id, mint)
    other = h.twin("monitor-test-2")
    h.replay.step()
    h.clock.advance(5)
    await h.tick()  # both monitors now hold the position in memory
    await other.tick()
    assert position_id in h.monitor.store.rows and position_id in other.store.rows
    h.replay.step()
    h.clock.advance(5)

    sold_elsewhere = await other.tick()  # the price is under the stop: the other monitor sells
    await other.drain()
    assert sold_elsewhere.actions == [(position_id, "stop_loss")]
    assert await position(pool, position_id) is None

    report = await h.tick()  # same price, this monitor's copy still had the row until its sync

    assert (report.evaluated, report.actions) == (0, [])
    assert len([r for r in await trades(pool, position_id) if r["input_mint"] == mint]) == 1
    assert len(await history(pool, position_id)) == 1
    assert (
        await pool.fetchval(
            "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, mint
        )
        is None
    )
    assert position_id not in h.monitor.store.rows


def test_the_band_index_finds_exactly_the_positions_out_of_their_band() -> None:
    rng = random.Random(5)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    book, bands = TokenBook(), {}

    def bound() -> Decimal | None:
        return None if rng.random() < 0.2 else D(rng.randint(1, 40)) / 10

    for _ in range(400):
        position_id = rng.choice(list(bands)) if bands and rng.random() < 0.3 else uuid.uuid4()
        if position_id not in book.rows:
            book.add({"id": position_id})
        if rng.random() < 0.15:
            book.drop_band(position_id)
            bands[position_id] = None
        elif rng.random() < 0.1:
            book.remove(position_id)
            bands.pop(position_id, None)
        else:
            until = None if rng.random() < 0.5 else now + timedelta(seconds=rng.randint(-5, 5))
            band = QuietBand(lo=bound(), hi=bound(), until=until)
            book.set_band(position_id, band)
            bands[position_id] = band
        for price in (D("0.5"), D(rng.randint(1, 40)) / 10, D(5)):
            expected = {pid for pid, b in bands.items() if b is None or not b.contains(price, now)}
            assert book.due(price, now) == expected
