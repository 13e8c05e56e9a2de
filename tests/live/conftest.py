"""Live-trading rig: the real execution module + LiveExecutor against the Jupiter and Solana RPC fakes.

Every scenario funds a fresh wallet identically on the fake chain and in the ledger, trades, and must
end with :meth:`LiveRig.assert_ledger_matches_chain` passing: SOL and every token balance in
``agent_balances`` equal the fake chain's to the last lamport / base unit.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from app.api.app import create_app
from app.config import Settings
from app.live.executor import LiveExecutor
from app.live.keys import KeyStore, load_keystore
from app.live.swap import LiveSwapper
from app.market.http import RetryPolicy
from app.market.jupiter import JupiterMetis, JupiterUltra
from app.market.solana_rpc import SolanaRpc
from app.trading.units import SOL_MINT
from app.worker.execution import ExecutionContext, execute_buy, execute_full_sale
from app.worker.executor import SimulationExecutor
from tests.factories import access_headers, create_agent, create_user, deposit_sol
from tests.fakes.fixtures import fake_jupiter, fake_rpc, http_session  # noqa: F401
from tests.fakes.jupiter import FakeJupiter
from tests.fakes.solana_rpc import FakeSolanaRpc, SentTx

OPERATOR = "operator@example.com"
START_LAMPORTS = 5_000_000_000
ATA_RENT = 2_039_280
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


async def _no_sleep(_: float) -> None:
    return None


def live_settings(settings: Settings, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "jupiter_api_key": "test-key",
        "live_confirm_poll_s": 0.01,
        "live_confirm_timeout_s": 5.0,
        "live_resend_interval_s": 0.0,
        "live_lease_s": 30.0,
    }
    return msgspec.structs.replace(settings, **{**base, **overrides})


def new_mint() -> str:
    return str(Pubkey.new_unique())


class LiveRig:
    """One user, one live agent, one funded wallet, and the trading stack wired to the fakes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        rpc: FakeSolanaRpc,
        jup: FakeJupiter,
        session: aiohttp.ClientSession,
    ) -> None:
        self.pool, self.settings, self.rpc, self.jup, self.session = pool, settings, rpc, jup, session
        self.keypair = Keypair()
        self.wallet = str(self.keypair.pubkey())
        self.secret = str(self.keypair)  # base58 of the 64-byte secret key: must never leak
        self.email = f"live-{uuid.uuid4().hex[:8]}@example.com"
        self.mint = new_mint()
        self.rent = 0
        self.land_commitment = "confirmed"
        self.landed: list[str] = []

    async def setup(self, *, lamports: int = START_LAMPORTS, **overrides: Any) -> LiveRig:
        self.settings = live_settings(self.settings, **overrides)
        self.user_id = await create_user(self.pool, self.email)
        self.agent_id, _ = await create_agent(self.pool, self.user_id, "live agent")
        await self.pool.execute(
            "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'live')",
            self.wallet,
            self.agent_id,
        )
        await self.pool.execute("UPDATE agents SET trading_mode = 'live' WHERE id = $1", self.agent_id)
        self.rpc.balances[self.wallet] = lamports
        self.rpc.mint_decimals[self.mint] = 6
        await deposit_sol(self.pool, self.agent_id, self.wallet, Decimal(lamports).scaleb(-9))
        self.keystore = self.make_keystore()
        self.build()
        return self

    def make_keystore(self) -> KeyStore:
        return load_keystore({"WALLET_1": self.secret, "WALLET_1_OWNER": self.email})

    def build(self, *, rpc_timeout: float = 2.0) -> None:
        s = self.settings
        self.solana = SolanaRpc(
            self.session, self.rpc.url, request_timeout=rpc_timeout, retry=FAST_RETRY, sleep=_no_sleep
        )
        self.swapper = LiveSwapper(
            rpc=self.solana,
            keystore=self.keystore,
            settings=s,
            metis=JupiterMetis(
                self.session,
                api_key="test-key",
                base_url=self.jup.swap_url,
                default_slippage_bps=s.live_slippage_bps,
                retry=FAST_RETRY,
                sleep=_no_sleep,
            ),
            ultra=JupiterUltra(
                self.session, api_key="test-key", base_url=self.jup.ultra_url, retry=FAST_RETRY, sleep=_no_sleep
            ),
        )
        self.executor = LiveExecutor(self.pool, s, self.swapper, instance_id=f"test-{uuid.uuid4().hex[:6]}")
        self.ctx = ExecutionContext(
            pool=self.pool,
            settings=s,
            quoter=self.executor,
            sol_usd=None,
            executor=SimulationExecutor(),
            rng=random.Random(1),
            decimals_lookup=self.solana.get_mint_decimals,
            live_executor=self.executor,
            live_decimals_lookup=self.solana.get_mint_decimals,
        )

    # -- the fake chain executing Jupiter's swap ---------------------------------------------------
    def last_swap_quote(self, payer: str) -> dict[str, Any]:
        for name, _method, _path, _query, _headers, body in reversed(self.jup.requests):
            if name == "swap" and isinstance(body, dict) and body.get("userPublicKey") == payer:
                return body["quoteResponse"]
        raise AssertionError("no /swap request for this payer")

    def land(self, sent: SentTx, *, commitment: str | None = None) -> None:
        """Apply the swap the last /swap quote describes, as the real program would."""
        q = self.last_swap_quote(sent.payer)
        amount_in, amount_out = int(q["inAmount"]), int(q["outAmount"])
        if q["inputMint"] == SOL_MINT:
            sol = {sent.payer: -amount_in - self.rent}
            tokens = {(sent.payer, q["outputMint"]): amount_out}
        else:
            sol = {sent.payer: amount_out}
            tokens = {(sent.payer, q["inputMint"]): -amount_in}
        self.rpc.confirm(
            sent.signature, sol_deltas=sol, token_deltas=tokens, commitment=commitment or self.land_commitment
        )
        self.landed.append(sent.signature)

    def auto_land(self) -> None:
        self.rpc.on_send = self.land

    # -- trades ------------------------------------------------------------------------------------
    async def buy(self, size: str = "1") -> Any:
        return await execute_buy(
            self.ctx, agent_id=self.agent_id, token_address=self.mint, token_symbol="FAKE", position_size=Decimal(size)
        )

    async def sell_all(self, position_id: uuid.UUID) -> Any:
        return await execute_full_sale(self.ctx, agent_id=self.agent_id, position_id=position_id, reason="manual")

    # -- assertions --------------------------------------------------------------------------------
    async def balances(self) -> dict[str, Decimal]:
        rows = await self.pool.fetch(
            "SELECT token_address, balance FROM agent_balances WHERE wallet_address = $1", self.wallet
        )
        return {r["token_address"]: Decimal(r["balance"]) for r in rows}

    async def swaps(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM live_swaps WHERE wallet_address = $1 ORDER BY created_at", self.wallet
        )
        return [dict(r) for r in rows]

    async def ledger_rows(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM agent_transactions WHERE wallet_address = $1 AND transaction_type = 'SWAP' "
            "ORDER BY created_at",
            self.wallet,
        )
        return [dict(r) for r in rows]

    async def assert_ledger_matches_chain(self) -> None:
        ledger = await self.balances()
        chain = {SOL_MINT: Decimal(self.rpc.balances.get(self.wallet, 0)).scaleb(-9)}
        for mint, raw in self.rpc.token_accounts.get(self.wallet, {}).items():
            if raw:
                chain[mint] = Decimal(raw).scaleb(-self.rpc.mint_decimals.get(mint, 6))
        ledger_nonzero = {m: v for m, v in ledger.items() if v != 0 or m == SOL_MINT}
        assert ledger_nonzero == chain, f"ledger {ledger_nonzero} != chain {chain}"
        swaps = await self.swaps()
        unresolved = [s["status"] for s in swaps if s["status"] in ("pending", "sent", "confirmed")]
        assert unresolved == []
        unrecorded_fees = [
            s["id"] for s in swaps if s["fee_lamports"] and s["status"] == "failed" and not s["fee_recorded_at"]
        ]
        assert unrecorded_fees == [], "a failed transaction's fee is not in the ledger"


@pytest.fixture
async def rig(
    pool: asyncpg.Pool,
    settings: Settings,
    fake_rpc: FakeSolanaRpc,  # noqa: F811
    fake_jupiter: FakeJupiter,  # noqa: F811
    http_session: aiohttp.ClientSession,  # noqa: F811
) -> AsyncIterator[LiveRig]:
    yield LiveRig(pool, settings, fake_rpc, fake_jupiter, http_session)


@pytest.fixture(scope="module")
async def live_client(settings: Settings, database_url: str) -> AsyncIterator[AsyncTestClient]:
    """The real app; ``OPERATOR`` is the seeded admin (the only one who may flip the global switch)."""
    operator = msgspec.structs.replace(settings, admin_email=OPERATOR, admin_password="operator-Passw0rd-2024!x")
    async with AsyncTestClient(app=create_app(operator, database_url)) as client:
        yield client


def headers(rig: LiveRig) -> dict[str, str]:
    return access_headers(rig.settings, rig.user_id, rig.email)


async def wait_for(predicate: Callable[[], object], *, attempts: int = 500) -> None:
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")
