"""Manual trades of a live wallet over HTTP: outcomes that are not the client's fault are not answered 400.

The app runs in the test's loop (``in_loop_client``); the worker's part is ``drain_requests`` on the rig's
live execution context, run until the route has answered."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from app.worker.trade_requests import drain_requests
from tests.in_loop import InLoopClient
from tests.live.conftest import LiveRig, headers


async def post_and_execute(rig: LiveRig, client: InLoopClient, path: str, body: dict[str, Any]) -> Any:
    answer = asyncio.create_task(client.post(path, json=body, headers=headers(rig)))
    while not answer.done():
        await drain_requests(rig.ctx, rig.settings)
        await asyncio.sleep(0.01)
    return answer.result()


async def manual_buy(rig: LiveRig, client: InLoopClient) -> Any:
    body = {"agentId": str(rig.agent_id), "tokenAddress": rig.mint, "tokenSymbol": "FAKE", "positionSize": "1"}
    return await post_and_execute(rig, client, "/api/v1/trades/execute", body)


async def test_unconfirmed_swap_is_accepted_pending_settlement_and_the_wallet_busy_until_resolved(
    rig: LiveRig, in_loop_client: InLoopClient
) -> None:
    await rig.setup(live_confirm_timeout_s=0.2)
    rig.rpc.send_outcome = "drop"
    rig.rpc.drop("sendTransaction")

    resp = await manual_buy(rig, in_loop_client)
    assert resp.status_code == 202, resp.text
    [swap] = await rig.swaps()
    body = resp.json()
    request_id = body["requestId"]
    assert body["status"] == "pending_settlement" and body["code"] == "SWAP_UNCONFIRMED"
    assert body["signature"] == swap["signature"]
    assert body["statusUrl"] == f"/api/v1/trades/requests/{request_id}" == resp.headers["Location"]
    polled = await in_loop_client.get(body["statusUrl"], headers=headers(rig))
    assert polled.status_code == 202 and polled.json() == body

    busy = await manual_buy(rig, in_loop_client)  # blockhash still valid: the first swap may yet land
    assert busy.status_code == 409 and busy.json()["code"] == "WALLET_BUSY"
    assert int(busy.headers["Retry-After"]) > 0
    assert len(await rig.swaps()) == 1

    rig.rpc.expire_blockhashes()
    assert await rig.executor.settlement.run_once() == ["expired"]
    assert await rig.ledger_rows() == []
    await rig.assert_ledger_matches_chain()
    # The request learns the outcome settlement established: no trade, safe to retry.
    settled = await in_loop_client.get(body["statusUrl"], headers=headers(rig))
    assert settled.status_code == 502, settled.text
    assert settled.json()["code"] == "SWAP_EXPIRED"
    assert settled.json()["error"] == "Swap expired without landing (no trade)"


async def test_unconfirmed_buy_that_lands_later_answers_its_request_with_the_settled_trade(
    rig: LiveRig, in_loop_client: InLoopClient
) -> None:
    await rig.setup(live_confirm_timeout_s=0.2)  # sent, then left pending on the fake chain
    resp = await manual_buy(rig, in_loop_client)
    assert resp.status_code == 202, resp.text
    status_url = resp.json()["statusUrl"]
    [swap] = await rig.swaps()

    rig.land(rig.rpc.sent[swap["signature"]])
    assert await rig.executor.settlement.run_once() == ["settled"]

    polled = await in_loop_client.get(status_url, headers=headers(rig))
    assert polled.status_code == 200, polled.text
    answer = polled.json()
    [ledger] = await rig.ledger_rows()
    position_id = await rig.pool.fetchval("SELECT id FROM agent_positions WHERE agent_id = $1", rig.agent_id)
    assert answer["success"] is True
    assert answer["transactionId"] == str(ledger["id"]) and answer["positionId"] == str(position_id)
    assert answer["transactionHash"] == swap["signature"]
    assert Decimal(str(answer["outputAmount"])) == ledger["output_amount"]
    await rig.assert_ledger_matches_chain()


async def test_unconfirmed_close_that_lands_later_answers_its_request_with_the_sale(
    rig: LiveRig, in_loop_client: InLoopClient
) -> None:
    await rig.setup(live_confirm_timeout_s=0.2)
    rig.auto_land()
    bought = await manual_buy(rig, in_loop_client)
    assert bought.status_code == 200, bought.text
    position_id = bought.json()["positionId"]

    rig.rpc.on_send = None  # the sale is sent and stays pending past the confirmation timeout
    path = f"/api/v1/agent-positions/{rig.agent_id}/{position_id}/close"
    resp = await post_and_execute(rig, in_loop_client, path, {"reason": "manual"})
    assert resp.status_code == 202, resp.text
    _, sale_swap = await rig.swaps()
    rig.land(rig.rpc.sent[sale_swap["signature"]])
    assert await rig.executor.settlement.run_once() == ["settled"]

    polled = await in_loop_client.get(resp.json()["statusUrl"], headers=headers(rig))
    assert polled.status_code == 200, polled.text
    answer = polled.json()
    history_id = await rig.pool.fetchval(
        "SELECT id FROM agent_historical_swaps WHERE position_id = $1", uuid.UUID(position_id)
    )
    assert answer["positionId"] == position_id and answer["historicalSwapId"] == str(history_id)
    assert answer["transactionHash"] == sale_swap["signature"]
    await rig.assert_ledger_matches_chain()


async def test_expired_close_is_an_upstream_failure_and_the_position_stays_open(
    rig: LiveRig, in_loop_client: InLoopClient
) -> None:
    await rig.setup()
    rig.auto_land()
    bought = await manual_buy(rig, in_loop_client)
    assert bought.status_code == 200, bought.text
    position_id = bought.json()["positionId"]

    rig.rpc.send_outcome = "drop"
    rig.rpc.on_send = lambda sent: rig.rpc.expire_blockhashes()
    resp = await post_and_execute(
        rig, in_loop_client, f"/api/v1/agent-positions/{rig.agent_id}/{position_id}/close", {"reason": "manual"}
    )
    assert resp.status_code == 502 and resp.json()["code"] == "SWAP_EXPIRED"
    assert await rig.pool.fetchval("SELECT count(*) FROM agent_positions WHERE id = $1", position_id) == 1
    assert len(await rig.ledger_rows()) == 1
    await rig.assert_ledger_matches_chain()
