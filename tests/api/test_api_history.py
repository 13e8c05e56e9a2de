"""Historical swaps: CRUD rules, filters, isolation, CSV export (api.md §12.2, §17.1)."""

from __future__ import annotations

import csv
import io
import uuid

from tests.api.helpers import USDC, create_agent_via_api, sim_wallet
from tests.factories import SOL_MINT


def swap_body(agent_id: str, **extra):
    body = {
        "agentId": agent_id,
        "tokenAddress": USDC,
        "tokenSymbol": "USDC",
        "amount": "1.5",
        "purchasePrice": "100.00",
        "salePrice": "110.00",
        "changePercent": "10.00",
        "profitLossUsd": "15.00",
        "profitLossSol": "0.15",
        "purchaseTime": "2025-01-20T12:00:00.000Z",
        "saleTime": "2025-01-27T12:00:00.000Z",
        "purchaseTransactionId": None,
        "saleTransactionId": None,
    }
    body.update(extra)
    return body


async def test_create_get_update_delete(client, pool, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    signal_id = await pool.fetchval(
        "INSERT INTO trading_signals (token_address, signal_type, signal_strength, user_id) VALUES ($1, 'x', 3, $2)"
        " RETURNING id",
        USDC,
        user.id,
    )
    created = await client.post(
        "/api/v1/agent-historical-swaps",
        json=swap_body(agent["id"], signalId=str(signal_id), closeReason="manual"),
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    swap = created.json()
    assert swap["walletAddress"] == wallet and swap["signalId"] == str(signal_id)
    assert (swap["amount"], swap["purchasePrice"], swap["profitLossUsd"], swap["changePercent"]) == (
        "1.5",
        "100",
        "15",
        "10",
    )
    url = f"/api/v1/agent-historical-swaps/{swap['id']}"
    assert (await client.get(url, headers=user.headers)).json() == swap
    updated = await client.put(url, json={"profitLossUsd": "20.00", "changePercent": "12.00"}, headers=user.headers)
    assert updated.status_code == 200 and updated.json()["profitLossUsd"] == "20"
    bad_time = await client.put(url, json={"saleTime": "2025-01-01T00:00:00Z"}, headers=user.headers)
    assert bad_time.status_code == 400
    for method, body in (("GET", None), ("PUT", {"amount": "1"}), ("DELETE", None)):
        assert (await client.request(method, url, json=body, headers=other.headers)).status_code == 404
    assert (await client.delete(url, headers=user.headers)).status_code == 204
    assert (await client.get(url, headers=user.headers)).status_code == 404
    assert (await client.get("/api/v1/agent-historical-swaps/xyz", headers=user.headers)).status_code == 400


async def test_create_validation_and_foreign_references(client, pool, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    aid = agent["id"]
    theirs = await create_agent_via_api(client, other, "Theirs")
    foreign_tx = await pool.fetchval(
        "INSERT INTO agent_transactions (agent_id, transaction_type, transaction_value_usd, transaction_time)"
        " VALUES ($1, 'DEPOSIT', 0, now()) RETURNING id",
        uuid.UUID(theirs["id"]),
    )
    sibling = await create_agent_via_api(client, user, "Sibling")
    sibling_tx = await pool.fetchval(
        "INSERT INTO agent_transactions (agent_id, transaction_type, transaction_value_usd, transaction_time)"
        " VALUES ($1, 'DEPOSIT', 0, now()) RETURNING id",
        uuid.UUID(sibling["id"]),
    )
    foreign_signal = await pool.fetchval(
        "INSERT INTO trading_signals (token_address, signal_type, signal_strength, user_id) VALUES ($1, 'x', 3, $2)"
        " RETURNING id",
        USDC,
        other.id,
    )
    for body in (
        swap_body(aid, purchasePrice="0"),
        swap_body(aid, amount="-1"),
        swap_body(aid, saleTime="2025-01-01T00:00:00Z"),
        swap_body(aid, closeReason="bored"),
        swap_body(aid, tokenSymbol="X" * 21),
        swap_body(aid, changePercent="1000000"),
        swap_body(aid, purchaseTransactionId="nope"),
        swap_body(aid, purchaseTransactionId=str(sibling_tx)),
        {k: v for k, v in swap_body(aid).items() if k != "profitLossSol"},
    ):
        assert (
            await client.post("/api/v1/agent-historical-swaps", json=body, headers=user.headers)
        ).status_code == 400, body
    for body in (swap_body(aid, purchaseTransactionId=str(foreign_tx)), swap_body(aid, signalId=foreign_signal)):
        assert (
            await client.post("/api/v1/agent-historical-swaps", json=body, headers=user.headers)
        ).status_code == 404, body
    assert (
        await client.post("/api/v1/agent-historical-swaps", json=swap_body(theirs["id"]), headers=user.headers)
    ).status_code == 404


async def test_live_history_is_read_only(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    live = "Live" + uuid.uuid4().hex[:36]
    await pool.execute(
        "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'live')",
        live,
        uuid.UUID(agent["id"]),
    )
    response = await client.post(
        "/api/v1/agent-historical-swaps", json=swap_body(agent["id"], walletAddress=live), headers=user.headers
    )
    assert response.status_code == 403
    swap_id = await pool.fetchval(
        "INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount, purchase_price,"
        " sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time)"
        " VALUES ($1, $2, $3, 'USDC', 1, 1, 2, 100, 1, 1, now(), now()) RETURNING id",
        uuid.UUID(agent["id"]),
        live,
        USDC,
    )
    assert (
        await client.put(
            f"/api/v1/agent-historical-swaps/{swap_id}", json={"profitLossSol": "99"}, headers=user.headers
        )
    ).status_code == 403
    assert (await client.delete(f"/api/v1/agent-historical-swaps/{swap_id}", headers=user.headers)).status_code == 403
    assert (await client.get(f"/api/v1/agent-historical-swaps/{swap_id}", headers=user.headers)).status_code == 200


async def test_list_filters_and_pagination(client, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    for day, pl, token in ((1, "-5", USDC), (2, "10", USDC), (3, "20", SOL_MINT)):
        body = swap_body(agent["id"], saleTime=f"2025-02-0{day}T00:00:00Z", profitLossUsd=pl, tokenAddress=token)
        assert (await client.post("/api/v1/agent-historical-swaps", json=body, headers=user.headers)).status_code == 201
    base = f"/api/v1/agent-historical-swaps?agentId={agent['id']}"
    every = (await client.get(base, headers=user.headers)).json()
    assert [s["saleTime"][:10] for s in every] == ["2025-02-03", "2025-02-02", "2025-02-01"]
    assert len((await client.get(base + f"&tokenAddress={USDC}", headers=user.headers)).json()) == 2
    assert len((await client.get(base + "&minProfitLossUsd=0&maxProfitLossUsd=15", headers=user.headers)).json()) == 1
    assert len((await client.get(base + "&startSaleTime=2025-02-02", headers=user.headers)).json()) == 2
    assert [s["id"] for s in (await client.get(base + "&limit=1&offset=1", headers=user.headers)).json()] == [
        every[1]["id"]
    ]
    for query in ("&minProfitLossUsd=abc", "&limit=-1", "&endSaleTime=x", "&purchaseTransactionId=1", "&signalId=1.5"):
        assert (await client.get(base + query, headers=user.headers)).status_code == 400, query
    assert (await client.get(base, headers=other.headers)).status_code == 404
    assert (await client.get("/api/v1/agent-historical-swaps", headers=user.headers)).status_code == 400


async def test_csv_export(client, pool, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    signal_id = await pool.fetchval(
        "INSERT INTO trading_signals (token_address, signal_type, signal_strength, activation_reason, user_id)"
        " VALUES ($1, '+cmd|calc', 3, 'why, \"because\"', $2) RETURNING id",
        USDC,
        user.id,
    )
    await client.post(
        "/api/v1/agent-historical-swaps",
        json=swap_body(agent["id"], tokenSymbol="=1+1", signalId=signal_id, saleTime="2025-01-27T15:04:05Z"),
        headers=user.headers,
    )
    await client.post(
        "/api/v1/agent-historical-swaps",
        json=swap_body(agent["id"], profitLossUsd="-2.5", profitLossSol="-0.025", saleTime="2025-01-28T00:00:00Z"),
        headers=user.headers,
    )
    url = f"/api/v1/agent-historical-swaps/export?agentId={agent['id']}"
    in_usd = await client.get(url + "&solPrice=200&timezone=Europe/Paris&format=csv", headers=user.headers)
    assert in_usd.status_code == 200, in_usd.text
    assert 'filename="agent-trades-' in in_usd.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(in_usd.text)))
    assert rows[0][4] == "Average Purchase Price (USD)" and len(rows) == 3
    first = rows[1]
    assert first[0] == "Jan 27, 2025 04:04:05 PM"
    assert first[1] == "'=1+1"
    assert first[3] == "1.50"
    assert first[4] == "20000.00000000" and first[5] == "22000.00000000"
    assert first[6] == "+15.00" and first[7] == "10.00%"
    assert first[8] == str(signal_id) and first[9] == "'+cmd|calc" and first[10] == 'why, "because"'
    assert rows[2][6] == "-2.50" and rows[2][8:] == ["N/A", "N/A", "N/A"]
    in_sol = list(csv.reader(io.StringIO((await client.get(url + "&currency=SOL", headers=user.headers)).text)))
    assert in_sol[0][6] == "Profit / Loss (SOL)" and in_sol[1][4] == "100.0000000000" and in_sol[1][6] == "+0.1500"
    # USD without a stored SOL/USD price and without solPrice: no invented 100.
    await pool.execute("DELETE FROM token_prices WHERE mint = $1", SOL_MINT)
    assert (await client.get(url, headers=user.headers)).status_code == 503
    assert (await client.get(url + "&solPrice=-1", headers=user.headers)).status_code == 400
    assert (await client.get(url + "&currency=SOL", headers=other.headers)).status_code == 404
    assert (await client.get("/api/v1/agent-historical-swaps/export", headers=user.headers)).status_code == 400


async def test_csv_export_streams_many_rows_in_keyset_batches(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    wallet = await sim_wallet(pool, agent["id"])
    await pool.execute(
        "INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount, purchase_price,"
        " sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time)"
        " SELECT $1, $2, $3, 'USDC', 1, 1, 1, 0, 0, 0, now(), timestamp '2025-01-01' + (g % 97) * interval '1 minute'"
        " FROM generate_series(1, 2500) g",
        uuid.UUID(agent["id"]),
        wallet,
        USDC,
    )
    response = await client.get(
        f"/api/v1/agent-historical-swaps/export?agentId={agent['id']}&currency=SOL", headers=user.headers
    )
    lines = response.text.splitlines()
    assert len(lines) == 2501
