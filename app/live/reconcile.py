"""Balance reconciliation: on-chain SOL and token balances of each live wallet vs ``agent_balances``.

For every live wallet, periodically:

1. skip it while a swap is unresolved (chain and ledger legitimately differ until settlement);
2. read the ledger, then the chain (``getBalance`` + ``getTokenAccountsByOwner``), then check the
   ledger did not move in between (otherwise try next round: we never compare two different moments);
3. drift per mint = chain − ledger. SOL counts native lamports plus wrapped SOL. A mint drifts beyond
   its threshold when both ``|drift|`` and ``|drift − acknowledged drift|`` exceed
   ``LIVE_DRIFT_SOL_THRESHOLD`` (SOL) or ``LIVE_DRIFT_TOKEN_FRACTION`` of the larger of the two
   balances (tokens);
4. store the report. While any mint drifts beyond its threshold the wallet is ``blocked``: new live
   orders are refused (:func:`app.live.guard.check_wallet_drift`) until the owner acknowledges the
   report (``POST /api/v1/live/wallets/{address}/acknowledge-drift``), which takes the current drift
   as the new baseline. Drift that disappears (e.g. a deposit got recorded) unblocks by itself.

Tokens present on chain but unknown to the ledger (airdrops, spam mints) are listed as
``untracked`` and never block: anyone can send tokens to a wallet.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from app.config import Settings
from app.db import Q
from app.market.solana_rpc import SolanaRpc
from app.market.types import MarketError
from app.metrics import ERRORS_TOTAL
from app.trading._num import ZERO, exact, plain
from app.trading.ledger import parse_balance
from app.trading.units import SOL_DECIMALS, SOL_MINT, from_raw

log = logging.getLogger(__name__)


class MintDrift(msgspec.Struct, kw_only=True):
    mint: str
    symbol: str
    ledger: Decimal
    chain: Decimal
    drift: Decimal
    baseline: Decimal
    threshold: Decimal
    exceeds: bool


class Reconciliation(msgspec.Struct, kw_only=True):
    wallet_address: str
    agent_id: uuid.UUID
    status: str  # ok | drift | acknowledged
    blocked: bool
    mints: list[MintDrift]
    untracked: dict[str, str]

    def report(self) -> dict[str, Any]:
        return {
            "mints": [
                {
                    "mint": m.mint,
                    "symbol": m.symbol,
                    "ledger": plain(m.ledger),
                    "chain": plain(m.chain),
                    "drift": plain(m.drift),
                    "acknowledgedDrift": plain(m.baseline),
                    "threshold": plain(m.threshold),
                    "exceeds": m.exceeds,
                }
                for m in self.mints
            ],
            "drift": {m.mint: plain(m.drift) for m in self.mints if m.drift != 0},
            "untracked": self.untracked,
        }


@exact
def mint_drift(
    mint: str, symbol: str, ledger: Decimal, chain: Decimal, baseline: Decimal, settings: Settings
) -> MintDrift:
    drift = chain - ledger
    if mint == SOL_MINT:
        threshold = settings.live_drift_sol_threshold
    else:
        threshold = settings.live_drift_token_fraction * max(abs(ledger), abs(chain))
    return MintDrift(
        mint=mint,
        symbol=symbol,
        ledger=ledger,
        chain=chain,
        drift=drift,
        baseline=baseline,
        threshold=threshold,
        exceeds=abs(drift) > threshold and abs(drift - baseline) > threshold,
    )


def _baseline(previous: dict[str, Any] | None) -> dict[str, Decimal]:
    acknowledged = (previous or {}).get("acknowledged_drift") or {}
    return {mint: Decimal(str(value)) for mint, value in acknowledged.items()}


def compare(
    settings: Settings,
    ledger_rows: list[dict[str, Any]],
    lamports: int,
    tokens: dict[str, Any],
    baseline: dict[str, Decimal],
) -> tuple[list[MintDrift], dict[str, str]]:
    """Per-mint drift (pure): ``ledger_rows`` from agent_balances, chain balances in raw units."""
    ledger = {r["token_address"]: (r["token_symbol"], parse_balance(r["balance"])) for r in ledger_rows}
    wrapped = tokens.get(SOL_MINT)
    chain_sol = from_raw(lamports + (wrapped.amount if wrapped else 0), SOL_DECIMALS)
    sol_symbol, sol_ledger = ledger.get(SOL_MINT, ("SOL", ZERO))
    mints = [mint_drift(SOL_MINT, sol_symbol, sol_ledger, chain_sol, baseline.get(SOL_MINT, ZERO), settings)]
    for mint, (symbol, amount) in sorted(ledger.items()):
        if mint == SOL_MINT:
            continue
        held = tokens.get(mint)
        chain = from_raw(held.amount, held.decimals) if held else ZERO
        mints.append(mint_drift(mint, symbol, amount, chain, baseline.get(mint, ZERO), settings))
    untracked = {
        mint: plain(from_raw(held.amount, held.decimals))
        for mint, held in sorted(tokens.items())
        if mint != SOL_MINT and mint not in ledger and held.amount > 0
    }
    return mints, untracked


async def reconcile_wallet(
    pool: asyncpg.Pool, settings: Settings, rpc: SolanaRpc, wallet: str, agent_id: uuid.UUID
) -> Reconciliation | None:
    """Compare one wallet; None when it was skipped (swap in flight or ledger moved during the read)."""
    before = await Q.live_wallet_ledger_mark.fetch_one(pool, wallet)
    assert before is not None
    if before["unresolved"]:
        return None
    ledger_rows = await Q.live_wallet_balances.fetch_all(pool, wallet)
    lamports = await rpc.get_balance(wallet)
    tokens = await rpc.get_token_accounts_by_owner(wallet)
    after = await Q.live_wallet_ledger_mark.fetch_one(pool, wallet)
    if after != before:
        return None
    previous = await Q.live_get_reconciliation.fetch_one(pool, wallet)
    mints, untracked = compare(settings, ledger_rows, lamports, tokens, _baseline(previous))
    blocked = any(m.exceeds for m in mints)
    if blocked:
        status = "drift"
    elif any(m.drift != 0 and m.baseline != 0 for m in mints):
        status = "acknowledged"
    else:
        status = "ok"
    result = Reconciliation(
        wallet_address=wallet, agent_id=agent_id, status=status, blocked=blocked, mints=mints, untracked=untracked
    )
    await Q.live_upsert_reconciliation.execute(pool, wallet, agent_id, status, blocked, result.report())
    if blocked:
        ERRORS_TOTAL.labels("live_reconcile", "WALLET_DRIFT").inc()
        log.warning(
            "live wallet drifts from chain; new live orders blocked until acknowledged",
            extra={"fields": {"wallet": wallet, "drift": result.report()["drift"]}},
        )
    return result


async def reconcile_all(pool: asyncpg.Pool, settings: Settings, rpc: SolanaRpc) -> dict[str, str]:
    """Every live wallet once; returns wallet → status ("skipped"/"error" included)."""
    out: dict[str, str] = {}
    for row in await Q.live_wallets.fetch_all(pool):
        wallet = row["wallet_address"]
        try:
            result = await reconcile_wallet(pool, settings, rpc, wallet, row["agent_id"])
        except MarketError as exc:
            log.warning(
                "live reconciliation: chain read failed", extra={"fields": {"wallet": wallet, "error": exc.message}}
            )
            out[wallet] = "error"
            continue
        out[wallet] = "skipped" if result is None else result.status
    return out
