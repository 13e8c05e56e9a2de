"""Concurrent withdrawals racing each other and a buy on the same wallet: the agent lock serialises them, so
no balance goes negative and exactly as many succeed as the funds allow."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from app.trading.errors import TradeError
from app.worker.execution import execute_buy
from tests.factories import SOL_MINT
from tests.withdrawals.conftest import TOKEN, assert_audit_clean, balances, body, new_owner, sim_context

D = Decimal
URL = "/api/v1/wallets/{}/withdraw"


async def test_withdrawals_racing_a_buy_exactly_one_wins(in_loop_client, pool, settings) -> None:
    # 2 SOL pays for a 1.2 SOL withdrawal or a 1 SOL buy (which must keep the 0.5 SOL reserve), never two of them.
    for round_ in range(4):
        owner = await new_owner(pool, settings, sol="2")
        ctx = sim_context(pool, settings)

        async def buy(owner=owner, ctx=ctx) -> str:
            try:
                await execute_buy(ctx, agent_id=owner.agent_id, token_address=TOKEN, position_size=D(1))
            except TradeError:
                return "refused"
            return "bought"

        async def withdraw(owner=owner) -> str:
            resp = await in_loop_client.post(URL.format(owner.wallet), json=body("1.2"), headers=owner.headers)
            assert resp.status_code in (201, 409), resp.text
            return "withdrawn" if resp.status_code == 201 else "refused"

        racers = [withdraw(), withdraw(), withdraw()]
        racers.insert(round_, buy())  # the buy starts first, second, ... in turn
        outcomes = await asyncio.gather(*racers)

        assert sorted(outcomes).count("refused") == 3, outcomes
        wallet = await balances(pool, owner.wallet)
        assert all(value >= 0 for value in wallet.values()), wallet
        if "withdrawn" in outcomes:
            assert wallet == {SOL_MINT: D("0.799995")}
        else:
            assert wallet[TOKEN] > 0 and wallet[SOL_MINT] >= D("0.5")
    await assert_audit_clean(pool)


async def test_concurrent_withdrawals_take_only_what_is_there(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="1")

    answers = await asyncio.gather(
        *(in_loop_client.post(URL.format(owner.wallet), json=body("0.3"), headers=owner.headers) for _ in range(5))
    )

    assert sorted(a.status_code for a in answers) == [201, 201, 201, 409, 409]
    assert {a.json()["details"]["available"] for a in answers if a.status_code == 409} == {
        "0.09998"
    }  # the balance minus the fee
    assert await balances(pool, owner.wallet) == {SOL_MINT: D("0.099985")}
    await assert_audit_clean(pool)
