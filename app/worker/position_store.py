"""The price monitor's in-process copy of the open positions and their agents' settings.

Loaded once, then kept current by :meth:`PositionStore.sync` at every tick, in one REPEATABLE READ
snapshot:

* id and version of the positions with ``updated_at`` after the start of the previous sync's
  transaction, minus :data:`SYNC_OVERLAP_S` (``updated_at`` is stamped before commit, so a transaction
  still open during that sync commits a version older than it; the overlap re-reads the versions
  written in the last few seconds), then in full only the rows whose version the store does not hold;
* agents likewise (trading config and automated-trading flags), and any agent a position needs;
* ``count(*)`` of the positions: when the copy, after the changes, does not hold exactly that many rows,
  something was deleted (a sale, a withdrawal, a deleted wallet) or inserted beyond the overlap, and the
  ids and versions of every row are compared (:meth:`reconcile`). The monitor also reconciles every
  ``tracking_refresh_s`` as a safety net.

Every writer bumps ``updated_at`` (migration 0042 enforces it with a trigger on both tables), so the
copy misses no change for longer than one tick. It can still be a tick behind a concurrent writer:
that is harmless because the tracking write-back is guarded by ``updated_at`` and every trade re-locks
and re-checks the row it acts on (:mod:`app.worker.execution`).

Quiet bands (:mod:`app.worker.quiet_band`) live here too, per token, sorted by bound, so a tick finds
the positions its price takes out of their band by bisection and a quiet tick touches no position. A
band is dropped whenever its position's row or its agent's settings change.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from app.db import Q
from app.worker.quiet_band import QuietBand

# How far back each incremental read reaches before the newest version seen (commit-order slack).
SYNC_OVERLAP_S = 5.0

Row = dict[str, Any]


@dataclass(slots=True)
class AgentEntry:
    trading_config: Any
    automated_simulation: bool
    automated_live: bool
    updated_at: datetime

    def automated(self, wallet_type: str) -> bool:
        # The flag of the position's own wallet type, not of the agent's current mode (§16.22).
        return self.automated_live if wallet_type == "live" else self.automated_simulation


def _first(item: tuple[Any, uuid.UUID]) -> Any:
    return item[0]


def _insert(bounds: list[tuple[Any, uuid.UUID]], value: Any, position_id: uuid.UUID) -> None:
    if value is not None:
        insort(bounds, (value, position_id))


def _delete(bounds: list[tuple[Any, uuid.UUID]], value: Any, position_id: uuid.UUID) -> None:
    if value is not None:
        del bounds[bisect_left(bounds, (value, position_id))]


@dataclass(slots=True)
class TokenBook:
    """One token's positions and their quiet bands, each bound kept sorted (value, position id)."""

    rows: dict[uuid.UUID, Row] = field(default_factory=dict)
    bands: dict[uuid.UUID, QuietBand] = field(default_factory=dict)
    unbanded: set[uuid.UUID] = field(default_factory=set)
    los: list[tuple[Decimal, uuid.UUID]] = field(default_factory=list)
    his: list[tuple[Decimal, uuid.UUID]] = field(default_factory=list)
    untils: list[tuple[datetime, uuid.UUID]] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows[row["id"]] = row
        self.drop_band(row["id"])

    def remove(self, position_id: uuid.UUID) -> None:
        self.rows.pop(position_id, None)
        self._unindex(position_id)
        self.unbanded.discard(position_id)

    def set_band(self, position_id: uuid.UUID, band: QuietBand) -> None:
        self._unindex(position_id)
        self.bands[position_id] = band
        _insert(self.los, band.lo, position_id)
        _insert(self.his, band.hi, position_id)
        _insert(self.untils, band.until, position_id)
        self.unbanded.discard(position_id)

    def drop_band(self, position_id: uuid.UUID) -> None:
        self._unindex(position_id)
        self.unbanded.add(position_id)

    def _unindex(self, position_id: uuid.UUID) -> None:
        band = self.bands.pop(position_id, None)
        if band is not None:
            _delete(self.los, band.lo, position_id)
            _delete(self.his, band.hi, position_id)
            _delete(self.untils, band.until, position_id)

    def due(self, price: Decimal, now: datetime) -> set[uuid.UUID]:
        """Positions to evaluate at ``price``: those without a band and those the price takes out of theirs."""
        due = set(self.unbanded)
        due.update(pid for _, pid in self.los[bisect_left(self.los, price, key=_first) :])  # price ≤ lo
        due.update(pid for _, pid in self.his[: bisect_right(self.his, price, key=_first)])  # price ≥ hi
        due.update(pid for _, pid in self.untils[: bisect_right(self.untils, now, key=_first)])  # now ≥ until
        return due


