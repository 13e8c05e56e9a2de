"""Agents: CRUD, config merge and validation, ownership (api.md §6, §7, §22)."""

from __future__ import annotations

import re
import uuid

from tests.api.helpers import api_key_headers, create_agent_via_api, sim_wallet

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_create_agent_makes_a_simulation_wallet(client, pool, user) -> None:
    response = await client.post(
        "/api/v1/agents", json={"name": "  My First Agent  ", "bio": "ignored"}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    agent = response.json()
    assert agent["name"] == "My First Agent"
    assert agent["userId"] == str(user.id)
    assert agent["tradingMode"] == "simulation"
    assert agent["automatedTradingSimulation"] is True and agent["automatedTradingLive"] is True
    assert ISO.match(agent["createdAt"]) and ISO.match(agent["updatedAt"])
    wallet = await sim_wallet(pool, agent["id"])
    assert re.match(r"^sim_[1-9A-HJ-NP-Za-km-z]{30,37}$", wallet) and len(wallet) <= 44
    config = await pool.fetchval("SELECT trading_config FROM agents WHERE id = $1", uuid.UUID(agent["id"]))
    assert config is None


async def test_create_agent_validation(client, user) -> None:
    for body in ({"name": "ab"}, {"name": "x" * 51}, {}, {"name": "Good name", "tradingMode": "paper"}, {"name": 5}):
        response = await client.post("/api/v1/agents", json=body, headers=user.headers)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]
    response = await client.post("/api/v1/agents", content=b"{not json", headers=user.headers)
    assert response.status_code == 400


async def test_api_key_cannot_create_but_can_list_with_agents_scope(client, pool, user) -> None:
    await create_agent_via_api(client, user, "Listed agent")
    key = await api_key_headers(pool, user.id, ["agents"])
    assert (await client.post("/api/v1/agents", json={"name": "Nope nope"}, headers=key)).status_code == 401
    listed = await client.get("/api/v1/agents", headers=key)
    assert listed.status_code == 200 and any(a["name"] == "Listed agent" for a in listed.json())
    wrong_scope = await api_key_headers(pool, user.id, ["signals"])
    assert (await client.get("/api/v1/agents", headers=wrong_scope)).status_code == 403


async def test_list_is_newest_first_and_only_mine(client, user, other) -> None:
    first = await create_agent_via_api(client, user, "First one")
    second = await create_agent_via_api(client, user, "Second one")
    await create_agent_via_api(client, other, "Not yours")
    names = [a["name"] for a in (await client.get("/api/v1/agents", headers=user.headers)).json()]
    assert names == ["Second one", "First one"]
    assert first["id"] != second["id"]


async def test_get_update_delete(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    url = f"/api/v1/agents/{agent['id']}"
    assert (await client.get(url, headers=user.headers)).json()["name"] == "Alpha agent"

    empty = await client.put(url, json={"bio": "x"}, headers=user.headers)
    assert empty.status_code == 400 and "At least one field" in empty.json()["error"]
    updated = await client.put(
        url, json={"name": "Renamed agent", "tradingMode": "live", "automatedTradingLive": False}, headers=user.headers
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["name"], body["tradingMode"], body["automatedTradingLive"]) == ("Renamed agent", "live", False)
    assert body["automatedTradingSimulation"] is True

    deleted = await client.delete(url, headers=user.headers)
    assert deleted.status_code == 200 and deleted.json() == {"success": True, "message": "Agent deleted successfully"}
    assert (await client.get(url, headers=user.headers)).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM agent_wallets WHERE agent_id = $1", uuid.UUID(agent["id"])) == 0


async def test_bad_ids_and_foreign_agents(client, user, other) -> None:
    agent = await create_agent_via_api(client, user)
    bad = await client.get("/api/v1/agents/not-a-uuid", headers=user.headers)
    assert bad.status_code == 400 and bad.json()["error"] == "Invalid agent ID format"
    missing = await client.get(f"/api/v1/agents/{uuid.uuid4()}", headers=user.headers)
    assert missing.status_code == 404 and missing.json()["error"] == "Agent not found"
    url = f"/api/v1/agents/{agent['id']}"
    for method, path, body in (
        ("GET", url, None),
        ("PUT", url, {"name": "Stolen agent"}),
        ("DELETE", url, None),
        ("GET", url + "/config", None),
        ("PUT", url + "/config", {"config": {"signals": {"minScore": 5}}}),
        ("PATCH", url + "/config", {"config": None}),
        ("GET", url + "/performance", None),
        ("GET", url + "/balance-history?walletAddress=x", None),
        ("GET", url + "/positions", None),
    ):
        response = await client.request(method, path, json=body, headers=other.headers)
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get(url, headers=user.headers)).json()["name"] == "Alpha agent"


