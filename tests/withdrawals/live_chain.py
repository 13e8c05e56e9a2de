"""Live-withdrawal rig: a live wallet funded identically on the fake chain and in the ledger, and the fake chain
executing our transfer transactions the way the System, Token and Associated Token programs would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from solders.keypair import Keypair

from app.config import Settings
from app.live.keys import load_keystore, set_keystore
from app.trading.ledger import parse_balance
from app.withdrawals import ATA_PROGRAM_ID, MEMO_PROGRAM_ID, SYSTEM_PROGRAM_ID, TOKEN_ACCOUNT_RENT_LAMPORTS
from tests.factories import SOL_MINT, access_headers, create_agent, create_user, deposit_sol
from tests.fakes.solana_rpc import TOKEN_PROGRAM_ID, FakeSolanaRpc, SentTx

START_LAMPORTS = 5_000_000_000


def land_transfer(chain: FakeSolanaRpc, sent: SentTx) -> None:
    """Decode the signed transfer and apply it: system transfers, idempotent token-account creation (rent paid
    by the payer when the account is new) and transferChecked (a memo changes nothing)."""
    message = sent.tx.message
    keys = [str(k) for k in message.account_keys]
    sol: dict[str, int] = {}
    tokens: dict[tuple[str, str], int] = {}
    owners: dict[str, str] = {}
    for ix in message.instructions:
        program, accounts, data = keys[ix.program_id_index], [keys[i] for i in ix.accounts], bytes(ix.data)
        if program == SYSTEM_PROGRAM_ID:
            lamports = int.from_bytes(data[4:12], "little")
            sol[accounts[0]] = sol.get(accounts[0], 0) - lamports
            sol[accounts[1]] = sol.get(accounts[1], 0) + lamports
        elif program == ATA_PROGRAM_ID:
            payer, account, owner, mint = accounts[:4]
            owners[account] = owner
            if mint not in chain.token_accounts.get(owner, {}):
                sol[payer] = sol.get(payer, 0) - TOKEN_ACCOUNT_RENT_LAMPORTS
        elif program == TOKEN_PROGRAM_ID:
            _source, mint, target, authority = accounts[:4]
            amount = int.from_bytes(data[1:9], "little")
            tokens[(authority, mint)] = tokens.get((authority, mint), 0) - amount
            tokens[(owners[target], mint)] = tokens.get((owners[target], mint), 0) + amount
        elif program != MEMO_PROGRAM_ID:
            raise AssertionError(f"unexpected program {program}")
    chain.confirm(sent.signature, sol_deltas=sol, token_deltas=tokens)


@dataclass
class LiveWallet:
    keypair: Keypair
    address: str
    email: str
    user_id: uuid.UUID
    agent_id: uuid.UUID
    headers: dict[str, str]

    @property
    def secret(self) -> str:
        return str(self.keypair)


async def live_wallet(
    pool: asyncpg.Pool,
    settings: Settings,
    chain: FakeSolanaRpc,
    *,
    lamports: int = START_LAMPORTS,
    tokens: dict[str, int] | None = None,
) -> LiveWallet:
    """A user, a live agent and wallet with its key loaded in this process, funded on chain and in the ledger."""
    keypair = Keypair()
    address, email = str(keypair.pubkey()), f"live-wd-{uuid.uuid4().hex[:8]}@example.com"
    user_id = await create_user(pool, email)
    agent_id, _ = await create_agent(pool, user_id, "live withdrawals")
    await pool.execute(
        "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'live')", address, agent_id
    )
    await pool.execute("UPDATE agents SET trading_mode = 'live' WHERE id = $1", agent_id)
    chain.balances[address] = lamports
    await deposit_sol(pool, agent_id, address, Decimal(lamports).scaleb(-9))
    for mint, raw in (tokens or {}).items():
        chain.mint_decimals[mint] = 6
        chain.token_accounts.setdefault(address, {})[mint] = raw
        await _deposit_token(pool, agent_id, address, mint, Decimal(raw).scaleb(-6))
    set_keystore(load_keystore({"WALLET_1": str(keypair), "WALLET_1_OWNER": email}))
    return LiveWallet(keypair, address, email, user_id, agent_id, access_headers(settings, user_id, email))


async def _deposit_token(pool: asyncpg.Pool, agent_id: uuid.UUID, wallet: str, mint: str, amount: Decimal) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO agent_transactions (agent_id, wallet_address, transaction_type, transaction_value_usd,
                   transaction_time, input_mint, input_symbol, input_amount)
               VALUES ($1, $2, 'DEPOSIT', 0, now(), $3, 'LTOK', $4)""",
            agent_id,
            wallet,
            mint,
            amount,
        )
        await conn.execute(
            "INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)"
            " VALUES ($1, $2, $3, 'LTOK', $4)",
            agent_id,
            wallet,
            mint,
            format(amount.normalize(), "f"),
        )


def chain_balances(chain: FakeSolanaRpc, address: str) -> dict[str, Decimal]:
    out = {SOL_MINT: Decimal(chain.balances.get(address, 0)).scaleb(-9)}
    for mint, raw in chain.token_accounts.get(address, {}).items():
        if raw:
            out[mint] = Decimal(raw).scaleb(-chain.mint_decimals.get(mint, 6))
    return out


async def ledger_balances(pool: asyncpg.Pool, address: str) -> dict[str, Decimal]:
    rows = await pool.fetch("SELECT token_address, balance FROM agent_balances WHERE wallet_address = $1", address)
    return {
        r["token_address"]: parse_balance(r["balance"])
        for r in rows
        if r["token_address"] == SOL_MINT or parse_balance(r["balance"]) != 0
    }


async def assert_ledger_matches_chain(pool: asyncpg.Pool, chain: FakeSolanaRpc, address: str) -> None:
    ledger, onchain = await ledger_balances(pool, address), chain_balances(chain, address)
    assert ledger == onchain, f"ledger {ledger} != chain {onchain}"
    unresolved = await pool.fetchval(
        "SELECT count(*) FROM live_swaps WHERE wallet_address = $1 AND status IN ('pending', 'sent', 'confirmed')",
        address,
    )
    assert unresolved == 0