class PositionStore:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Row] = {}
        self.tokens: dict[str, TokenBook] = {}
        self.agents: dict[uuid.UUID, AgentEntry] = {}
        self._by_agent: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._read_at: datetime | None = None  # start of the last sync's transaction (database clock)
        self.loaded = False

    def open_counts(self) -> dict[str, int]:
        return {mint: len(book.rows) for mint, book in self.tokens.items() if book.rows}

    # --- applying rows -------------------------------------------------------------------------------

    def upsert(self, row: Row) -> None:
        """Take a position row (a write-back's RETURNING or a sync read); an unchanged version is a no-op."""
        position_id = row["id"]
        current = self.rows.get(position_id)
        if current is not None and current["updated_at"] == row["updated_at"]:
            return
        if current is not None and current["token_address"] != row["token_address"]:
            self.remove(position_id)
        if "wallet_type" not in row and current is not None:
            row["wallet_type"] = current["wallet_type"]
        self.rows[position_id] = row
        self.tokens.setdefault(row["token_address"], TokenBook()).add(row)
        self._by_agent.setdefault(row["agent_id"], set()).add(position_id)

    def remove(self, position_id: uuid.UUID) -> None:
        row = self.rows.pop(position_id, None)
        if row is None:
            return
        book = self.tokens.get(row["token_address"])
        if book is not None:
            book.remove(position_id)
            if not book.rows:
                del self.tokens[row["token_address"]]
        ids = self._by_agent.get(row["agent_id"])
        if ids is not None:
            ids.discard(position_id)
            if not ids:
                del self._by_agent[row["agent_id"]]

    def set_agent(self, record: Any) -> None:
        agent_id = record["id"]
        current = self.agents.get(agent_id)
        if current is not None and current.updated_at == record["updated_at"]:
            return
        self.agents[agent_id] = AgentEntry(
            trading_config=record["trading_config"],
            automated_simulation=record["automated_trading_simulation"],
            automated_live=record["automated_trading_live"],
            updated_at=record["updated_at"],
        )
        # Bands were computed under the old settings.
        for position_id in self._by_agent.get(agent_id, ()):
            row = self.rows[position_id]
            self.tokens[row["token_address"]].drop_band(position_id)

    def set_band(self, row: Row, band: QuietBand | None) -> None:
        book = self.tokens.get(row["token_address"])
        if book is None or book.rows.get(row["id"]) is not row:
            return  # the row was replaced meanwhile: its band would describe the old version
        if band is None:
            book.drop_band(row["id"])
        else:
            book.set_band(row["id"], band)

    # --- reading the database ------------------------------------------------------------------------

    async def sync(self, pool: asyncpg.Pool) -> None:
        """Apply the changes since the last sync (everything on the first call)."""
        since = None if self._read_at is None else self._read_at - timedelta(seconds=SYNC_OVERLAP_S)
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            counted = await Q.monitor_position_count.fetch_one(conn)
            await self._apply_versions(conn, await Q.monitor_position_versions_since.fetch_one(conn, since))
            if counted["total"] != len(self.rows):
                await self._reconcile_positions(conn)
            await self._sync_agents(conn, since)
        self._read_at = counted["read_at"]
        self.loaded = True

    async def reconcile(self, pool: asyncpg.Pool) -> None:
        """Compare every id and version with the database and reload the agents: the periodic safety net."""
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            await self._reconcile_positions(conn)
            await self._sync_agents(conn, None)

    async def _reconcile_positions(self, conn: asyncpg.Connection) -> None:
        versions = await Q.monitor_position_versions.fetch_one(conn)
        present = set(versions["ids"])
        for position_id in [pid for pid in self.rows if pid not in present]:
            self.remove(position_id)
        await self._apply_versions(conn, versions)

    async def _apply_versions(self, conn: asyncpg.Connection, versions: Row) -> None:
        """Read in full the rows whose version the store does not hold (``versions``: parallel arrays)."""
        rows = self.rows
        changed = [
            pid
            for pid, version in zip(versions["ids"], versions["versions"], strict=True)
            if (row := rows.get(pid)) is None or row["updated_at"] != version
        ]
        if changed:
            for row in await Q.monitor_positions_by_ids.fetch_all(conn, changed):
                self.upsert(row)

    async def _sync_agents(self, conn: asyncpg.Connection, since: datetime | None) -> None:
        missing = [agent_id for agent_id in self._by_agent if agent_id not in self.agents]
        for record in await Q.monitor_agents_since.fetch_all(conn, since, missing):
            self.set_agent(record)


__all__ = ["SYNC_OVERLAP_S", "AgentEntry", "PositionStore", "TokenBook"]
