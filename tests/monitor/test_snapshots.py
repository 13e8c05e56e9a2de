"""Hourly balance snapshots: hour alignment, upsert, backfill after downtime, withdrawals are not losses."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from app.market.types import TokenPrice
from app.trading.ledger import format_balance, parse_balance
from app.trading.performance import ClosedTradeRow, performance_summary
from app.worker.prices import store_prices
from app.worker.snapshots import (
    capture_snapshots,
    missed_hours,
    seconds_until_next_run,
    snapshot_wallet_valuations,
    wallet_figures,
)
from tests.factories import SOL_MINT, create_agent, create_user, deposit_sol, open_position_sql

TOKEN_A = "TokenA1111111111111111111111111111111111111"
TOKEN_B = "TokenB1111111111111111111111111111111111111"
D = Decimal


async def _price(pool: asyncpg.Pool, mint: str, price_sol: str) -> None:
    await store_prices(
        pool,
        [
            TokenPrice(
                mint=mint,
                price_sol=D(price_sol),
                price_usd=None,
                liquidity_usd=None,
                observed_at=datetime.now(UTC),
                source="test",
            )
        ],
    )


async def _take_profit_sql(pool: asyncpg.Pool, agent_id: uuid.UUID, wallet: str, position_id: uuid.UUID) -> None:
    """Spec §11.3 position B: one take-profit sold 250 of 1000 tokens for a net 0.37 SOL, realizing 0.12."""
    async with pool.acquire() as conn, conn.transaction():
        tx_id = await conn.fetchval(
            """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                   transaction_time, input_mint, input_symbol, input_amount, input_price, output_mint, output_symbol,
                   output_amount, output_price, is_take_profit)
               VALUES ($1, $2, 'SWAP', 0, now(), $3, 'TKB', 250, 0.00148, $4, 'SOL', 0.37, 1, true) RETURNING id""",
            agent_id,
            wallet,
            TOKEN_B,
            SOL_MINT,
        )
        for mint, delta in ((SOL_MINT, D("0.37")), (TOKEN_B, D(-250))):
            current = parse_balance(
                await conn.fetchval(
                    "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, mint
                )
            )
            await conn.execute(
                "UPDATE agent_balances SET balance = $3 WHERE wallet_address = $1 AND token_address = $2",
                wallet,
                mint,
                format_balance(current + delta),
            )
        await conn.execute(
            """UPDATE agent_positions SET remaining_amount = 750, realized_profit_sol = 0.12,
                   take_profit_levels_hit = 1, take_profit_transaction_ids = ARRAY[$2::uuid]
               WHERE id = $1""",
            position_id,
            tx_id,
        )


async def _spec_wallet(pool: asyncpg.Pool) -> tuple[uuid.UUID, str]:
    """The worked example of domain §11.3: SOL 5.0, positions A and B at 0.0012 / 0.0015."""
    user = await create_user(pool)
    agent_id, wallet = await create_agent(pool, user)
    await deposit_sol(pool, agent_id, wallet, "6.63")
    await open_position_sql(pool, agent_id, wallet, TOKEN_A, purchase_price="0.001", amount="1000", symbol="TKA")
    position_b = await open_position_sql(
        pool, agent_id, wallet, TOKEN_B, purchase_price="0.001", amount="1000", symbol="TKB"
    )
    await _take_profit_sql(pool, agent_id, wallet, position_b)
    await _price(pool, TOKEN_A, "0.0012")
    await _price(pool, TOKEN_B, "0.0015")
    return agent_id, wallet


async def _snapshots(pool: asyncpg.Pool, agent_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT snapshot_timestamp, portfolio_balance_sol, sol_balance, positions_value_sol, unrealized_pnl_sol
           FROM agent_balance_snapshots WHERE agent_id = $1 ORDER BY snapshot_timestamp""",
        agent_id,
    )


