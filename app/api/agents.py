"""Agents: CRUD, trading config, performance, balance history and the positions alias (api.md §6–§8)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from app.api.auth import Principal, jwt_only, scoped
from app.api.common import AgentRow, current_prices, owned_agent
from app.api.deps import PoolDep, PrincipalDep
from app.api.errors import ApiError
from app.api.portfolio import ClosedStats, performance_summary
from app.api.positions import PositionOut, position_rows, positions_response
from app.api.serialization import (
    dec_num,
    dec_str,
    error_responses,
    iso,
    json_response,
    parse_timeframe,
)
from app.db import Q, transaction
from app.trading._num import ZERO
from app.trading.config import InvalidConfig, apply_config_patch, load_config
from app.trading.ledger import parse_balance
from app.trading.units import SOL_MINT

NAME_MIN, NAME_MAX = 3, 50
_EXACT_JSON = msgspec.json.Decoder(float_hook=Decimal)
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rest = divmod(number, 58)
        out.append(_B58[rest])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def new_simulation_address() -> str:
    """``sim_`` + base58 of 27 random bytes: at most 41 characters, never a valid chain address."""
    return ("sim_" + b58encode(secrets.token_bytes(27)))[:44]


class AgentResponse(msgspec.Struct, rename="camel"):
    id: str
    user_id: str
    name: str
    trading_mode: str
    automated_trading_simulation: bool
    automated_trading_live: bool
    created_at: str
    updated_at: str


def agent_response(agent: AgentRow) -> AgentResponse:
    return AgentResponse(
        id=str(agent.id),
        user_id=str(agent.user_id),
        name=agent.name,
        trading_mode=agent.trading_mode,
        automated_trading_simulation=agent.automated_trading_simulation,
        automated_trading_live=agent.automated_trading_live,
        created_at=iso(agent.created_at) or "",
        updated_at=iso(agent.updated_at) or "",
    )


def field_error(field: str, message: str) -> ApiError:
    return ApiError(
        400,
        "Validation failed",
        "VALIDATION_ERROR",
        details={"errors": [{"field": field, "message": message}]},
        success=False,
    )


def clean_name(name: str) -> str:
    text = name.strip()
    if len(text) < NAME_MIN:
        raise field_error("name", f"Agent name must be at least {NAME_MIN} characters")
    if len(text) > NAME_MAX:
        raise field_error("name", f"Agent name must be at most {NAME_MAX} characters")
    return text


TradingMode = Literal["simulation", "live"]


class CreateAgentBody(msgspec.Struct, rename="camel", kw_only=True):
    name: str
    trading_mode: TradingMode = "simulation"


class UpdateAgentBody(msgspec.Struct, rename="camel", kw_only=True):
    name: str | None = None
    trading_mode: TradingMode | None = None
    automated_trading_simulation: bool | None = None
    automated_trading_live: bool | None = None


class DeleteResult(msgspec.Struct):
    success: bool
    message: str


AgentId = Annotated[str, PathParameter(description="Agent id (UUID)")]
Timeframe = Annotated[str | None, QueryParameter(description="'24h' or 'all' (default)")]


@post(
    "/api/v1/agents",
    dependencies={"principal": jwt_only()},
    summary="Create an agent and its simulation wallet",
    tags=["Agents"],
    status_code=201,
    responses=error_responses(400, 401),
)
async def create_agent(data: JSONBody[CreateAgentBody], principal: PrincipalDep, pool: PoolDep) -> AgentResponse:
    name = clean_name(data.name)
    async with transaction(pool) as conn:
        agent = await Q.api_insert_agent.fetch_one(conn, principal.user_id, name, data.trading_mode, into=AgentRow)
        assert agent is not None
        await Q.api_insert_wallet.execute(conn, new_simulation_address(), agent.id, "simulation")
    return agent_response(agent)


@get(
    "/api/v1/agents",
    dependencies={"principal": scoped("agents")},
    summary="The caller's agents, newest first",
    tags=["Agents"],
    responses=error_responses(401, 403),
)
async def list_agents(principal: PrincipalDep, pool: PoolDep) -> list[AgentResponse]:
    agents = await Q.api_list_agents.fetch_all(pool, principal.user_id, into=AgentRow)
    return [agent_response(agent) for agent in agents]


@get(
    "/api/v1/agents/{agent_id:str}",
    dependencies={"principal": scoped("agents")},
    summary="One agent",
    tags=["Agents"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_agent(agent_id: AgentId, principal: PrincipalDep, pool: PoolDep) -> AgentResponse:
    return agent_response(await owned_agent(pool, agent_id, principal.user_id))


@put(
    "/api/v1/agents/{agent_id:str}",
    dependencies={"principal": jwt_only()},
    summary="Rename an agent, switch its trading mode or its automated-trading flags",
    tags=["Agents"],
    responses=error_responses(400, 401, 404),
)
async def update_agent(
    agent_id: AgentId, data: JSONBody[UpdateAgentBody], principal: PrincipalDep, pool: PoolDep
) -> AgentResponse:
    if all(value is None for value in msgspec.structs.astuple(data)):
        raise ApiError(
            400,
            "At least one field (name, tradingMode, automatedTradingSimulation, automatedTradingLive) must be provided",
            "VALIDATION_ERROR",
        )
    name = None if data.name is None else clean_name(data.name)
    async with transaction(pool) as conn:
        agent = await owned_agent(conn, agent_id, principal.user_id, lock=True)
        updated = await Q.api_update_agent.fetch_one(
            conn,
            agent.id,
            principal.user_id,
            name,
            data.trading_mode,
            data.automated_trading_simulation,
            data.automated_trading_live,
            into=AgentRow,
        )
    assert updated is not None
    return agent_response(updated)


@delete(
    "/api/v1/agents/{agent_id:str}",
    dependencies={"principal": jwt_only()},
    summary="Delete an agent with its wallets and all their history",
    tags=["Agents"],
    status_code=200,
    responses=error_responses(400, 401, 404, 409),
)
async def delete_agent(agent_id: AgentId, principal: PrincipalDep, pool: PoolDep) -> DeleteResult:
    try:
        async with transaction(pool) as conn:
            agent = await owned_agent(conn, agent_id, principal.user_id, lock=True)
            await Q.api_delete_agent_positions.execute(conn, agent.id)
            await Q.api_delete_agent.execute(conn, agent.id, principal.user_id)
    except asyncpg.ObjectInUseError:
        # The live-trading guard: a wallet of the agent has a swap awaiting settlement from chain.
        raise ApiError(
            409, "A live swap of this agent is awaiting settlement; retry once it settles", "CONFLICT"
        ) from None
    return DeleteResult(success=True, message="Agent deleted successfully")


# ---------------------------------------------------------------- trading config


class ConfigBody(msgspec.Struct):
    """``config``: a partial AgentTradingConfig deep-merged onto the current one, or null to reset."""

    config: Any = msgspec.UNSET  # object or null; validated by app.trading.config, not by the decoder


def invalid_config(exc: InvalidConfig) -> ApiError:
    return ApiError(400, "Invalid trading configuration", "INVALID_CONFIG", details=exc.errors)


@get(
    "/api/v1/agents/{agent_id:str}/config",
    dependencies={"principal": scoped("agents")},
    summary="The agent's effective trading configuration (stored values merged over the defaults)",
    tags=["Agents"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_config(agent_id: AgentId, principal: PrincipalDep, pool: PoolDep) -> Response[ConfigBody]:
    agent = await owned_agent(pool, agent_id, principal.user_id)
    try:
        config = load_config(agent.trading_config)
    except InvalidConfig as exc:
        raise invalid_config(exc) from None
    return json_response({"config": config}, numbers=True)


async def _config_patch(request: Request) -> dict[str, Any] | None:
    """The ``config`` member, decoded with exact decimals (the handler's ``data`` only documents it)."""
    try:
        body = _EXACT_JSON.decode(await request.body())
    except msgspec.DecodeError:
        raise ApiError(400, "Malformed JSON body", "VALIDATION_ERROR") from None
    if not isinstance(body, dict) or "config" not in body:
        raise ApiError(400, "Config is required in request body", "VALIDATION_ERROR")
    return body["config"]


async def _update_config(request: Request, agent_id: str, principal: Principal, pool: asyncpg.Pool) -> Response:
    config_patch = await _config_patch(request)
    async with transaction(pool) as conn:
        agent = await owned_agent(conn, agent_id, principal.user_id, lock=True)
        try:
            config, stored = apply_config_patch(agent.trading_config, config_patch)
        except InvalidConfig as exc:
            raise invalid_config(exc) from None
        await Q.api_set_agent_config.execute(conn, agent.id, stored)
    return json_response({"config": config}, numbers=True)


_CONFIG_WRITE = {
    "dependencies": {"principal": jwt_only()},
    "summary": "Merge a partial trading configuration into the agent's (null resets to the defaults)",
    "description": "Nested objects merge key by key, arrays and scalars replace; null clears an optional "
    "signal-metric bound. The merged result is validated: 400 lists every bad field as 'path: message'.",
    "tags": ["Agents"],
    "responses": error_responses(400, 401, 404),
}


@put("/api/v1/agents/{agent_id:str}/config", **_CONFIG_WRITE)
async def put_config(
    agent_id: AgentId, data: JSONBody[ConfigBody], request: Request, principal: PrincipalDep, pool: PoolDep
) -> Response[ConfigBody]:
    return await _update_config(request, agent_id, principal, pool)


@patch("/api/v1/agents/{agent_id:str}/config", **_CONFIG_WRITE)
async def patch_config(
    agent_id: AgentId, data: JSONBody[ConfigBody], request: Request, principal: PrincipalDep, pool: PoolDep
) -> Response[ConfigBody]:
    return await _update_config(request, agent_id, principal, pool)


# ---------------------------------------------------------------- analytics


class PerformanceResponse(msgspec.Struct, rename="camel"):
    portfolio_balance_sol: float
    total_profit_loss_sol: float
    realized_profit_loss_sol: float
    unrealized_profit_loss_sol: float
    average_return: float
    win_rate: float
    total_closed_trades: int
    total_open_positions: int


@get(
    "/api/v1/agents/{agent_id:str}/performance",
    dependencies={"principal": scoped("agents")},
    summary="Portfolio value, realised/unrealised P/L, win rate and trade counts",
    description="Figures are exact decimals written as JSON numbers. timeframe=24h narrows only the closed "
    "trades (sale time within 24 h). Open positions are valued at the latest price the worker stored, or at "
    "their purchase price when none is stored yet.",
    tags=["Agents"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_performance(
    agent_id: AgentId,
    principal: PrincipalDep,
    pool: PoolDep,
    timeframe: Timeframe = None,
    wallet_address: Annotated[str | None, QueryParameter(name="walletAddress", description="Only this wallet")] = None,
) -> Response[PerformanceResponse]:
    window = parse_timeframe(timeframe)
    wallet = wallet_address or None
    async with pool.acquire() as conn:
        agent = await owned_agent(conn, agent_id, principal.user_id)
        since = await conn.fetchval("SELECT now() - interval '24 hours'") if window == "24h" else None
        stats = await Q.api_closed_trade_stats.fetch_one(conn, agent.id, wallet, since)
        rows = await position_rows(conn, agent.id, wallet)
        prices = await current_prices(conn, rows)
        sol_rows = await Q.api_sol_balances.fetch_all(conn, agent.id, wallet, SOL_MINT)
    assert stats is not None
    sol_balance = sum((parse_balance(row["balance"]) for row in sol_rows), ZERO)
    closed = ClosedStats(stats["closed_trades"], stats["realized_sol"], stats["wins"], stats["change_sum"])
    summary = performance_summary(rows, prices, sol_balance, closed)
    return json_response({k: dec_num(v) if isinstance(v, Decimal) else v for k, v in summary.items()}, numbers=True)


class SnapshotOut(
    msgspec.Struct,
    rename={
        "portfolio_balance_sol": "portfolioBalanceSol",
        "sol_balance": "solBalance",
        "positions_value_sol": "positionsValueSol",
        "unrealized_pnl_sol": "unrealizedPnLSol",
    },
):
    timestamp: str
    portfolio_balance_sol: str
    sol_balance: str
    positions_value_sol: str
    unrealized_pnl_sol: str


class BalanceHistoryResponse(msgspec.Struct, rename="camel"):
    agent_id: str
    timeframe: str
    snapshots: list[SnapshotOut]


@get(
    "/api/v1/agents/{agent_id:str}/balance-history",
    dependencies={"principal": scoped("agents")},
    summary="Hourly balance snapshots of one wallet (24h) or one per day at 00:00 UTC (all)",
    tags=["Agents"],
    responses=error_responses(400, 401, 403, 404),
)
async def balance_history(
    agent_id: AgentId,
    principal: PrincipalDep,
    pool: PoolDep,
    timeframe: Timeframe = None,
    wallet_address: Annotated[str | None, QueryParameter(name="walletAddress", description="Required")] = None,
) -> BalanceHistoryResponse:
    window = parse_timeframe(timeframe)
    async with pool.acquire() as conn:
        agent = await owned_agent(conn, agent_id, principal.user_id)
        if not wallet_address:
            raise ApiError(400, "walletAddress query parameter is required", "VALIDATION_ERROR")
        if await Q.api_get_agent_wallet.fetch_one(conn, wallet_address, agent.id) is None:
            raise ApiError(404, "Wallet not found or access denied", "NOT_FOUND")
        query = Q.api_balance_history_24h if window == "24h" else Q.api_balance_history_daily
        rows = await query.fetch_all(conn, agent.id, wallet_address)
    snapshots = [
        SnapshotOut(
            timestamp=iso(row["snapshot_timestamp"]) or "",
            portfolio_balance_sol=dec_str(row["portfolio_balance_sol"]) or "0",
            sol_balance=dec_str(row["sol_balance"]) or "0",
            positions_value_sol=dec_str(row["positions_value_sol"]) or "0",
            unrealized_pnl_sol=dec_str(row["unrealized_pnl_sol"]) or "0",
        )
        for row in rows
    ]
    return BalanceHistoryResponse(agent_id=str(agent.id), timeframe=window, snapshots=snapshots)


@get(
    "/api/v1/agents/{agent_id:str}/positions",
    dependencies={"principal": scoped("agents")},
    summary="Open positions of an agent (same as /agent-positions/{agentId}, with the agents scope)",
    tags=["Agents"],
    responses=error_responses(400, 401, 403, 404),
)
async def agent_positions(
    agent_id: AgentId,
    principal: PrincipalDep,
    pool: PoolDep,
    wallet_address: Annotated[str | None, QueryParameter(name="walletAddress", description="Only this wallet")] = None,
) -> Response[list[PositionOut]]:
    agent = await owned_agent(pool, agent_id, principal.user_id)
    return await positions_response(pool, agent, wallet_address)


ROUTES = [
    create_agent,
    list_agents,
    get_agent,
    update_agent,
    delete_agent,
    get_config,
    put_config,
    patch_config,
    get_performance,
    balance_history,
    agent_positions,
]
