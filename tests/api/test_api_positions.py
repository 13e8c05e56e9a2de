"""Positions, take-profit summary, performance, balance history and price feeds (api.md §8, §11, §18; domain §11.3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.api.helpers import BONK, USDC, api_key_headers, create_agent_via_api, sim_wallet
from tests.factories import SOL_MINT


async def set_price(pool, mint: str, price_sol: str, price_usd: str | None = None, age_s: int = 0) -> None:
    await pool.execute(
        "INSERT INTO token_prices (mint, price_sol, price_usd, observed_at, source) VALUES ($1, $2, $3, now() - make_interval(secs => $4), 'test')"
        " ON CONFLICT (mint) DO UPDATE SET price_sol = EXCLUDED.price_sol, price_usd = EXCLUDED.price_usd,"
        " observed_at = EXCLUDED.observed_at",
        mint,
        Decimal(price_sol),
        None if price_usd is None else Decimal(price_usd),
        age_s,
    )


async def tx(pool, agent_id, wallet, kind: str, **cols) -> uuid.UUID:
    return await pool.fetchval(
        "INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd, transaction_time,"
        " input_mint, input_symbol, input_amount, output_mint, output_symbol, output_amount, transaction_hash)"
        ' VALUES ($1, $2, $3::"TransactionType", 0, now(), $4, $5, $6, $7, $8, $9, $10) RETURNING id',
        agent_id,
        wallet,
        kind,
        cols.get("input_mint", SOL_MINT),
        cols.get("input_symbol", "SOL"),
        Decimal(cols.get("input_amount", "1")),
        cols.get("output_mint"),
        cols.get("output_symbol"),
        None if cols.get("output_amount") is None else Decimal(cols["output_amount"]),
        cols.get("hash"),
    )


async def worked_example(client, pool, user) -> tuple[dict, str]:
    """domain §11.3: SOL 5.0, position A (no TP), position B (one TP level), three closed trades."""
    agent = await create_agent_via_api(client, user, "Example agent")
    aid = uuid.UUID(agent["id"])
    wallet = await sim_wallet(pool, agent["id"])
    await pool.execute(
        "INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance) VALUES ($1, $2, $3, 'SOL', '5.0')",
        aid,
        wallet,
        SOL_MINT,
    )
    buy_a = await tx(
        pool, aid, wallet, "SWAP", output_mint=USDC, output_symbol="AAA", output_amount="1000", hash="sigA"
    )
    buy_b = await tx(pool, aid, wallet, "SWAP", output_mint=BONK, output_symbol="BBB", output_amount="1000")
    tp_b = await tx(
        pool,
        aid,
        wallet,
        "SWAP",
        input_mint=BONK,
        input_symbol="BBB",
        input_amount="250",
        output_mint=SOL_MINT,
        output_symbol="SOL",
        output_amount="0.37",
    )
    await pool.execute(
        "INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_transaction_id,"
        " purchase_price, purchase_amount, total_invested_sol, current_stop_loss_percentage, peak_price, created_at)"
        " VALUES ($1, $2, $3, 'AAA', $4, 0.001, 1000, 1.0, -32, 0.0013, now() - interval '2 hours')",
        aid,
        wallet,
        USDC,
        buy_a,
    )
    await pool.execute(
        "INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_transaction_id,"
        " purchase_price, purchase_amount, total_invested_sol, remaining_amount, take_profit_levels_hit,"
        " take_profit_transaction_ids, last_take_profit_time, realized_profit_sol, total_take_profit_levels)"
        " VALUES ($1, $2, $3, 'BBB', $4, 0.001, 1000, 1.0, 750, 1, ARRAY[$5::uuid], now(), 0.12, 4)",
        aid,
        wallet,
        BONK,
        buy_b,
        tp_b,
    )
    for pl, change, days in (("0.3", "30", 0), ("-0.1", "-10", 0), ("0.05", "5", 2)):
        await pool.execute(
            "INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount,"
            " purchase_price, sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time)"
            " VALUES ($1, $2, $3, 'X', 1, 1, 1, $4, 0, $5, now() - interval '3 days', now() - make_interval(days => $6) - interval '1 minute')",
            aid,
            wallet,
            USDC,
            Decimal(change),
            Decimal(pl),
            days,
        )
    await set_price(pool, USDC, "0.0012")
    await set_price(pool, BONK, "0.0015")
    await set_price(pool, SOL_MINT, "1", "150")
    return agent, wallet


async def test_performance_matches_the_worked_example(client, pool, user, other) -> None:
    agent, wallet = await worked_example(client, pool, user)
    url = f"/api/v1/agents/{agent['id']}/performance"
    response = await client.get(url, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "portfolioBalanceSol": 7.325,
        "totalProfitLossSol": 0.945,
        "realizedProfitLossSol": 0.37,
        "unrealizedProfitLossSol": 0.575,
        "averageReturn": 8.3333,
        "winRate": 66.6667,
        "totalClosedTrades": 3,
        "totalOpenPositions": 2,
    }
    day = (await client.get(url + "?timeframe=24h", headers=user.headers)).json()
    assert day["totalClosedTrades"] == 2 and day["realizedProfitLossSol"] == 0.32 and day["winRate"] == 50
    assert (await client.get(url + f"?walletAddress={wallet}", headers=user.headers)).json()[
        "portfolioBalanceSol"
    ] == 7.325
    assert (await client.get(url + "?walletAddress=sim_other", headers=user.headers)).json()["totalOpenPositions"] == 0
    assert (await client.get(url + "?timeframe=7d", headers=user.headers)).status_code == 400
    key = await api_key_headers(pool, user.id, ["agents"])
    assert (await client.get(url, headers=key)).status_code == 200
    assert (await client.get(url, headers=other.headers)).status_code == 404


async def test_positions_view(client, pool, user, other) -> None:
    agent, wallet = await worked_example(client, pool, user)
    response = await client.get(f"/api/v1/agent-positions/{agent['id']}", headers=user.headers)
    assert response.status_code == 200, response.text
    positions = response.json()
    assert [p["tokenSymbol"] for p in positions] == ["BBB", "AAA"]  # newest first
    b, a = positions
    assert a["purchase"] == {
        "priceNative": 0.001,
        "priceUsd": 0.15,
        "amount": 1000,
        "transaction": {
            "id": a["purchase"]["transaction"]["id"],
            "hash": "sigA",
            "time": a["purchase"]["transaction"]["time"],
        },
    }
    assert a["current"] == {"priceNative": 0.0012, "priceUsd": 0.18, "valueNative": 1.2, "valueUsd": 180}
    assert a["profitLoss"] == {"native": 0.2, "usd": 30, "percent": 20, "priceChangePercent": 20}
    assert a["stopLoss"] == {"percentage": -32, "peakPrice": 0.0013}
    assert b["profitLoss"]["native"] == 0.495 and b["profitLoss"]["percent"] == 49.5
    assert b["takeProfit"]["remainingAmount"] == 750 and b["takeProfit"]["soldPercent"] == 25
    assert (
        b["takeProfit"]["levelsHit"] == 1
        and b["takeProfit"]["totalLevels"] == 4
        and len(b["takeProfit"]["transactionIds"]) == 1
    )
    assert b["dca"] == {"count": 0, "totalInvestedSol": 1, "lastDcaTime": None}
    alias = await client.get(f"/api/v1/agents/{agent['id']}/positions?walletAddress={wallet}", headers=user.headers)
    assert alias.json() == positions
    wrong_wallet = await client.get(
        f"/api/v1/agent-positions/{agent['id']}?walletAddress=sim_nope", headers=user.headers
    )
    assert wrong_wallet.status_code == 404
    assert (await client.get(f"/api/v1/agent-positions/{agent['id']}", headers=other.headers)).status_code == 404
    assert (await client.get("/api/v1/agent-positions/123", headers=user.headers)).status_code == 400
    positions_key = await api_key_headers(pool, user.id, ["positions"])
    assert (await client.get(f"/api/v1/agent-positions/{agent['id']}", headers=positions_key)).status_code == 200
    assert (await client.get(f"/api/v1/agents/{agent['id']}/positions", headers=positions_key)).status_code == 403


async def test_unpriced_positions_are_valued_at_purchase_price_and_usd_is_null_without_sol_usd(
    client, pool, user
) -> None:
    agent, _ = await worked_example(client, pool, user)
    await pool.execute("DELETE FROM token_prices")
    positions = (await client.get(f"/api/v1/agent-positions/{agent['id']}", headers=user.headers)).json()
    a = positions[1]
    assert a["current"]["priceNative"] == 0.001 and a["profitLoss"]["native"] == 0
    assert a["current"]["priceUsd"] is None and a["purchase"]["priceUsd"] is None and a["profitLoss"]["usd"] is None
    perf = (await client.get(f"/api/v1/agents/{agent['id']}/performance", headers=user.headers)).json()
    assert perf["unrealizedProfitLossSol"] == 0


async def test_take_profit_summary(client, pool, user, other) -> None:
    agent, _ = await worked_example(client, pool, user)
    url = f"/api/v1/agent-positions/{agent['id']}/take-profit-summary"
    summary = (await client.get(url + "?includePositions=false", headers=user.headers)).json()
    assert summary == {"totalPositions": 2, "positionsWithTakeProfitHit": 1, "activeMoonBags": 0, "totalLevelsHit": 1}
    detailed = (await client.get(url + "?includePositions=true", headers=user.headers)).json()
    assert sorted((p["tokenSymbol"], p["remainingPercent"]) for p in detailed["positions"]) == [
        ("AAA", 100),
        ("BBB", 75),
    ]
    assert (await client.get(url, headers=other.headers)).status_code == 404


async def test_balance_history(client, pool, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    aid = uuid.UUID(agent["id"])
    wallet = await sim_wallet(pool, agent["id"])
    now = await pool.fetchval("SELECT date_trunc('hour', now())")
    stamps = [now - timedelta(hours=h) for h in (1, 20, 30)] + [
        datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=d) for d in (3, 2)
    ]
    for i, stamp in enumerate(stamps):
        await pool.execute(
            "INSERT INTO agent_balance_snapshots (agent_id, wallet_address, snapshot_timestamp, portfolio_balance_sol,"
            " sol_balance, positions_value_sol, unrealized_pnl_sol) VALUES ($1, $2, $3, $4, 1.5, 0.25, -0.125)"
            " ON CONFLICT DO NOTHING",
            aid,
            wallet,
            stamp,
            Decimal(i) + Decimal("0.5"),
        )
    base = f"/api/v1/agents/{agent['id']}/balance-history?walletAddress={wallet}"
    day = (await client.get(base + "&timeframe=24h", headers=user.headers)).json()
    assert day["agentId"] == agent["id"] and day["timeframe"] == "24h"
    assert [s["portfolioBalanceSol"] for s in day["snapshots"]] == ["1.5", "0.5"]  # ascending
    assert day["snapshots"][0] == {
        "timestamp": day["snapshots"][0]["timestamp"],
        "portfolioBalanceSol": "1.5",
        "solBalance": "1.5",
        "positionsValueSol": "0.25",
        "unrealizedPnLSol": "-0.125",
    }
    every = (await client.get(base, headers=user.headers)).json()
    expected = sorted(s for s in stamps if s.hour == 0)
    assert [s["timestamp"][:13] for s in every["snapshots"]] == [s.strftime("%Y-%m-%dT%H") for s in expected]
    missing = await client.get(f"/api/v1/agents/{agent['id']}/balance-history?days=30", headers=user.headers)
    assert missing.status_code == 400 and missing.json()["error"] == "walletAddress query parameter is required"
    assert (await client.get(base.replace(wallet, "sim_elsewhere"), headers=user.headers)).status_code == 404
    assert (await client.get(base + "&timeframe=1y", headers=user.headers)).status_code == 400
    assert (await client.get(base, headers=other.headers)).status_code == 404


async def test_price_feeds(client, pool, user) -> None:
    await pool.execute("DELETE FROM token_prices WHERE mint = $1", SOL_MINT)
    unavailable = await client.get("/api/v1/price-feeds/sol-usd", headers=user.headers)
    assert unavailable.status_code == 503 and unavailable.json()["code"] == "PRICE_UNAVAILABLE"
    await set_price(pool, SOL_MINT, "1", "150.123456789")
    fresh = (await client.get("/api/v1/price-feeds/sol-usd", headers=user.headers)).json()
    assert fresh["price"] == "150.12345679" and fresh["isStale"] is False and fresh["source"] == "test"
    assert fresh["lastUpdated"].endswith("Z")
    await set_price(pool, SOL_MINT, "1", "150", age_s=3600)
    assert (await client.get("/api/v1/price-feeds/sol-usd", headers=user.headers)).json()["isStale"] is True
    assert (await client.get("/api/v1/price-feeds/sol-usd")).status_code == 401
    status = (await client.get("/api/v1/data-sources/status", headers=user.headers)).json()
    assert status["jupiter"] == {"configured": False} and status["pythNetwork"] == {"configured": True}
    assert set(status) == {
        "pythNetwork",
        "pythSolPriceFeed",
        "jupiter",
        "dexscreener",
        "liquidityChecks",
        "signalGeneration",
    }
