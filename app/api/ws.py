"""Live updates over WebSocket at ``/ws?token=<access JWT>&agentId=<uuid>`` (spec api.md §15, domain §13.4).

Compatible with the reference's client: the same URL, message envelope ``{type, data?, timestamp?}`` and
message types (connected, initial_data, position_update, price_update_batch, ping, pong, subscribed, error),
application-level heartbeats, close code 1008 for an agent that is not the caller's. Deliberate fixes:

- only access tokens connect: refresh tokens, revoked (logged-out) tokens and expired tokens are refused;
  an open socket is closed with 4401 when its token expires or is revoked (checked at every heartbeat);
- several sockets per agent are served (fan-out, e.g. two browser tabs); past ``MAX_SOCKETS_PER_AGENT``
  the oldest is closed with the reference's 1000 "New connection established";
- when ``CORS_ORIGIN`` is set, a browser ``Origin`` outside it is refused;
- frames larger than ``MAX_FRAME_CHARS`` close the socket (1009) instead of the reference's 100 MiB;
- a slow client whose outbox fills up is closed (1013) rather than buffering without bound.

A refused upgrade answers HTTP 401/403 when the server supports the ASGI ``websocket.http.response``
extension (uvicorn does); otherwise it is closed before acceptance with 4401/4403.

Events come from the worker through PostgreSQL NOTIFY on ``nexgent_events`` (app.events): one LISTEN
connection per API process feeds every socket of the event's agent. Event types the worker publishes:

- ``position_created`` / ``position_updated`` with ``data = {"position": OpenPosition}`` (or the position
  object itself) → ``position_update`` ``{eventType, position}``;
- ``position_closed`` with ``data = {"positionId", "tokenAddress"?}`` → ``position_update``;
- ``price_update_batch`` with ``data = {"updates": [{tokenAddress, price, priceUsd}], "timestamp"?}``,
  addressed to one agent, or to every agent with ``agentId = "*"`` (then each socket receives only the
  tokens its agent holds);
- any other type (balance_update, transaction_created, ...) is forwarded as ``{type, data, timestamp}``.

When the LISTEN connection is lost (database restart) it reconnects with backoff and then sends every socket
a fresh ``initial_data``, so clients never keep a view that missed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, WebSocket, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect

from app.api.auth import Principal, principal_from_access_token
from app.api.errors import ApiError
from app.api.serialization import now_iso
from app.auth.ratelimit import guard_credentials
from app.config import Settings
from app.db import Q
from app.events import CHANNEL
from app.logs import bind

log = logging.getLogger(__name__)

MAX_SOCKETS_PER_AGENT = 10
MAX_FRAME_CHARS = 64 * 1024
OUTBOX_SIZE = 1000
LISTEN_PROBE_S = 10.0
SOL_MINT = "So11111111111111111111111111111111111111112"

_encoder = msgspec.json.Encoder(decimal_format="number")
# Decimal for every non-integer number: prices and amounts pass through exactly as the worker wrote them.
_event_decoder = msgspec.json.Decoder(float_hook=Decimal)


def _message(type_: str, data: Any = None) -> str:
    body: dict[str, Any] = {"type": type_}
    if data is not None:
        body["data"] = data
    body["timestamp"] = now_iso()
    return _encoder.encode(body).decode()


def _on_terminated(event: asyncio.Event, _conn: object) -> None:
    event.set()


class _Close(msgspec.Struct, frozen=True):
    code: int
    reason: str


class AgentSocket:
    """One client connection: an outbox drained by a single writer, so sends never interleave."""

    def __init__(self, socket: WebSocket, agent_id: str, token: str, principal: Principal) -> None:
        self.socket = socket
        self.agent_id = agent_id
        self.token = token
        self.principal = principal
        self.outbox: asyncio.Queue[str | _Close] = asyncio.Queue(OUTBOX_SIZE)
        self.last_seen = time.monotonic()
        self.connected_at = time.monotonic()
        self.tokens: set[str] = set()  # lower-cased mints the agent holds, to filter broadcast prices
        self.closing = False

    def send(self, text: str) -> None:
        if self.closing:
            return
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.close(1013, "Client too slow")

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        while not self.outbox.empty():
            self.outbox.get_nowait()
        self.outbox.put_nowait(_Close(code, reason))

    async def write_loop(self) -> None:
        expires_at = self.principal.token_expires_at
        while True:
            timeout = None
            if expires_at is not None:
                timeout = max((expires_at - datetime.now(UTC)).total_seconds(), 0.0)
            try:
                item = await asyncio.wait_for(self.outbox.get(), timeout)
            except TimeoutError:
                self.closing = True
                item = _Close(4401, "Token expired")
            try:
                if isinstance(item, _Close):
                    await self.socket.close(item.code, item.reason)
                    return
                await self.socket.send_text(item)
            except (WebSocketDisconnect, OSError, RuntimeError):
                return


class EventHub:
    """The process's LISTEN connection and every open socket, by agent."""

    def __init__(self, settings: Settings, database_url: str, state: State) -> None:
        self.settings = settings
        self.database_url = database_url
        self.state = state
        self.sockets: dict[str, list[AgentSocket]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.listening = asyncio.Event()
        self._idle = asyncio.Event()  # set while no socket is open
        self._idle.set()

    # --- sockets -------------------------------------------------------------------------------------

    def register(self, conn: AgentSocket) -> None:
        self._idle.clear()
        peers = self.sockets.setdefault(conn.agent_id, [])
        peers.append(conn)
        while len(peers) > MAX_SOCKETS_PER_AGENT:
            peers.pop(0).close(1000, "New connection established")

    def unregister(self, conn: AgentSocket) -> None:
        peers = self.sockets.get(conn.agent_id)
        if peers and conn in peers:
            peers.remove(conn)
            if not peers:
                del self.sockets[conn.agent_id]
        if not self.sockets:
            self._idle.set()

    def all_sockets(self) -> list[AgentSocket]:
        return [conn for peers in self.sockets.values() for conn in peers]

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="ws-listen"),
            asyncio.create_task(self._heartbeat_forever(), name="ws-heartbeat"),
        ]

    async def stop(self) -> None:
        self._stopping.set()
        for conn in self.all_sockets():
            conn.close(1000, "Server shutdown")
        # Let the writers send their close frames; each handler unregisters its socket when done.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 2.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- events from the worker ----------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        backoff = 0.5
        first = True
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.database_url, server_settings={"application_name": "nexgent-ws-listen"}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(functools.partial(_on_terminated, lost))
                await conn.add_listener(CHANNEL, self._on_notify)
                self.listening.set()
                backoff = 0.5
                if not first:
                    log.info("event listener reconnected; resending snapshots")
                    for sock in self.all_sockets():
                        asyncio.create_task(send_initial_data(self.state.pool, sock))  # noqa: RUF006
                first = False
                while not lost.is_set() and not self._stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), LISTEN_PROBE_S)
                    if not lost.is_set():
                        # A half-open TCP connection never reports termination; a probe does.
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), LISTEN_PROBE_S)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("event listener lost", extra={"fields": {"error": type(exc).__name__, "retry_s": backoff}})
            finally:
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, 10.0)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = _event_decoder.decode(payload)
            type_, agent_id, data = event["type"], str(event["agentId"]), event.get("data")
        except (msgspec.DecodeError, KeyError, TypeError):
            log.warning("malformed event ignored", extra={"fields": {"payload": payload[:200]}})
            return
        if agent_id == "*":
            if type_ == "price_update_batch":
                self._broadcast_prices(data or {})
            return
        for conn in self.sockets.get(agent_id, ()):
            text = self._client_message(conn, type_, data)
            if text is not None:
                conn.send(text)

    def _client_message(self, conn: AgentSocket, type_: str, data: Any) -> str | None:
        if type_ in ("position_created", "position_updated"):
            position = data.get("position", data) if isinstance(data, dict) else data
            if isinstance(position, dict) and position.get("tokenAddress"):
                conn.tokens.add(str(position["tokenAddress"]).lower())
            return _message("position_update", {"eventType": type_, "position": position})
        if type_ == "position_closed":
            data = data if isinstance(data, dict) else {}
            if data.get("tokenAddress"):
                conn.tokens.discard(str(data["tokenAddress"]).lower())
            return _message("position_update", {"eventType": "position_closed", "positionId": data.get("positionId")})
        if type_ == "price_update_batch":
            data = data if isinstance(data, dict) else {}
            return _message("price_update_batch", {"updates": data.get("updates", []), "timestamp": now_iso()})
        return _message(type_, data)

    def _broadcast_prices(self, data: dict[str, Any]) -> None:
        updates = data.get("updates") or []
        for conn in self.all_sockets():
            mine = [u for u in updates if isinstance(u, dict) and str(u.get("tokenAddress", "")).lower() in conn.tokens]
            if mine:
                conn.send(_message("price_update_batch", {"updates": mine, "timestamp": now_iso()}))

    # --- heartbeats ----------------------------------------------------------------------------------

    async def _heartbeat_forever(self) -> None:
        interval, timeout = self.settings.ws_heartbeat_s, self.settings.ws_heartbeat_timeout_s
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
            if self._stopping.is_set():
                return
            now = time.monotonic()
            for conn in self.all_sockets():
                if now - conn.last_seen > timeout:
                    conn.close(1000, "Connection timeout")
                    continue
                if not await self._token_still_valid(conn):
                    continue
                conn.send(_encoder.encode({"type": "ping", "timestamp": now_iso()}).decode())

    async def _token_still_valid(self, conn: AgentSocket) -> bool:
        try:
            await principal_from_access_token(self.state, conn.token)
        except ApiError as exc:
            conn.close(4401, exc.error)
            return False
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return True  # the database being away is not the client's fault; check again next beat
        return True


