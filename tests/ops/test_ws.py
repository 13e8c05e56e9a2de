"""WebSocket ``/ws``: the reference's handshake, messages and heartbeats, fed by PostgreSQL NOTIFY."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import msgspec
import pytest
import uvicorn
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient

from app.api.app import create_app
from app.api.auth import ACCESS_TTL, issue_access_token
from app.auth.ratelimit import INVALID_CREDENTIALS
from app.auth.runtime import auth_runtime
from app.auth.tokens import issue_refresh_token
from app.events import publish
from tests.factories import create_agent, create_user

MINT_A = "TokenA1111111111111111111111111111111111111"
MINT_B = "TokenB1111111111111111111111111111111111111"
SOL_MINT = "So11111111111111111111111111111111111111112"


def token_for(settings, user_id: uuid.UUID, **overrides) -> str:
    return issue_access_token(settings.jwt_secret, user_id, "ws@example.com", **overrides)


def refresh_token_for(settings, user_id: uuid.UUID) -> str:
    """A well-formed, correctly signed refresh token: refused only for its type."""
    expires = datetime.now(UTC) + timedelta(days=1)
    return issue_refresh_token(
        settings.jwt_secret, user_id, "ws@example.com", jti=uuid.uuid4(), session_id=uuid.uuid4(), expires_at=expires
    )


async def revoke(pool, jti: uuid.UUID, user_id: uuid.UUID) -> None:
    await pool.execute(
        "INSERT INTO revoked_access_tokens (jti, user_id, expires_at) VALUES ($1, $2, now() + interval '1 hour')",
        jti,
        user_id,
    )


def receive(ws, want: str, timeout: float = 5.0) -> dict:
    """The next message of type ``want``, skipping heartbeats and other interleaved messages."""
    deadline = time.monotonic() + timeout
    while True:
        message = ws.receive_json(timeout=max(deadline - time.monotonic(), 0.01))
        if message["type"] == want:
            return message


def close_code(ws, timeout: float = 5.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    with pytest.raises(WebSocketDisconnect) as caught:
        while True:
            ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
    return caught.value.code, caught.value.detail


async def wait_listening(client) -> None:
    hub = client.app.state.ws_hub
    for _ in range(200):
        if hub.listening.is_set():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("event listener never connected")


@pytest.fixture(scope="module")
async def owner(pool):
    user_id = await create_user(pool)
    agent_id, wallet = await create_agent(pool, user_id, name="ws agent")
    return user_id, agent_id, wallet


async def add_position(pool, agent_id, wallet, mint: str, price: str, amount: str, realized: str = "0") -> uuid.UUID:
    return await pool.fetchval(
        """INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol, purchase_price,
               purchase_amount, total_invested_sol, realized_profit_sol)
           VALUES ($1, $2, $3, 'TOK', $4::numeric, $5::numeric, $4::numeric * $5::numeric, $6) RETURNING id""",
        agent_id,
        wallet,
        mint,
        Decimal(price),
        Decimal(amount),
        Decimal(realized),
    )


async def test_upgrade_refused_without_token_or_agent(client, settings, owner) -> None:
    user_id, agent_id, _ = owner
    for query in ("", f"?agentId={agent_id}", f"?token={token_for(settings, user_id)}"):
        with pytest.raises(WebSocketDisconnect) as caught:
            with await client.websocket_connect(f"/ws{query}"):
                pass
        assert caught.value.code == 4401
        assert caught.value.detail == "Missing token or agentId"


@pytest.mark.parametrize("kind", ["garbage", "refresh", "expired", "wrong-secret"])
async def test_only_valid_access_tokens_connect(client, settings, owner, kind) -> None:
    user_id, agent_id, _ = owner
    token = {
        "garbage": lambda: "not-a-jwt",
        "refresh": lambda: refresh_token_for(settings, user_id),
        "expired": lambda: token_for(settings, user_id, now=datetime.now(UTC) - ACCESS_TTL - timedelta(seconds=5)),
        "wrong-secret": lambda: issue_access_token("x" * 40, user_id, "ws@example.com"),
    }[kind]()
    with pytest.raises(WebSocketDisconnect) as caught:
        with await client.websocket_connect(f"/ws?token={token}&agentId={agent_id}"):
            pass
    assert caught.value.code == 4401


async def test_someone_elses_agent_is_closed_with_1008(client, settings, owner, pool) -> None:
    _, agent_id, _ = owner
    stranger = await create_user(pool)
    for target in (agent_id, uuid.uuid4(), "not-a-uuid"):
        with await client.websocket_connect(f"/ws?token={token_for(settings, stranger)}&agentId={target}") as ws:
            error = ws.receive_json(timeout=5)
            assert error["type"] == "error" and error["data"] == {"message": "Agent not found"}
            code, reason = close_code(ws)
        assert (code, reason) == (1008, "Agent not found")


async def test_connected_then_initial_data_with_enriched_positions(client, settings, owner, pool) -> None:
    user_id, agent_id, wallet = owner
    position_id = await add_position(pool, agent_id, wallet, MINT_A, "0.001", "1000", realized="0.1")
    has_prices = await pool.fetchval("SELECT to_regclass('token_prices') IS NOT NULL")
    if has_prices:
        await pool.execute(
            """INSERT INTO token_prices (mint, price_sol, price_usd, observed_at, source)
               VALUES ($1, 0.0015, 0.225, now(), 'replay'), ($2, 1, 150, now(), 'replay')
               ON CONFLICT (mint) DO UPDATE SET price_sol = EXCLUDED.price_sol, price_usd = EXCLUDED.price_usd""",
            MINT_A,
            SOL_MINT,
        )
    try:
        with await client.websocket_connect(f"/ws?token={token_for(settings, user_id)}&agentId={agent_id}") as ws:
            connected = ws.receive_json(timeout=5)
            assert connected["type"] == "connected"
            assert connected["data"]["agentId"] == str(agent_id) and connected["data"]["timestamp"]
            initial = receive_text(ws, "initial_data")
        raw = msgspec.json.Decoder(float_hook=Decimal).decode(initial)
        (position,) = raw["data"]["positions"]
        assert position["id"] == str(position_id) and position["tokenAddress"] == MINT_A
        assert position["purchasePrice"] == Decimal("0.001") and position["purchaseAmount"] == Decimal("1000")
        assert position["remainingAmount"] == Decimal("1000") and position["dcaCount"] == 0
        if has_prices:
            # value 1.5 SOL, unrealized 0.5, realized 0.1 => P/L 0.6 SOL = 60 % of the 1 SOL cost; x150 USD.
            assert position["currentPrice"] == Decimal("0.0015")
            assert position["positionValueSol"] == Decimal("1.5")
            assert position["profitLossSol"] == Decimal("0.6")
            assert position["profitLossPercent"] == Decimal("60")
            assert position["priceChangePercent"] == Decimal("50")
            assert position["profitLossUsd"] == Decimal("90")
            assert position["purchasePriceUsd"] == Decimal("0.15")
        else:
            assert position["currentPrice"] == Decimal("0.001") and position["profitLossUsd"] is None
    finally:
        await pool.execute("DELETE FROM agent_positions WHERE id = $1", position_id)


async def test_client_messages_ping_subscribe_and_garbage(client, settings, owner) -> None:
    user_id, agent_id, _ = owner
    with await client.websocket_connect(f"/ws?token={token_for(settings, user_id)}&agentId={agent_id}") as ws:
        receive(ws, "initial_data")
        ws.send_json({"type": "ping"})
        pong = receive(ws, "pong")
        assert set(pong) == {"type", "timestamp"}
        ws.send_json({"type": "subscribe"})
        assert receive(ws, "subscribed")["data"] == {"agentId": str(agent_id)}
        ws.send_text("{not json")
        assert receive(ws, "error")["data"] == {"message": "Invalid message format"}
        ws.send_json({"type": "something-else"})
        ws.send_json({"type": "ping"})
        receive(ws, "pong")  # the unknown type was ignored and the socket is still served


async def test_worker_events_fan_out_to_every_socket_of_the_agent(client, settings, owner, pool) -> None:
    user_id, agent_id, _ = owner
    other_user = await create_user(pool)
    other_agent, _ = await create_agent(pool, other_user)
    await wait_listening(client)
    url = f"/ws?token={token_for(settings, user_id)}&agentId={agent_id}"
    with await client.websocket_connect(url) as first, await client.websocket_connect(url) as second:
        with await client.websocket_connect(f"/ws?token={token_for(settings, other_user)}&agentId={other_agent}") as o:
            for ws in (first, second, o):
                receive(ws, "initial_data")
            position = {
                "id": str(uuid.uuid4()),
                "tokenAddress": MINT_B,
                "purchasePrice": Decimal("0.000000123456789012"),
            }
            async with pool.acquire() as conn, conn.transaction():
                await publish(conn, agent_id, "position_created", {"position": position})
            for ws in (first, second):
                update = receive(ws, "position_update")
                assert update["data"]["eventType"] == "position_created"
                assert update["data"]["position"]["id"] == position["id"]
            # Exact decimals survive NOTIFY and the relay (no float on the way).
            exact = {"tokenAddress": MINT_B, "price": Decimal("0.000000123456789012"), "priceUsd": Decimal("0.0000185")}
            await publish(pool, agent_id, "price_update_batch", {"updates": [exact]})
            text = receive_text(first, "price_update_batch")
            (update,) = msgspec.json.Decoder(float_hook=Decimal).decode(text)["data"]["updates"]
            assert update["price"] == Decimal("0.000000123456789012") and update["priceUsd"] == Decimal("0.0000185")
            receive(second, "price_update_batch")
            # Broadcast prices reach only sockets whose agent holds the token.
            broadcast = {"updates": [{"tokenAddress": MINT_B.lower(), "price": 1, "priceUsd": 150}]}
            await publish(pool, "*", "price_update_batch", broadcast)
            assert receive(second, "price_update_batch")["data"]["updates"][0]["price"] == 1
            await publish(pool, agent_id, "position_closed", {"positionId": position["id"], "tokenAddress": MINT_B})
            closed = receive(first, "position_update")["data"]
            assert closed == {"eventType": "position_closed", "positionId": position["id"]}
            await publish(pool, agent_id, "balance_update", {"tokenAddress": SOL_MINT, "balance": "1.5"})
            assert receive(first, "balance_update")["data"]["balance"] == "1.5"
            o.send_json({"type": "ping"})
            # The other agent's socket saw none of it: its next message is the pong.
            assert receive_first_non_ping(o)["type"] == "pong"
            # A rolled-back transaction publishes nothing.
            with pytest.raises(RuntimeError):
                async with pool.acquire() as conn, conn.transaction():
                    await publish(conn, agent_id, "position_updated", {"position": {"id": "rolled-back"}})
                    raise RuntimeError("abort")
            await publish(pool, agent_id, "position_updated", {"position": {"id": "committed"}})
            assert receive(first, "position_update")["data"]["position"]["id"] == "committed"


def receive_text(ws, want: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = ws.receive_text(timeout=max(deadline - time.monotonic(), 0.01))
        if msgspec.json.decode(text)["type"] == want:
            return text


def receive_first_non_ping(ws) -> dict:
    while True:
        message = ws.receive_json(timeout=5)
        if message["type"] != "ping":
            return message


async def test_listener_reconnects_and_resends_snapshots(client, settings, owner, pool) -> None:
    user_id, agent_id, _ = owner
    await wait_listening(client)
    with await client.websocket_connect(f"/ws?token={token_for(settings, user_id)}&agentId={agent_id}") as ws:
        receive(ws, "initial_data")
        killed = await pool.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE application_name = 'nexgent-ws-listen' AND datname = current_database()"""
        )
        assert killed == 1
        receive(ws, "initial_data", timeout=10)  # the resync after reconnecting
        await wait_listening(client)
        await publish(pool, agent_id, "position_updated", {"position": {"id": "after-reconnect"}})
        assert receive(ws, "position_update")["data"]["position"]["id"] == "after-reconnect"