async def test_config_defaults_merge_and_reset(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    url = f"/api/v1/agents/{agent['id']}/config"
    config = (await client.get(url, headers=user.headers)).json()["config"]
    assert config["purchaseLimits"] == {"minimumAgentBalance": 0.5, "maxPurchasePerToken": 2.0, "maxPriceImpact": 0.05}
    assert config["stopLoss"]["defaultPercentage"] == -32
    assert len(config["takeProfit"]["levels"]) == 4

    first = await client.put(
        url,
        json={"config": {"signals": {"minScore": 3, "tokenList": ["So11111111111111111111111111111111111111112"]}}},
        headers=user.headers,
    )
    assert first.status_code == 200, first.text
    second = await client.patch(
        url,
        json={
            "config": {
                "signals": {"minScore": 5, "marketCapMin": 1000},
                "purchaseLimits": {"maxPurchasePerToken": 0.123456789},
            }
        },
        headers=user.headers,
    )
    assert second.status_code == 200, second.text
    merged = second.json()["config"]
    assert merged["signals"]["minScore"] == 5
    assert merged["signals"]["tokenList"] == ["So11111111111111111111111111111111111111112"]
    assert merged["signals"]["marketCapMin"] == 1000
    assert merged["purchaseLimits"]["maxPurchasePerToken"] == 0.123456789  # exact, not a float approximation
    assert (await client.get(url, headers=user.headers)).json()["config"] == merged

    cleared = await client.put(url, json={"config": {"signals": {"marketCapMin": None}}}, headers=user.headers)
    assert "marketCapMin" not in cleared.json()["config"]["signals"]

    # Unknown keys never reach the database (api.md §7 [FIX]).
    await client.put(
        url, json={"config": {"stopLoss": {"continuousTrailing": {"enabled": True}}, "junk": 1}}, headers=user.headers
    )
    stored = await pool.fetchval("SELECT trading_config FROM agents WHERE id = $1", uuid.UUID(agent["id"]))
    assert "junk" not in stored and "continuousTrailing" not in stored["stopLoss"]

    reset = await client.put(url, json={"config": None}, headers=user.headers)
    assert reset.status_code == 200 and reset.json()["config"]["signals"]["minScore"] == 1
    assert await pool.fetchval("SELECT trading_config FROM agents WHERE id = $1", uuid.UUID(agent["id"])) is None


async def test_config_validation_names_every_bad_field(client, pool, user) -> None:
    agent = await create_agent_via_api(client, user)
    url = f"/api/v1/agents/{agent['id']}/config"
    missing = await client.put(url, json={"notConfig": {}}, headers=user.headers)
    assert missing.status_code == 400 and missing.json()["error"] == "Config is required in request body"
    response = await client.put(
        url,
        json={
            "config": {
                "positionCalculator": {"solBalanceThresholds": {"medium": 20}},
                "dca": {"cooldownSeconds": 5, "maxDCACount": 0},
                "signals": {"minScore": 9},
            }
        },
        headers=user.headers,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Invalid trading configuration"
    details = " | ".join(body["details"])
    for path in (
        "positionCalculator.solBalanceThresholds",
        "dca.cooldownSeconds",
        "dca.maxDCACount",
        "signals.minScore",
    ):
        assert path in details, details
    # Nothing was stored.
    assert await pool.fetchval("SELECT trading_config FROM agents WHERE id = $1", uuid.UUID(agent["id"])) is None
    not_object = await client.put(url, json={"config": [1, 2]}, headers=user.headers)
    assert not_object.status_code == 400 and not_object.json()["error"] == "Invalid trading configuration"
