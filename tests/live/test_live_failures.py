"""Unclear answers and failures: every scenario ends with the ledger equal to the fake chain, one
ledger row per landed swap and none for a swap that never landed."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.audit import run_audit
from app.live.settlement import Settlement
from app.live.swap import SwapError
from app.live.swaplog import SwapRow
from app.trading.errors import TradeError
from app.trading.units import SOL_MINT
from tests.fakes.solana_rpc import SLIPPAGE_EXCEEDED
from tests.live.conftest import START_LAMPORTS, LiveRig, wait_for


async def assert_nothing_traded(rig: LiveRig) -> None:
    assert await rig.ledger_rows() == []
    assert await rig.balances() == {SOL_MINT: Decimal(START_LAMPORTS).scaleb(-9)}
    await rig.assert_ledger_matches_chain()


async def test_send_times_out_and_lands_later_is_settled_exactly_once(rig: LiveRig) -> None:
    await rig.setup(live_confirm_timeout_s=0.3)
    rig.build(rpc_timeout=0.2)  # the answer to sendTransaction never arrives in time
    rig.rpc.delay("sendTransaction", 0.6)

    with pytest.raises(SwapError) as caught:
        await rig.buy("1")
    assert caught.value.code == "SWAP_UNCONFIRMED"
    [swap] = await rig.swaps()
    assert swap["status"] == "pending" and swap["lease_owner"] is None
    assert await rig.ledger_rows() == []

    await wait_for(lambda: swap["signature"] in rig.rpc.sent)  # the node got it after all
    rig.land(rig.rpc.sent[swap["signature"]])
    assert rig.rpc.calls["sendTransaction"] == 1

    assert await rig.executor.settlement.run_once() == ["settled"]
    assert await rig.executor.settlement.run_once() == []
    [row] = await rig.ledger_rows()
    assert row["transaction_hash"] == swap["signature"]
    assert await rig.pool.fetchval("SELECT count(*) FROM agent_positions WHERE wallet_address = $1", rig.wallet) == 1
    await rig.assert_ledger_matches_chain()


async def test_send_times_out_and_never_lands_expires_without_a_trade(rig: LiveRig) -> None:
    await rig.setup(live_confirm_timeout_s=0.2)
    rig.rpc.send_outcome = "drop"
    rig.rpc.drop("sendTransaction")  # connection closed without an answer

    with pytest.raises(SwapError) as caught:
        await rig.buy("1")
    assert caught.value.code == "SWAP_UNCONFIRMED"
    assert await rig.executor.settlement.run_once() == ["pending"]  # blockhash still valid: keep waiting

    rig.rpc.expire_blockhashes()
    assert await rig.executor.settlement.run_once() == ["expired"]
    [swap] = await rig.swaps()
    assert swap["status"] == "expired" and swap["transaction_id"] is None
    await assert_nothing_traded(rig)


async def test_blockhash_expiry_while_confirming(rig: LiveRig) -> None:
    await rig.setup()
    rig.rpc.send_outcome = "drop"
    rig.rpc.on_send = lambda sent: rig.rpc.expire_blockhashes()

    with pytest.raises(SwapError) as caught:
        await rig.buy("1")
    assert caught.value.code == "SWAP_EXPIRED"
    [swap] = await rig.swaps()
    assert swap["status"] == "expired"
    await assert_nothing_traded(rig)

    # The wallet is free again and the next order goes through normally.
    rig.rpc.send_outcome = "pending"
    rig.auto_land()
    await rig.buy("1")
    assert [s["status"] for s in await rig.swaps()] == ["expired", "settled"]
    await rig.assert_ledger_matches_chain()


async def test_partial_confirmation_waits_for_confirmed(rig: LiveRig) -> None:
    await rig.setup()
    rig.land_commitment = "processed"
    rig.auto_land()
    observed: dict[str, object] = {}

    async def promote_after_a_few_polls() -> None:
        await wait_for(lambda: rig.rpc.calls["getSignatureStatuses"] >= 3 and rig.landed)
        observed["ledger_before"] = await rig.ledger_rows()
        observed["status_before"] = (await rig.swaps())[0]["status"]
        rig.rpc.promote(rig.landed[0])

    promoter = asyncio.create_task(promote_after_a_few_polls())
    bought = await rig.buy("1")
    await promoter

    assert observed == {"ledger_before": [], "status_before": "sent"}
    [swap] = await rig.swaps()
    assert swap["status"] == "settled" and bought.transaction_hash == swap["signature"]
    await rig.assert_ledger_matches_chain()


async def test_quote_and_build_are_retried_on_429_and_5xx(rig: LiveRig) -> None:
    await rig.setup()
    rig.auto_land()
    rig.jup.rate_limit("quote", retry_after="0")
    rig.jup.fail("quote", 503)
    rig.jup.fail("swap", 502)

    await rig.buy("1")

    assert rig.jup.calls["quote"] == 3 and rig.jup.calls["swap"] == 2
    assert rig.rpc.calls["sendTransaction"] == 1
    assert len(await rig.ledger_rows()) == 1
    await rig.assert_ledger_matches_chain()


@pytest.mark.parametrize("status", [503, 429])
async def test_send_failure_is_never_retried_and_settles_by_signature(rig: LiveRig, status: int) -> None:
    await rig.setup()
    if status == 429:
        rig.rpc.rate_limit("sendTransaction", retry_after="0")
    else:
        rig.rpc.fail("sendTransaction", status)

    async def expire_after_send() -> None:
        await wait_for(lambda: rig.rpc.calls["sendTransaction"] >= 1)
        rig.rpc.expire_blockhashes()

    expirer = asyncio.create_task(expire_after_send())
    with pytest.raises(SwapError) as caught:
        await rig.buy("1")
    await expirer
    assert caught.value.code == "SWAP_EXPIRED"
    assert rig.rpc.calls["sendTransaction"] == 1
    assert rig.jup.calls["swap"] == 1
    await assert_nothing_traded(rig)


async def test_preflight_rejection_fails_at_once_and_frees_the_wallet(rig: LiveRig) -> None:
    await rig.setup()
    rig.rpc.preflight_err = SLIPPAGE_EXCEEDED

    with pytest.raises(SwapError) as caught:
        await rig.buy("1")
    assert caught.value.code == "SWAP_FAILED"
    [swap] = await rig.swaps()
    assert swap["status"] == "failed" and "rejected" in swap["error"]
    await assert_nothing_traded(rig)

    rig.rpc.preflight_err = None
    rig.auto_land()
    await rig.buy("1")
    await rig.assert_ledger_matches_chain()


async def test_landed_with_error_records_its_fee_and_no_trade(rig: LiveRig) -> None:
    await rig.setup()
    rig.rpc.send_outcome = "fail"
    rig.rpc.signature_fee = 5_003  # lamports below the 8-decimal fee column must reach the ledger too

    with pytest.raises(SwapError) as caught:
        await rig.buy("1")
    assert caught.value.code == "SWAP_FAILED"
    [swap] = await rig.swaps()
    assert swap["status"] == "failed" and swap["fee_lamports"] == 5_003 and swap["fee_recorded_at"] is None
    assert await rig.ledger_rows() == []
    assert rig.rpc.balances[rig.wallet] == START_LAMPORTS - 5_003
    # `nexgent audit` names the missing fee until settlement writes it.
    [finding] = [f for f in await run_audit(rig.pool) if f.subject == rig.wallet]
    assert finding.check == "live-fee" and "5003 lamports" in finding.detail

    # Until the fee is in the ledger the wallet waits, like a swap awaiting settlement: an order sized on a
    # SOL balance that still includes the fee is never sent.
    rig.rpc.send_outcome = "pending"
    rig.auto_land()
    with pytest.raises(TradeError) as busy:
        await rig.buy("1")
    assert busy.value.code == "WALLET_BUSY"
    assert rig.rpc.calls["sendTransaction"] == 1

    assert await rig.executor.settlement.record_failed_fees() == 1
    [fee_row] = await rig.ledger_rows()
    assert fee_row["output_amount"] == 0 and fee_row["input_mint"] == SOL_MINT
    assert fee_row["network_fee_sol"] == Decimal("0.00000500") and fee_row["input_amount"] == Decimal("3e-9")
    assert fee_row["transaction_hash"] == swap["signature"] and fee_row["swap_payload"]["failedOnChain"] is True
    [swap] = await rig.swaps()
    assert swap["fee_recorded_at"] is not None and swap["transaction_id"] == fee_row["id"]
    await rig.assert_ledger_matches_chain()
    assert await rig.executor.settlement.record_failed_fees() == 0  # once only
    assert [f for f in await run_audit(rig.pool) if f.subject == rig.wallet] == []

    await rig.buy("1")
    await rig.assert_ledger_matches_chain()


async def test_two_settlers_racing_record_one_ledger_row(rig: LiveRig) -> None:
    await rig.setup(live_confirm_timeout_s=0.1)
    rig.rpc.send_outcome = "pending"
    with pytest.raises(SwapError):
        await rig.buy("1")
    [swap] = await rig.swaps()
    rig.land(rig.rpc.sent[swap["signature"]])

    row = SwapRow(**{k: swap[k] for k in SwapRow.__struct_fields__})
    first = Settlement(rig.pool, rig.settings, rig.swapper, owner="settler-a")
    second = Settlement(rig.pool, rig.settings, rig.swapper, owner="settler-b")
    results = await asyncio.gather(first.settle(row), second.settle(row))

    assert sorted(results) == ["settled", "settled"]
    assert len(await rig.ledger_rows()) == 1
    await rig.assert_ledger_matches_chain()


async def test_a_failure_found_by_settlement_gets_its_fee_recorded_once(rig: LiveRig) -> None:
    await rig.setup(live_confirm_timeout_s=0.1)
    rig.rpc.send_outcome = "pending"
    with pytest.raises(SwapError) as caught:
        await rig.buy("1")
    assert caught.value.code == "SWAP_UNCONFIRMED"
    [swap] = await rig.swaps()
    rig.rpc.fail_tx(swap["signature"])  # it landed after all, with an error

    first = Settlement(rig.pool, rig.settings, rig.swapper, owner="settler-a")
    second = Settlement(rig.pool, rig.settings, rig.swapper, owner="settler-b")
    await first.run_once(record=False)  # resolves it from chain: failed, fee not yet in the ledger
    [swap] = await rig.swaps()
    assert swap["status"] == "failed" and swap["fee_recorded_at"] is None
    written = await asyncio.gather(first.record_failed_fees(), second.record_failed_fees())

    assert sorted(written) == [0, 1]
    [fee_row] = await rig.ledger_rows()
    assert fee_row["output_amount"] == 0 and fee_row["network_fee_sol"] == Decimal("0.00000500")
    await rig.assert_ledger_matches_chain()


async def test_rebroadcast_resends_identical_bytes_and_lands_once(rig: LiveRig) -> None:
    await rig.setup(live_resend_interval_s=0.02)
    rig.rpc.fail("sendTransaction", 503)  # the first send's fate is unknown to us
    rig.auto_land()

    bought = await rig.buy("1")

    assert rig.rpc.calls["sendTransaction"] >= 2  # the same signed bytes went out again …
    assert list(rig.rpc.sent) == [bought.transaction_hash]  # … as the one and only transaction
    assert rig.jup.calls["swap"] == 1 and len(await rig.ledger_rows()) == 1
    await rig.assert_ledger_matches_chain()