# --- the initial snapshot ------------------------------------------------------------------------------


def _q(value: Decimal | None, places: str) -> Decimal | None:
    return None if value is None else value.quantize(Decimal(places))


def enrich_position(row: dict[str, Any], price_sol: Decimal | None, price_usd: Decimal | None, sol_usd: Decimal | None):
    """The reference's EnrichedPosition (domain §13.4): value and P/L on the remaining amount plus realized
    take-profit profit, percent against the original cost basis. USD figures are null while SOL/USD is
    unknown (never invented); the current price falls back to the purchase price."""
    with localcontext(prec=60):
        purchase_price: Decimal = row["purchase_price"]
        purchase_amount: Decimal = row["purchase_amount"]
        holding: Decimal = row["remaining_amount"] if row["remaining_amount"] is not None else purchase_amount
        current = price_sol if price_sol is not None else purchase_price
        current_usd = price_usd if price_usd is not None else (current * sol_usd if sol_usd is not None else None)
        value_sol = current * holding
        unrealized = value_sol - purchase_price * holding
        pnl_sol = row["realized_profit_sol"] + unrealized
        cost = purchase_price * purchase_amount
        pnl_percent = pnl_sol / cost * 100 if cost else Decimal(0)
        change_percent = (current - purchase_price) / purchase_price * 100 if purchase_price else Decimal(0)
        usd = (lambda v: _q(v * sol_usd, "1e-8")) if sol_usd is not None else (lambda v: None)
        return {
            "id": str(row["id"]),
            "agentId": str(row["agent_id"]),
            "walletAddress": row["wallet_address"],
            "tokenAddress": row["token_address"],
            "tokenSymbol": row["token_symbol"],
            "purchaseTransactionId": _str_or_none(row["purchase_transaction_id"]),
            "purchasePrice": purchase_price,
            "purchaseAmount": purchase_amount,
            "currentPrice": current,
            "currentPriceUsd": _q(current_usd, "1e-18"),
            "purchasePriceUsd": _q(purchase_price * sol_usd, "1e-18") if sol_usd is not None else None,
            "positionValueSol": _q(value_sol, "1e-9"),
            "positionValueUsd": usd(value_sol),
            "profitLossSol": _q(pnl_sol, "1e-9"),
            "profitLossUsd": usd(pnl_sol),
            "profitLossPercent": _q(pnl_percent, "1e-4"),
            "priceChangePercent": _q(change_percent, "1e-4"),
            "currentStopLossPercentage": row["current_stop_loss_percentage"],
            "peakPrice": row["peak_price"],
            "lowestPrice": row["lowest_price"],
            "lastStopLossUpdate": row["last_stop_loss_update"],
            "totalInvestedSol": row["total_invested_sol"],
            "dcaCount": row["dca_count"],
            "lastDcaTime": row["last_dca_time"],
            "dcaTransactionIds": [str(t) for t in row["dca_transaction_ids"] or []],
            "remainingAmount": holding,
            "takeProfitLevelsHit": row["take_profit_levels_hit"],
            "takeProfitTransactionIds": [str(t) for t in row["take_profit_transaction_ids"] or []],
            "lastTakeProfitTime": row["last_take_profit_time"],
            "moonBagActivated": row["moon_bag_activated"],
            "moonBagAmount": row["moon_bag_amount"],
            "realizedProfitSol": row["realized_profit_sol"],
            "tpBatchStartLevel": row["tp_batch_start_level"],
            "totalTakeProfitLevels": row["total_take_profit_levels"],
            "createdAt": row["created_at"],
            "updatedAt": row["updated_at"],
        }


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