async def test_snapshot_is_hour_aligned_with_the_spec_figures_and_upserted_within_the_hour(pool: asyncpg.Pool) -> None:
    agent_id, wallet = await _spec_wallet(pool)

    run = await capture_snapshots(pool, now=datetime(2026, 3, 4, 14, 37, 12, tzinfo=UTC), backfill_max_hours=168)

    assert run.hour == datetime(2026, 3, 4, 14, tzinfo=UTC)
    assert not run.failed
    rows = await _snapshots(pool, agent_id)
    assert [tuple(r) for r in rows] == [
        (datetime(2026, 3, 4, 14, tzinfo=UTC), D("7.32500000"), D("5.00000000"), D("2.32500000"), D("0.57500000"))
    ]

    # A second run in the same hour overwrites the figures instead of adding a row.
    await _price(pool, TOKEN_A, "0.0010")
    await capture_snapshots(pool, now=datetime(2026, 3, 4, 14, 59, 59, tzinfo=UTC), backfill_max_hours=168)
    rows = await _snapshots(pool, agent_id)
    assert len(rows) == 1
    assert (rows[0]["portfolio_balance_sol"], rows[0]["positions_value_sol"], rows[0]["unrealized_pnl_sol"]) == (
        D("7.12500000"),
        D("2.12500000"),
        D("0.37500000"),
    )
    assert wallet  # the wallet is the agent's only one


async def test_unpriced_position_is_valued_at_its_purchase_price(pool: asyncpg.Pool) -> None:
    user = await create_user(pool)
    agent_id, wallet = await create_agent(pool, user)
    await deposit_sol(pool, agent_id, wallet, "3")
    await open_position_sql(
        pool, agent_id, wallet, "NeverPriced11111111111111111111111111111111", purchase_price="0.002", amount="500"
    )
    async with pool.acquire() as conn:
        figures = await wallet_figures(conn, agent_id, wallet)
    assert (figures.sol_balance, figures.positions_value_sol, figures.unrealized_pnl_sol) == (D(2), D(1), D(0))


async def test_missed_hours_are_backfilled_once_and_logged(pool: asyncpg.Pool, caplog) -> None:
    user = await create_user(pool)
    agent_id, wallet = await create_agent(pool, user)
    await deposit_sol(pool, agent_id, wallet, "2")
    await capture_snapshots(pool, now=datetime(2026, 5, 1, 10, 5, tzinfo=UTC), backfill_max_hours=168)

    await deposit_sol(pool, agent_id, wallet, "1")  # the balance while the worker was down
    with caplog.at_level(logging.WARNING, logger="app.worker.snapshots"):
        run = await capture_snapshots(pool, now=datetime(2026, 5, 1, 14, 20, tzinfo=UTC), backfill_max_hours=168)

    rows = await _snapshots(pool, agent_id)
    assert [(r["snapshot_timestamp"].hour, r["sol_balance"]) for r in rows] == [
        (10, D(2)),
        (11, D(3)),
        (12, D(3)),
        (13, D(3)),
        (14, D(3)),
    ]
    assert run.backfilled_hours >= 3
    logged = [r for r in caplog.records if r.getMessage() == "balance snapshots backfilled after downtime"]
    mine = [r for r in logged if r.fields["wallet_address"] == wallet]
    assert len(mine) == 1
    assert mine[0].fields["backfilled"] is True
    assert mine[0].fields["hours"] == 3
    assert mine[0].fields["first_hour"].startswith("2026-05-01T11:00")

    # Filled once: a later run never rewrites a backfilled hour (here: the balance changed again).
    await deposit_sol(pool, agent_id, wallet, "1")
    await capture_snapshots(pool, now=datetime(2026, 5, 1, 14, 50, tzinfo=UTC), backfill_max_hours=168)
    rows = await _snapshots(pool, agent_id)
    assert [(r["snapshot_timestamp"].hour, r["sol_balance"]) for r in rows] == [
        (10, D(2)),
        (11, D(3)),
        (12, D(3)),
        (13, D(3)),
        (14, D(4)),
    ]


async def test_backfill_is_capped(pool: asyncpg.Pool) -> None:
    user = await create_user(pool)
    agent_id, wallet = await create_agent(pool, user)
    await deposit_sol(pool, agent_id, wallet, "1")
    await capture_snapshots(pool, now=datetime(2026, 6, 1, 0, 30, tzinfo=UTC), backfill_max_hours=5)
    await capture_snapshots(pool, now=datetime(2026, 6, 3, 0, 30, tzinfo=UTC), backfill_max_hours=5)
    hours = [r["snapshot_timestamp"] for r in await _snapshots(pool, agent_id)]
    last = datetime(2026, 6, 3, tzinfo=UTC)
    assert hours == [datetime(2026, 6, 1, tzinfo=UTC), *[last - timedelta(hours=n) for n in range(5, -1, -1)]]
    assert wallet


