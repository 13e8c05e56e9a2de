"""The guard layer across the whole API, audited from the mounted app itself:

* every ``/api/v1`` route other than a short public list declares a ``principal`` (``jwt_only`` / ``scoped``);
* each route of the reference's catalogue (api.md §5, §4.2) demands exactly the reference's JWT / key-scope;
* the reference's rate-limited routes (§16) carry their limit;
* cross-user access: user B (JWT, and a ``full_access`` key) against each of user A's resources gets 404
  and changes nothing. The table grows with the API: a mounted route with a path id that is missing from
  ``CROSS_USER`` fails ``test_cross_user_table_covers_every_route_with_an_id`` until it is added.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.auth.ratelimit import (
    DATA_SOURCES,
    LOGIN,
    MANUAL_TRADES,
    REFRESH,
    REGISTER,
    SIGNAL_INGEST,
    WALLET_OPS,
    RateLimit,
)
from tests.auth.helpers import bearer, register
from tests.factories import SOL_MINT, create_agent, deposit_sol

# Routes reachable without a principal, and why.
PUBLIC = {
    ("POST", "/api/v1/auth/register"),  # creates the principal
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),  # the refresh token is the credential
    ("POST", "/api/v1/auth/logout"),  # checks access and/or refresh token itself
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/health/live"),
    ("GET", "/api/v1/health/ready"),
    ("GET", "/api/v1/metrics"),  # METRICS_TOKEN or JWT, checked by the handler (app.api.metrics)
    ("POST", "/api/v1/webhooks/test"),  # non-production only
}
PUBLIC_PREFIXES = ("/api/v1/docs",)

# api.md §5 / §4.2: what each reference route demands ("jwt" = user token only; "key:<scope>").
CATALOGUE: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/auth/me"): "jwt",
    ("POST", "/api/v1/api-keys"): "jwt",
    ("GET", "/api/v1/api-keys"): "jwt",
    ("GET", "/api/v1/api-keys/{}"): "jwt",
    ("DELETE", "/api/v1/api-keys/{}"): "jwt",
    ("POST", "/api/v1/agents"): "jwt",
    ("GET", "/api/v1/agents"): "key:agents",
    ("GET", "/api/v1/agents/{}"): "key:agents",
    ("PUT", "/api/v1/agents/{}"): "jwt",
    ("DELETE", "/api/v1/agents/{}"): "jwt",
    ("GET", "/api/v1/agents/{}/config"): "key:agents",
    ("PUT", "/api/v1/agents/{}/config"): "jwt",
    ("PATCH", "/api/v1/agents/{}/config"): "jwt",
    ("GET", "/api/v1/agents/{}/performance"): "key:agents",
    ("GET", "/api/v1/agents/{}/balance-history"): "key:agents",
    ("GET", "/api/v1/agents/{}/positions"): "key:agents",
    ("GET", "/api/v1/wallets/agent/{}"): "jwt",
    ("POST", "/api/v1/wallets/assign"): "jwt",
    ("POST", "/api/v1/wallets/{}/reset"): "jwt",
    ("POST", "/api/v1/wallets/{}/unassign"): "jwt",
    ("POST", "/api/v1/wallets/{}/check-deposits"): "jwt",
    ("POST", "/api/v1/agent-balances"): "jwt",
    ("GET", "/api/v1/agent-balances"): "key:balances",
    ("GET", "/api/v1/agent-balances/{}"): "key:balances",
    ("PUT", "/api/v1/agent-balances/{}"): "jwt",
    ("DELETE", "/api/v1/agent-balances/{}"): "jwt",
    ("GET", "/api/v1/agent-positions/{}"): "key:positions",
    ("GET", "/api/v1/agent-positions/{}/take-profit-summary"): "key:positions",
    ("POST", "/api/v1/agent-positions/{}/{}/close"): "jwt",
    ("POST", "/api/v1/agent-transactions"): "jwt",
    ("GET", "/api/v1/agent-transactions"): "key:transactions",
    ("GET", "/api/v1/agent-transactions/{}"): "key:transactions",
    ("PUT", "/api/v1/agent-transactions/{}"): "jwt",
    ("DELETE", "/api/v1/agent-transactions/{}"): "jwt",
    ("POST", "/api/v1/agent-historical-swaps"): "jwt",
    ("GET", "/api/v1/agent-historical-swaps"): "key:history",
    ("GET", "/api/v1/agent-historical-swaps/export"): "key:history",
    ("GET", "/api/v1/agent-historical-swaps/{}"): "key:history",
    ("PUT", "/api/v1/agent-historical-swaps/{}"): "jwt",
    ("DELETE", "/api/v1/agent-historical-swaps/{}"): "jwt",
    # Deliberate: ingestion needs `signals:write`, which every `signals` key (the reference's scope) also holds.
    ("POST", "/api/v1/trading-signals"): "key:signals:write",
    ("GET", "/api/v1/trading-signals"): "key:signals",
    ("GET", "/api/v1/trading-signals/export"): "key:signals",
    ("GET", "/api/v1/trading-signals/{}"): "key:signals",
    ("PUT", "/api/v1/trading-signals/{}"): "key:signals",
    ("DELETE", "/api/v1/trading-signals/{}"): "key:signals",
    ("POST", "/api/v1/trades/execute"): "jwt",
    ("GET", "/api/v1/price-feeds/sol-usd"): "jwt",
}

# api.md §16: the reference's rate-limited routes (plus registration, which the reference did not mount).
LIMITED: dict[tuple[str, str], RateLimit] = {
    ("POST", "/api/v1/auth/register"): REGISTER,
    ("POST", "/api/v1/auth/login"): LOGIN,
    ("POST", "/api/v1/auth/refresh"): REFRESH,
    ("POST", "/api/v1/wallets/assign"): WALLET_OPS,
    ("POST", "/api/v1/wallets/{}/reset"): WALLET_OPS,
    ("POST", "/api/v1/wallets/{}/unassign"): WALLET_OPS,
    ("POST", "/api/v1/wallets/{}/check-deposits"): WALLET_OPS,
    ("GET", "/api/v1/data-sources/status"): DATA_SOURCES,
    ("POST", "/api/v1/trading-signals"): SIGNAL_INGEST,
    # Not in the reference (api.md §25.5 #21): manual trades and closes share one budget per user.
    ("POST", "/api/v1/trades/execute"): MANUAL_TRADES,
    ("POST", "/api/v1/agent-positions/{}/{}/close"): MANUAL_TRADES,
}


@dataclass(frozen=True)
class MountedRoute:
    method: str
    path: str  # parameters written as {}
    requirement: str | None  # "jwt", "key:<scope>", or None without a principal
    rate_limits: tuple[RateLimit, ...] = field(default=())


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def mounted_routes(app: Litestar) -> dict[tuple[str, str], MountedRoute]:
    routes: dict[tuple[str, str], MountedRoute] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            methods = sorted(getattr(handler, "http_methods", {"WS"}) - {"OPTIONS", "HEAD"})
            if not methods:
                continue
            provider = handler.resolve_dependencies().get("principal")
            fn = provider.dependency if provider is not None else None
            limits = [getattr(guard, "rate_limit", None) for guard in handler.resolve_guards()]
            limits.append(getattr(fn, "rate_limit", None))
            for method in methods:
                key = (method, _normalise(route.path))
                routes[key] = MountedRoute(
                    method, key[1], getattr(fn, "requirement", None), tuple(lim for lim in limits if lim)
                )
    return routes


@pytest.fixture(scope="module")
def mounted(client: AsyncTestClient) -> dict[tuple[str, str], MountedRoute]:
    return mounted_routes(client.app)


def test_every_api_route_declares_a_principal(mounted) -> None:
    unguarded = sorted(
        f"{method} {path}"
        for (method, path), route in mounted.items()
        if path.startswith("/api/v1")
        and route.requirement is None
        and (method, path) not in PUBLIC
        and not path.startswith(PUBLIC_PREFIXES)
    )
    assert not unguarded, "routes without jwt_only()/scoped() (add it, or list them in PUBLIC):\n" + "\n".join(
        unguarded
    )


def test_mounted_reference_routes_demand_the_reference_credentials(mounted) -> None:
    wrong = {
        f"{method} {path}": (route.requirement, CATALOGUE[(method, path)])
        for (method, path), route in mounted.items()
        if (method, path) in CATALOGUE and route.requirement != CATALOGUE[(method, path)]
    }
    assert not wrong, "(mounted, reference) requirement per route:\n" + "\n".join(f"{k}: {v}" for k, v in wrong.items())


def test_reference_rate_limits_are_applied(mounted) -> None:
    missing = sorted(
        f"{method} {path} needs {limit.name}"
        for (method, path), limit in LIMITED.items()
        if (method, path) in mounted and limit not in mounted[(method, path)].rate_limits
    )
    assert not missing, "use rate_limit_guard(...) or jwt_only/scoped(rate_limit=...):\n" + "\n".join(missing)


# ---------------------------------------------------------------------------------------------------- cross-user


@dataclass
class Victim:
    user_id: uuid.UUID
    access: str
    ids: dict[str, Any]


async def _victim(client: AsyncTestClient, pool) -> Victim:
    """User A with one of every resource: agent, wallet, balance, deposit, swap, position, signal."""
    session = await register(client)
    user_id = uuid.UUID(session["user"]["id"])
    agent_id, wallet = await create_agent(pool, user_id, name="victim agent")
    tx_id = await deposit_sol(pool, agent_id, wallet, "5")
    balance_id = await pool.fetchval("SELECT id FROM agent_balances WHERE wallet_address = $1", wallet)
    now = datetime.now(UTC)
    swap_id = await pool.fetchval(
        """INSERT INTO agent_historical_swaps (agent_id, wallet_address, token_address, token_symbol, amount,
               purchase_price, sale_price, change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time)
           VALUES ($1, $2, 'Tok111111111111111111111111111111111111111', 'TOK', 1, 1, 2, 100, 1, 0.01, $3, $3)
           RETURNING id""",
        agent_id,
        wallet,
        now,
    )
    position_id = await pool.fetchval(
        """INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_price,
               purchase_amount) VALUES ($1, $2, 'Pos111111111111111111111111111111111111111', 'POS', 1, 1) RETURNING id""",
        agent_id,
        wallet,
    )
    signal_id = await pool.fetchval(
        "INSERT INTO trading_signals (token_address, signal_type, signal_strength, user_id) "
        "VALUES ($1, 'BUY', 3, $2) RETURNING id",
        SOL_MINT,
        user_id,
    )
    live_wallet = "Live" + uuid.uuid4().hex  # a live wallet row (no key needed: nothing here signs)
    await pool.execute(
        "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'live')",
        live_wallet,
        agent_id,
    )
    trade_request_id = await pool.fetchval(
        "INSERT INTO trade_requests (user_id, agent_id, kind, params, request_hash) "
        "VALUES ($1, $2, 'buy', $3, 'victim') RETURNING id",
        user_id,
        agent_id,
        {"tokenAddress": SOL_MINT},
    )
    ids = {
        "trade_request": str(trade_request_id),
        "agent": str(agent_id),
        "wallet": wallet,
        "live_wallet": live_wallet,
        "balance": str(balance_id),
        "tx": str(tx_id),
        "swap": str(swap_id),
        "position": str(position_id),
        "signal": signal_id,
    }
    return Victim(user_id, session["accessToken"], ids)


SNAPSHOT = [
    "SELECT row_to_json(a)::text FROM agents a WHERE user_id = $1",
    "SELECT row_to_json(w)::text FROM agent_wallets w JOIN agents a ON a.id = w.agent_id WHERE a.user_id = $1",
    "SELECT row_to_json(b)::text FROM agent_balances b JOIN agents a ON a.id = b.agent_id WHERE a.user_id = $1",
    "SELECT row_to_json(t)::text FROM agent_transactions t JOIN agents a ON a.id = t.agent_id WHERE a.user_id = $1",
    "SELECT row_to_json(s)::text FROM agent_historical_swaps s JOIN agents a ON a.id = s.agent_id WHERE a.user_id = $1",
    "SELECT row_to_json(p)::text FROM agent_positions p JOIN agents a ON a.id = p.agent_id WHERE a.user_id = $1",
    "SELECT row_to_json(s)::text FROM trading_signals s WHERE user_id = $1",
    "SELECT row_to_json(k)::text FROM api_keys k WHERE user_id = $1",
    "SELECT row_to_json(r)::text FROM trade_requests r WHERE user_id = $1",
]


async def _snapshot(pool, user_id: uuid.UUID) -> list[list[str]]:
    return [sorted(r[0] for r in await pool.fetch(sql, user_id)) for sql in SNAPSHOT]


def _body(ids: dict[str, Any], kind: str) -> dict[str, Any] | None:
    bodies = {
        "agent_update": {"name": "taken over"},
        "config": {"config": {}},
        "assign": {"agentId": ids["agent"], "walletType": "simulation"},
        "balance_create": {"agentId": ids["agent"], "tokenAddress": SOL_MINT, "tokenSymbol": "SOL", "balance": "1"},
        "balance_update": {"balance": "999"},
        "tx_create": {
            "agentId": ids["agent"],
            "transactionType": "DEPOSIT",
            "transactionValueUsd": "1",
            "transactionTime": "2024-01-01T00:00:00Z",
            "inputMint": SOL_MINT,
            "inputSymbol": "SOL",
            "inputAmount": "1",
            "inputPrice": "1",
        },
        "tx_update": {"transactionValueUsd": "999"},
        "swap_create": {
            "agentId": ids["agent"],
            "tokenAddress": SOL_MINT,
            "tokenSymbol": "SOL",
            "amount": "1",
            "purchasePrice": "1",
            "salePrice": "1",
            "changePercent": "0",
            "profitLossUsd": "0",
            "profitLossSol": "0",
            "purchaseTime": "2024-01-01T00:00:00Z",
            "saleTime": "2024-01-01T00:00:00Z",
        },
        "swap_update": {"amount": "999"},
        "signal_update": {"signalStrength": 5},
        "trade": {"agentId": ids["agent"], "tokenAddress": SOL_MINT},
        "confirm": {"confirm": True},
        "check_deposits": {"agentId": ids["agent"]},
        "live_limits": {"maxOpenPositions": 3},
        "withdraw": {"tokenAddress": SOL_MINT, "amount": "1", "destinationAddress": "11111111111111111111111111111111"},
    }
    return bodies.get(kind)


# (method, path template, body kind). Path templates use the victim's ids; {} in the normalised path.
CROSS_USER: list[tuple[str, str, str | None]] = [
    ("GET", "/api/v1/agents/{agent}", None),
    ("PUT", "/api/v1/agents/{agent}", "agent_update"),
    ("DELETE", "/api/v1/agents/{agent}", None),
    ("GET", "/api/v1/agents/{agent}/config", None),
    ("PUT", "/api/v1/agents/{agent}/config", "config"),
    ("PATCH", "/api/v1/agents/{agent}/config", "config"),
    ("GET", "/api/v1/agents/{agent}/performance", None),
    ("GET", "/api/v1/agents/{agent}/balance-history?walletAddress={wallet}", None),
    ("GET", "/api/v1/agents/{agent}/positions", None),
    ("GET", "/api/v1/wallets/agent/{agent}", None),
    ("POST", "/api/v1/wallets/assign", "assign"),
    ("POST", "/api/v1/wallets/{wallet}/reset", "confirm"),
    ("POST", "/api/v1/wallets/{wallet}/unassign", "confirm"),
    ("POST", "/api/v1/wallets/{live_wallet}/reset", "confirm"),
    ("POST", "/api/v1/wallets/{live_wallet}/unassign", "confirm"),
    ("POST", "/api/v1/wallets/{live_wallet}/check-deposits", "check_deposits"),
    ("POST", "/api/v1/wallets/{wallet}/withdraw", "withdraw"),
    ("POST", "/api/v1/wallets/{live_wallet}/withdraw", "withdraw"),
    ("GET", "/api/v1/agent-balances?agentId={agent}", None),
    ("POST", "/api/v1/agent-balances", "balance_create"),
    ("GET", "/api/v1/agent-balances/{balance}", None),
    ("PUT", "/api/v1/agent-balances/{balance}", "balance_update"),
    ("DELETE", "/api/v1/agent-balances/{balance}", None),
    ("GET", "/api/v1/agent-positions/{agent}", None),
    ("GET", "/api/v1/agent-positions/{agent}/take-profit-summary", None),
    ("POST", "/api/v1/agent-positions/{agent}/{position}/close", None),
    ("GET", "/api/v1/agent-transactions?agentId={agent}", None),
    ("POST", "/api/v1/agent-transactions", "tx_create"),
    ("GET", "/api/v1/agent-transactions/{tx}", None),
    ("PUT", "/api/v1/agent-transactions/{tx}", "tx_update"),
    ("DELETE", "/api/v1/agent-transactions/{tx}", None),
    ("GET", "/api/v1/agent-historical-swaps?agentId={agent}", None),
    ("GET", "/api/v1/agent-historical-swaps/export?agentId={agent}&currency=SOL", None),
    ("POST", "/api/v1/agent-historical-swaps", "swap_create"),
    ("GET", "/api/v1/agent-historical-swaps/{swap}", None),
    ("PUT", "/api/v1/agent-historical-swaps/{swap}", "swap_update"),
    ("DELETE", "/api/v1/agent-historical-swaps/{swap}", None),
    ("GET", "/api/v1/trading-signals/{signal}", None),
    ("PUT", "/api/v1/trading-signals/{signal}", "signal_update"),
    ("DELETE", "/api/v1/trading-signals/{signal}", None),
    ("POST", "/api/v1/trades/execute", "trade"),
    ("GET", "/api/v1/trades/requests/{trade_request}", None),
    ("GET", "/api/v1/live/agents/{agent}/limits", None),
    ("PUT", "/api/v1/live/agents/{agent}/limits", "live_limits"),
    ("GET", "/api/v1/live/wallets/{live_wallet}/reconciliation", None),
    ("POST", "/api/v1/live/wallets/{live_wallet}/acknowledge-drift", None),
    ("GET", "/api/v1/live/wallets/{live_wallet}/swaps", None),
    ("GET", "/api/v1/api-keys/{api_key}", None),
    ("DELETE", "/api/v1/api-keys/{api_key}", None),
]
# GETs that legitimately answer non-2xx to the owner of this fixture (e.g. nothing recorded yet).
OWNER_READ_NOT_2XX = {"/api/v1/live/wallets/{live_wallet}/reconciliation"}
# Mounted routes with a path id that name nothing of another user (so have no cross-user case).
NO_FOREIGN_RESOURCE: set[tuple[str, str]] = set()


def _template_key(method: str, template: str) -> tuple[str, str]:
    return method, _normalise(template.split("?", 1)[0])


def test_cross_user_table_covers_every_route_with_an_id(mounted) -> None:
    covered = {_template_key(method, template) for method, template, _ in CROSS_USER}
    missing = sorted(
        f"{method} {path}"
        for (method, path) in mounted
        if path.startswith("/api/v1")
        and "{}" in path
        and not path.startswith(PUBLIC_PREFIXES)
        and (method, path) not in covered
        and (method, path) not in NO_FOREIGN_RESOURCE
    )
    assert not missing, "add these routes to CROSS_USER in tests/auth/test_auth_route_audit.py:\n" + "\n".join(missing)


@pytest.mark.parametrize("credential", ["jwt", "full_access_key"])
async def test_another_users_resources_answer_404_and_stay_unchanged(
    client: AsyncTestClient, pool, mounted, credential: str
) -> None:
    victim = await _victim(client, pool)
    victim_key = await client.post(
        "/api/v1/api-keys", json={"name": "victim", "scopes": ["agents"]}, headers=bearer(victim.access)
    )
    ids = {**victim.ids, "api_key": victim_key.json()["id"]}
    attacker = await register(client)
    if credential == "jwt":
        headers = bearer(attacker["accessToken"])
    else:
        created = await client.post(
            "/api/v1/api-keys",
            json={"name": "attacker", "scopes": ["full_access"]},
            headers=bearer(attacker["accessToken"]),
        )
        headers = {"X-API-Key": created.json()["key"]}
    before = await _snapshot(pool, victim.user_id)
    await _owner_reads_succeed(client, victim.access, ids, mounted)

    leaks = []
    exercised = 0
    for method, template, body_kind in CROSS_USER:
        key = _template_key(method, template)
        if key not in mounted:
            continue
        if credential != "jwt" and mounted[key].requirement == "jwt":
            continue  # keys never pass jwt_only; covered by the API-key tests
        exercised += 1
        url = template.format(**ids)
        body = _body(ids, body_kind) if body_kind else None
        response = await client.request(method, url, headers=headers, json=body)
        victim_ids = {str(v) for v in ids.values()}
        if response.status_code != 404 or any(
            f'"{v}"' in response.text for v in victim_ids if v not in (ids["wallet"], ids["live_wallet"])
        ):
            leaks.append(f"{method} {url} -> {response.status_code} {response.text[:160]}")
    assert exercised > 0
    assert not leaks, "every foreign resource must answer 404 without its data:\n" + "\n".join(leaks)
    assert await _snapshot(pool, victim.user_id) == before


async def _owner_reads_succeed(client: AsyncTestClient, access: str, ids: dict[str, Any], mounted) -> None:
    """Control: the same GETs by the owner succeed, so the attacker's 404s come from ownership, not bad paths."""
    failures = []
    for method, template, _ in CROSS_USER:
        if method != "GET" or _template_key(method, template) not in mounted or template in OWNER_READ_NOT_2XX:
            continue
        response = await client.get(template.format(**ids), headers=bearer(access))
        if not 200 <= response.status_code < 300:
            failures.append(f"GET {template} -> {response.status_code} {response.text[:160]}")
    assert not failures, "owner reads must succeed:\n" + "\n".join(failures)
