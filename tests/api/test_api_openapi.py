"""The OpenAPI schema documents every resource route with its body and error answers."""

from __future__ import annotations

ROUTES = {
    ("post", "/api/v1/agents"): (True, {"201", "400", "401"}),
    ("get", "/api/v1/agents"): (False, {"200", "401", "403"}),
    ("get", "/api/v1/agents/{agent_id}"): (False, {"200", "400", "404"}),
    ("put", "/api/v1/agents/{agent_id}"): (True, {"200", "400", "404"}),
    ("delete", "/api/v1/agents/{agent_id}"): (False, {"200", "404", "409"}),
    ("get", "/api/v1/agents/{agent_id}/config"): (False, {"200", "404"}),
    ("put", "/api/v1/agents/{agent_id}/config"): (True, {"200", "400", "404"}),
    ("patch", "/api/v1/agents/{agent_id}/config"): (True, {"200", "400", "404"}),
    ("get", "/api/v1/agents/{agent_id}/performance"): (False, {"200", "400", "404"}),
    ("get", "/api/v1/agents/{agent_id}/balance-history"): (False, {"200", "400", "404"}),
    ("get", "/api/v1/agents/{agent_id}/positions"): (False, {"200", "404"}),
    ("get", "/api/v1/wallets/agent/{agent_id}"): (False, {"200", "404"}),
    ("post", "/api/v1/wallets/assign"): (True, {"400", "404", "409"}),
    ("post", "/api/v1/wallets/{wallet_address}/reset"): (True, {"200", "400", "404"}),
    ("post", "/api/v1/wallets/{wallet_address}/unassign"): (True, {"200", "400", "404"}),
    ("post", "/api/v1/wallets/{wallet_address}/check-deposits"): (True, {"200", "404", "409", "502"}),
    ("post", "/api/v1/agent-balances"): (True, {"201", "400", "403", "409"}),
    ("get", "/api/v1/agent-balances"): (False, {"200", "400", "404"}),
    ("get", "/api/v1/agent-balances/{balance_id}"): (False, {"200", "404"}),
    ("put", "/api/v1/agent-balances/{balance_id}"): (True, {"200", "403", "409"}),
    ("delete", "/api/v1/agent-balances/{balance_id}"): (False, {"200", "403", "409"}),
    ("get", "/api/v1/agent-positions/{agent_id}"): (False, {"200", "404"}),
    ("get", "/api/v1/agent-positions/{agent_id}/take-profit-summary"): (False, {"200", "404"}),
    ("post", "/api/v1/agent-transactions"): (True, {"201", "400", "403", "404"}),
    ("get", "/api/v1/agent-transactions"): (False, {"200", "400", "404"}),
    ("get", "/api/v1/agent-transactions/{transaction_id}"): (False, {"200", "404"}),
    ("put", "/api/v1/agent-transactions/{transaction_id}"): (True, {"200", "403", "409"}),
    ("delete", "/api/v1/agent-transactions/{transaction_id}"): (False, {"204", "403", "409"}),
    ("post", "/api/v1/agent-historical-swaps"): (True, {"201", "400", "403"}),
    ("get", "/api/v1/agent-historical-swaps"): (False, {"200", "400"}),
    ("get", "/api/v1/agent-historical-swaps/export"): (False, {"200", "400", "503"}),
    ("get", "/api/v1/agent-historical-swaps/{swap_id}"): (False, {"200", "404"}),
    ("put", "/api/v1/agent-historical-swaps/{swap_id}"): (True, {"200", "403"}),
    ("delete", "/api/v1/agent-historical-swaps/{swap_id}"): (False, {"204", "403"}),
    ("post", "/api/v1/trading-signals"): (True, {"201", "400", "409", "422", "429"}),
    ("get", "/api/v1/trading-signals"): (False, {"200", "400"}),
    ("delete", "/api/v1/trading-signals"): (False, {"200", "400"}),
    ("delete", "/api/v1/trading-signals/all"): (False, {"200", "400"}),
    ("get", "/api/v1/trading-signals/export"): (False, {"200", "400"}),
    ("get", "/api/v1/trading-signals/{signal_id}"): (False, {"200", "400", "404"}),
    ("put", "/api/v1/trading-signals/{signal_id}"): (True, {"200", "400", "404"}),
    ("delete", "/api/v1/trading-signals/{signal_id}"): (False, {"204", "404"}),
    ("get", "/api/v1/price-feeds/sol-usd"): (False, {"200", "503"}),
    ("get", "/api/v1/data-sources/status"): (False, {"200", "429"}),
}


async def test_every_route_is_documented(client) -> None:
    response = await client.get("/api/v1/docs/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    for (method, path), (has_body, statuses) in ROUTES.items():
        operation = schema["paths"].get(path, {}).get(method)
        assert operation is not None, (method, path)
        assert statuses <= set(operation["responses"]), (method, path, sorted(operation["responses"]))
        assert ("requestBody" in operation) is has_body, (method, path)
        assert operation.get("summary"), (method, path)
    signal_body = schema["components"]["schemas"]["SignalCreate"]
    assert {"tokenAddress", "signalType", "signalStrength"} <= set(signal_body["required"])
    position = schema["components"]["schemas"]["PositionOut"]
    assert {"purchase", "current", "profitLoss", "takeProfit", "dca"} <= set(position["properties"])
    create_signal = schema["paths"]["/api/v1/trading-signals"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create_signal["parameters"])