async def _latest_prices(conn: asyncpg.Connection, mints: list[str]) -> dict[str, asyncpg.Record]:
    if not await conn.fetchval("SELECT to_regclass('token_prices') IS NOT NULL"):
        return {}
    rows = await conn.fetch(
        "SELECT mint, price_sol, price_usd FROM token_prices WHERE mint = ANY($1::text[])", [*mints, SOL_MINT]
    )
    return {row["mint"]: row for row in rows}


async def load_initial_positions(pool: asyncpg.Pool, agent_id: uuid.UUID) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await Q.ops_agent_positions.fetch_all(conn, agent_id)
        prices = await _latest_prices(conn, sorted({row["token_address"] for row in rows}))
    sol = prices.get(SOL_MINT)
    sol_usd = sol["price_usd"] if sol is not None else None
    enriched = []
    for row in rows:
        price = prices.get(row["token_address"])
        enriched.append(
            enrich_position(
                row,
                price["price_sol"] if price is not None else None,
                price["price_usd"] if price is not None else None,
                sol_usd,
            )
        )
    return enriched


async def send_initial_data(pool: asyncpg.Pool, conn: AgentSocket) -> None:
    try:
        positions = await load_initial_positions(pool, uuid.UUID(conn.agent_id))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("initial data failed", extra={"fields": {"error": type(exc).__name__}})
        conn.send(_message("error", {"message": "Failed to load initial data"}))
        return
    conn.tokens = {p["tokenAddress"].lower() for p in positions}
    conn.send(_message("initial_data", {"positions": positions, "timestamp": now_iso()}))


