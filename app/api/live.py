"""Live-trading controls (docs/live-trading.md): kill switch, per-agent limits, wallet reconciliation
reports and drift acknowledgement, and the owner's view of the swap log. JWT only: these are account
controls, not something an API key integration should flip.

Ownership as everywhere: a wallet or agent of another user is a 404. The global kill switch belongs to
the operator (the account whose e-mail is ``ADMIN_EMAIL``); every user can halt their own agents.
Wallet keys never appear here: responses carry public addresses only.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import get, post, put
from litestar.params import FromQuery, JSONBody, PathParameter

from app.api.auth import Principal, jwt_only
from app.api.common import owned_agent, user_email
from app.api.deps import PoolDep, PrincipalDep, SettingsDep
from app.api.errors import ApiError
from app.api.serialization import dec_str, error_responses, iso, json_response, parse_limit
from app.config import Settings
from app.db import Q, transaction
from app.live.keys import get_keystore, normalize_owner
from app.live.swaplog import halt_scopes

WalletAddress = Annotated[str, PathParameter(description="Live wallet address")]
AgentId = Annotated[str, PathParameter(description="Agent id (UUID)")]
REASON_MAX = 500


class KillSwitchBody(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    halted: bool
    scope: Literal["user", "global"] = "user"
    reason: str | None = None


class LimitsBody(msgspec.Struct, rename="camel", kw_only=True):
    daily_loss_limit_sol: Decimal | None = None
    max_open_positions: int | None = None


def _halt(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"halted": False, "reason": None, "updatedAt": None}
    return {"halted": row["halted"], "reason": row["reason"], "updatedAt": iso(row["updated_at"])}


async def _is_operator(pool: asyncpg.Pool, principal: Principal, settings: Settings) -> bool:
    admin = normalize_owner(settings.admin_email)
    email = normalize_owner(await user_email(pool, principal.user_id) or principal.email)
    return admin is not None and email == admin


async def _owned_wallet(pool: asyncpg.Pool, address: str, principal: Principal) -> dict[str, Any]:
    row = await Q.live_wallet_for_user.fetch_one(pool, address, principal.user_id)
    if row is None or row["wallet_type"] != "live":
        raise ApiError(404, "Wallet not found", "NOT_FOUND")
    return row


def _reconciliation(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "walletAddress": row["wallet_address"],
        "agentId": str(row["agent_id"]),
        "status": row["status"],
        "blocked": row["blocked"],
        "checkedAt": iso(row["checked_at"]),
        "acknowledgedAt": iso(row["acknowledged_at"]),
        "acknowledgedDrift": row["acknowledged_drift"],
        "report": row["report"],
    }


async def _status(pool: asyncpg.Pool, principal: Principal, settings: Settings) -> dict[str, Any]:
    scope = f"user:{principal.user_id}"
    halts = {r["scope"]: r for r in await Q.live_get_halts.fetch_all(pool, halt_scopes(principal.user_id))}
    return {
        "liveTradingEnabled": settings.live_trading_enabled,
        "globalHalt": _halt(halts.get("global")),
        "userHalt": _halt(halts.get(scope)),
        "isOperator": await _is_operator(pool, principal, settings),
    }


@get(
    "/api/v1/live/status",
    dependencies={"principal": jwt_only()},
    summary="Live trading switches and the caller's live wallets",
    tags=["Live trading"],
    responses=error_responses(401),
)
async def live_status(principal: PrincipalDep, pool: PoolDep, settings: SettingsDep) -> Any:
    body = await _status(pool, principal, settings)
    keys = get_keystore(settings)
    wallets = []
    for row in await Q.live_wallets_for_user.fetch_all(pool, principal.user_id):
        address = row["wallet_address"]
        unresolved = await Q.live_unresolved_for_wallet.fetch_all(pool, address)
        wallets.append(
            {
                "walletAddress": address,
                "agentId": str(row["agent_id"]),
                "keyLoaded": keys.has(address),
                "unresolvedSwaps": len(unresolved),
                "reconciliation": _reconciliation(await Q.live_get_reconciliation.fetch_one(pool, address)),
            }
        )
    body["wallets"] = wallets
    return json_response(body)


@post(
    "/api/v1/live/kill-switch",
    dependencies={"principal": jwt_only()},
    summary="Halt or resume new live orders (your agents, or globally for the operator)",
    tags=["Live trading"],
    status_code=200,
    responses=error_responses(400, 401, 403),
)
async def set_kill_switch(
    data: JSONBody[KillSwitchBody], principal: PrincipalDep, pool: PoolDep, settings: SettingsDep
) -> Any:
    reason = (data.reason or "").strip()[:REASON_MAX] or None
    if data.scope == "global":
        if not await _is_operator(pool, principal, settings):
            raise ApiError(403, "Only the operator (ADMIN_EMAIL) can switch global live trading", "AUTHORIZATION_ERROR")
        scope = "global"
    else:
        scope = f"user:{principal.user_id}"
    async with transaction(pool) as conn:
        await Q.live_set_halt.fetch_one(conn, scope, data.halted, reason, principal.user_id)
    return json_response(await _status(pool, principal, settings))


@get(
    "/api/v1/live/wallets/{wallet_address:str}/reconciliation",
    dependencies={"principal": jwt_only()},
    summary="Latest on-chain vs ledger comparison of a live wallet",
    tags=["Live trading"],
    responses=error_responses(401, 404),
)
async def get_reconciliation(wallet_address: WalletAddress, principal: PrincipalDep, pool: PoolDep) -> Any:
    await _owned_wallet(pool, wallet_address, principal)
    row = await Q.live_get_reconciliation.fetch_one(pool, wallet_address)
    if row is None:
        raise ApiError(404, "No reconciliation report for this wallet yet", "NOT_FOUND")
    return json_response(_reconciliation(row))


@post(
    "/api/v1/live/wallets/{wallet_address:str}/acknowledge-drift",
    dependencies={"principal": jwt_only()},
    summary="Accept the reported drift as the new baseline and unblock live trading for the wallet",
    tags=["Live trading"],
    status_code=200,
    responses=error_responses(401, 404),
)
async def acknowledge_drift(wallet_address: WalletAddress, principal: PrincipalDep, pool: PoolDep) -> Any:
    await _owned_wallet(pool, wallet_address, principal)
    async with transaction(pool) as conn:
        row = await Q.live_acknowledge_drift.fetch_one(conn, wallet_address, principal.user_id)
    if row is None:
        raise ApiError(404, "No reconciliation report for this wallet yet", "NOT_FOUND")
    return json_response(_reconciliation(row))


@get(
    "/api/v1/live/wallets/{wallet_address:str}/swaps",
    dependencies={"principal": jwt_only()},
    summary="The live swap log of a wallet, newest first",
    tags=["Live trading"],
    responses=error_responses(400, 401, 404),
)
async def list_swaps(
    wallet_address: WalletAddress,
    principal: PrincipalDep,
    pool: PoolDep,
    limit: FromQuery[str | None] = None,
) -> Any:
    await _owned_wallet(pool, wallet_address, principal)
    rows = await Q.live_list_swaps_for_wallet.fetch_all(pool, wallet_address, principal.user_id, parse_limit(limit))
    return json_response(
        [
            {
                "id": str(r["id"]),
                "agentId": str(r["agent_id"]),
                "walletAddress": r["wallet_address"],
                "side": r["side"],
                "swapApi": r["swap_api"],
                "inputMint": r["input_mint"],
                "outputMint": r["output_mint"],
                "inAmount": dec_str(r["in_amount"]),
                "quotedOutAmount": dec_str(r["quoted_out_amount"]),
                "minOutAmount": dec_str(r["min_out_amount"]),
                "signature": r["signature"],
                "lastValidBlockHeight": r["last_valid_block_height"],
                "status": r["status"],
                "error": r["error"],
                "slot": r["slot"],
                "feeLamports": r["fee_lamports"],
                "actualInAmount": dec_str(r["actual_in_amount"]),
                "actualOutAmount": dec_str(r["actual_out_amount"]),
                "solDeltaLamports": dec_str(r["sol_delta_lamports"]),
                "transactionId": str(r["transaction_id"]) if r["transaction_id"] else None,
                "createdAt": iso(r["created_at"]),
                "sentAt": iso(r["sent_at"]),
                "resolvedAt": iso(r["resolved_at"]),
            }
            for r in rows
        ]
    )


def _limits(agent_id: uuid.UUID, row: dict[str, Any] | None, settings: Settings) -> dict[str, Any]:
    daily = row["daily_loss_limit_sol"] if row else None
    cap = row["max_open_positions"] if row else None
    default_daily = settings.live_daily_loss_limit_sol
    return {
        "agentId": str(agent_id),
        "dailyLossLimitSol": dec_str(daily),
        "maxOpenPositions": cap,
        "effective": {
            "dailyLossLimitSol": dec_str(daily if daily is not None else default_daily),
            "maxOpenPositions": cap if cap is not None else settings.live_max_open_positions,
        },
    }


@get(
    "/api/v1/live/agents/{agent_id:str}/limits",
    dependencies={"principal": jwt_only()},
    summary="An agent's live rails (null = server default)",
    tags=["Live trading"],
    responses=error_responses(400, 401, 404),
)
async def get_limits(agent_id: AgentId, principal: PrincipalDep, pool: PoolDep, settings: SettingsDep) -> Any:
    agent = await owned_agent(pool, agent_id, principal.user_id)
    return json_response(_limits(agent.id, await Q.live_get_agent_limits.fetch_one(pool, agent.id), settings))


@put(
    "/api/v1/live/agents/{agent_id:str}/limits",
    dependencies={"principal": jwt_only()},
    summary="Set an agent's daily loss limit (SOL) and open-position cap for live trading",
    tags=["Live trading"],
    responses=error_responses(400, 401, 404),
)
async def put_limits(
    agent_id: AgentId, data: JSONBody[LimitsBody], principal: PrincipalDep, pool: PoolDep, settings: SettingsDep
) -> Any:
    daily, cap = data.daily_loss_limit_sol, data.max_open_positions
    if daily is not None and (not daily.is_finite() or daily <= 0 or daily >= Decimal("1e12")):
        raise ApiError(400, "dailyLossLimitSol must be a positive SOL amount", "VALIDATION_ERROR")
    if cap is not None and not 0 <= cap <= 10_000:
        raise ApiError(400, "maxOpenPositions must be between 0 and 10000", "VALIDATION_ERROR")
    agent = await owned_agent(pool, agent_id, principal.user_id)
    async with transaction(pool) as conn:
        row = await Q.live_upsert_agent_limits.fetch_one(conn, agent.id, daily, cap)
    return json_response(_limits(agent.id, row, settings))


ROUTES = [
    live_status,
    set_kill_switch,
    get_reconciliation,
    acknowledge_drift,
    list_swaps,
    get_limits,
    put_limits,
]
