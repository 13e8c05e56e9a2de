"""Ledger invariants, checked over the whole database (``nexgent audit``, and the tests after every scenario).

1. **Balances = ledger**: every ``agent_balances`` row equals the sum of the balance deltas of its wallet's
   ``agent_transactions`` rows under :func:`app.trading.ledger.balance_deltas` (the one rule execution
   applies), and a mint with a non-zero ledger sum has its row.
2. **No negative balance.**
3. **Exactly-once signals**: every processed signal has an execution row for every agent of its owner that
   existed when it was (last) claimed, no row for anyone else's agent, and every ``success`` row points at
   the buy it caused. (At most one row per pair is the unique constraint's job.)
4. **Positions are backed**: an open position's holding is at most its wallet's token balance, and its
   purchase transaction exists.
5. **Closed trades add up**: a history row written by the trade path has the P/L of its position's ledger
   rows (SOL credited minus SOL debited, plus the cost basis withdrawals took out of it), to the 8-decimal
   rounding of ``total_invested_sol``.
6. **Chain costs are in the ledger**: every live transaction that landed with an error has its fee row (live
   settlement writes it within a pass; one still missing means settlement is stuck on it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from app.db import Q
from app.trading.ledger import SOL_8, balance_deltas, parse_balance, quantize
from app.trading.units import SOL_MINT
from app.withdrawals import withdrawn_cost_basis

# total_invested_sol is numeric(20,8) while lamport amounts have 9 decimals: each ledger row of a position
# may put up to half a unit of the 8th decimal between the stored P/L and the exact cash flow.
PNL_TOLERANCE_PER_ROW = Decimal("1e-8")


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.detail}"


async def _ledger_sums(conn: asyncpg.Connection) -> tuple[dict[tuple[str, str], Decimal], list[Finding]]:
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    findings: list[Finding] = []
    async for row in conn.cursor(Q.audit_transactions.sql, prefetch=2000):
        try:
            deltas = balance_deltas(
                row["transaction_type"],
                row["input_mint"],
                row["input_amount"],
                row["output_mint"],
                row["output_amount"],
                row["network_fee_sol"],
                row["fees"],
            )
        except ValueError as exc:
            findings.append(Finding("ledger-row", row["wallet_address"], f"unreadable transaction: {exc}"))
            continue
        for mint, delta in deltas.items():
            sums[(row["wallet_address"], mint)] += delta
    return sums, findings


async def check_balances(conn: asyncpg.Connection) -> list[Finding]:
    sums, findings = await _ledger_sums(conn)
    seen: set[tuple[str, str]] = set()
    for row in await Q.audit_balances.fetch_all(conn):
        key = (row["wallet_address"], row["token_address"])
        seen.add(key)
        subject = f"wallet {key[0]} {key[1]}"
        try:
            balance = parse_balance(row["balance"])
        except ValueError:
            findings.append(Finding("balance-format", subject, f"balance {row['balance']!r} is not a number"))
            continue
        if balance < 0:
            findings.append(Finding("negative-balance", subject, f"balance {balance} is negative"))
        expected = sums.get(key, Decimal(0))
        if balance != expected:
            findings.append(Finding("balance-vs-ledger", subject, f"balance {balance} but ledger sum {expected}"))
    for key, total in sums.items():
        if key not in seen and total != 0:
            findings.append(
                Finding("balance-vs-ledger", f"wallet {key[0]} {key[1]}", f"no balance row but ledger sum {total}")
            )
    return findings


async def check_signal_executions(conn: asyncpg.Connection) -> list[Finding]:
    findings = [
        Finding("signal-execution-missing", f"signal {r['signal_id']}", f"agent {r['agent_id']} has no execution row")
        for r in await Q.audit_missing_executions.fetch_all(conn)
    ]
    findings += [
        Finding("signal-execution-foreign", f"signal {r['signal_id']}", f"agent {r['agent_id']} is not the owner's")
        for r in await Q.audit_foreign_executions.fetch_all(conn)
    ]
    findings += [
        Finding(
            "signal-execution-trade",
            f"signal {r['signal_id']}",
            f"success row of agent {r['agent_id']} points at {r['transaction_id']}, not its buy",
        )
        for r in await Q.audit_success_without_trade.fetch_all(conn)
    ]
    return findings


async def check_positions(conn: asyncpg.Connection) -> list[Finding]:
    findings = []
    for row in await Q.audit_positions.fetch_all(conn):
        subject = f"position {row['id']}"
        if not row["has_purchase_transaction"]:
            findings.append(Finding("position-purchase", subject, "purchase transaction missing"))
        held = parse_balance(row["token_balance"]) if row["token_balance"] is not None else Decimal(0)
        if row["holding"] > held:
            findings.append(
                Finding("position-vs-balance", subject, f"holds {row['holding']} but the wallet has {held}")
            )
    return findings


async def check_closed_trades(conn: asyncpg.Connection) -> list[Finding]:
    findings = []
    # Tokens withdrawn from a position left it at cost: that share of its invested SOL counts as received.
    withdrawn = await withdrawn_cost_basis(conn)
    for row in await Q.audit_closed_trades.fetch_all(conn):
        cash = withdrawn.get(row["position_id"], Decimal(0))
        legs = zip(
            row["types"],
            row["input_mints"],
            row["input_amounts"],
            row["output_mints"],
            row["output_amounts"],
            row["network_fees"],
            strict=True,
        )
        for kind, in_mint, in_amount, out_mint, out_amount, fee in legs:
            cash += balance_deltas(kind, in_mint, in_amount, out_mint, out_amount, fee).get(SOL_MINT, Decimal(0))
        tolerance = PNL_TOLERANCE_PER_ROW * (len(row["types"]) + 1)
        if not row["types"]:
            findings.append(Finding("closed-trade", f"history {row['id']}", "no ledger rows for its position"))
        elif abs(quantize(cash, SOL_8) - row["profit_loss_sol"]) > tolerance:
            findings.append(
                Finding(
                    "closed-trade",
                    f"history {row['id']}",
                    f"profit_loss_sol {row['profit_loss_sol']} but its ledger rows net {cash} SOL",
                )
            )
    return findings


async def check_live_fees(conn: asyncpg.Connection) -> list[Finding]:
    return [
        Finding(
            "live-fee",
            row["wallet_address"],
            f"live swap {row['id']} landed with an error and paid {row['fee_lamports']} lamports "
            "that are not in the ledger yet",
        )
        for row in await Q.audit_unrecorded_live_fees.fetch_all(conn)
    ]


async def run_audit(pool: asyncpg.Pool) -> list[Finding]:
    """Every finding of every check (empty = the ledger is consistent), all read from one snapshot so
    trades committing meanwhile cannot make balances and ledger rows disagree."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        findings = await check_balances(conn)
        findings += await check_signal_executions(conn)
        findings += await check_positions(conn)
        findings += await check_closed_trades(conn)
        findings += await check_live_fees(conn)
    return findings
