"""Live withdrawals against the fake Solana RPC: SOL and SPL transfers signed with the wallet's key and verified
by the fake node, the shared write-ahead journal and settlement, and a SIGKILL between sending and recording.
Every scenario ends with the ledger equal to the fake chain, to the lamport and base unit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import asyncpg
import httpx
import msgspec
import pytest
from solders.pubkey import Pubkey

from app.config import Settings
from app.live.keys import KeyStore, set_keystore
from app.live.settlement import Settlement
from app.live.swap import LiveSwapper
from app.market.solana_rpc import SolanaRpc
from tests.dbutil import PROJECT_ROOT
from tests.factories import SOL_MINT
from tests.fakes.solana_rpc import FakeSolanaRpc
from tests.in_loop import in_loop_app_client
from tests.withdrawals.conftest import DESTINATION, assert_audit_clean, body
from tests.withdrawals.live_chain import (
    START_LAMPORTS,
    LiveWallet,
    assert_ledger_matches_chain,
    land_transfer,
    ledger_balances,
    live_wallet,
)

D = Decimal
URL = "/api/v1/wallets/{}/withdraw"


@pytest.fixture(scope="module")
async def chain() -> AsyncIterator[FakeSolanaRpc]:
    async with FakeSolanaRpc() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_chain(chain: FakeSolanaRpc) -> None:
    chain.on_send, chain.send_outcome, chain.preflight_err = None, "pending", None
    chain.clear_faults()


@pytest.fixture(scope="module")
def live_settings(settings: Settings, chain: FakeSolanaRpc) -> Settings:
    return msgspec.structs.replace(
        settings,
        solana_rpc_url=chain.url,
        withdrawal_wait_s=1.0,
        live_confirm_poll_s=0.01,
        live_resend_interval_s=0.0,
    )


@pytest.fixture(scope="module")
async def live_client(live_settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with in_loop_app_client(live_settings, database_url) as http:
        yield http
    set_keystore(None)


async def settle(pool: asyncpg.Pool, settings: Settings, chain: FakeSolanaRpc, wallet: str) -> list[str]:
    """One pass of the live settlement loop (the worker's service) over the wallet's lapsed journal rows."""
    async with aiohttp.ClientSession() as session:
        swapper = LiveSwapper(rpc=SolanaRpc(session, chain.url), keystore=KeyStore(), settings=settings)
        return await Settlement(pool, settings, swapper, owner="test-settlement").settle_wallet(wallet, record=True)


def landing(chain: FakeSolanaRpc) -> None:
    chain.on_send = lambda sent: land_transfer(chain, sent)


async def test_sol_withdrawal_is_sent_confirmed_and_recorded_from_chain(
    live_client, pool, chain, live_settings
) -> None:
    wallet = await live_wallet(pool, live_settings, chain)
    landing(chain)

    resp = await live_client.post(URL.format(wallet.address), json=body("1.25"), headers=wallet.headers)

    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["status"] == "completed" and out["walletType"] == "live"
    signature = out["transactionHash"]
    assert chain.sent[signature].payer == wallet.address  # signed by the wallet's key, verified by the node
    assert chain.balances[DESTINATION] == 1_250_000_000
    assert (out["fees"], out["transaction"]["transactionHash"]) == ("0.000005", signature)
    journal = await pool.fetchrow("SELECT * FROM live_swaps WHERE signature = $1", signature)
    assert (journal["side"], journal["status"], journal["transaction_id"]) == (
        "withdrawal",
        "settled",
        uuid.UUID(out["transaction"]["id"]),
    )
    await assert_ledger_matches_chain(pool, chain, wallet.address)
    await assert_audit_clean(pool)


async def test_token_withdrawal_pays_the_new_account_rent_once(live_client, pool, chain, live_settings) -> None:
    mint = str(Pubkey.new_unique())
    wallet = await live_wallet(pool, live_settings, chain, tokens={mint: 5_000_000})
    destination = str(Pubkey.new_unique())
    landing(chain)

    first = await live_client.post(
        URL.format(wallet.address), json=body("1.5", token=mint, destination=destination), headers=wallet.headers
    )
    second = await live_client.post(
        URL.format(wallet.address), json=body("all", token=mint, destination=destination), headers=wallet.headers
    )

    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json()["fees"] == "0.00204428"  # 5 000 lamports fee + 2 039 280 rent of the created account
    assert second.json()["fees"] == "0.000005"  # the account exists now
    assert second.json()["amount"] == "3.5"
    assert chain.token_accounts[destination][mint] == 5_000_000
    await assert_ledger_matches_chain(pool, chain, wallet.address)
    assert await ledger_balances(pool, wallet.address) == {
        SOL_MINT: D(START_LAMPORTS - 5_000 - 2_039_280 - 5_000).scaleb(-9)
    }
    await assert_audit_clean(pool)


async def test_all_sol_empties_the_wallet(live_client, pool, chain, live_settings) -> None:
    wallet = await live_wallet(pool, live_settings, chain, lamports=2_000_000_000)
    landing(chain)

    resp = await live_client.post(URL.format(wallet.address), json=body("all"), headers=wallet.headers)

    assert resp.status_code == 201, resp.text
    assert resp.json()["amount"] == "1.999995"
    assert chain.balances[wallet.address] == 0
    await assert_ledger_matches_chain(pool, chain, wallet.address)


async def test_unconfirmed_withdrawal_is_settled_later_by_the_settlement_loop(
    live_client, pool, chain, live_settings
) -> None:
    wallet = await live_wallet(pool, live_settings, chain)
    headers = {**wallet.headers, "Idempotency-Key": "slow-1"}

    pending = await live_client.post(URL.format(wallet.address), json=body("2"), headers=headers)

    assert pending.status_code == 202, pending.text
    signature = pending.json()["transactionHash"]
    assert pending.json()["status"] == "pending" and pending.json()["transaction"] is None
    assert await ledger_balances(pool, wallet.address) == {SOL_MINT: D(5)}
    busy = await live_client.post(URL.format(wallet.address), json=body("0.1"), headers=wallet.headers)
    assert busy.status_code == 409 and busy.json()["code"] == "WALLET_BUSY"

    land_transfer(chain, chain.sent[signature])  # it lands after the request gave up waiting
    assert await settle(pool, live_settings, chain, wallet.address) == ["settled"]

    replay = await live_client.post(URL.format(wallet.address), json=body("2"), headers=headers)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == pending.json()["id"] and replay.json()["status"] == "completed"
    assert chain.calls["sendTransaction"] == len(chain.sent)  # nothing was ever sent twice
    await assert_ledger_matches_chain(pool, chain, wallet.address)
    await assert_audit_clean(pool)


async def test_rejected_or_expired_transfers_move_nothing(live_client, pool, chain, live_settings) -> None:
    wallet = await live_wallet(pool, live_settings, chain)
    chain.preflight_err = {"InstructionError": [0, "Custom"]}

    rejected = await live_client.post(URL.format(wallet.address), json=body("1"), headers=wallet.headers)

    assert rejected.status_code == 502 and rejected.json()["code"] == "WITHDRAWAL_FAILED"
    assert rejected.json()["details"]["withdrawal"]["status"] == "failed"

    chain.preflight_err = None
    chain.send_outcome = "drop"  # accepted by the node, never lands
    headers = {**wallet.headers, "Idempotency-Key": "dropped-1"}
    dropped = await live_client.post(URL.format(wallet.address), json=body("1"), headers=headers)
    assert dropped.status_code == 202
    chain.expire_blockhashes()
    assert await settle(pool, live_settings, chain, wallet.address) == ["expired"]
    expired = await live_client.post(URL.format(wallet.address), json=body("1"), headers=headers)
    assert expired.status_code == 502 and expired.json()["code"] == "WITHDRAWAL_EXPIRED"

    assert (
        await pool.fetchval(
            "SELECT count(*) FROM agent_transactions WHERE wallet_address = $1 AND transaction_type = 'WITHDRAWAL'",
            wallet.address,
        )
        == 0
    )
    assert await ledger_balances(pool, wallet.address) == {SOL_MINT: D(5)}
    await assert_ledger_matches_chain(pool, chain, wallet.address)


async def test_a_transfer_landing_with_an_error_costs_only_its_fee(live_client, pool, chain, live_settings) -> None:
    wallet = await live_wallet(pool, live_settings, chain)
    chain.send_outcome = "fail"  # lands, fails, pays its fee

    failed = await live_client.post(URL.format(wallet.address), json=body("1"), headers=wallet.headers)

    assert failed.status_code == 502 and failed.json()["code"] == "WITHDRAWAL_FAILED"

    async def ledger_rows() -> list[tuple[str, Decimal, Decimal | None]]:
        rows = await pool.fetch(
            "SELECT transaction_type::text AS kind, output_amount, network_fee_sol FROM agent_transactions"
            " WHERE wallet_address = $1 AND transaction_type <> 'DEPOSIT' ORDER BY transaction_time",
            wallet.address,
        )
        return [(r["kind"], r["output_amount"], r["network_fee_sol"]) for r in rows]

    assert await ledger_rows() == []  # the fee is the settlement's to write
    chain.send_outcome = "pending"
    landing(chain)
    # The next withdrawal settles the wallet first, which writes the fee, then sizes itself on what is left.
    nxt = await live_client.post(URL.format(wallet.address), json=body("0.1"), headers=wallet.headers)
    assert nxt.status_code == 201, nxt.text
    fee_row, withdrawal = await ledger_rows()
    assert fee_row == ("SWAP", 0, D("0.000005")) and withdrawal[0] == "WITHDRAWAL"
    await assert_ledger_matches_chain(pool, chain, wallet.address)
    await assert_audit_clean(pool)


async def test_live_refusals(live_client, pool, chain, live_settings) -> None:
    wallet = await live_wallet(pool, live_settings, chain)
    sends = chain.calls["sendTransaction"]

    itself = await live_client.post(
        URL.format(wallet.address), json=body("1", destination=wallet.address), headers=wallet.headers
    )
    assert itself.status_code == 400 and "itself" in itself.json()["error"]
    overdraw = await live_client.post(URL.format(wallet.address), json=body("5"), headers=wallet.headers)
    assert overdraw.status_code == 409 and overdraw.json()["details"]["available"] == "4.999995"
    dust = await live_client.post(URL.format(wallet.address), json=body("4.9999"), headers=wallet.headers)
    assert dust.status_code == 409 and dust.json()["code"] == "RENT_EXEMPT_MINIMUM"
    await pool.execute(
        """INSERT INTO live_swaps (agent_id, wallet_address, side, swap_api, input_mint, output_mint, in_amount,
               quoted_out_amount, quote, signature, signed_transaction, last_valid_block_height, lease_owner,
               lease_until)
           VALUES ($1, $2, 'buy', 'metis', $3, $4, 1, 1, '{}', $5, 'AA==', 1, 'other-process', now() + interval '1h')""",
        wallet.agent_id,
        wallet.address,
        SOL_MINT,
        DESTINATION,
        "sig-" + uuid.uuid4().hex,
    )
    busy = await live_client.post(URL.format(wallet.address), json=body("1"), headers=wallet.headers)
    assert busy.status_code == 409 and busy.json()["code"] == "WALLET_BUSY"
    await pool.execute("UPDATE live_swaps SET status = 'failed' WHERE wallet_address = $1", wallet.address)
    set_keystore(KeyStore())
    unloaded = await live_client.post(URL.format(wallet.address), json=body("1"), headers=wallet.headers)
    assert unloaded.status_code == 409 and unloaded.json()["code"] == "WALLET_NOT_LOADED"
    assert chain.calls["sendTransaction"] == sends
    assert await ledger_balances(pool, wallet.address) == {SOL_MINT: D(5)}


async def _wait_until(predicate, what: str) -> None:
    for _ in range(3000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.parametrize("kill_point", ["inside_send", "while_confirming"])
async def test_sigkill_between_send_and_write_neither_loses_nor_duplicates(
    kill_point: str, live_client, pool, chain, live_settings, database_url: str
) -> None:
    wallet: LiveWallet = await live_wallet(pool, live_settings, chain)
    key = f"crash-{kill_point}"
    args = {
        "database_url": database_url,
        "rpc_url": chain.url,
        "secret": wallet.secret,
        "email": wallet.email,
        "user_id": str(wallet.user_id),
        "wallet": wallet.address,
        "destination": DESTINATION,
        "amount": "0.75",
        "key": key,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.withdrawals.live_child",
        cwd=PROJECT_ROOT,
        env={**os.environ, "WITHDRAW_CHILD": json.dumps(args)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sent: list[str] = []

    def land_then_maybe_kill(tx) -> None:
        land_transfer(chain, tx)  # the node accepted it: it will land whatever happens to the sender
        sent.append(tx.signature)
        if kill_point == "inside_send":
            os.kill(proc.pid, signal.SIGKILL)  # before the sender even hears the node's answer

    chain.on_send = land_then_maybe_kill
    statuses_before = chain.calls["getSignatureStatuses"]
    if kill_point == "while_confirming":
        chain.delay("getSignatureStatuses", 30.0)  # the sender's first status check hangs: kill it there
        await _wait_until(lambda: chain.calls["getSignatureStatuses"] > statuses_before, "status check")
        proc.send_signal(signal.SIGKILL)
    stdout, stderr = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, (stdout, stderr)
    assert b"finished" not in stdout

    [signature] = sent
    journal = await pool.fetchrow("SELECT * FROM live_swaps WHERE signature = $1", signature)
    assert journal["status"] == ("pending" if kill_point == "inside_send" else "sent")
    assert journal["lease_owner"] == "killed-child" and journal["transaction_id"] is None
    assert await ledger_balances(pool, wallet.address) == {SOL_MINT: D(5)}  # the chain moved, the ledger not yet

    # A client retry finds the journaled withdrawal instead of sending another one.
    headers = {**wallet.headers, "Idempotency-Key": key}
    retry = await live_client.post(URL.format(wallet.address), json=body("0.75"), headers=headers)
    assert retry.status_code == 202 and retry.json()["transactionHash"] == signature
    assert await settle(pool, live_settings, chain, wallet.address) == []  # the dead sender's lease still holds

    await pool.execute("UPDATE live_swaps SET lease_until = now() - interval '1 second' WHERE id = $1", journal["id"])
    assert await settle(pool, live_settings, chain, wallet.address) == ["settled"]
    assert await settle(pool, live_settings, chain, wallet.address) == []

    rows = await pool.fetch(
        "SELECT transaction_hash, input_amount, fees FROM agent_transactions"
        " WHERE wallet_address = $1 AND transaction_type = 'WITHDRAWAL'",
        wallet.address,
    )
    assert [(r["transaction_hash"], r["input_amount"], r["fees"]) for r in rows] == [
        (signature, D("0.75"), D("0.000005"))
    ]
    assert len([s for s in chain.sent.values() if s.payer == wallet.address]) == 1
    done = await live_client.post(URL.format(wallet.address), json=body("0.75"), headers=headers)
    assert done.status_code == 201 and done.json()["status"] == "completed"
    await assert_ledger_matches_chain(pool, chain, wallet.address)
    await assert_audit_clean(pool)
