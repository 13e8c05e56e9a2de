"""Named SQL queries loaded once from ``sql/*.sql`` (the aiosql convention).

A file holds one or more queries, each introduced by a ``-- name: <name>`` line; the lines up to the next
``-- name:`` are its SQL (comments included, they are harmless). Parameters are asyncpg's ``$1, $2 …``.
Names are unique across all files, so ``Q.<name>`` says exactly which statement runs::

    agent = await Q.get_agent_for_user.fetch_one(conn, agent_id, user_id, into=AgentRow)

``into`` maps each row to a msgspec struct (by column name); without it a row comes back as a dict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import asyncpg
import msgspec

from app.paths import resource_dir

T = TypeVar("T")
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

Executor = asyncpg.Connection | asyncpg.Pool


class Query:
    __slots__ = ("name", "source", "sql")

    def __init__(self, name: str, sql: str, source: str) -> None:
        self.name, self.sql, self.source = name, sql, source

    def __repr__(self) -> str:
        return f"<Query {self.name} from {self.source}>"

    @overload
    async def fetch_one(self, conn: Executor, *args: Any, into: type[T]) -> T | None: ...
    @overload
    async def fetch_one(self, conn: Executor, *args: Any, into: None = None) -> dict[str, Any] | None: ...
    async def fetch_one(self, conn: Executor, *args: Any, into: type[Any] | None = None) -> Any:
        row = await conn.fetchrow(self.sql, *args)
        if row is None:
            return None
        return _map(row, into)

    @overload
    async def fetch_all(self, conn: Executor, *args: Any, into: type[T]) -> list[T]: ...
    @overload
    async def fetch_all(self, conn: Executor, *args: Any, into: None = None) -> list[dict[str, Any]]: ...
    async def fetch_all(self, conn: Executor, *args: Any, into: type[Any] | None = None) -> list[Any]:
        rows = await conn.fetch(self.sql, *args)
        return [_map(row, into) for row in rows]

    async def fetch_val(self, conn: Executor, *args: Any) -> Any:
        return await conn.fetchval(self.sql, *args)

    async def execute(self, conn: Executor, *args: Any) -> str:
        """Run for effect; returns the command tag (e.g. ``UPDATE 1``)."""
        return await conn.execute(self.sql, *args)

    async def execute_many(self, conn: Executor, args: Sequence[Sequence[Any]]) -> None:
        await conn.executemany(self.sql, args)


def affected(tag: str) -> int:
    """Rows touched according to a command tag such as ``DELETE 3``."""
    tail = tag.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _map(row: asyncpg.Record, into: type[Any] | None) -> Any:
    data = dict(row)
    return data if into is None else msgspec.convert(data, into)


def parse_sql(text: str, source: str) -> Iterator[Query]:
    marks = list(_NAME.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        sql = text[mark.end() : end].strip()
        if not sql:
            raise ValueError(f"{source}: query {mark.group(1)!r} has no SQL")
        yield Query(mark.group(1), sql, source)


class Queries:
    """All named queries of a folder, as attributes."""

    def __init__(self, folder: Path) -> None:
        self._by_name: dict[str, Query] = {}
        for path in sorted(folder.glob("*.sql")):
            for query in parse_sql(path.read_text(), path.name):
                if query.name in self._by_name:
                    other = self._by_name[query.name].source
                    raise ValueError(f"query {query.name!r} defined in both {other} and {path.name}")
                self._by_name[query.name] = query

    def __getattr__(self, name: str) -> Query:
        try:
            return self._by_name[name]
        except KeyError:
            raise AttributeError(f"no SQL query named {name!r} in sql/*.sql") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)


Q = Queries(resource_dir("sql"))
