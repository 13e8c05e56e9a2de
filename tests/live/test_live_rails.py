"""Safety rails in front of live orders: kill switch (config and API), daily loss limit, open-position
cap and the quote's slippage guard. A refused order journals nothing and sends nothing."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from app.live.rails import LiveRefused
from tests.factories import access_headers, create_user
from tests.in_loop import InLoopClient
from tests.live.conftest import OPERATOR, LiveRig, headers, new_mint, wait_for


async def assert_refused(rig: LiveRig, code: str) -> None:
    sends = rig.rpc.calls["sendTransaction"]
    swaps = len(await rig.swaps())
    with pytest.raises(LiveRefused) as caught:
        await rig.buy("1")
    assert caught.value.code == code
    assert rig.rpc.calls["sendTransaction"] == sends
    assert len(await rig.swaps()) == swaps
    await rig.assert_ledger_matches_chain()


async def test_user_kill_switch_stops_new_orders_until_resumed(rig: LiveRig, live_client: AsyncTestClient) -> None:
    await rig.setup()
    rig.auto_land()
    resp = await live_client.post(
        "/api/v1/live/kill-switch", json={"halted": True, "reason": "panic"}, headers=headers(rig)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["userHalt"] == {
        "halted": True,
        "reason": "panic",
        "updatedAt": resp.json()["userHalt"]["updatedAt"],
    }

    await assert_refused(rig, "KILL_SWITCH")

    resp = await live_client.post("/api/v1/live/kill-switch", json={"halted": False}, headers=headers(rig))
    assert resp.json()["userHalt"]["halted"] is False
    await rig.buy("1")
    await rig.assert_ledger_matches_chain()


async def test_halt_committed_while_an_order_is_being_built_stops_it(
    rig: LiveRig, in_loop_client: InLoopClient
) -> None:
    # The halt is posted while the buy waits for the (in-loop) Jupiter fake: the app must run in this loop.
    await rig.setup()
    rig.auto_land()
    rig.jup.delay("swap", 0.3)

    async def halt_during_build() -> None:
        await wait_for(lambda: rig.jup.calls["swap"] >= 1)
        resp = await in_loop_client.post("/api/v1/live/kill-switch", json={"halted": True}, headers=headers(rig))
        assert resp.status_code == 200

    halter = asyncio.create_task(halt_during_build())
    with pytest.raises(LiveRefused) as caught:
        await rig.buy("1")
    await halter
    assert caught.value.code == "KILL_SWITCH"
    assert rig.rpc.calls["sendTransaction"] == 0 and await rig.swaps() == []
    await rig.assert_ledger_matches_chain()
    await in_loop_client.post("/api/v1/live/kill-switch", json={"halted": False}, headers=headers(rig))


async def test_global_kill_switch_is_the_operators(rig: LiveRig, live_client: AsyncTestClient) -> None:
    await rig.setup()
    resp = await live_client.post(
        "/api/v1/live/kill-switch", json={"halted": True, "scope": "global"}, headers=headers(rig)
    )
    assert resp.status_code == 403

    operator = await rig.pool.fetchval("SELECT id FROM users WHERE email = $1", OPERATOR)  # seeded at startup
    operator_headers = access_headers(rig.settings, operator, OPERATOR)
    try:
        resp = await live_client.post(
            "/api/v1/live/kill-switch", json={"halted": True, "scope": "global"}, headers=operator_headers
        )
        assert resp.status_code == 200 and resp.json()["globalHalt"]["halted"] is True
        await assert_refused(rig, "KILL_SWITCH")
    finally:
        await live_client.post(
            "/api/v1/live/kill-switch", json={"halted": False, "scope": "global"}, headers=operator_headers
        )


async def test_config_switch_disables_live_trading(rig: LiveRig) -> None:
    await rig.setup(live_trading_enabled=False)
    await assert_refused(rig, "LIVE_TRADING_DISABLED")


async def test_daily_loss_limit_refuses_buys_but_not_sales(rig: LiveRig, live_client: AsyncTestClient) -> None:
    await rig.setup()
    rig.auto_land()
    bought = await rig.buy("1")
    resp = await live_client.put(
        f"/api/v1/live/agents/{rig.agent_id}/limits", json={"dailyLossLimitSol": "0.5"}, headers=headers(rig)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["effective"]["dailyLossLimitSol"] == "0.5"
    await rig.pool.execute(
        """INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount,
               purchase_price, sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time)
           VALUES ($1, $2, 'LossMint1111111111111111111111111111111111', 'LOSS', 1, 1, 0.4, -60, -90, -0.6,
                   now() - interval '1 hour', now())""",
        rig.agent_id,
        rig.wallet,
    )
    rig.mint = new_mint()  # a second token: only the loss rail stands in the way
    rig.rpc.mint_decimals[rig.mint] = 6
    await assert_refused(rig, "DAILY_LOSS_LIMIT")

    await rig.sell_all(bought.position_id)  # exits reduce risk: never blocked by the loss rail
    await rig.assert_ledger_matches_chain()


async def test_open_position_cap(rig: LiveRig, live_client: AsyncTestClient) -> None:
    await rig.setup()
    resp = await live_client.put(
        f"/api/v1/live/agents/{rig.agent_id}/limits", json={"maxOpenPositions": 0}, headers=headers(rig)
    )
    assert resp.status_code == 200
    await assert_refused(rig, "MAX_OPEN_POSITIONS")

    other = await create_user(rig.pool)
    resp = await live_client.put(
        f"/api/v1/live/agents/{rig.agent_id}/limits",
        json={"maxOpenPositions": 5},
        headers=access_headers(rig.settings, other),
    )
    assert resp.status_code == 404


async def test_quote_allowing_too_much_slippage_is_refused(rig: LiveRig) -> None:
    await rig.setup()
    rig.jup.order_overrides = {"otherAmountThreshold": "0"}  # a quote that would accept any output
    await assert_refused(rig, "SLIPPAGE_TOO_HIGH")


async def test_limits_validation(rig: LiveRig, live_client: AsyncTestClient) -> None:
    await rig.setup()
    for body in ({"dailyLossLimitSol": "-1"}, {"maxOpenPositions": -2}, {"dailyLossLimitSol": "abc"}):
        resp = await live_client.put(f"/api/v1/live/agents/{rig.agent_id}/limits", json=body, headers=headers(rig))
        assert resp.status_code == 400, (body, resp.text)
    resp = await live_client.get(f"/api/v1/live/agents/{rig.agent_id}/limits", headers=headers(rig))
    assert resp.json()["dailyLossLimitSol"] is None
    assert Decimal(str(resp.json()["effective"]["maxOpenPositions"])) == rig.settings.live_max_open_positions