async def test_socket_closes_when_its_token_expires(client, settings, owner) -> None:
    user_id, agent_id, _ = owner
    nearly_expired = token_for(settings, user_id, now=datetime.now(UTC) - ACCESS_TTL + timedelta(seconds=2))
    with await client.websocket_connect(f"/ws?token={nearly_expired}&agentId={agent_id}") as ws:
        receive(ws, "initial_data")
        assert close_code(ws, timeout=10) == (4401, "Token expired")


@pytest.fixture(scope="module")
async def fast_heartbeat_client(settings, database_url) -> AsyncIterator[AsyncTestClient]:
    fast = msgspec.structs.replace(settings, ws_heartbeat_s=0.2, ws_heartbeat_timeout_s=0.7)
    async with AsyncTestClient(app=create_app(fast, database_url)) as test_client:
        yield test_client


async def test_heartbeat_pings_and_drops_silent_clients(fast_heartbeat_client, settings, owner) -> None:
    user_id, agent_id, _ = owner
    url = f"/ws?token={token_for(settings, user_id)}&agentId={agent_id}"
    with await fast_heartbeat_client.websocket_connect(url) as ws:
        receive(ws, "initial_data")
        ping = receive(ws, "ping")
        assert set(ping) == {"type", "timestamp"}
        # Answering keeps the socket alive past the timeout...
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            receive(ws, "ping")
            ws.send_json({"type": "pong"})
        # ...silence closes it.
        assert close_code(ws, timeout=5) == (1000, "Connection timeout")


