"""Open positions (api.md §11): the enriched list and the take-profit summary.

Prices come from ``token_prices`` (written by the worker's price monitor); positions are valued with
:mod:`app.api.portfolio`. All figures are JSON numbers (§1.6). The close route belongs to the trading
worker's module (``app.api.trades``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Response, get
from litestar.params import PathParameter, QueryParameter

from app.api.auth import scoped
from app.api.common import AgentRow, current_prices, owned_agent, sol_usd_price
from app.api.deps import PoolDep, PrincipalDep
from app.api.errors import ApiError
from app.api.portfolio import percent, price18, sol, usd, usd_price, value_position
from app.api.serialization import dec_num, error_responses, iso, json_response, parse_flag
from app.db import Q


# Response shapes for the OpenAPI schema. The handlers encode Decimals as exact JSON numbers themselves,
# hence ``float`` here: it only tells clients "JSON number".
class _Shape(msgspec.Struct, rename="camel"):
    pass


class PurchaseTransactionOut(_Shape):
    id: str
    hash: str | None
    time: str | None


class PurchaseOut(_Shape):
    price_native: float
    price_usd: float | None
    amount: float
    transaction: PurchaseTransactionOut


class CurrentOut(_Shape):
    price_native: float
    price_usd: float | None
    value_native: float
    value_usd: float | None


class ProfitLossOut(_Shape):
    native: float
    usd: float | None
    percent: float
    price_change_percent: float


class StopLossOut(_Shape):
    percentage: float
    peak_price: float


class TakeProfitOut(_Shape):
    levels_hit: int
    total_levels: int | None
    tp_batch_start_level: int
    remaining_amount: float
    original_amount: float
    sold_percent: float
    moon_bag_activated: bool
    moon_bag_amount: float | None
    last_take_profit_time: str | None
    transaction_ids: list[str]


class DcaOut(_Shape):
    count: int
    total_invested_sol: float
    last_dca_time: str | None


class PositionOut(_Shape):
    id: str
    agent_id: str
    wallet_address: str
    token_address: str
    token_symbol: str
    purchase: PurchaseOut
    current: CurrentOut
    profit_loss: ProfitLossOut
    stop_loss: StopLossOut
    take_profit: TakeProfitOut
    dca: DcaOut
    created_at: str
    updated_at: str


class TakeProfitPositionOut(_Shape):
    id: str
    token_symbol: str
    levels_hit: int
    remaining_percent: float
    moon_bag_activated: bool
    last_take_profit_time: str | None


class TakeProfitSummaryOut(_Shape, omit_defaults=True):
    total_positions: int
    positions_with_take_profit_hit: int
    active_moon_bags: int
    total_levels_hit: int
    positions: list[TakeProfitPositionOut] | None = None  # only with includePositions=true


async def position_rows(conn: Any, agent_id: Any, wallet_address: str | None) -> list[dict[str, Any]]:
    return await Q.api_open_positions.fetch_all(conn, agent_id, wallet_address)


def position_view(row: dict[str, Any], price: Decimal | None, sol_usd: Decimal | None) -> dict[str, Any]:
    valuation = value_position(row, price)
    purchase_price: Decimal = row["purchase_price"]
    purchase_amount: Decimal = row["purchase_amount"]
    sold = purchase_amount - valuation.holding
    pnl = valuation.profit_loss
    return {
        "id": str(row["id"]),
        "agentId": str(row["agent_id"]),
        "walletAddress": row["wallet_address"],
        "tokenAddress": row["token_address"],
        "tokenSymbol": row["token_symbol"],
        "purchase": {
            "priceNative": dec_num(purchase_price),
            "priceUsd": dec_num(usd_price(purchase_price, sol_usd)),
            "amount": dec_num(purchase_amount),
            "transaction": {
                "id": str(row["purchase_transaction_id"]),
                "hash": row["purchase_transaction_hash"],
                "time": iso(row["purchase_transaction_time"]),
            },
        },
        "current": {
            "priceNative": dec_num(price18(valuation.price)),
            "priceUsd": dec_num(usd_price(valuation.price, sol_usd)),
            "valueNative": dec_num(sol(valuation.value)),
            "valueUsd": dec_num(usd(valuation.value, sol_usd)),
        },
        "profitLoss": {
            "native": dec_num(sol(pnl)),
            "usd": dec_num(usd(pnl, sol_usd)),
            "percent": dec_num(percent(pnl, valuation.invested)),
            "priceChangePercent": dec_num(percent(valuation.price - purchase_price, purchase_price)),
        },
        "stopLoss": {
            "percentage": dec_num(row["current_stop_loss_percentage"] or 0),
            "peakPrice": dec_num(row["peak_price"] or 0),
        },
        "takeProfit": {
            "levelsHit": row["take_profit_levels_hit"],
            "totalLevels": row["total_take_profit_levels"],
            "tpBatchStartLevel": row["tp_batch_start_level"],
            "remainingAmount": dec_num(valuation.holding),
            "originalAmount": dec_num(purchase_amount),
            "soldPercent": dec_num(percent(sold, purchase_amount)),
            "moonBagActivated": row["moon_bag_activated"],
            "moonBagAmount": dec_num(row["moon_bag_amount"]),
            "lastTakeProfitTime": iso(row["last_take_profit_time"]),
            "transactionIds": [str(t) for t in row["take_profit_transaction_ids"] or []],
        },
        "dca": {
            "count": row["dca_count"],
            "totalInvestedSol": dec_num(row["total_invested_sol"]),
            "lastDcaTime": iso(row["last_dca_time"]),
        },
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


async def positions_response(pool: asyncpg.Pool, agent: AgentRow, wallet_address: str | None) -> Response:
    """Shared by ``/agent-positions/{agentId}`` and ``/agents/{id}/positions``."""
    async with pool.acquire() as conn:
        if wallet_address:
            if await Q.api_get_agent_wallet.fetch_one(conn, wallet_address, agent.id) is None:
                raise ApiError(404, "Wallet not found or does not belong to agent", "NOT_FOUND")
        rows = [
            row for row in await position_rows(conn, agent.id, wallet_address or None) if row["purchase_transaction_id"]
        ]
        prices = await current_prices(conn, rows)
        sol_usd = await sol_usd_price(conn)
    views = [position_view(row, prices.get(row["token_address"]), sol_usd) for row in rows]
    return json_response(views, numbers=True)


AgentIdPath = Annotated[str, PathParameter(description="Agent id (UUID)")]
WalletQuery = Annotated[
    str | None, QueryParameter(name="walletAddress", description="Only positions held by this wallet of the agent")
]


@get(
    "/api/v1/agent-positions/{agent_id:str}",
    dependencies={"principal": scoped("positions")},
    summary="Open positions of an agent, valued at the latest stored prices",
    tags=["Positions"],
    responses=error_responses(400, 401, 403, 404),
)
async def list_positions(
    agent_id: AgentIdPath, principal: PrincipalDep, pool: PoolDep, wallet_address: WalletQuery = None
) -> Response[list[PositionOut]]:
    agent = await owned_agent(pool, agent_id, principal.user_id)
    return await positions_response(pool, agent, wallet_address)


@get(
    "/api/v1/agent-positions/{agent_id:str}/take-profit-summary",
    dependencies={"principal": scoped("positions")},
    summary="Take-profit progress over the agent's open positions",
    tags=["Positions"],
    responses=error_responses(400, 401, 403, 404),
)
async def take_profit_summary(
    agent_id: AgentIdPath,
    principal: PrincipalDep,
    pool: PoolDep,
    include_positions: Annotated[
        str | None, QueryParameter(name="includePositions", description="'true' adds the per-position list")
    ] = None,
) -> Response[TakeProfitSummaryOut]:
    agent = await owned_agent(pool, agent_id, principal.user_id)
    rows = await position_rows(pool, agent.id, None)
    summary: dict[str, Any] = {
        "totalPositions": len(rows),
        "positionsWithTakeProfitHit": sum(1 for r in rows if r["take_profit_levels_hit"] > 0),
        "activeMoonBags": sum(1 for r in rows if r["moon_bag_activated"]),
        "totalLevelsHit": sum(r["take_profit_levels_hit"] for r in rows),
    }
    if parse_flag(include_positions):
        summary["positions"] = [
            {
                "id": str(r["id"]),
                "tokenSymbol": r["token_symbol"],
                "levelsHit": r["take_profit_levels_hit"],
                "remainingPercent": dec_num(
                    percent(
                        r["purchase_amount"] if r["remaining_amount"] is None else r["remaining_amount"],
                        r["purchase_amount"],
                    )
                ),
                "moonBagActivated": r["moon_bag_activated"],
                "lastTakeProfitTime": iso(r["last_take_profit_time"]),
            }
            for r in rows
        ]
    return json_response(summary, numbers=True)


ROUTES = [take_profit_summary, list_positions]