def test_missed_hours_and_schedule() -> None:
    now_hour = datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert missed_hours(None, now_hour, 10) == []
    assert missed_hours(now_hour, now_hour, 10) == []
    assert missed_hours(now_hour - timedelta(hours=1), now_hour, 10) == []
    assert missed_hours(now_hour - timedelta(hours=3), now_hour, 10) == [
        datetime(2026, 1, 1, 3, tzinfo=UTC),
        datetime(2026, 1, 1, 4, tzinfo=UTC),
    ]
    assert missed_hours(now_hour - timedelta(hours=3), now_hour, 1) == [datetime(2026, 1, 1, 4, tzinfo=UTC)]
    # Runs just after the next hour, or earlier when the interval is shorter.
    assert seconds_until_next_run(datetime(2026, 1, 1, 5, 59, 30, tzinfo=UTC), 3600) == 31.0
    assert seconds_until_next_run(datetime(2026, 1, 1, 5, 0, 0, tzinfo=UTC), 600) == 600.0


async def test_withdrawal_lowers_the_portfolio_but_is_not_a_loss(pool: asyncpg.Pool) -> None:
    agent_id, wallet = await _spec_wallet(pool)
    await pool.execute(
        """INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount,
               purchase_price, sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time,
               close_reason)
           SELECT $1, $2, 'Closed111111111111111111111111111111111111', 'CLS', 1000, 0.001, 0.0013, c, 0, p, now(),
                  now(), 'manual'
           FROM unnest(ARRAY[30, -10, 5]::numeric[], ARRAY[0.3, -0.1, 0.05]::numeric[]) AS t(c, p)""",
        agent_id,
        wallet,
    )

    async def summary():
        async with pool.acquire() as conn:
            sol = parse_balance(
                await conn.fetchval(
                    "SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2",
                    wallet,
                    SOL_MINT,
                )
            )
            trades = [
                ClosedTradeRow(r["profit_loss_sol"], r["change_percent"])
                for r in await conn.fetch(
                    "SELECT profit_loss_sol, change_percent FROM agent_historical_swaps WHERE agent_id = $1", agent_id
                )
            ]
            return performance_summary(trades, await snapshot_wallet_valuations(conn, agent_id, wallet), sol)

    before = await summary()
    assert (
        before.portfolio_balance_sol,
        before.realized_profit_loss_sol,
        before.unrealized_profit_loss_sol,
        before.total_profit_loss_sol,
    ) == (D("7.325"), D("0.37"), D("0.575"), D("0.945"))
    await capture_snapshots(pool, now=datetime(2026, 7, 1, 9, 10, tzinfo=UTC), backfill_max_hours=168)

    # A withdrawal of 1.5 SOL: a WITHDRAWAL ledger row and the matching debit (ledger rule: −amount).
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                   transaction_time, destination_address, input_mint, input_symbol, input_amount, input_price, fees)
               VALUES ($1, $2, 'WITHDRAWAL', 0, now(), 'Dest111111111111111111111111111111111111111', $3, 'SOL',
                       1.5, 0, 0)""",
            agent_id,
            wallet,
            SOL_MINT,
        )
        await conn.execute(
            "UPDATE agent_balances SET balance = '3.5' WHERE wallet_address = $1 AND token_address = $2",
            wallet,
            SOL_MINT,
        )
    after = await summary()
    assert after.portfolio_balance_sol == before.portfolio_balance_sol - D("1.5")
    assert (
        after.realized_profit_loss_sol,
        after.unrealized_profit_loss_sol,
        after.total_profit_loss_sol,
        after.win_rate,
        after.average_return,
    ) == (
        before.realized_profit_loss_sol,
        before.unrealized_profit_loss_sol,
        before.total_profit_loss_sol,
        before.win_rate,
        before.average_return,
    )

    await capture_snapshots(pool, now=datetime(2026, 7, 1, 10, 10, tzinfo=UTC), backfill_max_hours=168)
    rows = await _snapshots(pool, agent_id)
    assert [(r["portfolio_balance_sol"], r["sol_balance"], r["unrealized_pnl_sol"]) for r in rows] == [
        (D("7.325"), D("5"), D("0.575")),
        (D("5.825"), D("3.5"), D("0.575")),
    ]