# --- the endpoint --------------------------------------------------------------------------------------


async def _refuse(socket: WebSocket, status: int, message: str) -> None:
    """Refuse the upgrade: an HTTP answer when the server can send one, else a close before accepting."""
    if "websocket.http.response" in (socket.scope.get("extensions") or {}):
        body = _encoder.encode({"error": message}).decode().encode()
        await socket.send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await socket.send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    await socket.close(4000 + status, message)


def _origin_allowed(socket: WebSocket, settings: Settings) -> bool:
    origin = socket.headers.get("origin")
    allowed = [o.strip() for o in settings.cors_origin.split(",") if o.strip()]
    return not origin or not allowed or "*" in allowed or origin in allowed


async def _owned(pool: asyncpg.Pool, agent_id: str, user_id: uuid.UUID) -> bool:
    try:
        parsed = uuid.UUID(agent_id)
    except ValueError:
        return False
    return await Q.ops_agent_owned_by.fetch_val(pool, parsed, user_id) is not None


async def _read_loop(socket: WebSocket, conn: AgentSocket) -> None:
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None and message.get("bytes") is not None:
            text = message["bytes"].decode("utf-8", "replace")
        if text is None:
            continue
        if len(text) > MAX_FRAME_CHARS:
            conn.close(1009, "Message too big")
            return
        try:
            incoming = msgspec.json.decode(text)
            kind = incoming.get("type") if isinstance(incoming, dict) else None
        except msgspec.DecodeError:
            conn.send(_message("error", {"message": "Invalid message format"}))
            continue
        if kind == "ping":
            conn.last_seen = time.monotonic()
            conn.send(_encoder.encode({"type": "pong", "timestamp": now_iso()}).decode())
        elif kind == "pong":
            conn.last_seen = time.monotonic()
        elif kind == "subscribe":
            conn.send(_message("subscribed", {"agentId": conn.agent_id}))
        else:
            log.debug("ignored client message", extra={"fields": {"type": str(kind)[:40]}})


@websocket("/ws")
async def ws_endpoint(socket: WebSocket) -> None:
    state: State = socket.app.state
    settings: Settings = state.settings
    hub: EventHub = state.ws_hub
    token = socket.query_params.get("token")
    agent_id = socket.query_params.get("agentId")
    if not token or not agent_id:
        await _refuse(socket, 401, "Missing token or agentId")
        return
    if not _origin_allowed(socket, settings):
        await _refuse(socket, 403, "Origin not allowed")
        return
    try:
        principal = await guard_credentials(socket, lambda: principal_from_access_token(state, token))
    except ApiError as exc:
        await _refuse(socket, 429 if exc.status == 429 else 401, exc.error)
        return
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        await _refuse(socket, 503, "Service unavailable")
        return
    await socket.accept()
    with bind(agent_id=agent_id, user_id=str(principal.user_id)):
        try:
            owned = await _owned(state.pool, agent_id, principal.user_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await socket.send_text(_message("error", {"message": "Internal error"}))
            await socket.close(1011, "Internal error")
            return
        if not owned:
            await socket.send_text(_message("error", {"message": "Agent not found"}))
            await socket.close(1008, "Agent not found")
            return
        conn = AgentSocket(socket, str(uuid.UUID(agent_id)), token, principal)
        hub.register(conn)
        writer = asyncio.create_task(conn.write_loop())
        reader = asyncio.create_task(_read_loop(socket, conn))
        try:
            conn.send(_message("connected", {"agentId": conn.agent_id, "timestamp": now_iso()}))
            await send_initial_data(state.pool, conn)
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and not writer.done():
                # The client left, or sent something that closes the socket: flush that close if queued.
                if conn.closing:
                    await asyncio.wait({writer}, timeout=1)
        finally:
            hub.unregister(conn)
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)


def ws_lifespan(settings: Settings, database_url: str):
    """Lifespan manager: the hub starts with the app and closes every socket (1000 "Server shutdown")
    before the pool closes (list it after the pool's lifespan)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        hub = EventHub(settings, database_url, app.state)
        app.state.ws_hub = hub
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    return lifespan


ROUTES = [ws_endpoint]
