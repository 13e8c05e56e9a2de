"""Transactions and balances: every write keeps ``balance == Σ ledger deltas`` (api.md §10, §12.1, domain §11.1)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from tests.api.helpers import (
    BONK,
    USDC,
    assert_ledger_consistent,
    balance_of,
    create_agent_via_api,
    sim_wallet,
)
from tests.factories import SOL_MINT

T0 = "2025-01-27T12:00:00.000Z"


def deposit(agent_id: str, amount: str = "10", **extra):
    return {
        "agentId": agent_id,
        "transactionType": "DEPOSIT",
        "transactionValueUsd": "1500.50",
        "transactionTime": T0,
        "inputMint": SOL_MINT,
        "inputSymbol": "SOL",
        "inputAmount": amount,
        "inputPrice": "150.05",
        **extra,
    }


def swap(agent_id: str, sol_in: str, tokens_out: str, **extra):
    return {
        "agentId": agent_id,
        "transactionType": "SWAP",
        "transactionValueUsd": "100",
        "transactionTime": T0,
        "inputMint": SOL_MINT,
        "inputSymbol": "SOL",
        "inputAmount": sol_in,
        "outputMint": USDC,
        "outputSymbol": "USDC",
        "outputAmount": tokens_out,
        **extra,
    }


async def make_live_wallet(pool, agent_id: str) -> str:
    address = "Live" + uuid.uuid4().hex[:36]
    await pool.execute(
        "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'live')",
        address,
        uuid.UUID(agent_id),
    )
    return address


async def test_simulation_deposit_writes_row_and_balance_together(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    response = await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], "2.5"), headers=user.headers)
    assert response.status_code == 201, response.text
    tx = response.json()
    assert tx["walletAddress"] == wallet and tx["transactionType"] == "DEPOSIT"
    assert tx["inputAmount"] == "2.5" and tx["transactionValueUsd"] == "1500.5" and tx["inputPrice"] == "150.05"
    assert tx["isDca"] is False and tx["isTakeProfit"] is False and tx["signalId"] is None
    assert await balance_of(pool, wallet) == Decimal("2.5")
    await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], 0.1), headers=user.headers)
    assert await balance_of(pool, wallet) == Decimal("2.6")  # a JSON number is read exactly
    await assert_ledger_consistent(pool, wallet)


async def test_a_refused_write_leaves_nothing_behind(client, pool, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    foreign_signal = await pool.fetchval(
        "INSERT INTO trading_signals (token_address, signal_type, signal_strength, user_id)"
        " VALUES ($1, 'x', 3, $2) RETURNING id",
        USDC,
        other.id,
    )
    refused = await client.post(
        "/api/v1/agent-transactions", json=deposit(agent["id"], "5", signalId=foreign_signal), headers=user.headers
    )
    assert refused.status_code == 404 and refused.json()["error"] == "Trading signal not found"
    overdraw = await client.post("/api/v1/agent-transactions", json=swap(agent["id"], "1", "100"), headers=user.headers)
    assert overdraw.status_code == 400
    body = overdraw.json()
    assert body["error"] == "Insufficient balance"
    assert (body["currentBalance"], body["requiredAmount"], body["tokenAddress"]) == ("0", "1", SOL_MINT)
    assert await pool.fetchval("SELECT count(*) FROM agent_transactions WHERE wallet_address = $1", wallet) == 0
    assert await pool.fetchval("SELECT count(*) FROM agent_balances WHERE wallet_address = $1", wallet) == 0


async def test_swap_and_burn_move_balances(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], "3"), headers=user.headers)
    bought = await client.post(
        "/api/v1/agent-transactions",
        json=swap(agent["id"], "1.25", "180.5", networkFeeSol="0.000005"),
        headers=user.headers,
    )
    assert bought.status_code == 201, bought.text
    assert await balance_of(pool, wallet) == Decimal("1.749995")
    assert await balance_of(pool, wallet, USDC) == Decimal("180.5")
    burn = {
        "agentId": agent["id"],
        "transactionType": "BURN",
        "transactionValueUsd": "0",
        "transactionTime": T0,
        "inputMint": USDC,
        "inputSymbol": "USDC",
        "inputAmount": "80.5",
    }
    assert (await client.post("/api/v1/agent-transactions", json=burn, headers=user.headers)).status_code == 201
    assert await balance_of(pool, wallet, USDC) == Decimal("100")
    await assert_ledger_consistent(pool, wallet)


async def test_create_validation(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    aid = agent["id"]
    bad_bodies = [
        deposit(aid, "0"),
        deposit(aid, "-1"),
        deposit(aid, "NaN"),
        deposit(aid, "1e40"),
        deposit(aid, "1", inputMint="not a mint"),
        deposit(aid, "1", inputSymbol="S" * 21),
        deposit(aid, "1", transactionValueUsd="-5"),
        {**deposit(aid, "1"), "transactionType": "WITHDRAWAL"},
        {**deposit(aid, "1"), "transactionType": "GIFT"},
        {k: v for k, v in deposit(aid, "1").items() if k != "transactionTime"},
        {k: v for k, v in deposit(aid, "1").items() if k != "inputAmount"},
        {**swap(aid, "1", "2"), "outputMint": None},
        swap(aid, "1", "2", outputMint=SOL_MINT),
        deposit("not-a-uuid", "1"),
        deposit(aid, "1", signalId="abc"),
    ]
    for body in bad_bodies:
        response = await client.post("/api/v1/agent-transactions", json=body, headers=user.headers)
        assert response.status_code == 400, (body, response.text)
    assert (
        await client.post("/api/v1/agent-transactions", json=deposit(str(uuid.uuid4())), headers=user.headers)
    ).status_code == 404


async def test_live_wallets_cannot_be_forged(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    live = await make_live_wallet(pool, agent["id"])
    for body in (deposit(agent["id"], "100", walletAddress=live), swap(agent["id"], "1", "2", walletAddress=live)):
        response = await client.post("/api/v1/agent-transactions", json=body, headers=user.headers)
        assert response.status_code == 403 and response.json()["code"] == "LIVE_WALLET_READ_ONLY"
    balance = {
        "agentId": agent["id"],
        "walletAddress": live,
        "tokenAddress": SOL_MINT,
        "tokenSymbol": "SOL",
        "balance": "99",
    }
    assert (await client.post("/api/v1/agent-balances", json=balance, headers=user.headers)).status_code == 403
    # A row the engine recorded on the live wallet cannot be edited or deleted by hand either.
    tx_id = await pool.fetchval(
        "INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,"
        " transaction_time, input_mint, input_symbol, input_amount) VALUES ($1, $2, 'DEPOSIT', 0, now(), $3, 'SOL', 1)"
        " RETURNING id",
        uuid.UUID(agent["id"]),
        live,
        SOL_MINT,
    )
    assert (
        await client.put(f"/api/v1/agent-transactions/{tx_id}", json={"inputAmount": "50"}, headers=user.headers)
    ).status_code == 403
    assert (await client.delete(f"/api/v1/agent-transactions/{tx_id}", headers=user.headers)).status_code == 403
    other_wallet = await client.post(
        "/api/v1/agent-transactions", json=deposit(agent["id"], "1", walletAddress="sim_notmine"), headers=user.headers
    )
    assert other_wallet.status_code == 400


async def test_edit_is_reconciled_or_refused(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    dep = (await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], "5"), headers=user.headers)).json()
    url = f"/api/v1/agent-transactions/{dep['id']}"

    edited = await client.put(url, json={"inputAmount": "7", "fees": "0.75", "slippage": "0.15"}, headers=user.headers)
    assert edited.status_code == 200, edited.text
    assert edited.json()["inputAmount"] == "7" and edited.json()["fees"] == "0.75"
    assert await balance_of(pool, wallet) == Decimal("7")

    await client.post("/api/v1/agent-transactions", json=swap(agent["id"], "6", "10"), headers=user.headers)
    refused = await client.put(url, json={"inputAmount": "2"}, headers=user.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "LEDGER_CONFLICT"
    assert await pool.fetchval("SELECT input_amount FROM agent_transactions WHERE id = $1", uuid.UUID(dep["id"])) == 7
    # Changing only what does not move money is always fine.
    assert (
        await client.put(url, json={"transactionHash": "abc", "isTakeProfit": True}, headers=user.headers)
    ).status_code == 200
    # Retargeting the deposit to another mint moves the credit with it.
    assert (
        await client.put(url, json={"inputMint": BONK, "inputSymbol": "BONK"}, headers=user.headers)
    ).status_code == 409
    await assert_ledger_consistent(pool, wallet)
    for body in (
        {"inputAmount": "-3"},
        {"walletAddress": "sim_other"},
        {"transactionType": "WITHDRAWAL"},
        {"signalId": 2**40},
    ):
        assert (await client.put(url, json=body, headers=user.headers)).status_code == 400, body


async def test_delete_reverses_or_refuses(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    first = (
        await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], "5"), headers=user.headers)
    ).json()
    second = (
        await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], "1"), headers=user.headers)
    ).json()
    buy = (
        await client.post("/api/v1/agent-transactions", json=swap(agent["id"], "5.5", "10"), headers=user.headers)
    ).json()
    # Deleting either deposit would leave the SOL the swap spent unfunded.
    refused = await client.delete(f"/api/v1/agent-transactions/{first['id']}", headers=user.headers)
    assert refused.status_code == 409
    assert (await client.delete(f"/api/v1/agent-transactions/{buy['id']}", headers=user.headers)).status_code == 204
    assert await balance_of(pool, wallet) == Decimal("6") and await balance_of(pool, wallet, USDC) == Decimal("0")
    assert (await client.delete(f"/api/v1/agent-transactions/{second['id']}", headers=user.headers)).status_code == 204
    assert await balance_of(pool, wallet) == Decimal("5")
    await assert_ledger_consistent(pool, wallet)


async def test_rows_of_positions_and_history_keep_their_amounts(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], "5"), headers=user.headers)
    buy = (
        await client.post("/api/v1/agent-transactions", json=swap(agent["id"], "1", "100"), headers=user.headers)
    ).json()
    await pool.execute(
        "INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_transaction_id,"
        " purchase_price, purchase_amount, total_invested_sol) VALUES ($1, $2, $3, 'USDC', $4, 0.01, 100, 1)",
        uuid.UUID(agent["id"]),
        wallet,
        USDC,
        uuid.UUID(buy["id"]),
    )
    url = f"/api/v1/agent-transactions/{buy['id']}"
    assert (await client.put(url, json={"outputAmount": "200"}, headers=user.headers)).status_code == 409
    assert (await client.delete(url, headers=user.headers)).status_code == 409
    assert (await client.put(url, json={"transactionHash": "sig"}, headers=user.headers)).status_code == 200
    await assert_ledger_consistent(pool, wallet)


async def test_list_filters_pagination_and_isolation(client, pool, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    for i in range(5):
        await client.post(
            "/api/v1/agent-transactions",
            json=deposit(agent["id"], "1", transactionTime=f"2025-01-0{i + 1}T00:00:00Z", isDca=i % 2 == 0),
            headers=user.headers,
        )
    await client.post(
        "/api/v1/agent-transactions",
        json=swap(agent["id"], "1", "1", transactionTime="2025-02-01T00:00:00Z"),
        headers=user.headers,
    )
    base = f"/api/v1/agent-transactions?agentId={agent['id']}"
    every = (await client.get(base, headers=user.headers)).json()
    assert [t["transactionTime"][:10] for t in every] == [
        "2025-02-01",
        "2025-01-05",
        "2025-01-04",
        "2025-01-03",
        "2025-01-02",
        "2025-01-01",
    ]
    assert len((await client.get(base + "&transactionType=SWAP", headers=user.headers)).json()) == 1
    assert len((await client.get(base + "&isDca=true", headers=user.headers)).json()) == 3
    window = (
        await client.get(base + "&startTime=2025-01-02&endTime=2025-01-04T00:00:00Z", headers=user.headers)
    ).json()
    assert len(window) == 3
    page = (await client.get(base + "&limit=2&offset=2", headers=user.headers)).json()
    assert [t["id"] for t in page] == [t["id"] for t in every[2:4]]
    for query in ("&limit=0", "&limit=1x", "&offset=-2", "&transactionType=GIFT", "&startTime=soon", "&signalId=x"):
        assert (await client.get(base + query, headers=user.headers)).status_code == 400, query
    assert (await client.get("/api/v1/agent-transactions", headers=user.headers)).json()[
        "error"
    ] == "Agent ID is required"
    assert (await client.get("/api/v1/agent-transactions?agentId=zzz", headers=user.headers)).status_code == 400
    # Another user sees none of it.
    assert (await client.get(base, headers=other.headers)).status_code == 404
    tx = every[0]["id"]
    assert (await client.get(f"/api/v1/agent-transactions/{tx}", headers=user.headers)).status_code == 200
    for method, body in (("GET", None), ("PUT", {"fees": "1"}), ("DELETE", None)):
        assert (
            await client.request(method, f"/api/v1/agent-transactions/{tx}", json=body, headers=other.headers)
        ).status_code == 404
    assert (await client.get("/api/v1/agent-transactions/nope", headers=user.headers)).status_code == 400


# ---------------------------------------------------------------- balances


async def test_balance_writes_are_ledger_rows(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    body = {"agentId": agent["id"], "tokenAddress": USDC, "tokenSymbol": "USDC", "balance": "1000000000"}
    created = await client.post("/api/v1/agent-balances", json=body, headers=user.headers)
    assert created.status_code == 201, created.text
    balance = created.json()
    assert (balance["walletAddress"], balance["balance"], balance["tokenSymbol"]) == (wallet, "1000000000", "USDC")
    assert (await client.post("/api/v1/agent-balances", json=body, headers=user.headers)).status_code == 409
    url = f"/api/v1/agent-balances/{balance['id']}"

    raised = await client.put(url, json={"balance": "2000000000", "tokenSymbol": "USDC2"}, headers=user.headers)
    assert (
        raised.status_code == 200
        and raised.json()["balance"] == "2000000000"
        and raised.json()["tokenSymbol"] == "USDC2"
    )
    lowered = await client.put(url, json={"balance": "0.5"}, headers=user.headers)
    assert lowered.json()["balance"] == "0.5"
    kinds = await pool.fetch(
        "SELECT transaction_type::text AS t, input_amount FROM agent_transactions WHERE wallet_address = $1 ORDER BY created_at",
        wallet,
    )
    assert [(k["t"], k["input_amount"]) for k in kinds] == [
        ("DEPOSIT", Decimal("1000000000")),
        ("DEPOSIT", Decimal("1000000000")),
        ("BURN", Decimal("1999999999.5")),
    ]
    await assert_ledger_consistent(pool, wallet)
    for bad in ({"balance": "-1"}, {"balance": "abc"}, {}, {"tokenSymbol": " "}):
        assert (await client.put(url, json=bad, headers=user.headers)).status_code == 400, bad

    deleted = await client.delete(url, headers=user.headers)
    assert deleted.status_code == 200 and deleted.json() == {"success": True, "message": "Balance deleted successfully"}
    assert await balance_of(pool, wallet, USDC) is None
    await assert_ledger_consistent(pool, wallet)
    zero = await client.post("/api/v1/agent-balances", json={**body, "balance": "0"}, headers=user.headers)
    assert zero.status_code == 201 and zero.json()["balance"] == "0"
    for bad in (
        {**body, "balance": "-5", "tokenAddress": BONK},
        {**body, "tokenAddress": "x"},
        {**body, "tokenSymbol": ""},
    ):
        assert (await client.post("/api/v1/agent-balances", json=bad, headers=user.headers)).status_code == 400


async def test_balance_cannot_drop_below_an_open_position(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], "5"), headers=user.headers)
    buy = (
        await client.post("/api/v1/agent-transactions", json=swap(agent["id"], "1", "100"), headers=user.headers)
    ).json()
    await pool.execute(
        "INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_transaction_id,"
        " purchase_price, purchase_amount, total_invested_sol) VALUES ($1, $2, $3, 'USDC', $4, 0.01, 100, 1)",
        uuid.UUID(agent["id"]),
        wallet,
        USDC,
        uuid.UUID(buy["id"]),
    )
    balance_id = await pool.fetchval(
        "SELECT id FROM agent_balances WHERE wallet_address = $1 AND token_address = $2", wallet, USDC
    )
    url = f"/api/v1/agent-balances/{balance_id}"
    assert (await client.put(url, json={"balance": "99"}, headers=user.headers)).status_code == 409
    assert (await client.delete(url, headers=user.headers)).status_code == 409
    assert (await client.put(url, json={"balance": "150"}, headers=user.headers)).status_code == 200
    await assert_ledger_consistent(pool, wallet)


async def test_balance_reads_prices_and_isolation(client, pool, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    await client.post("/api/v1/agent-transactions", json=deposit(agent["id"], "2"), headers=user.headers)
    await client.post("/api/v1/agent-transactions", json=swap(agent["id"], "1", "50"), headers=user.headers)
    await client.post(
        "/api/v1/agent-balances",
        json={"agentId": agent["id"], "tokenAddress": BONK, "tokenSymbol": "BONK", "balance": "7"},
        headers=user.headers,
    )
    await pool.execute(
        "INSERT INTO token_prices (mint, price_sol, price_usd, observed_at, source) VALUES ($1, 0.0065, 1, now(), 'test')"
        " ON CONFLICT (mint) DO UPDATE SET price_sol = 0.0065",
        USDC,
    )
    listed = await client.get(f"/api/v1/agent-balances?agentId={agent['id']}", headers=user.headers)
    assert listed.status_code == 200
    by_token = {b["tokenAddress"]: b for b in listed.json()}
    assert by_token[SOL_MINT]["priceSol"] == 1 and by_token[SOL_MINT]["balance"] == "1"
    assert by_token[USDC]["priceSol"] == 0.0065
    assert "priceSol" not in by_token[BONK]
    assert listed.json()[0]["tokenAddress"] == BONK  # most recently updated first
    assert (await client.get("/api/v1/agent-balances", headers=user.headers)).status_code == 400
    assert (await client.get(f"/api/v1/agent-balances?agentId={agent['id']}", headers=other.headers)).status_code == 404
    balance_id = by_token[USDC]["id"]
    assert (await client.get(f"/api/v1/agent-balances/{balance_id}", headers=user.headers)).json()["balance"] == "50"
    for method, body in (("GET", None), ("PUT", {"balance": "1"}), ("DELETE", None)):
        response = await client.request(
            method, f"/api/v1/agent-balances/{balance_id}", json=body, headers=other.headers
        )
        assert response.status_code == 404, method
    assert (await client.get("/api/v1/agent-balances/12", headers=user.headers)).status_code == 400
    assert (await client.get(f"/api/v1/agent-balances/{uuid.uuid4()}", headers=user.headers)).status_code == 404
