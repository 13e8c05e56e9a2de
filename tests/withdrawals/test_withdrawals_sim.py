"""Simulation withdrawals through the real route: validation, ownership, overdraw, "all", idempotency, the
ledger row (USD value, fee, destination), transactions listing, audit, and performance/snapshots."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import httpx
import msgspec

from app.worker.execution import execute_buy
from app.worker.snapshots import wallet_figures
from tests.factories import SOL_MINT
from tests.withdrawals.conftest import (
    DESTINATION,
    TOKEN,
    api_key_headers,
    assert_audit_clean,
    balances,
    body,
    new_owner,
    sim_context,
    store_prices,
)

D = Decimal


def url(wallet: str) -> str:
    return f"/api/v1/wallets/{wallet}/withdraw"


async def test_sol_withdrawal_debits_amount_and_fee_and_is_listed(
    in_loop_client: httpx.AsyncClient, pool, settings
) -> None:
    owner = await new_owner(pool, settings, sol="10")
    await store_prices(pool, sol_usd=D("150.25"))

    resp = await in_loop_client.post(url(owner.wallet), json=body("1.5"), headers=owner.headers)

    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["status"] == "completed" and out["walletType"] == "simulation"
    assert (out["amount"], out["fees"], out["destinationAddress"]) == ("1.5", "0.000005", DESTINATION)
    tx = out["transaction"]
    assert tx["transactionType"] == "WITHDRAWAL"
    assert (tx["inputMint"], tx["inputSymbol"], tx["inputAmount"]) == (SOL_MINT, "SOL", "1.5")
    assert (tx["fees"], tx["networkFeeSol"], tx["destinationAddress"]) == ("0.000005", "0.000005", DESTINATION)
    assert tx["transactionValueUsd"] == "225.375"  # 1.5 × 150.25, the stored SOL/USD at the time
    assert await balances(pool, owner.wallet) == {SOL_MINT: D("8.499995")}

    listed = await in_loop_client.get(
        "/api/v1/agent-transactions",
        params={"agentId": str(owner.agent_id), "transactionType": "WITHDRAWAL"},
        headers=owner.headers,
    )
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()] == [tx["id"]]
    deposits = await in_loop_client.get(
        "/api/v1/agent-transactions",
        params={"agentId": str(owner.agent_id), "transactionType": "DEPOSIT"},
        headers=owner.headers,
    )
    assert [row["transactionType"] for row in deposits.json()] == ["DEPOSIT"]
    await assert_audit_clean(pool)


async def test_unknown_price_values_the_row_at_zero_without_inventing_one(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="1")
    await store_prices(pool, sol_usd=None)

    # amount as a JSON number (read exactly, never through float)
    payload = msgspec.json.Encoder(decimal_format="number").encode(body(D("0.25")))
    resp = await in_loop_client.post(
        url(owner.wallet), content=payload, headers={**owner.headers, "Content-Type": "application/json"}
    )

    assert resp.status_code == 201, resp.text
    assert resp.json()["amount"] == "0.25"
    row = await pool.fetchrow(
        "SELECT transaction_value_usd, input_price, sol_usd_price FROM agent_transactions WHERE id = $1",
        uuid.UUID(resp.json()["transaction"]["id"]),
    )
    assert (row["transaction_value_usd"], row["input_price"], row["sol_usd_price"]) == (0, None, None)


async def test_overdraw_is_a_409_with_the_available_amount(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="2")

    resp = await in_loop_client.post(url(owner.wallet), json=body("2"), headers=owner.headers)

    assert resp.status_code == 409
    err = resp.json()
    assert err["code"] == "INSUFFICIENT_BALANCE"
    assert err["details"]["available"] == "1.999995"  # the fee is paid on top
    assert err["details"]["tokenAddress"] == SOL_MINT
    assert await balances(pool, owner.wallet) == {SOL_MINT: D(2)}
    assert await pool.fetchval("SELECT count(*) FROM withdrawals WHERE agent_id = $1", owner.agent_id) == 0

    token = await in_loop_client.post(url(owner.wallet), json=body("1", token=TOKEN), headers=owner.headers)
    assert token.status_code == 409 and token.json()["details"]["available"] == "0"


async def test_all_withdraws_everything_the_fee_leaves(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="3.25")

    resp = await in_loop_client.post(url(owner.wallet), json=body("all"), headers=owner.headers)

    assert resp.status_code == 201, resp.text
    assert resp.json()["amount"] == "3.249995"
    assert await balances(pool, owner.wallet) == {SOL_MINT: D(0)}
    again = await in_loop_client.post(url(owner.wallet), json=body("all"), headers=owner.headers)
    assert again.status_code == 409 and again.json()["details"]["available"] == "0"
    await assert_audit_clean(pool)


async def test_bad_input_is_a_400_and_moves_nothing(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="1")
    live_looking = "So11111111111111111111111111111111111111112"
    cases = {
        "not base58 (0, O, I, l)": body("0.1", destination="0OIl" + DESTINATION[4:]),
        "too short": body("0.1", destination="9xQeWvG816bUx9EPjHmaT23yvVM2"),
        "decodes to 33 bytes": body("0.1", destination="2" * 45),
        "the SOL mint": body("0.1", destination=live_looking),
        "the wallet itself (not base58 for a sim wallet)": body("0.1", destination=owner.wallet),
        "empty destination": body("0.1", destination=""),
        "missing destination": {"tokenAddress": SOL_MINT, "amount": "0.1"},
        "zero": body("0"),
        "negative": body("-1"),
        "exponent": body("1e-3"),
        "boolean": body(True),
        "missing amount": {"tokenAddress": SOL_MINT, "destinationAddress": DESTINATION},
        "19 decimals": body("0.0000000000000000001"),
        "bad token": body("0.1", token="not-a-mint"),
    }
    for name, payload in cases.items():
        resp = await in_loop_client.post(url(owner.wallet), json=payload, headers=owner.headers)
        assert resp.status_code == 400, (name, resp.text)
        assert resp.json()["error"], name
    malformed = await in_loop_client.post(
        url(owner.wallet), content=b"{not json", headers={**owner.headers, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    bad_key = await in_loop_client.post(
        url(owner.wallet), json=body("0.1"), headers={**owner.headers, "Idempotency-Key": "k" * 256}
    )
    assert bad_key.status_code == 400
    assert await balances(pool, owner.wallet) == {SOL_MINT: D(1)}


async def test_destination_errors_say_what_is_wrong(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="1")
    not_b58 = await in_loop_client.post(
        url(owner.wallet), json=body("0.1", destination="l" * 44), headers=owner.headers
    )
    assert "base58" in not_b58.json()["error"]
    short = await in_loop_client.post(url(owner.wallet), json=body("0.1", destination="3" * 20), headers=owner.headers)
    assert "32-byte" in short.json()["error"]


async def test_only_the_owner_with_an_access_token_may_withdraw(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="1")
    stranger = await new_owner(pool, settings, sol="1")

    foreign = await in_loop_client.post(url(owner.wallet), json=body("0.1"), headers=stranger.headers)
    assert foreign.status_code == 404
    missing = await in_loop_client.post(url("sim_" + "a" * 30), json=body("0.1"), headers=owner.headers)
    assert missing.status_code == 404
    key = await in_loop_client.post(url(owner.wallet), json=body("0.1"), headers=await api_key_headers(pool, owner.id))
    assert key.status_code == 401
    anonymous = await in_loop_client.post(url(owner.wallet), json=body("0.1"))
    assert anonymous.status_code == 401
    # The stranger's 404 looks exactly like a wallet that does not exist.
    assert foreign.json() == missing.json()
    assert await balances(pool, owner.wallet) == {SOL_MINT: D(1)}


async def test_idempotent_retry_returns_the_original_withdrawal(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="5")
    headers = {**owner.headers, "Idempotency-Key": "withdraw-once-1"}

    first = await in_loop_client.post(url(owner.wallet), json=body("1"), headers=headers)
    retry = await in_loop_client.post(url(owner.wallet), json=body("1.000"), headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    assert await balances(pool, owner.wallet) == {SOL_MINT: D("3.999995")}

    reused = await in_loop_client.post(url(owner.wallet), json=body("2"), headers=headers)
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    # Keys are per user: another user's identical key is a new withdrawal of their own.
    other = await new_owner(pool, settings, sol="5")
    theirs = await in_loop_client.post(
        url(other.wallet), json=body("1"), headers={**other.headers, "Idempotency-Key": "withdraw-once-1"}
    )
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_concurrent_retries_with_one_key_withdraw_once(in_loop_client, pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="5")
    headers = {**owner.headers, "Idempotency-Key": "burst-1"}

    answers = await asyncio.gather(
        *(in_loop_client.post(url(owner.wallet), json=body("1"), headers=headers) for _ in range(6))
    )

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await balances(pool, owner.wallet) == {SOL_MINT: D("3.999995")}
    await assert_audit_clean(pool)


async def _performance(http, owner) -> dict:
    resp = await http.get(f"/api/v1/agents/{owner.agent_id}/performance", headers=owner.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_a_sol_withdrawal_is_not_a_loss(in_loop_client, pool: asyncpg.Pool, settings) -> None:
    owner = await new_owner(pool, settings, sol="10")
    await store_prices(pool, token_sol="0.0015")
    await execute_buy(sim_context(pool, settings), agent_id=owner.agent_id, token_address=TOKEN, position_size=D(2))
    await pool.execute(
        """INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount,
               purchase_price, sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time,
               close_reason)
           VALUES ($1, $2, $3, 'OLD', 100, 0.01, 0.012, 20, 0, 0.2, now(), now(), 'manual')""",
        owner.agent_id,
        owner.wallet,
        TOKEN,
    )
    before = await _performance(in_loop_client, owner)
    async with pool.acquire() as conn:
        snap_before = await wallet_figures(conn, owner.agent_id, owner.wallet)

    resp = await in_loop_client.post(url(owner.wallet), json=body("3"), headers=owner.headers)
    assert resp.status_code == 201

    after = await _performance(in_loop_client, owner)
    for unchanged in (
        "totalProfitLossSol",
        "realizedProfitLossSol",
        "unrealizedProfitLossSol",
        "averageReturn",
        "winRate",
        "totalClosedTrades",
        "totalOpenPositions",
    ):
        assert after[unchanged] == before[unchanged], unchanged
    assert D(str(before["portfolioBalanceSol"])) - D(str(after["portfolioBalanceSol"])) == D("3.000005")
    async with pool.acquire() as conn:
        snap_after = await wallet_figures(conn, owner.agent_id, owner.wallet)
    assert snap_after.unrealized_pnl_sol == snap_before.unrealized_pnl_sol
    assert snap_after.positions_value_sol == snap_before.positions_value_sol
    assert snap_before.sol_balance - snap_after.sol_balance == D("3.000005")
    await assert_audit_clean(pool)
