"""Happy live trades: Jupiter quote → swap tx → signed locally → RPC send → confirmed → ledger."""

from __future__ import annotations

import base64
from decimal import Decimal

from solders.transaction import VersionedTransaction

from app.trading.units import SOL_MINT
from tests.live.conftest import ATA_RENT, START_LAMPORTS, LiveRig


def assert_signed_by(rig: LiveRig, signature: str) -> None:
    sent = rig.rpc.sent[signature]
    assert sent.payer == rig.wallet
    assert all(sent.tx.verify_with_results())
    assert str(sent.tx.signatures[0]) == signature


async def test_live_buy_then_sell_metis(rig: LiveRig) -> None:
    await rig.setup()
    rig.rent = ATA_RENT  # the buy creates the token account: the wallet pays its rent
    rig.auto_land()

    bought = await rig.buy("1")

    [swap] = await rig.swaps()
    assert swap["status"] == "settled" and swap["side"] == "buy" and swap["swap_api"] == "metis"
    assert bought.transaction_hash == swap["signature"]
    assert_signed_by(rig, swap["signature"])
    assert rig.rpc.calls["sendTransaction"] == 1
    [row] = await rig.ledger_rows()
    assert row["id"] == swap["transaction_id"] == bought.transaction_id
    assert row["transaction_hash"] == swap["signature"]
    # 1 SOL at 0.001 SOL/token, 6 decimals: 1000 tokens; the chain's fee + rent is booked, not guessed.
    assert row["output_amount"] == Decimal(1000)
    spent = 1_000_000_000 + ATA_RENT + rig.rpc.signature_fee
    assert row["input_amount"] + row["network_fee_sol"] == Decimal(spent).scaleb(-9)
    # What the chain charged beyond the swap (fee + rent), not Jupiter's estimate, is the network fee.
    assert row["input_amount"] == Decimal(1) and row["network_fee_sol"] == Decimal(ATA_RENT + 5_000).scaleb(-9)
    assert row["swap_payload"]["orderResponse"]["quotedFeeLamports"] == {"prioritizationFeeLamports": 100_000}
    assert row["swap_payload"]["chain"]["feeLamports"] == rig.rpc.signature_fee
    assert rig.rpc.balances[rig.wallet] == START_LAMPORTS - spent
    await rig.assert_ledger_matches_chain()

    rig.rent = 0
    sold = await rig.sell_all(bought.position_id)

    swaps = await rig.swaps()
    assert [s["status"] for s in swaps] == ["settled", "settled"]
    assert swaps[1]["side"] == "sell" and sold.transaction_hash == swaps[1]["signature"]
    assert_signed_by(rig, swaps[1]["signature"])
    assert await rig.pool.fetchval("SELECT count(*) FROM agent_positions WHERE wallet_address = $1", rig.wallet) == 0
    history = await rig.pool.fetchrow("SELECT * FROM agent_historical_swaps WHERE wallet_address = $1", rig.wallet)
    assert history["sale_transaction_id"] == sold.transaction_id
    assert len(await rig.ledger_rows()) == 2
    await rig.assert_ledger_matches_chain()
    assert (await rig.balances()).keys() == {SOL_MINT}


async def test_live_buy_ultra_order_execute(rig: LiveRig) -> None:
    await rig.setup(live_swap_api="ultra")

    bought = await rig.buy("0.5")

    [swap] = await rig.swaps()
    assert swap["status"] == "settled" and swap["swap_api"] == "ultra" and swap["request_id"]
    # Jupiter Ultra submitted it: one execute with our signed bytes, never a second one.
    [executed] = rig.jup.executed
    assert executed["requestId"] == swap["request_id"]
    tx = VersionedTransaction.from_bytes(base64.b64decode(executed["signedTransaction"]))
    assert str(tx.signatures[0]) == swap["signature"] == bought.transaction_hash
    assert_signed_by(rig, swap["signature"])
    [row] = await rig.ledger_rows()
    assert row["transaction_hash"] == swap["signature"]
    assert row["swap_payload"]["executeResponse"]["status"] == "Success"
    await rig.assert_ledger_matches_chain()
