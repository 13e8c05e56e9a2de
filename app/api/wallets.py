"""Wallets (api.md §9, domain §12): list, assign, reset, unassign, live deposit detection.

Security fixes over upstream (api.md §25.1):
* a live address can be assigned only by the user its key is bound to (``app.live.keys``), and only
  that user's addresses are ever listed;
* an agent's wallet is never re-keyed to another address (upstream rewrote the primary key, so the old
  wallet's history followed the new address): a second live wallet needs an unassign first;
* check-deposits locks the agent and re-reads the SOL balance under the lock, so two concurrent calls
  cannot both credit the same deposit.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Annotated, Any, Literal

import aiohttp
import asyncpg
import msgspec
from litestar import Response, get, post
from litestar.params import JSONBody, PathParameter

from app.api.agents import new_simulation_address
from app.api.auth import Principal, jwt_only
from app.api.common import WalletRow, agent_wallets, owned_agent, sol_usd_price, user_email
from app.api.deps import PoolDep, PrincipalDep, SettingsDep
from app.api.errors import ApiError
from app.api.ledger_store import record_and_apply
from app.api.serialization import error_responses, iso, json_response, parse_uuid
from app.auth.ratelimit import WALLET_OPS
from app.config import Settings
from app.db import Q, transaction
from app.db.queries import affected
from app.events import publish
from app.live.keys import get_keystore
from app.market.solana_rpc import SolanaRpc
from app.market.types import MarketError
from app.trading._num import ZERO, exact
from app.trading.ledger import SOL_8, parse_balance, quantize
from app.trading.units import SOL_MINT, lamports_to_sol

log = logging.getLogger(__name__)

DEPOSIT_THRESHOLD_SOL = Decimal("0.00001")
SIM_PREFIX = "sim_"


def network_of(settings: Settings) -> str:
    url = settings.solana_rpc_url.lower()
    return "testnet" if ("devnet" in url or "testnet" in url) else "mainnet"


class AgentWalletOut(msgspec.Struct, rename="camel"):
    wallet_address: str
    wallet_type: str
    is_available: bool
    created_at: str
    updated_at: str


class AvailableWalletOut(msgspec.Struct, rename="camel"):
    wallet_address: str
    is_assigned: bool


class WalletListResponse(msgspec.Struct, rename="camel"):
    agent_wallets: list[AgentWalletOut]
    available_wallets: list[AvailableWalletOut]


@get(
    "/api/v1/wallets/agent/{agent_id:str}",
    dependencies={"principal": jwt_only()},
    summary="The agent's wallets, and the live addresses the caller may assign",
    tags=["Wallets"],
    responses=error_responses(400, 401, 404),
)
async def list_wallets(
    agent_id: Annotated[str, PathParameter(description="Agent id (UUID)")],
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
) -> WalletListResponse:
    agent = await owned_agent(pool, agent_id, principal.user_id)
    wallets = await agent_wallets(pool, agent.id)
    keys = get_keystore(settings)
    email = await user_email(pool, principal.user_id) or principal.email
    assigned = {w.wallet_address for w in wallets}
    return WalletListResponse(
        agent_wallets=[
            AgentWalletOut(
                wallet_address=w.wallet_address,
                wallet_type=w.wallet_type,
                is_available=not w.is_live or keys.has(w.wallet_address),
                created_at=iso(w.created_at) or "",
                updated_at=iso(w.updated_at) or "",
            )
            for w in wallets
        ],
        available_wallets=[
            AvailableWalletOut(wallet_address=address, is_assigned=address in assigned)
            for address in keys.addresses_for(email)
        ],
    )


class AssignBody(msgspec.Struct, rename="camel", kw_only=True):
    agent_id: str
    wallet_type: Literal["simulation", "live"]
    wallet_address: str | None = None


class AssignResponse(msgspec.Struct, rename="camel"):
    success: bool
    wallet_address: str
    wallet_type: str
    message: str
    network: str


def _assign_response(wallet: str, kind: str, message: str, status: int, settings: Settings) -> Response:
    body = AssignResponse(True, wallet, kind, message, network_of(settings))
    return json_response(body, status)


@post(
    "/api/v1/wallets/assign",
    dependencies={"principal": jwt_only(rate_limit=WALLET_OPS)},
    summary="Assign a wallet to an agent (simulation: generated; live: a server-held key bound to the caller)",
    tags=["Wallets"],
    description="201 when the wallet is newly assigned, 200 when the agent already had exactly this wallet.",
    responses=error_responses(400, 401, 404, 409),
)
async def assign_wallet(
    data: JSONBody[AssignBody], principal: PrincipalDep, pool: PoolDep, settings: SettingsDep
) -> Response[AssignResponse]:
    address = (data.wallet_address or "").strip()
    async with transaction(pool) as conn:
        agent = await owned_agent(conn, data.agent_id, principal.user_id, lock=True)
        current = await Q.api_get_agent_wallet_by_type.fetch_one(conn, agent.id, data.wallet_type, into=WalletRow)
        if data.wallet_type == "simulation":
            if address and (current is None or address != current.wallet_address):
                raise ApiError(
                    400,
                    "Simulation wallet addresses are generated by the server; omit walletAddress",
                    "VALIDATION_ERROR",
                )
            if current is not None:
                return _assign_response(
                    current.wallet_address, "simulation", "Wallet assignment updated", 200, settings
                )
            created = await Q.api_insert_wallet.fetch_one(conn, new_simulation_address(), agent.id, "simulation")
            assert created is not None
            return _assign_response(
                created["wallet_address"], "simulation", "Wallet assigned successfully", 201, settings
            )

        if not address:
            raise ApiError(400, "walletAddress is required for a live wallet", "VALIDATION_ERROR")
        if address.startswith(SIM_PREFIX):
            raise ApiError(400, "Simulation addresses (sim_…) cannot be assigned as live wallets", "VALIDATION_ERROR")
        email = await user_email(conn, principal.user_id) or principal.email
        if not get_keystore(settings).may_assign(address, email):
            # One answer whether the key is missing or bound to someone else: no oracle for others' keys.
            raise ApiError(
                400,
                f"Wallet {address} is not available to you on this server. Load its key (WALLET_1, WALLET_2, … "
                "or the key file) bound to your account.",
                "WALLET_NOT_LOADED",
            )
        if current is not None:
            if current.wallet_address == address:
                return _assign_response(address, "live", "Wallet assignment updated", 200, settings)
            raise ApiError(
                409, "Agent already has a live wallet; unassign it before assigning another", "WALLET_ALREADY_ASSIGNED"
            )
        if await Q.api_wallet_exists.fetch_val(conn, address) is not None:
            raise ApiError(409, "Wallet is already assigned to another agent", "WALLET_ALREADY_ASSIGNED")
        await Q.api_insert_wallet.execute(conn, address, agent.id, "live")
    return _assign_response(address, "live", "Wallet assigned successfully", 201, settings)


class ConfirmBody(msgspec.Struct):
    confirm: bool = False


class DeletedCounts(msgspec.Struct, rename="camel"):
    positions: int
    historical_swaps: int
    balances: int
    transactions: int
    balance_snapshots: int


class ResetResponse(msgspec.Struct):
    success: bool
    message: str
    walletAddress: str
    deleted: DeletedCounts
    duration: int


def _require_confirmation(data: ConfirmBody | None, action: str) -> None:
    if data is None or data.confirm is not True:
        raise ApiError(
            400, "Confirmation required", "CONFIRMATION_REQUIRED", message=f'Send {{"confirm": true}} to {action}'
        )


async def _owned_wallet(conn: Any, address: str, principal: Principal) -> WalletRow:
    wallet = await Q.api_get_owned_wallet.fetch_one(conn, address, principal.user_id, into=WalletRow)
    if wallet is None:
        raise ApiError(404, "Wallet not found", "NOT_FOUND")
    return wallet


async def clear_wallet(conn: asyncpg.Connection, wallet: WalletRow) -> DeletedCounts:
    """Delete everything recorded for the wallet; the caller holds the agent lock and the transaction."""
    positions = await Q.api_reset_wallet_positions.fetch_all(conn, wallet.wallet_address)
    swaps = await Q.api_reset_wallet_swaps.execute(conn, wallet.wallet_address)
    transactions = await Q.api_reset_wallet_transactions.execute(conn, wallet.wallet_address)
    balances = await Q.api_reset_wallet_balances.execute(conn, wallet.wallet_address)
    snapshots = await Q.api_reset_wallet_snapshots.execute(conn, wallet.wallet_address)
    for position in positions:
        await publish(
            conn,
            wallet.agent_id,
            "position_closed",
            {
                "positionId": str(position["id"]),
                "walletAddress": wallet.wallet_address,
                "tokenAddress": position["token_address"],
                "tokenSymbol": position["token_symbol"],
                "reason": "wallet_reset",
            },
        )
    return DeletedCounts(
        positions=len(positions),
        historical_swaps=affected(swaps),
        balances=affected(balances),
        transactions=affected(transactions),
        balance_snapshots=affected(snapshots),
    )


async def _reset(pool: asyncpg.Pool, address: str, principal: Principal, *, unassign: bool) -> ResetResponse:
    started = time.perf_counter()
    try:
        async with transaction(pool) as conn:
            wallet = await _owned_wallet(conn, address, principal)
            if unassign and (address.startswith(SIM_PREFIX) or not wallet.is_live):
                raise ApiError(400, "Only live wallets can be unassigned", "VALIDATION_ERROR")
            await owned_agent(conn, str(wallet.agent_id), principal.user_id, lock=True)
            deleted = await clear_wallet(conn, wallet)
            if unassign:
                await Q.api_delete_wallet.execute(conn, address)
    except (asyncpg.ForeignKeyViolationError, asyncpg.ObjectInUseError):
        # A live swap awaiting settlement (or another subsystem's row) still needs this wallet.
        raise ApiError(
            409, "Wallet has a live swap awaiting settlement; retry once it settles", "RESET_FAILED"
        ) from None
    verb = "unassigned" if unassign else "reset"
    return ResetResponse(
        success=True,
        message=f"Wallet {verb} successfully",
        walletAddress=address,
        deleted=deleted,
        duration=round((time.perf_counter() - started) * 1000),
    )


WalletPath = Annotated[str, PathParameter(description="Wallet address")]


@post(
    "/api/v1/wallets/{wallet_address:str}/reset",
    dependencies={"principal": jwt_only(rate_limit=WALLET_OPS)},
    summary="Delete the wallet's positions, history, balances and snapshots in one transaction",
    tags=["Wallets"],
    status_code=200,
    responses=error_responses(400, 401, 404, 409),
)
async def reset_wallet(
    wallet_address: WalletPath, principal: PrincipalDep, pool: PoolDep, data: JSONBody[ConfirmBody | None] = None
) -> ResetResponse:
    _require_confirmation(data, "reset this wallet")
    return await _reset(pool, wallet_address, principal, unassign=False)


@post(
    "/api/v1/wallets/{wallet_address:str}/unassign",
    dependencies={"principal": jwt_only(rate_limit=WALLET_OPS)},
    summary="Reset a live wallet and detach it from its agent",
    tags=["Wallets"],
    status_code=200,
    responses=error_responses(400, 401, 404, 409),
)
async def unassign_wallet(
    wallet_address: WalletPath, principal: PrincipalDep, pool: PoolDep, data: JSONBody[ConfirmBody | None] = None
) -> ResetResponse:
    _require_confirmation(data, "unassign this wallet")
    return await _reset(pool, wallet_address, principal, unassign=True)


class CheckDepositsBody(msgspec.Struct, rename="camel"):
    agent_id: str


class CheckDepositsResponse(msgspec.Struct, rename="camel"):
    success: bool
    deposit_detected: bool
    previous_balance: float
    on_chain_balance: float
    deposit_amount: float | None
    transaction_id: str | None
    message: str


async def read_onchain_sol(settings: Settings, address: str) -> Decimal:
    async with aiohttp.ClientSession() as session:
        rpc = SolanaRpc(session, settings.solana_rpc_url)
        return lamports_to_sol(await rpc.get_balance(address))


@exact
def _deposit_value_usd(amount: Decimal, sol_usd: Decimal | None) -> Decimal:
    return ZERO if sol_usd is None else quantize(amount * sol_usd, SOL_8)


def _deposit_check(
    previous: Decimal, on_chain: Decimal, deposit: Decimal | None, transaction_id: str | None
) -> Response:
    """The check-deposits answer; ``deposit`` is None when nothing new arrived."""
    body = {
        "success": True,
        "depositDetected": deposit is not None,
        "previousBalance": previous,
        "onChainBalance": on_chain,
        "depositAmount": deposit,
        "transactionId": transaction_id,
        "message": "No new deposit detected" if deposit is None else f"Deposit of {deposit} SOL recorded",
    }
    return json_response(body, numbers=True)


@post(
    "/api/v1/wallets/{wallet_address:str}/check-deposits",
    dependencies={"principal": jwt_only(rate_limit=WALLET_OPS)},
    summary="Credit SOL that arrived on a live wallet since the last check (on-chain balance over RPC)",
    description="The increase of the on-chain SOL balance over the recorded one (more than 0.00001 SOL) "
    "becomes a DEPOSIT row and the SOL balance, in one transaction under the agent lock.",
    tags=["Wallets"],
    status_code=200,
    responses=error_responses(400, 401, 404, 409, 502),
)
async def check_deposits(
    wallet_address: WalletPath,
    data: JSONBody[CheckDepositsBody],
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
) -> Response[CheckDepositsResponse]:
    if wallet_address.startswith(SIM_PREFIX):
        raise ApiError(400, "Simulation wallets have no on-chain deposits", "VALIDATION_ERROR")
    agent_id = parse_uuid(data.agent_id, "Invalid agent ID format")
    wallet = await Q.api_get_owned_wallet.fetch_one(pool, wallet_address, principal.user_id, into=WalletRow)
    if wallet is None or wallet.agent_id != agent_id:
        raise ApiError(404, "Wallet not found for this agent", "NOT_FOUND")
    if not wallet.is_live:
        raise ApiError(400, "Only live wallets can check deposits", "VALIDATION_ERROR")
    if await Q.api_wallet_swap_in_flight.fetch_val(pool, wallet_address):
        raise ApiError(409, "A live swap on this wallet is awaiting settlement; check again later", "SWAP_IN_FLIGHT")
    try:
        on_chain = await read_onchain_sol(settings, wallet_address)
    except MarketError as exc:
        log.warning("check-deposits RPC failure", extra={"fields": {"code": exc.code}})
        raise ApiError(502, "Could not read the on-chain balance", "EXTERNAL_SERVICE_ERROR") from None
    async with transaction(pool) as conn:
        await owned_agent(conn, str(agent_id), principal.user_id, lock=True)
        recorded_text = await Q.api_lock_sol_balance.fetch_val(conn, wallet_address, SOL_MINT)
        recorded = ZERO if recorded_text is None else parse_balance(recorded_text)
        increase = on_chain - recorded
        if increase <= DEPOSIT_THRESHOLD_SOL:
            return _deposit_check(recorded, on_chain, None, None)
        price = await sol_usd_price(conn)
        row = await record_and_apply(
            conn,
            {
                "agent_id": agent_id,
                "wallet_address": wallet_address,
                "transaction_type": "DEPOSIT",
                "transaction_value_usd": _deposit_value_usd(increase, price),
                "transaction_time": await conn.fetchval("SELECT now()"),
                "input_mint": SOL_MINT,
                "input_symbol": "SOL",
                "input_amount": increase,
                "input_price": price,
            },
        )
    return _deposit_check(recorded, on_chain, increase, str(row["id"]))


ROUTES = [list_wallets, assign_wallet, reset_wallet, unassign_wallet, check_deposits]
