"""The on-chain half of a live swap: quote, build, sign, send once, and observe by signature.

Two routes, chosen by ``LIVE_SWAP_API``:

* ``metis`` (default): Jupiter swap v1 ``/quote`` (slippage from config) → ``/swap`` (priority fee
  from config) returns an unsigned v0 transaction and its ``lastValidBlockHeight`` → we sign with
  solders and send it through our own Solana RPC.
* ``ultra``: ``/order`` with ``taker`` returns the unsigned transaction → we sign → ``/execute``
  (Jupiter lands it). Ultra gives no ``lastValidBlockHeight``, so we bound it from our node's block
  height (see :data:`ULTRA_EXPIRY_MARGIN`).

Nothing here writes to the database: :mod:`app.live.executor` journals the signed transaction
*before* calling :meth:`LiveSwapper.send`, and settles from what :meth:`LiveSwapper.observe` reads
back from chain. Chain state is the only source of truth for "did it happen" and "how much".
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from solders.transaction import VersionedTransaction

from app.config import Settings
from app.live.keys import KeyStore
from app.market.jupiter import JupiterMetis, JupiterUltra
from app.market.solana_rpc import SolanaRpc, TransactionMeta
from app.market.types import SOL_MINT, ErrorCode, ExecuteResult, MarketError, Quote, RpcError
from app.trading.errors import TradeError

log = logging.getLogger(__name__)

# A blockhash is valid for 150 blocks after the block that produced it. Jupiter's node may be ahead of
# ours, so the bound for Ultra transactions adds a full second window: declaring a swap expired too
# late only delays settlement, declaring it too early could lose a trade that still lands.
BLOCKHASH_VALIDITY = 150
ULTRA_EXPIRY_MARGIN = 2 * BLOCKHASH_VALIDITY
# Node rejections that prove the transaction was not forwarded: preflight simulation failed
# (-32002, includes "Blockhash not found"), signature verification failed (-32003), malformed (-32602).
DEFINITIVE_REJECTIONS = frozenset({-32002, -32003, -32602})


class SwapError(TradeError):
    """A live swap that did not produce a trade (yet); ``code`` is stable (§14 codes where they exist).
    ``signature`` names the journaled transaction when one was sent."""

    def __init__(self, code: str, message: str, *, signature: str | None = None) -> None:
        super().__init__(code, message)
        self.signature = signature


def expired_without_trade(signature: str | None) -> SwapError:
    """A swap whose blockhash expired before it landed: provably no trade, safe to retry."""
    return SwapError("SWAP_EXPIRED", "Swap expired without landing (no trade)", signature=signature)


def failed_on_chain(err: Any, signature: str | None) -> SwapError:
    """A swap that landed with an error: no trade (the wallet paid the network fee)."""
    return SwapError("SWAP_FAILED", f"Swap failed on chain: {err}", signature=signature)


class Prepared(msgspec.Struct, kw_only=True):
    """A signed transaction ready to journal and send. ``signature`` is its first signature."""

    swap_api: str
    quote: Quote
    wallet: str
    signed_transaction: str
    signature: str
    last_valid_block_height: int
    request_id: str | None


class SendOutcome(msgspec.Struct, kw_only=True):
    """``accepted`` True = the node/Jupiter took it; False = provably not forwarded; None = unknown."""

    accepted: bool | None
    error: str | None = None
    execute_result: ExecuteResult | None = None


class ChainFacts(msgspec.Struct, kw_only=True):
    """What the landed transaction did to the wallet, in raw units."""

    slot: int
    fee_lamports: int
    sol_delta: int  # native + wrapped SOL change of the wallet, network fee included
    token_mint: str
    token_delta: int
    token_decimals: int
    err: Any = None


class Observation(msgspec.Struct, kw_only=True):
    """One look at the chain. ``kind``: landed | failed | processed | unseen | expired."""

    kind: str
    facts: ChainFacts | None = None
    err: Any = None
    block_height: int | None = None


class Flows(msgspec.Struct, frozen=True, kw_only=True):
    """What left and what reached the wallet (raw units): ``spent`` of the input mint (a buy's SOL
    includes the network fee and any account rent), ``received`` of the output mint (a sell's SOL is
    net of the network fee)."""

    spent: int
    received: int


def token_mint_of(side: str, input_mint: str, output_mint: str) -> str:
    return output_mint if side == "buy" else input_mint


def wallet_flows(side: str, facts: ChainFacts) -> Flows:
    if side == "buy":
        flows = Flows(spent=-facts.sol_delta, received=facts.token_delta)
        ok = flows.spent > 0 and flows.received > 0
    else:
        flows = Flows(spent=-facts.token_delta, received=facts.sol_delta)
        ok = flows.spent > 0  # a dust sale may net less SOL than its fee
    if not ok:
        raise SwapError(
            "CHAIN_MISMATCH",
            f"{side} moved SOL {facts.sol_delta} and {facts.token_mint} {facts.token_delta} in the wallet",
        )
    return flows


def facts_from_meta(meta: TransactionMeta, wallet: str, token_mint: str, decimals: int) -> ChainFacts:
    tokens = meta.token_deltas(wallet)
    return ChainFacts(
        slot=meta.slot,
        fee_lamports=meta.fee,
        sol_delta=meta.sol_delta(wallet) + tokens.get(SOL_MINT, 0),
        token_mint=token_mint,
        token_delta=tokens.get(token_mint, 0),
        token_decimals=decimals,
        err=meta.err,
    )


class LiveSwapper:
    def __init__(
        self,
        *,
        rpc: SolanaRpc,
        keystore: KeyStore,
        settings: Settings,
        metis: JupiterMetis | None = None,
        ultra: JupiterUltra | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpc = rpc
        self.keystore = keystore
        self.settings = settings
        self.swap_api = settings.live_swap_api
        self.metis = metis
        self.ultra = ultra
        self.sleep = sleep
        self.monotonic = monotonic

    # -- quote / build / sign --------------------------------------------------------------------
    async def quote(self, input_mint: str, output_mint: str, amount_raw: int, *, wallet: str) -> Quote:
        """A quote the chosen route can build a transaction from. Retried on 429/5xx (no side effects)."""
        if self.swap_api == "metis":
            return await self._metis().quote(
                input_mint, output_mint, amount_raw, slippage_bps=self.settings.live_slippage_bps
            )
        return await self._ultra().quote(input_mint, output_mint, amount_raw, taker=wallet)

    def _metis(self) -> JupiterMetis:
        if self.metis is None:
            raise SwapError("LIVE_NOT_CONFIGURED", "LIVE_SWAP_API=metis but no Jupiter swap v1 client is configured")
        return self.metis

    def _ultra(self) -> JupiterUltra:
        if self.ultra is None:
            raise SwapError("LIVE_NOT_CONFIGURED", "LIVE_SWAP_API=ultra but no Jupiter Ultra client is configured")
        return self.ultra

    def priority_fee(self) -> dict[str, Any]:
        return {
            "priorityLevelWithMaxLamports": {
                "priorityLevel": self.settings.live_priority_level,
                "maxLamports": self.settings.live_priority_fee_max_lamports,
            }
        }

    async def prepare(self, quote: Quote, wallet: str) -> Prepared:
        """Build (Metis) or take (Ultra) the unsigned transaction and sign it. Nothing is sent."""
        if self.swap_api == "metis":
            built = await self._metis().build_swap(quote, wallet, priority_fee=self.priority_fee())
            unsigned, lvbh = built.transaction, built.last_valid_block_height
            quote = built
        else:
            if not quote.transaction:
                raise SwapError(ErrorCode.MISSING_TRANSACTION, "Ultra order has no transaction (taker missing?)")
            unsigned = quote.transaction
            lvbh = await self.rpc.call("getBlockHeight", [{"commitment": "processed"}]) + ULTRA_EXPIRY_MARGIN
        assert unsigned is not None and lvbh is not None
        try:
            tx = VersionedTransaction.from_bytes(base64.b64decode(unsigned))
            signed = self.keystore.sign(wallet, tx)
        except ValueError as exc:
            raise SwapError("INVALID_TRANSACTION", f"Refusing to sign the swap transaction: {exc}") from None
        return Prepared(
            swap_api=self.swap_api,
            quote=quote,
            wallet=wallet,
            signed_transaction=base64.b64encode(bytes(signed)).decode(),
            signature=str(signed.signatures[0]),
            last_valid_block_height=int(lvbh),
            request_id=quote.request_id if self.swap_api == "ultra" else None,
        )

    # -- send (exactly once) ----------------------------------------------------------------------
    async def send(self, prepared: Prepared) -> SendOutcome:
        """Submit once. Never raises for transport trouble: an unclear answer is ``accepted=None``
        and the caller settles by signature."""
        if prepared.swap_api == "ultra":
            return await self._execute_ultra(prepared)
        try:
            await self.rpc.send_transaction(
                prepared.signed_transaction, skip_preflight=self.settings.live_skip_preflight, max_retries=0
            )
        except RpcError as exc:
            if exc.rpc_code in DEFINITIVE_REJECTIONS:
                return SendOutcome(accepted=False, error=f"RPC rejected the transaction: {exc.message}")
            return SendOutcome(accepted=None, error=exc.message)
        except MarketError as exc:
            return SendOutcome(accepted=None, error=exc.message)
        return SendOutcome(accepted=True)

    async def _execute_ultra(self, prepared: Prepared) -> SendOutcome:
        assert prepared.request_id is not None
        try:
            result = await self._ultra().execute(prepared.signed_transaction, prepared.request_id)
        except MarketError as exc:
            # "Failed" may still have landed (with an error, fee paid) and a timeout may land later:
            # both are settled from chain, never re-executed.
            if exc.code == ErrorCode.EXECUTE_FAILED and exc.status is not None and 400 <= exc.status < 500:
                return SendOutcome(accepted=False, error=exc.message)
            return SendOutcome(accepted=None, error=exc.message)
        return SendOutcome(accepted=True, execute_result=result)

    async def rebroadcast(self, prepared_tx: str) -> None:
        """Resend identical signed bytes: same signature, so it can land at most once."""
        try:
            await self.rpc.send_transaction(prepared_tx, skip_preflight=True, max_retries=0)
        except MarketError as exc:
            log.info("live swap rebroadcast not accepted: %s", exc.message)

    # -- observe ----------------------------------------------------------------------------------
    async def finalized_block_height(self) -> int:
        return int(await self.rpc.call("getBlockHeight", [{"commitment": "finalized"}]))

    async def observe(
        self, signature: str, last_valid_block_height: int, *, wallet: str, token_mint: str
    ) -> Observation:
        """Where the transaction stands on chain. Raises MarketError when the node cannot tell."""
        status = (await self.rpc.get_signature_statuses([signature], search_history=True))[0]
        if status is None:
            height = await self.finalized_block_height()
            if height <= last_valid_block_height:
                return Observation(kind="unseen", block_height=height)
            # The blockhash is dead at finalized height: one last look, then it can never land.
            status = (await self.rpc.get_signature_statuses([signature], search_history=True))[0]
            if status is None:
                return Observation(kind="expired", block_height=height)
        if status.confirmation_status not in ("confirmed", "finalized"):
            return Observation(kind="processed")
        meta = await self.rpc.get_transaction(signature)
        if meta is None:  # our node confirmed the status but cannot serve the body yet
            return Observation(kind="processed")
        decimals = await self.token_decimals(meta, wallet, token_mint)
        facts = facts_from_meta(meta, wallet, token_mint, decimals)
        if status.err is not None or meta.err is not None:
            return Observation(kind="failed", facts=facts, err=status.err if status.err is not None else meta.err)
        return Observation(kind="landed", facts=facts)

    async def token_decimals(self, meta: TransactionMeta, wallet: str, mint: str) -> int:
        for row in (*meta.post_token_balances, *meta.pre_token_balances):
            if row.mint == mint:
                return row.decimals
        return await self.rpc.get_mint_decimals(mint)

    async def wait_for_outcome(
        self,
        prepared: Prepared,
        *,
        token_mint: str,
        resend: bool,
        on_poll: Callable[[], Awaitable[None]] | None = None,
    ) -> Observation | None:
        """Poll until landed, failed or expired; None when the deadline passes first (the swap
        stays unresolved for settlement). Rebroadcasts the same bytes while unseen when ``resend``."""
        settings = self.settings
        deadline = self.monotonic() + settings.live_confirm_timeout_s
        next_resend = self.monotonic() + settings.live_resend_interval_s
        while True:
            try:
                seen = await self.observe(
                    prepared.signature,
                    prepared.last_valid_block_height,
                    wallet=prepared.wallet,
                    token_mint=token_mint,
                )
            except MarketError as exc:
                log.warning(
                    "live swap status check failed: %s",
                    exc.message,
                    extra={"fields": {"signature": prepared.signature}},
                )
                seen = None
            if seen is not None and seen.kind in ("landed", "failed", "expired"):
                return seen
            now = self.monotonic()
            if now >= deadline:
                return None
            if (
                resend
                and seen is not None
                and seen.kind == "unseen"
                and settings.live_resend_interval_s > 0
                and now >= next_resend
            ):
                await self.rebroadcast(prepared.signed_transaction)
                next_resend = now + settings.live_resend_interval_s
            if on_poll is not None:
                await on_poll()
            await self.sleep(settings.live_confirm_poll_s)
