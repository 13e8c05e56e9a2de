"""``LiveExecutor``: the :class:`~app.worker.executor.SwapExecutor` for live wallets.

``execute`` runs the whole crash-safe sequence for one swap:

1. refuse early (a quote this route cannot execute, config switch, kill switch, drift block,
   loss/position rails, quote rails);
2. settle whatever an earlier process left unresolved for this wallet (never trade on top of an
   unknown outcome);
3. build and sign the transaction (nothing sent yet);
4. journal it — quote, signed bytes, signature, ``lastValidBlockHeight`` — in ``live_swaps`` with the
   gates re-checked in the same DB transaction;
5. send exactly once, then watch the signature until it lands, fails, or its blockhash dies;
6. return a :class:`~app.worker.executor.Fill` built from the chain's balance deltas, which the
   execution module records; :meth:`LiveExecutor.on_recorded` marks the journal row settled inside
   that same ledger transaction.

Any exit between 4 and 6 (crash, timeout, DB failure) leaves the row unresolved and leased; when the
lease lapses, :mod:`app.live.settlement` finishes the job from chain facts alone.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg

from app.config import Settings
from app.db import Q
from app.live import guard, rails, swaplog
from app.live.rails import LiveRefused
from app.live.swap import (
    ChainFacts,
    LiveSwapper,
    Prepared,
    SwapError,
    expired_without_trade,
    failed_on_chain,
    token_mint_of,
    wallet_flows,
)
from app.live.swaplog import AlreadySettled
from app.logs import bind
from app.market.types import LAMPORTS_PER_SOL, Quote, to_int
from app.metrics import ERRORS_TOTAL
from app.trading.fees import extract_jupiter_fees
from app.trading.ledger import SOL_8, quantize
from app.worker.executor import Fill, Side

log = logging.getLogger(__name__)

METIS_REQUEST_PREFIX = "metis-"  # app.market.jupiter.JupiterMetis gives its quotes local ids with this prefix


FEE_TERMS = ("signatureFeeLamports", "prioritizationFeeLamports", "rentFeeLamports")
LAMPORTS_PER_8DP = 10  # the SOL fee column is numeric(20,8): whole multiples of 10 lamports


def ledger_fee_lamports(payload: dict[str, Any]) -> int:
    """The network fee the ledger debits for this payload (lamports, after the fee column's rounding)."""
    _, network = extract_jupiter_fees(payload)
    if network is None:
        return 0
    return int(quantize(network, SOL_8) * LAMPORTS_PER_SOL)


def _fits_fee_column(lamports: int) -> int:
    return max(0, lamports) - max(0, lamports) % LAMPORTS_PER_8DP


def _chain_execute_doc(
    side: str, signature: str, facts: ChainFacts, quoted_in: int, quoted_out: int, received: int, spent: int
) -> dict[str, Any]:
    """Execute-response shape for a swap we sent ourselves (or whose Jupiter answer was lost)."""
    return {
        "status": "Success",
        "signature": signature,
        "slot": str(facts.slot),
        "inputAmountResult": str(quoted_in if side == "buy" else spent),
        "outputAmountResult": str(received if side == "buy" else quoted_out),
        "source": "chain",
    }


def _order_with_chain_fees(quote_payload: dict[str, Any], network_lamports: int) -> dict[str, Any]:
    """The order JSON whose fee terms say what the chain charged (Jupiter's estimates are kept under
    ``quotedFeeLamports``): the execution module derives the network fee from these terms."""
    quoted = {k: quote_payload[k] for k in FEE_TERMS if k in quote_payload}
    return {
        **quote_payload,
        "signatureFeeLamports": network_lamports,
        "prioritizationFeeLamports": 0,
        "rentFeeLamports": 0,
        "quotedFeeLamports": quoted,
    }


def build_fill(
    *,
    side: str,
    input_mint: str,
    output_mint: str,
    quoted_in: int,
    quoted_out: int,
    quote_payload: dict[str, Any],
    price_impact: Decimal,
    slippage_bps: int,
    routes: list,
    signature: str,
    request_id: str | None,
    facts: ChainFacts,
    execute_payload: dict[str, Any] | None,
) -> Fill:
    """A fill whose ledger effect equals the chain's, to the lamport.

    The execution module debits ``total_input + network fee`` (buy) and credits ``total_output −
    network fee`` (sale). The network fee is what the chain charged beyond the swap itself: for a buy
    the SOL spent minus the swap's gross input (transaction fee, priority fee, new token-account
    rent), for a sale the transaction fee; rounded down to the 8-decimal fee column, the remainder
    staying in the totals. Swapped amounts (the price basis) are Jupiter's.
    """
    flows = wallet_flows(side, facts)
    execute_doc = execute_payload or _chain_execute_doc(
        side, signature, facts, quoted_in, quoted_out, flows.received, flows.spent
    )
    if side == "buy":
        gross_in = to_int(execute_doc.get("totalInputAmount")) or quoted_in
        network = _fits_fee_column(flows.spent - gross_in)
    else:
        network = _fits_fee_column(facts.fee_lamports)
    payload = {
        "orderResponse": _order_with_chain_fees(quote_payload, network),
        "executeResponse": execute_doc,
        "chain": {
            "slot": facts.slot,
            "feeLamports": facts.fee_lamports,
            "solDeltaLamports": facts.sol_delta,
            "tokenMint": facts.token_mint,
            "tokenDeltaRaw": facts.token_delta,
            "tokenDecimals": facts.token_decimals,
        },
    }
    assert ledger_fee_lamports(payload) == network
    common: dict[str, Any] = {
        "side": side,
        "input_mint": input_mint,
        "output_mint": output_mint,
        "signature": signature,
        "request_id": request_id,
        "price_impact": price_impact,
        "slippage_bps": slippage_bps,
        "routes": list(routes),
        "payload": payload,
    }
    if side == "buy":
        total_in = flows.spent - network  # ≥ the swap's gross input, so always positive
        swapped_in = to_int(execute_doc.get("inputAmountResult")) or quoted_in
        return Fill(
            input_amount_raw=min(swapped_in, total_in),
            output_amount_raw=flows.received,
            total_input_raw=total_in,
            **common,
        )
    total_out = flows.received + network
    if total_out <= 0:
        raise SwapError("CHAIN_MISMATCH", f"sale received {flows.received} lamports after a {network} fee")
    gross_out = to_int(execute_doc.get("outputAmountResult")) if execute_payload else None
    return Fill(
        input_amount_raw=flows.spent,
        output_amount_raw=max(gross_out or total_out, total_out),
        total_output_raw=total_out,
        **common,
    )


def fill_from_row(row: swaplog.SwapRow) -> Fill:
    """Rebuild the fill of a ``confirmed`` journal row (settlement after a crash or a failed record)."""
    if row.chain is None:
        raise SwapError("CHAIN_MISMATCH", f"live swap {row.id} is confirmed without chain facts")
    facts = ChainFacts(**{k: row.chain[k] for k in ChainFacts.__struct_fields__ if k in row.chain})
    quote = row.quote
    return build_fill(
        side=row.side,
        input_mint=row.input_mint,
        output_mint=row.output_mint,
        quoted_in=int(row.in_amount),
        quoted_out=int(row.quoted_out_amount),
        quote_payload=quote.get("payload") or {},
        price_impact=Decimal(str(quote.get("priceImpact") or "0")),
        slippage_bps=int(quote.get("slippageBps") or 0),
        routes=(quote.get("payload") or {}).get("routePlan") or [],
        signature=row.signature,
        request_id=row.request_id,
        facts=facts,
        execute_payload=(row.chain or {}).get("executeResponse"),
    )


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LiveExecutor:
    """Live wallets' executor. One per process; safe to share between concurrent trades."""

    name = "live"

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        swapper: LiveSwapper,
        *,
        instance_id: str | None = None,
        sol_usd: Callable[[], Awaitable[Decimal | None]] | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.swapper = swapper
        self.keystore = swapper.keystore
        self.instance_id = instance_id or default_instance_id()
        # Imported here: settlement records fills through the execution module, which imports executors.
        from app.live.settlement import Settlement

        self.settlement = Settlement(
            pool, settings, swapper, owner=self.instance_id, **({"sol_usd": sol_usd} if sol_usd is not None else {})
        )

    # -- quoting (the Quoter protocol, for live wallets) ------------------------------------------
    async def quote(
        self,
        input_mint: str,
        output_mint: str,
        amount_raw: int,
        *,
        taker: str | None = None,
        slippage_bps: int | None = None,
    ) -> Quote:
        """A quote the live route can execute (Metis: with LIVE_SLIPPAGE_BPS; Ultra: built for ``taker``)."""
        if taker is None:
            raise LiveRefused("WALLET_NOT_FOUND", "A live quote needs the wallet (taker)")
        return await self.swapper.quote(input_mint, output_mint, amount_raw, wallet=taker)

    # -- SwapExecutor -----------------------------------------------------------------------------
    async def execute(
        self, quote: Quote, *, wallet_address: str, agent_id: uuid.UUID, side: Side, intent: dict[str, Any]
    ) -> Fill:
        with bind(agent_id=str(agent_id), wallet=wallet_address, side=side):
            try:
                return await self._execute(quote, wallet_address, agent_id, side, intent)
            except (LiveRefused, SwapError) as exc:
                ERRORS_TOTAL.labels("live_trading", exc.code).inc()
                log.warning("live swap not filled: %s", exc.message, extra={"fields": {"code": exc.code}})
                raise

    async def _execute(self, quote: Quote, wallet: str, agent_id: uuid.UUID, side: str, intent: dict[str, Any]) -> Fill:
        self.require_executable(quote, wallet)
        guard.check_enabled(self.settings)
        if not self.keystore.has(wallet):
            raise LiveRefused("WALLET_NOT_LOADED", f"No private key loaded for wallet {wallet}")
        owner = await Q.live_agent_owner.fetch_one(self.pool, agent_id)
        if owner is None:
            raise LiveRefused("AGENT_NOT_FOUND", "Agent not found")
        user_id, kind = owner["user_id"], intent.get("kind")

        async def gates(conn: asyncpg.Connection, *, lock: bool = False) -> None:
            await guard.check_order(
                conn,
                self.settings,
                agent_id=agent_id,
                user_id=user_id,
                wallet=wallet,
                side=side,
                kind=kind,
                lock_halts=lock,
            )

        async with self.pool.acquire() as conn:
            await gates(conn)
        await self.settle_before_order(wallet)
        rails.check_quote(
            quote, max_impact=self.settings.live_max_price_impact, max_slippage_bps=self.settings.live_max_slippage_bps
        )
        prepared = await self.swapper.prepare(quote, wallet)
        swap_id = await swaplog.journal(
            self.pool,
            prepared,
            agent_id=agent_id,
            side=side,
            intent={**intent, "agentId": str(agent_id)},
            lease_owner=self.instance_id,
            lease_s=self.settings.live_lease_s,
            gates=lambda conn: gates(conn, lock=True),
        )
        with bind(live_swap_id=str(swap_id), signature=prepared.signature):
            log.info("live swap journaled, sending")
            return await self._send_and_confirm(swap_id, prepared, side)

    async def settle_before_order(self, wallet: str) -> None:
        """Resolve from chain what an earlier attempt left unresolved for this wallet; refuse the new
        order while anything stays unresolved. Recording a landed swap needs the agent lock, which
        our caller (the execution module's trade transaction) holds, so that part is left to the
        settlement service and this order is refused until it is done."""
        await self.settlement.settle_wallet(wallet, record=False)
        if await swaplog.unresolved_for_wallet(self.pool, wallet):
            raise LiveRefused(
                "WALLET_BUSY",
                f"Wallet {wallet} has a live swap awaiting settlement; new orders wait until it is recorded",
            )

    def require_executable(self, quote: Quote, wallet: str) -> None:
        """The route executes only its own kind of quote (a Metis quote for /swap, an Ultra order built
        for this wallet), i.e. one from :meth:`quote`. Anything else is refused, never replaced: a fresh
        quote would execute other amounts than the trade was sized, impact-checked and priced on."""
        if self.swapper.swap_api == "metis":
            usable = quote.request_id.startswith(METIS_REQUEST_PREFIX)
        else:
            usable = bool(quote.transaction) and quote.payload.get("taker") in (None, wallet)
        if not usable:
            raise LiveRefused(
                "QUOTE_NOT_EXECUTABLE",
                f"The live {self.swapper.swap_api} route cannot execute this quote (request {quote.request_id}); "
                "live trades are quoted by the live executor",
            )

    async def _send_and_confirm(self, swap_id: uuid.UUID, prepared: Prepared, side: str) -> Fill:
        quote = prepared.quote
        token_mint = token_mint_of(side, quote.input_mint, quote.output_mint)
        sent = await self.swapper.send(prepared)
        if sent.accepted is False:
            await swaplog.mark_without_trade(self.pool, swap_id, "failed", sent.error or "rejected before sending")
            raise SwapError(
                "SWAP_FAILED", f"Swap rejected before reaching the network: {sent.error}", signature=prepared.signature
            )
        if sent.accepted:
            await swaplog.mark_sent(self.pool, swap_id)
        else:
            log.warning(
                "live swap send outcome unknown; settling by signature", extra={"fields": {"error": sent.error}}
            )

        async def keep_lease() -> None:
            await swaplog.extend_lease(self.pool, swap_id, self.instance_id, self.settings.live_lease_s)

        seen = await self.swapper.wait_for_outcome(
            prepared, token_mint=token_mint, resend=prepared.swap_api == "metis", on_poll=keep_lease
        )
        if seen is None:
            await swaplog.release_lease(self.pool, swap_id, self.instance_id)
            raise SwapError(
                "SWAP_UNCONFIRMED",
                f"Swap unconfirmed; settlement will record it if it lands (signature {prepared.signature})",
                signature=prepared.signature,
            )
        if seen.kind == "expired":
            await swaplog.mark_without_trade(self.pool, swap_id, "expired", "blockhash expired before landing")
            raise expired_without_trade(prepared.signature)
        assert seen.facts is not None
        if seen.kind == "failed":
            await swaplog.mark_without_trade(
                self.pool, swap_id, "failed", f"landed with error {seen.err}", facts=seen.facts
            )
            raise failed_on_chain(seen.err, prepared.signature)
        fill = build_fill(
            side=side,
            input_mint=quote.input_mint,
            output_mint=quote.output_mint,
            quoted_in=quote.in_amount,
            quoted_out=quote.out_amount,
            quote_payload=quote.payload,
            price_impact=quote.price_impact,
            slippage_bps=quote.slippage_bps,
            routes=quote.route_plan,
            signature=prepared.signature,
            request_id=prepared.request_id,
            facts=seen.facts,
            execute_payload=sent.execute_result.payload if sent.execute_result else None,
        )
        await self._confirm(swap_id, seen.facts, side, fill)
        log.info("live swap confirmed on chain", extra={"fields": {"slot": seen.facts.slot}})
        return fill

    async def _confirm(self, swap_id: uuid.UUID, facts: ChainFacts, side: str, fill: Fill) -> None:
        execute_doc = fill.payload.get("executeResponse") or {}
        extra = {} if execute_doc.get("source") == "chain" else {"executeResponse": execute_doc}
        if not await swaplog.mark_confirmed(self.pool, swap_id, facts, wallet_flows(side, facts), extra):
            row = await swaplog.get(self.pool, swap_id)
            if row is None or row.status != "confirmed":
                raise SwapError(
                    "ALREADY_SETTLED",
                    f"Live swap already resolved as {row.status if row else '?'}",
                    signature=fill.signature,
                )

    async def on_recorded(self, conn: asyncpg.Connection, fill: Fill) -> None:
        await mark_fill_settled(conn, fill)


async def mark_fill_settled(conn: asyncpg.Connection, fill: Fill) -> None:
    """Inside the ledger transaction, after its rows: mark the journal row settled, or raise so the
    whole ledger write rolls back when someone else already recorded this swap."""
    if fill.signature is None:
        raise AlreadySettled("live fill without a signature")
    row = await Q.live_get_swap_by_signature.fetch_one(conn, fill.signature)
    if row is None:
        raise AlreadySettled(f"no live swap journaled for {fill.signature}")
    tx_id = await Q.live_transaction_for_signature.fetch_val(conn, fill.signature, row["wallet_address"])
    if tx_id is None:
        raise AlreadySettled(f"no ledger row carries transaction hash {fill.signature}")
    await swaplog.mark_settled(conn, row["id"], tx_id)


class SettlementMarker:
    """The ``executor`` handed to the execution module's ``record_*_fill`` by settlement: it only
    performs :func:`mark_fill_settled` (the swap already happened)."""

    async def on_recorded(self, conn: asyncpg.Connection, fill: Fill) -> None:
        await mark_fill_settled(conn, fill)
