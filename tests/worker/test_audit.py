"""``nexgent audit``: clean after real trading, and each kind of damage is found."""

from __future__ import annotations

import asyncio
import os
import sys
from decimal import Decimal

from app.audit import run_audit
from app.worker.execution import execute_buy, execute_full_sale, execute_take_profit_sale
from app.worker.intake import drain_signals
from tests.dbutil import PROJECT_ROOT
from tests.factories import create_agent, create_user, deposit_sol
from tests.worker.helpers import NINE, STEADY, execution_context, insert_signal

SOL = "So11111111111111111111111111111111111111112"


async def nexgent_audit(database_url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "audit", cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_audit_is_clean_after_trading_and_dirty_after_tampering(pool, settings, database_url):
    ctx = execution_context(pool, settings)
    user = await create_user(pool)
    agents = []
    for _ in range(3):
        agent, wallet = await create_agent(pool, user)
        await deposit_sol(pool, agent, wallet, "5")
        agents.append((agent, wallet))
    await insert_signal(pool, user, STEADY)
    await drain_signals(ctx, settings, "audit-test")
    first = await execute_buy(ctx, agent_id=agents[0][0], token_address=NINE, position_size=Decimal("1"))
    await execute_take_profit_sale(
        ctx, position_id=first.position_id, sell_amount=first.output_amount / 3, levels_executed=1,
        expected_levels_hit=0, activate_moon_bag=False, moon_bag_amount=None,
    )  # fmt: skip
    await execute_full_sale(ctx, agent_id=agents[0][0], position_id=first.position_id, reason="manual")

    assert await run_audit(pool) == []
    code, output = await nexgent_audit(database_url)
    assert code == 0 and "audit: 0 finding(s)" in output, output

    wallet = agents[1][1]
    await pool.execute(
        "UPDATE agent_balances SET balance = '4.5' WHERE wallet_address = $1 AND token_address = $2", wallet, SOL
    )
    code, output = await nexgent_audit(database_url)
    assert code == 1, output
    assert f"[balance-vs-ledger] wallet {wallet} {SOL}: balance 4.5 but ledger sum" in output
    assert "audit: 1 finding(s)" in output


async def test_each_invariant_is_checked(pool, settings):
    ctx = execution_context(pool, settings)
    user = await create_user(pool)
    agent, wallet = await create_agent(pool, user)
    await deposit_sol(pool, agent, wallet, "5")
    bought = await execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=Decimal("1"))
    sold = await execute_buy(ctx, agent_id=agent, token_address=NINE, position_size=Decimal("1"))
    sale = await execute_full_sale(ctx, agent_id=agent, position_id=sold.position_id, reason="manual")
    late = await create_agent(pool, user)
    signal_id = await insert_signal(pool, user, STEADY)
    await pool.execute("UPDATE trading_signals SET processed_at = now() + interval '1 hour' WHERE id = $1", signal_id)
    baseline = {str(f) for f in await run_audit(pool)}
    assert any(f"agent {agent} has no execution row" in f for f in baseline)
    assert any(f"agent {late[0]} has no execution row" in f for f in baseline)

    await pool.execute("UPDATE agent_positions SET remaining_amount = purchase_amount * 2 WHERE id = $1",
                       bought.position_id)  # fmt: skip
    await pool.execute("UPDATE agent_historical_swaps SET profit_loss_sol = profit_loss_sol + 0.01 WHERE id = $1",
                       sale.historical_swap_id)  # fmt: skip
    await pool.execute(
        "INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance) "
        "VALUES ($1, $2, 'Neg11111111111111111111111111111111111111111', 'NEG', '-1')",
        agent,
        wallet,
    )

    findings = {f.check for f in await run_audit(pool)}
    assert {"position-vs-balance", "closed-trade", "negative-balance", "balance-vs-ledger"} <= findings
    assert "signal-execution-missing" in findings
