from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from app.db import Q
from app.db.queries import Queries, affected, parse_sql


def test_every_sql_file_parses_into_uniquely_named_queries() -> None:
    assert "ping" in Q
    assert Q.ping.source == "health.sql"
    with pytest.raises(AttributeError, match="no SQL query named"):
        _ = Q.no_such_query


def test_duplicate_names_across_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: thing\nSELECT 1;\n")
    (tmp_path / "b.sql").write_text("-- name: thing\nSELECT 2;\n")
    with pytest.raises(ValueError, match=r"defined in both a\.sql and b\.sql"):
        Queries(tmp_path)


def test_parse_keeps_each_query_body() -> None:
    text = "-- name: one\n-- a comment\nSELECT 1;\n\n-- name: two\nSELECT $1::int;\n"
    assert [(q.name, q.sql) for q in parse_sql(text, "x.sql")] == [
        ("one", "-- a comment\nSELECT 1;"),
        ("two", "SELECT $1::int;"),
    ]


def test_affected_reads_command_tags() -> None:
    assert affected("UPDATE 3") == 1 * 3
    assert affected("INSERT 0 1") == 1
    assert affected("SELECT") == 0


class Beat(msgspec.Struct):
    age_s: float | None
    live_workers: int


async def test_rows_map_to_structs_and_jsonb_round_trips(pool) -> None:
    row = await Q.freshest_worker_heartbeat.fetch_one(pool, 30.0, into=Beat)
    assert row == Beat(age_s=None, live_workers=0)
    value = await pool.fetchval("SELECT $1::jsonb", {"a": [1, "x"], "b": None})
    assert value == {"a": [1, "x"], "b": None}