@pytest.fixture(scope="module")
async def real_server(settings, database_url) -> AsyncIterator[str]:
    config = uvicorn.Config(
        create_app(settings, database_url), host="127.0.0.1", port=0, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 15)


async def test_real_server_answers_401_before_upgrade_and_serves_events(real_server, settings, owner, pool) -> None:
    user_id, agent_id, _ = owner
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(f"ws://{real_server}/ws?agentId={agent_id}")
        assert caught.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(f"ws://{real_server}/ws?token=nope&agentId={agent_id}")
        assert caught.value.status == 401
        url = f"ws://{real_server}/ws?token={token_for(settings, user_id)}&agentId={agent_id}"
        async with session.ws_connect(url) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "connected"
            assert (await ws.receive_json(timeout=5))["type"] == "initial_data"
            for _ in range(100):
                await publish(pool, agent_id, "position_updated", {"position": {"id": "live"}})
                try:
                    message = await ws.receive_json(timeout=0.1)
                except TimeoutError:
                    continue
                assert message["type"] == "position_update"
                break
            else:
                raise AssertionError("no event arrived over the real socket")


async def test_revoked_token_is_refused_and_revocation_closes_an_open_socket(
    client, fast_heartbeat_client, settings, owner, pool
) -> None:
    user_id, agent_id, _ = owner
    logged_out = uuid.uuid4()
    await revoke(pool, logged_out, user_id)
    with pytest.raises(WebSocketDisconnect) as caught:
        with await client.websocket_connect(
            f"/ws?token={token_for(settings, user_id, jti=logged_out)}&agentId={agent_id}"
        ):
            pass
    assert (caught.value.code, caught.value.detail) == (4401, "Token has been revoked")

    live = uuid.uuid4()
    url = f"/ws?token={token_for(settings, user_id, jti=live)}&agentId={agent_id}"
    with await fast_heartbeat_client.websocket_connect(url) as ws:
        receive(ws, "initial_data")
        await revoke(pool, live, user_id)
        deadline = time.monotonic() + 5
        with pytest.raises(WebSocketDisconnect) as caught:
            while time.monotonic() < deadline:  # answer heartbeats so only the revocation can close it
                if ws.receive_json(timeout=5)["type"] == "ping":
                    ws.send_json({"type": "pong"})
        assert (caught.value.code, caught.value.detail) == (4401, "Token has been revoked")


async def test_a_flood_of_forged_tokens_is_cut_off_before_verification(client, settings, owner) -> None:
    """The handshake shares the per-IP invalid-credential budget of the HTTP routes (app.auth.ratelimit)."""
    user_id, agent_id, _ = owner
    limiter = auth_runtime(client.app.state).limiter
    limiter.reset()
    try:
        for _ in range(INVALID_CREDENTIALS.limit):
            with pytest.raises(WebSocketDisconnect) as caught:
                with await client.websocket_connect(f"/ws?token=not-a-jwt&agentId={agent_id}"):
                    pass
            assert caught.value.code == 4401
        with pytest.raises(WebSocketDisconnect) as caught:
            with await client.websocket_connect(f"/ws?token={token_for(settings, user_id)}&agentId={agent_id}"):
                pass
        assert (caught.value.code, caught.value.detail) == (4429, INVALID_CREDENTIALS.message)
    finally:
        limiter.reset()  # the rest of the module connects from the same test client address
    with await client.websocket_connect(f"/ws?token={token_for(settings, user_id)}&agentId={agent_id}") as ws:
        receive(ws, "connected")
