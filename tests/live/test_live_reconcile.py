"""Reconciliation: on-chain balances vs the ledger; drift blocks a wallet until its owner acknowledges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from app.live.rails import LiveRefused
from app.live.reconcile import reconcile_wallet
from app.live.swap import SwapError
from app.trading.units import SOL_MINT
from tests.factories import access_headers, create_user
from tests.live.conftest import LiveRig, headers, new_mint

DRIFT_LAMPORTS = 100_000_000  # 0.1 SOL, far above the 0.001 SOL threshold


async def reconcile(rig: LiveRig):
    return await reconcile_wallet(rig.pool, rig.settings, rig.solana, rig.wallet, rig.agent_id)


async def test_drift_blocks_the_wallet_until_acknowledged(rig: LiveRig, live_client: AsyncTestClient) -> None:
    await rig.setup()
    rig.auto_land()
    await rig.buy("1")
    first = await reconcile(rig)
    assert first is not None and first.status == "ok" and not first.blocked

    rig.rpc.balances[rig.wallet] -= DRIFT_LAMPORTS  # SOL left the wallet outside the engine
    drifted = await reconcile(rig)
    assert drifted is not None and drifted.status == "drift" and drifted.blocked
    assert drifted.report()["drift"] == {SOL_MINT: "-0.1"}

    resp = await live_client.get(f"/api/v1/live/wallets/{rig.wallet}/reconciliation", headers=headers(rig))
    assert resp.status_code == 200 and resp.json()["blocked"] is True

    rig.mint = new_mint()
    rig.rpc.mint_decimals[rig.mint] = 6
    sends = rig.rpc.calls["sendTransaction"]
    with pytest.raises(LiveRefused) as caught:
        await rig.buy("1")
    assert caught.value.code == "WALLET_DRIFT" and rig.rpc.calls["sendTransaction"] == sends

    stranger = access_headers(rig.settings, await create_user(rig.pool))
    resp = await live_client.post(f"/api/v1/live/wallets/{rig.wallet}/acknowledge-drift", headers=stranger)
    assert resp.status_code == 404
    resp = await live_client.post(f"/api/v1/live/wallets/{rig.wallet}/acknowledge-drift", headers=headers(rig))
    assert resp.status_code == 200, resp.text
    assert resp.json()["blocked"] is False and resp.json()["acknowledgedDrift"] == {SOL_MINT: "-0.1"}

    await rig.buy("1")  # trading resumes; the acknowledged drift stays the baseline
    again = await reconcile(rig)
    assert again is not None and again.status == "acknowledged" and not again.blocked
    ledger = await rig.balances()
    assert ledger[SOL_MINT] - Decimal(rig.rpc.balances[rig.wallet]).scaleb(-9) == Decimal("0.1")

    rig.rpc.balances[rig.wallet] += DRIFT_LAMPORTS  # the owner puts the SOL back
    settled = await reconcile(rig)
    assert settled is not None and settled.status == "ok" and not settled.blocked
    await rig.assert_ledger_matches_chain()


async def test_airdropped_tokens_are_reported_but_never_block(rig: LiveRig) -> None:
    await rig.setup()
    spam = new_mint()
    rig.rpc.token_accounts.setdefault(rig.wallet, {})[spam] = 1_000_000
    result = await reconcile(rig)
    assert result is not None and not result.blocked and result.untracked == {spam: "1"}


async def test_token_drift_blocks(rig: LiveRig) -> None:
    await rig.setup()
    rig.auto_land()
    await rig.buy("1")
    rig.rpc.token_accounts[rig.wallet][rig.mint] -= 500_000_000  # half the tokens moved out
    result = await reconcile(rig)
    assert result is not None and result.blocked
    assert result.report()["drift"] == {rig.mint: "-500"}


async def test_wallet_with_a_swap_in_flight_is_not_compared(rig: LiveRig) -> None:
    await rig.setup(live_confirm_timeout_s=0.05)
    with pytest.raises(SwapError):
        await rig.buy("1")  # sent, never confirmed: chain and ledger may legitimately differ
    assert await reconcile(rig) is None
    rig.rpc.expire_blockhashes()
    assert await rig.executor.settlement.run_once() == ["expired"]
    result = await reconcile(rig)
    assert result is not None and result.status == "ok"
    await rig.assert_ledger_matches_chain()
