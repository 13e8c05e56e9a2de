"""Live trading through the real worker path: the worker's own execution context (built by
``components.execution``, live executor included), its signal intake and settlement services, keys
loaded from the environment and bound to the user, the wallet assigned through the API, Jupiter and
Solana faked (``tests/fakes``).

Covered: a signal becomes a live buy whose ledger rows are the executed quote's amounts to the unit;
the quote a live trade is sized and impact-guarded on is the one it executes; a take-profit whose
process dies after sending is settled from the journal with its levels and moon bag; and a signal buy
whose swap lands late ends with exactly one ``success`` execution row, whether the intake had written
its ``failed`` row or had not written any.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from app.audit import run_audit
from app.live.executor import LiveExecutor
from app.live.keys import set_keystore
from app.live.services import live_settlement_service
from app.trading.units import SOL_MINT
from app.worker import components
from app.worker.execution import ExecutionContext, execute_buy, execute_take_profit_sale
from app.worker.intake import drain_signals, signal_intake_service
from app.worker.main import WorkerContext
from tests.factories import create_agent, create_user, deposit_sol
from tests.fakes.dexscreener import FakeDexScreener
from tests.fakes.fixtures import fake_dexscreener, fake_hermes  # noqa: F401
from tests.fakes.hermes import FakeHermes
from tests.fakes.solana_rpc import SentTx
from tests.live.conftest import ATA_RENT, START_LAMPORTS, LiveRig, headers, live_settings

# A fixed size (the medium band's maximum: 1 SOL for a 5 SOL wallet) so that amounts can be stated exactly.
FIXED_SIZE = {"positionCalculator": {"randomization": {"enabled": False}}}
SIZE_LAMPORTS = 1_000_000_000
PYTH_SOL_USD = Decimal("144.655")  # FakeHermes' default price


class LiveWorker:
    """A user with a live agent whose wallet key comes from the environment, and one worker's services."""

    def __init__(
        self, rig: LiveRig, client: AsyncTestClient, database_url: str, hermes: FakeHermes, dex: FakeDexScreener
    ) -> None:
        self.rig, self.client, self.database_url, self.hermes, self.dex = rig, client, database_url, hermes, dex
        self.tasks: list[asyncio.Task] = []

    async def setup(self, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> LiveWorker:
        rig = self.rig
        monkeypatch.setenv("WALLET_1", rig.secret)
        monkeypatch.setenv("WALLET_1_OWNER", rig.email)
        set_keystore(None)  # the API and the worker load the process-wide store from the environment
        wiring: dict[str, Any] = {
            "price_source": "jupiter",
            "jupiter_base_url": rig.jup.url,
            "jupiter_price_url": rig.jup.price_url,
            "solana_rpc_url": rig.rpc.url,
            "pyth_hermes_url": self.hermes.url,
            "dexscreener_url": self.dex.url,
            "worker_signal_poll_ms": 50,
            "live_settle_interval_s": 0.05,
            "live_lease_s": 1.0,
        }
        rig.settings = live_settings(rig.settings, **{**wiring, **overrides})
        rig.user_id = await create_user(rig.pool, rig.email)
        rig.agent_id, _ = await create_agent(rig.pool, rig.user_id, "live agent", trading_config=FIXED_SIZE)
        assigned = await self.client.post(
            "/api/v1/wallets/assign",
            json={"agentId": str(rig.agent_id), "walletType": "live", "walletAddress": rig.wallet},
            headers=headers(rig),
        )
        assert assigned.status_code == 201, assigned.text
        switched = await self.client.put(
            f"/api/v1/agents/{rig.agent_id}", json={"tradingMode": "live"}, headers=headers(rig)
        )
        assert switched.status_code == 200, switched.text
        rig.rpc.balances[rig.wallet] = START_LAMPORTS
        rig.rpc.mint_decimals[rig.mint] = 6
        await deposit_sol(rig.pool, rig.agent_id, rig.wallet, Decimal(START_LAMPORTS).scaleb(-9))
        self.worker = WorkerContext(
            settings=rig.settings,
            pool=rig.pool,
            database_url=self.database_url,
            worker_id=f"live-worker-{uuid.uuid4().hex[:6]}",
        )
        self.execution: ExecutionContext = await components.execution(self.worker)
        if rig.settings.price_source != "replay":  # Pyth streams SOL/USD; the replay market has it at once
            await self.execution.market.sol_usd.wait_ready(5)
        return self

    def start(self, *services: Callable[[WorkerContext], Awaitable[None]]) -> None:
        self.tasks += [asyncio.create_task(service(self.worker)) for service in services]

    async def stop(self) -> None:
        self.worker.stopping.set()
        await asyncio.gather(*self.tasks)
        closer = self.worker.components.get("_market_closer")
        if closer is not None:
            await closer

    async def post_signal(self, symbol: str = "LIVE") -> int:
        response = await self.client.post(
            "/api/v1/trading-signals",
            json={"tokenAddress": self.rig.mint, "signalType": "buy", "signalStrength": 5, "symbol": symbol},
            headers=headers(self.rig),
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def execution_rows(self, signal_id: int) -> list[asyncpg.Record]:
        return await self.rig.pool.fetch(
            "SELECT status, error, transaction_id FROM signal_executions WHERE signal_id = $1 AND agent_id = $2",
            signal_id,
            self.rig.agent_id,
        )

    def jupiter_calls(self, name: str) -> list[dict[str, str]]:
        return [query for route, _m, _p, query, _h, _b in self.rig.jup.requests if route == name]


async def eventually(check: Callable[[], Awaitable[bool]], *, attempts: int = 600) -> None:
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never became true")


async def processed(pool: asyncpg.Pool, signal_id: int) -> bool:
    return await pool.fetchval("SELECT processed_at IS NOT NULL FROM trading_signals WHERE id = $1", signal_id)


async def last_swap_settled(rig: LiveRig) -> bool:
    swaps = await rig.swaps()
    return bool(swaps) and swaps[-1]["status"] == "settled"


def assert_signed_by_wallet(rig: LiveRig, signature: str) -> None:
    sent = rig.rpc.sent[signature]
    assert sent.payer == rig.wallet
    assert all(sent.tx.verify_with_results())
    assert str(sent.tx.signatures[0]) == signature


@pytest.fixture
async def live_worker(
    rig: LiveRig,
    live_client: AsyncTestClient,
    database_url: str,
    fake_hermes: FakeHermes,  # noqa: F811
    fake_dexscreener: FakeDexScreener,  # noqa: F811
) -> AsyncIterator[LiveWorker]:
    worker = LiveWorker(rig, live_client, database_url, fake_hermes, fake_dexscreener)
    try:
        yield worker
    finally:
        if hasattr(worker, "worker"):
            await worker.stop()
        set_keystore(None)


async def test_signal_live_buy_then_take_profit_settled_after_a_crash(
    live_worker: LiveWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    lw = await live_worker.setup(monkeypatch)
    rig = lw.rig
    # The worker's execution context carries the live executor from the start, with the keys of the env.
    assert isinstance(lw.execution.live_executor, LiveExecutor)
    assert lw.execution.live_executor.keystore.has(rig.wallet)
    rig.rent = ATA_RENT
    rig.auto_land()
    lw.start(signal_intake_service, live_settlement_service)

    signal_id = await lw.post_signal("LIVE")
    await eventually(lambda: processed(rig.pool, signal_id))

    [buy_swap] = await rig.swaps()
    [buy] = await rig.ledger_rows()
    [execution] = await lw.execution_rows(signal_id)
    assert (execution["status"], execution["transaction_id"]) == ("success", buy["id"])
    assert buy_swap["status"] == "settled" and buy_swap["transaction_id"] == buy["id"]
    assert buy_swap["side"] == "buy" and buy_swap["swap_api"] == "metis"
    assert buy["signal_id"] == signal_id and buy["transaction_hash"] == buy_swap["signature"]
    assert_signed_by_wallet(rig, buy_swap["signature"])
    assert buy_swap["intent"] == {
        "kind": "buy",
        "token": rig.mint,
        "token_symbol": "LIVE",
        "signal_id": signal_id,
        "signal_execution": True,
        "trade_request_id": None,  # a signal's buy, not a manual trade
        "agentId": str(rig.agent_id),
    }
    # One quote, from the live route, sized the trade and was executed: no Ultra order, no re-quote.
    [quoted] = lw.jupiter_calls("quote")
    assert lw.jupiter_calls("order") == [] and len(lw.jupiter_calls("swap")) == 1
    assert int(quoted["amount"]) == SIZE_LAMPORTS == buy_swap["in_amount"]
    # The executed quote's amounts are the ledger's, to the unit; the chain's fee and rent on top.
    quoted_out = int(buy_swap["quoted_out_amount"])
    assert buy["input_amount"] == Decimal(SIZE_LAMPORTS).scaleb(-9)
    assert buy["output_amount"] == Decimal(quoted_out).scaleb(-6)
    assert buy["network_fee_sol"] == Decimal(ATA_RENT + rig.rpc.signature_fee).scaleb(-9)
    assert rig.rpc.token_accounts[rig.wallet][rig.mint] == quoted_out
    position = await rig.pool.fetchrow("SELECT * FROM agent_positions WHERE wallet_address = $1", rig.wallet)
    assert position["purchase_transaction_id"] == buy["id"] and position["purchase_amount"] == buy["output_amount"]
    await rig.assert_ledger_matches_chain()

    # A take-profit whose process dies once the swap is sent: the swap lands, nothing is recorded …
    rig.rent = 0
    held = position["purchase_amount"]
    sell, moon_bag = held / 4, held / 10
    take_profit = asyncio.create_task(
        execute_take_profit_sale(
            lw.worker,
            position_id=position["id"],
            sell_amount=sell,
            levels_executed=2,
            expected_levels_hit=0,
            activate_moon_bag=True,
            moon_bag_amount=moon_bag,
        )
    )

    def land_then_die(sent: SentTx) -> None:
        rig.land(sent)
        take_profit.cancel()

    rig.rpc.on_send = land_then_die
    with pytest.raises(asyncio.CancelledError):
        await take_profit
    assert len(await rig.ledger_rows()) == 1

    # … until its lease lapses and the settlement service records it from the journaled intent.
    await eventually(lambda: last_swap_settled(rig))
    tp_swap = (await rig.swaps())[-1]
    assert tp_swap["intent"] == {
        "kind": "take_profit",
        "position_id": str(position["id"]),
        "levels_executed": 2,
        "activate_moon_bag": True,
        "moon_bag_amount": str(moon_bag),
        "agentId": str(rig.agent_id),
    }
    assert_signed_by_wallet(rig, tp_swap["signature"])
    assert rig.rpc.calls["sendTransaction"] == 2
    sale = (await rig.ledger_rows())[-1]
    assert sale["id"] == tp_swap["transaction_id"] and sale["is_take_profit"]
    assert sale["input_amount"] == sell == Decimal(int(tp_swap["in_amount"])).scaleb(-6)
    assert sale["sol_usd_price"] == PYTH_SOL_USD  # settlement values rows with the worker's SOL/USD
    after = await rig.pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", position["id"])
    assert after["take_profit_levels_hit"] == 2
    assert after["moon_bag_activated"] is True and after["moon_bag_amount"] == moon_bag
    assert after["remaining_amount"] == held - sell
    await rig.assert_ledger_matches_chain()
    assert await run_audit(rig.pool) == []


async def test_live_buy_takes_token_decimals_from_the_chain_not_from_the_replay_market(
    live_worker: LiveWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PRICE_SOURCE=replay (the default) with a wallet key loaded: the replay market prices and quotes
    # simulation wallets, but it does not know this mint and would give it 6 decimals.
    lw = await live_worker.setup(monkeypatch, price_source="replay")
    rig = lw.rig
    assert isinstance(lw.execution.live_executor, LiveExecutor)
    assert lw.execution.market.replay.token_decimals(rig.mint) == 6
    rig.rpc.mint_decimals[rig.mint] = 9  # what the mint account on chain says
    rig.rent = ATA_RENT
    rig.auto_land()

    bought = await execute_buy(
        lw.worker, agent_id=rig.agent_id, token_address=rig.mint, token_symbol="NINE", position_size=Decimal(1)
    )

    [swap] = await rig.swaps()
    [buy] = await rig.ledger_rows()
    quoted_out = int(swap["quoted_out_amount"])
    assert rig.rpc.token_accounts[rig.wallet][rig.mint] == quoted_out
    assert buy["output_amount"] == bought.output_amount == Decimal(quoted_out).scaleb(-9)
    position = await rig.pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", bought.position_id)
    assert position["purchase_amount"] == Decimal(quoted_out).scaleb(-9)
    await rig.assert_ledger_matches_chain()
    assert await run_audit(rig.pool) == []


async def test_live_price_impact_guard_runs_on_the_executed_quotes(
    live_worker: LiveWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    lw = await live_worker.setup(monkeypatch)
    rig = lw.rig
    rig.jup.price_impact_pct = "-0.08"  # above the agent's 5 %, below the live rail's 10 %
    lw.start(signal_intake_service, live_settlement_service)

    signal_id = await lw.post_signal()
    await eventually(lambda: processed(rig.pool, signal_id))

    [execution] = await lw.execution_rows(signal_id)
    assert execution["status"] == "failed"
    assert execution["error"] == "Price impact (slippage) 8.00% exceeds maximum threshold 5.00% even after retries"
    # The ladder (100/90/80/70 %) ran on live-route quotes; nothing was built, signed or sent.
    assert [int(q["amount"]) for q in lw.jupiter_calls("quote")] == [SIZE_LAMPORTS * p // 10 for p in (10, 9, 8, 7)]
    assert lw.jupiter_calls("order") == [] and lw.jupiter_calls("swap") == []
    assert rig.rpc.calls["sendTransaction"] == 0 and await rig.swaps() == []
    await rig.assert_ledger_matches_chain()


async def test_unconfirmed_signal_buy_that_lands_later_turns_its_failed_row_into_success(
    live_worker: LiveWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    lw = await live_worker.setup(monkeypatch, live_confirm_timeout_s=0.3)
    rig = lw.rig
    rig.rent = ATA_RENT
    lw.start(signal_intake_service, live_settlement_service)

    signal_id = await lw.post_signal()
    await eventually(lambda: processed(rig.pool, signal_id))

    [swap] = await rig.swaps()
    [execution] = await lw.execution_rows(signal_id)
    assert execution["status"] == "failed" and execution["transaction_id"] is None
    assert execution["error"] == (
        f"Swap unconfirmed; settlement will record it if it lands (signature {swap['signature']})"
    )
    assert swap["status"] in ("pending", "sent") and await rig.ledger_rows() == []

    rig.land(rig.rpc.sent[swap["signature"]])
    await eventually(lambda: last_swap_settled(rig))

    [buy] = await rig.ledger_rows()
    [execution] = await lw.execution_rows(signal_id)
    assert (execution["status"], execution["error"], execution["transaction_id"]) == ("success", None, buy["id"])
    assert buy["signal_id"] == signal_id and rig.rpc.calls["sendTransaction"] == 1
    await rig.assert_ledger_matches_chain()
    assert await run_audit(rig.pool) == []


async def test_signal_buy_whose_worker_dies_after_sending_gets_one_success_row(
    live_worker: LiveWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    lw = await live_worker.setup(monkeypatch)
    rig = lw.rig
    rig.rent = ATA_RENT
    lw.start(live_settlement_service)
    signal_id = await lw.post_signal()
    intake = asyncio.create_task(drain_signals(lw.execution, rig.settings, "dies"))

    def land_then_die(sent: SentTx) -> None:
        rig.land(sent)
        intake.cancel()

    rig.rpc.on_send = land_then_die
    with pytest.raises(asyncio.CancelledError):
        await intake
    # The claim died with its worker: no execution row, the signal is still to be processed.
    assert await lw.execution_rows(signal_id) == [] and not await processed(rig.pool, signal_id)

    await eventually(lambda: last_swap_settled(rig))
    [buy] = await rig.ledger_rows()
    [execution] = await lw.execution_rows(signal_id)
    assert (execution["status"], execution["transaction_id"]) == ("success", buy["id"])

    # The restarted intake finds the agent's row: it finishes the signal without buying again.
    assert await drain_signals(lw.execution, rig.settings, "restarted") == 1
    assert await processed(rig.pool, signal_id)
    assert [r["status"] for r in await lw.execution_rows(signal_id)] == ["success"]
    assert rig.rpc.calls["sendTransaction"] == 1 and len(await rig.ledger_rows()) == 1
    assert (await rig.balances()).keys() == {SOL_MINT, rig.mint}
    await rig.assert_ledger_matches_chain()
    assert await run_audit(rig.pool) == []


async def test_take_profit_is_settled_only_with_its_journaled_decision(rig: LiveRig) -> None:
    await rig.setup(live_lease_s=0.2)
    rig.auto_land()
    bought = await rig.buy("1")
    take_profit = asyncio.create_task(
        execute_take_profit_sale(
            rig.ctx,
            position_id=bought.position_id,
            sell_amount=Decimal(250),
            levels_executed=1,
            expected_levels_hit=0,
            activate_moon_bag=False,
            moon_bag_amount=None,
        )
    )

    def land_then_die(sent: SentTx) -> None:
        rig.land(sent)
        take_profit.cancel()

    rig.rpc.on_send = land_then_die
    with pytest.raises(asyncio.CancelledError):
        await take_profit
    # A journal row whose decision is incomplete is never recorded with guessed levels: it waits, loudly.
    await rig.pool.execute(
        "UPDATE live_swaps SET intent = intent - 'levels_executed' WHERE wallet_address = $1 AND side = 'sell'",
        rig.wallet,
    )

    async def settle_pass() -> bool:
        return bool(await rig.executor.settlement.run_once())

    await eventually(settle_pass)
    blocked = (await rig.swaps())[-1]
    assert blocked["status"] == "confirmed" and "take_profit intent is incomplete" in blocked["error"]
    assert len(await rig.ledger_rows()) == 1
    assert (
        await rig.pool.fetchval("SELECT take_profit_levels_hit FROM agent_positions WHERE id = $1", bought.position_id)
        == 0
    )

    await rig.pool.execute(
        "UPDATE live_swaps SET intent = intent || '{\"levels_executed\": 1}' WHERE id = $1", blocked["id"]
    )
    await eventually(settle_pass)
    assert (await rig.swaps())[-1]["status"] == "settled"
    position = await rig.pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", bought.position_id)
    assert position["take_profit_levels_hit"] == 1 and position["moon_bag_activated"] is False
    assert position["remaining_amount"] == bought.output_amount - 250
    await rig.assert_ledger_matches_chain()
