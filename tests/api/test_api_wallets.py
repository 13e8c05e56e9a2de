"""Wallets: list, assign (owner-bound live keys), reset, unassign, check-deposits (api.md §9, §25.1)."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import msgspec
import pytest
from solders.keypair import Keypair

from app.auth.runtime import auth_runtime
from app.live.keys import load_keystore, set_keystore
from tests.api.helpers import USDC, assert_ledger_consistent, balance_of, create_agent_via_api, sim_wallet
from tests.factories import SOL_MINT
from tests.fakes.solana_rpc import FakeSolanaRpc


@pytest.fixture
def live_keys(user):
    """Two server keys: one bound to ``user``, one to somebody else."""
    mine, foreign = Keypair(), Keypair()
    store = load_keystore(
        {
            "WALLET_1": json.dumps(list(bytes(mine))),
            "WALLET_1_OWNER": user.email,
            "WALLET_2": json.dumps(list(bytes(foreign))),
            "WALLET_2_OWNER": "someone-else@example.com",
        }
    )
    set_keystore(store)
    yield str(mine.pubkey()), str(foreign.pubkey())
    set_keystore(None)


async def assign(client, user, agent_id, wallet_type, address=None):
    body = {"agentId": agent_id, "walletType": wallet_type}
    if address is not None:
        body["walletAddress"] = address
    return await client.post("/api/v1/wallets/assign", json=body, headers=user.headers)


async def test_list_shows_only_my_live_keys(client, pool, user, other, live_keys) -> None:
    mine, foreign = live_keys
    agent = await create_agent_via_api(client, user)
    listed = await client.get(f"/api/v1/wallets/agent/{agent['id']}", headers=user.headers)
    assert listed.status_code == 200
    body = listed.json()
    assert [w["walletType"] for w in body["agentWallets"]] == ["simulation"]
    assert body["agentWallets"][0]["isAvailable"] is True
    assert body["availableWallets"] == [{"walletAddress": mine, "isAssigned": False}]
    assert foreign not in listed.text
    assert (await client.get(f"/api/v1/wallets/agent/{agent['id']}", headers=other.headers)).status_code == 404
    assert (await client.get("/api/v1/wallets/agent/bad", headers=user.headers)).status_code == 400


async def test_live_assignment_is_bound_to_the_key_owner(client, pool, user, other, live_keys) -> None:
    mine, foreign = live_keys
    agent = await create_agent_via_api(client, user)
    refused = await assign(client, user, agent["id"], "live", foreign)
    assert refused.status_code == 400 and refused.json()["code"] == "WALLET_NOT_LOADED"
    unknown = await assign(client, user, agent["id"], "live", str(Keypair().pubkey()))
    assert unknown.status_code == 400 and unknown.json()["code"] == "WALLET_NOT_LOADED"  # no hint whose key it is
    assert (await assign(client, user, agent["id"], "live", "sim_abc")).status_code == 400
    assert (await assign(client, user, agent["id"], "live")).status_code == 400

    created = await assign(client, user, agent["id"], "live", mine)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "success": True,
        "walletAddress": mine,
        "walletType": "live",
        "message": "Wallet assigned successfully",
        "network": "mainnet",
    }
    auth_runtime(client.app.state).limiter.reset()  # 5 assignments a minute; this test makes more
    again = await assign(client, user, agent["id"], "live", mine)
    assert again.status_code == 200 and again.json()["message"] == "Wallet assignment updated"
    second_agent = await create_agent_via_api(client, user, "Second agent")
    taken = await assign(client, user, second_agent["id"], "live", mine)
    assert taken.status_code == 409
    # The other user cannot take my key even for their own agent, nor touch my agent.
    theirs = await create_agent_via_api(client, other, "Their agent")
    assert (await assign(client, other, theirs["id"], "live", mine)).status_code == 400
    assert (await assign(client, other, agent["id"], "simulation")).status_code == 404
    listed = (await client.get(f"/api/v1/wallets/agent/{agent['id']}", headers=user.headers)).json()
    assert {"walletAddress": mine, "isAssigned": True} in listed["availableWallets"]


async def test_live_assignment_without_keys_is_refused(client, pool, user) -> None:
    set_keystore(load_keystore({}))
    try:
        agent = await create_agent_via_api(client, user)
        address = str(Keypair().pubkey())
        response = await assign(client, user, agent["id"], "live", address)
        assert response.status_code == 400 and response.json()["code"] == "WALLET_NOT_LOADED"
        assert await pool.fetchval("SELECT count(*) FROM agent_wallets WHERE wallet_address = $1", address) == 0
    finally:
        set_keystore(None)


async def test_simulation_assignment(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    existing = await assign(client, user, agent["id"], "simulation")
    assert existing.status_code == 200 and existing.json()["walletAddress"] == wallet
    assert (await assign(client, user, agent["id"], "simulation", "sim_myown")).status_code == 400
    await pool.execute("DELETE FROM agent_wallets WHERE wallet_address = $1", wallet)
    fresh = await assign(client, user, agent["id"], "simulation")
    assert fresh.status_code == 201 and fresh.json()["walletAddress"].startswith("sim_")
    assert (
        await client.post(
            "/api/v1/wallets/assign", json={"agentId": agent["id"], "walletType": "paper"}, headers=user.headers
        )
    ).status_code == 400
    assert (
        await client.post(
            "/api/v1/wallets/assign", json={"agentId": "x", "walletType": "simulation"}, headers=user.headers
        )
    ).status_code == 400


async def _fill_wallet(pool, agent_id: uuid.UUID, wallet: str) -> None:
    """A deposit, a buy with its open position, a closed trade, a snapshot."""
    dep = await pool.fetchval(
        "INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,"
        " transaction_time, input_mint, input_symbol, input_amount) VALUES ($1, $2, 'DEPOSIT', 0, now(), $3, 'SOL', 5)"
        " RETURNING id",
        agent_id,
        wallet,
        SOL_MINT,
    )
    buy = await pool.fetchval(
        "INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,"
        " transaction_time, input_mint, input_symbol, input_amount, output_mint, output_symbol, output_amount)"
        " VALUES ($1, $2, 'SWAP', 0, now(), $3, 'SOL', 1, $4, 'USDC', 100) RETURNING id",
        agent_id,
        wallet,
        SOL_MINT,
        USDC,
    )
    await pool.execute(
        "INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance) VALUES"
        " ($1, $2, $3, 'SOL', '4'), ($1, $2, $4, 'USDC', '100')",
        agent_id,
        wallet,
        SOL_MINT,
        USDC,
    )
    await pool.execute(
        "INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_transaction_id,"
        " purchase_price, purchase_amount) VALUES ($1, $2, $3, 'USDC', $4, 0.01, 100)",
        agent_id,
        wallet,
        USDC,
        buy,
    )
    await pool.execute(
        "INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount,"
        " purchase_price, sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time,"
        " purchase_transaction_id) VALUES ($1, $2, $3, 'USDC', 1, 1, 1, 0, 0, 0, now(), now(), $4)",
        agent_id,
        wallet,
        USDC,
        dep,
    )
    await pool.execute(
        "INSERT INTO agent_balance_snapshots (agent_id, wallet_address, snapshot_timestamp, portfolio_balance_sol,"
        " sol_balance, positions_value_sol, unrealized_pnl_sol) VALUES ($1, $2, date_trunc('hour', now()), 5, 4, 1, 0)",
        agent_id,
        wallet,
    )


async def _counts(pool, wallet: str) -> list[int]:
    return [
        await pool.fetchval(f"SELECT count(*) FROM {table} WHERE wallet_address = $1", wallet)
        for table in (
            "agent_positions",
            "agent_historical_swaps",
            "agent_transactions",
            "agent_balances",
            "agent_balance_snapshots",
        )
    ]


async def test_reset_clears_that_wallet_only(client, pool, user, other, database_url) -> None:
    import asyncio

    import asyncpg

    agent = await create_agent_via_api(client, user)
    neighbour = await create_agent_via_api(client, user, "Neighbour")
    foreign = await create_agent_via_api(client, other, "Foreign")
    wallets = [await sim_wallet(pool, a["id"]) for a in (agent, neighbour, foreign)]
    for a, w in zip((agent, neighbour, foreign), wallets, strict=True):
        await _fill_wallet(pool, uuid.UUID(a["id"]), w)
    target = wallets[0]
    url = f"/api/v1/wallets/{target}/reset"

    missing = await client.post(url, json={}, headers=user.headers)
    assert missing.status_code == 400 and missing.json()["error"] == "Confirmation required"
    assert (await client.post(url, headers=user.headers)).status_code == 400
    assert (await client.post(url, json={"confirm": "yes"}, headers=user.headers)).status_code == 400
    assert (await client.post(url, json={"confirm": True}, headers=other.headers)).status_code == 404
    assert await _counts(pool, target) == [1, 1, 2, 2, 1]

    listener = await asyncpg.connect(database_url)
    events: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("nexgent_events", lambda *args: events.put_nowait(args[3]))
    try:
        reset = await client.post(url, json={"confirm": True}, headers=user.headers)
        assert reset.status_code == 200, reset.text
        body = reset.json()
        assert body["success"] is True and body["walletAddress"] == target and isinstance(body["duration"], int)
        assert body["deleted"] == {
            "positions": 1,
            "historicalSwaps": 1,
            "balances": 2,
            "transactions": 2,
            "balanceSnapshots": 1,
        }
        event = msgspec.json.decode(await asyncio.wait_for(events.get(), 5))
        assert event["type"] == "position_closed" and event["agentId"] == agent["id"]
    finally:
        await listener.close()
    assert await _counts(pool, target) == [0, 0, 0, 0, 0]
    assert await _counts(pool, wallets[1]) == [1, 1, 2, 2, 1]
    assert await _counts(pool, wallets[2]) == [1, 1, 2, 2, 1]
    assert await pool.fetchval("SELECT count(*) FROM agent_wallets WHERE wallet_address = $1", target) == 1
    assert (
        await client.post("/api/v1/wallets/sim_unknown/reset", json={"confirm": True}, headers=user.headers)
    ).status_code == 404


async def test_unassign_live_only(client, pool, user, live_keys) -> None:
    mine, _ = live_keys
    agent = await create_agent_via_api(client, user)
    sim = await sim_wallet(pool, agent["id"])
    assert (
        await client.post(f"/api/v1/wallets/{sim}/unassign", json={"confirm": True}, headers=user.headers)
    ).status_code == 400
    await assign(client, user, agent["id"], "live", mine)
    await _fill_wallet(pool, uuid.UUID(agent["id"]), mine)
    done = await client.post(f"/api/v1/wallets/{mine}/unassign", json={"confirm": True}, headers=user.headers)
    assert done.status_code == 200, done.text
    assert done.json()["deleted"]["transactions"] == 2
    assert await pool.fetchval("SELECT count(*) FROM agent_wallets WHERE wallet_address = $1", mine) == 0
    assert await _counts(pool, sim) == [0, 0, 0, 0, 0]


async def test_wallet_operations_are_rate_limited(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    statuses = [(await assign(client, user, agent["id"], "simulation")).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


async def test_check_deposits_credits_once(in_loop_client, pool, user, settings, live_keys) -> None:
    mine, _ = live_keys
    agent = await create_agent_via_api(in_loop_client, user)
    await assign(in_loop_client, user, agent["id"], "live", mine)
    sim = await sim_wallet(pool, agent["id"])
    url = f"/api/v1/wallets/{mine}/check-deposits"
    assert (
        await in_loop_client.post(
            f"/api/v1/wallets/{sim}/check-deposits", json={"agentId": agent["id"]}, headers=user.headers
        )
    ).status_code == 400
    assert (
        await in_loop_client.post(url, json={"agentId": str(uuid.uuid4())}, headers=user.headers)
    ).status_code == 404
    async with FakeSolanaRpc() as rpc:
        rpc.balances[mine] = 2_750_000_000
        in_loop_client.app.state.settings = msgspec.structs.replace(settings, solana_rpc_url=rpc.url)
        try:
            first = await in_loop_client.post(url, json={"agentId": agent["id"]}, headers=user.headers)
            assert first.status_code == 200, first.text
            body = first.json()
            assert body["depositDetected"] is True and body["depositAmount"] == 2.75 and body["previousBalance"] == 0
            assert await balance_of(pool, mine) == Decimal("2.75")
            second = await in_loop_client.post(url, json={"agentId": agent["id"]}, headers=user.headers)
            assert second.json()["depositDetected"] is False
            rpc.balances[mine] = 2_750_005_000  # drift below 0.00001 SOL is not a deposit
            assert (await in_loop_client.post(url, json={"agentId": agent["id"]}, headers=user.headers)).json()[
                "depositDetected"
            ] is False
            rpc.fail("getBalance", status=500, times=None)
            failed = await in_loop_client.post(url, json={"agentId": agent["id"]}, headers=user.headers)
            assert failed.status_code == 502
        finally:
            in_loop_client.app.state.settings = settings
    await assert_ledger_consistent(pool, mine)


async def test_concurrent_deposit_checks_credit_once(in_loop_client, pool, user, settings, live_keys) -> None:
    """Every check reads the chain before it takes the agent lock: the ones that lose the race must see the
    recorded balance the winner committed, not credit the same SOL again."""
    mine, _ = live_keys
    agent = await create_agent_via_api(in_loop_client, user)
    assert (await assign(in_loop_client, user, agent["id"], "live", mine)).status_code == 201
    url = f"/api/v1/wallets/{mine}/check-deposits"
    async with FakeSolanaRpc() as rpc:
        rpc.balances[mine] = 1_500_000_000
        in_loop_client.app.state.settings = msgspec.structs.replace(settings, solana_rpc_url=rpc.url)
        try:
            answers = await asyncio.gather(
                *(in_loop_client.post(url, json={"agentId": agent["id"]}, headers=user.headers) for _ in range(4))
            )
        finally:
            in_loop_client.app.state.settings = settings
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert sorted(a.json()["depositDetected"] for a in answers) == [False, False, False, True]
    assert await balance_of(pool, mine) == Decimal("1.5")
    deposits = await pool.fetchval(
        "SELECT count(*) FROM agent_transactions WHERE wallet_address = $1 AND transaction_type = 'DEPOSIT'", mine
    )
    assert deposits == 1
    await assert_ledger_consistent(pool, mine)


async def test_a_live_swap_awaiting_settlement_blocks_unassign_delete_and_deposit_checks(
    client, pool, user, live_keys
) -> None:
    mine, _ = live_keys
    agent = await create_agent_via_api(client, user)
    await assign(client, user, agent["id"], "live", mine)
    await pool.execute(
        "INSERT INTO live_swaps (agent_id, wallet_address, side, swap_api, input_mint, output_mint, in_amount,"
        " quoted_out_amount, quote, signature, signed_transaction, last_valid_block_height, status)"
        " VALUES ($1, $2, 'buy', 'ultra', $3, $4, 1000, 10, '{}', $5, 'AA==', 100, 'sent')",
        uuid.UUID(agent["id"]),
        mine,
        SOL_MINT,
        USDC,
        uuid.uuid4().hex,
    )
    unassign = await client.post(f"/api/v1/wallets/{mine}/unassign", json={"confirm": True}, headers=user.headers)
    assert unassign.status_code == 409, unassign.text
    deposits = await client.post(
        f"/api/v1/wallets/{mine}/check-deposits", json={"agentId": agent["id"]}, headers=user.headers
    )
    assert deposits.status_code == 409 and deposits.json()["code"] == "SWAP_IN_FLIGHT"
    assert (await client.delete(f"/api/v1/agents/{agent['id']}", headers=user.headers)).status_code == 409
    assert await pool.fetchval("SELECT count(*) FROM agent_wallets WHERE wallet_address = $1", mine) == 1
