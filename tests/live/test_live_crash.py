"""A live trade whose process is SIGKILLed between sending the transaction and writing the ledger.

The swap lands on the (fake) chain, the process dies before the ledger transaction commits; after a
restart the real worker's settlement service finds the journaled signature on chain and records the
trade exactly once. The ledger then equals the chain.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from tests.dbutil import PROJECT_ROOT
from tests.fakes.solana_rpc import SentTx
from tests.live.conftest import ATA_RENT, LiveRig


def child_env(rig: LiveRig, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET": rig.settings.jwt_secret,
        "LOG_LEVEL": "WARNING",
        "JUPITER_API_KEY": "test-key",
        "JUPITER_BASE_URL": rig.jup.url,
        "SOLANA_RPC_URL": rig.rpc.url,
        "WALLET_1": rig.secret,
        "WALLET_1_OWNER": rig.email,
        "LIVE_LEASE_S": "1",
        "LIVE_CONFIRM_POLL_S": "0.05",
        **extra,
    }


async def wait_for_status(rig: LiveRig, status: str, *, attempts: int = 600) -> None:
    for _ in range(attempts):
        swaps = await rig.swaps()
        if swaps and swaps[0]["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"swap never reached {status}: {await rig.swaps()}")


async def test_killed_between_send_and_ledger_write_is_settled_once_after_restart(
    rig: LiveRig, database_url: str
) -> None:
    await rig.setup()
    rig.rent = ATA_RENT
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.live.crash_child",
        str(rig.agent_id),
        rig.mint,
        "1",
        cwd=PROJECT_ROOT,
        env=child_env(rig, database_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    def land_then_kill(sent: SentTx) -> None:
        rig.land(sent)  # the swap happens on chain …
        os.kill(child.pid, signal.SIGKILL)  # … and the sender dies before it hears back

    rig.rpc.on_send = land_then_kill
    _, stderr = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == -signal.SIGKILL, stderr.decode()

    [swap] = await rig.swaps()
    assert swap["status"] == "pending" and swap["signature"] in rig.rpc.sent
    assert await rig.ledger_rows() == []  # the trade happened but nothing recorded it yet

    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        cwd=PROJECT_ROOT,
        env=child_env(rig, database_url, LIVE_SETTLE_INTERVAL_S="0.1", WORKER_HEARTBEAT_S="0.2"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for_status(rig, "settled")
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        _, worker_err = await asyncio.wait_for(worker.communicate(), timeout=30)

    assert rig.rpc.calls["sendTransaction"] == 1
    [row] = await rig.ledger_rows()
    [swap] = await rig.swaps()
    assert swap["transaction_id"] == row["id"] and row["transaction_hash"] == swap["signature"]
    position = await rig.pool.fetchrow("SELECT * FROM agent_positions WHERE wallet_address = $1", rig.wallet)
    assert position is not None and position["purchase_transaction_id"] == row["id"]
    await rig.assert_ledger_matches_chain()
    assert rig.secret not in worker_err.decode() + stderr.decode()
