"""A fan-out quoted by a rate-limited Jupiter: the shared budget paces the lanes, every agent is bought."""

from __future__ import annotations

import time
from decimal import Decimal

import aiohttp

from app.audit import run_audit
from app.market.budget import UpstreamBudget
from app.market.jupiter import JupiterUltra
from app.worker.intake import drain_signals
from tests.factories import create_agent, create_user, deposit_sol
from tests.fakes import FakeJupiter
from tests.worker.helpers import STEADY, MarketBundle, execution_context, insert_signal, replay_market

KEY = "test-key"


async def test_fan_out_on_a_rate_limited_account_is_paced_not_refused(pool, settings) -> None:
    async with FakeJupiter(api_key=KEY) as jupiter, aiohttp.ClientSession() as http_session:
        jupiter.sol_per_token[STEADY] = Decimal("0.0000273115456547")
        jupiter.limit_account(4, 1.0)  # Jupiter's sliding window, shared by every endpoint
        budget = UpstreamBudget("jupiter", rate=2)
        quoter = JupiterUltra(http_session, api_key=KEY, base_url=jupiter.ultra_url, budget=budget)
        ctx = execution_context(pool, settings, MarketBundle(replay_market(), quoter=quoter))
        user = await create_user(pool)
        agents = []
        for _ in range(6):
            agent, wallet = await create_agent(pool, user)
            await deposit_sol(pool, agent, wallet, "3")
            agents.append(agent)
        signal_id = await insert_signal(pool, user, STEADY)

        started = time.monotonic()
        await drain_signals(ctx, settings, "w1")

        rows = await pool.fetch("SELECT agent_id, status, error FROM signal_executions WHERE signal_id = $1", signal_id)
        assert {r["agent_id"]: (r["status"], r["error"]) for r in rows} == {a: ("success", None) for a in agents}
        # Six quotes on settings.worker_concurrency lanes, at two a second: never refused, and really spaced.
        assert jupiter.calls["order"] == 6 and jupiter.rate_limited == 0
        assert time.monotonic() - started >= 2.0
        assert await run_audit(pool) == []
