"""Streaming CSV exports (spec api.md §17) with spreadsheet-formula injection neutralised.

Rows are fetched in keyset batches and written as they arrive, so memory stays constant however many
rows an export has; a pool connection is held only while one batch is read, never while the client
downloads.

Escaping: a field containing ``,``, ``"``, CR or LF is quoted with inner quotes doubled (RFC 4180, as
upstream). Neutralisation (upstream had none, §25.4 item 18): a text cell starting with ``=``, ``+``,
``-``, ``@``, TAB or CR is prefixed with ``'`` so a spreadsheet shows it as text instead of evaluating it.
Cells that are plain numbers we formatted ourselves (``-1.25``, ``+3.10``, ``12.00%``) are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from litestar.response import Stream

from app.api.serialization import assume_utc

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?%?$")
BATCH_SIZE = 1000


def neutralise(cell: str) -> str:
    if cell.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.match(cell):
        return "'" + cell
    return cell


def escape(cell: str) -> str:
    if any(ch in cell for ch in (",", '"', "\r", "\n")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def csv_line(cells: Iterable[Any]) -> str:
    return ",".join(escape(neutralise("" if cell is None else str(cell))) for cell in cells) + "\n"


def parse_timezone(name: str | None) -> tzinfo:
    """The export's display zone; an invalid or absent name means UTC (upstream behaviour)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def format_time(value: datetime | None, zone: tzinfo) -> str:
    """``Mon DD, YYYY hh:mm:ss AM`` in ``zone``."""
    if value is None:
        return ""
    return assume_utc(value).astimezone(zone).strftime("%b %d, %Y %I:%M:%S %p")


def export_filename(prefix: str) -> str:
    return f"{prefix}-{datetime.now(UTC).strftime('%Y-%m-%d')}.csv"


FetchBatch = Callable[[Any, int], Awaitable[Sequence[Any]]]


async def keyset_rows(fetch: FetchBatch, cursor_of: Callable[[Any], Any], start: Any) -> AsyncIterator[Any]:
    """Every row of a keyset-paginated query: ``fetch(after, BATCH_SIZE)`` until a short batch."""
    after = start
    while True:
        batch = await fetch(after, BATCH_SIZE)
        for row in batch:
            yield row
        if len(batch) < BATCH_SIZE:
            return
        after = cursor_of(batch[-1])


def csv_stream(
    filename: str, header: Sequence[str], rows: AsyncIterator[Any], render: Callable[[Any], Sequence[Any]]
) -> Stream:
    async def body() -> AsyncIterator[bytes]:
        yield csv_line(header).encode()
        chunk: list[str] = []
        async for row in rows:
            chunk.append(csv_line(render(row)))
            if len(chunk) >= 200:
                yield "".join(chunk).encode()
                chunk.clear()
        if chunk:
            yield "".join(chunk).encode()

    return Stream(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
