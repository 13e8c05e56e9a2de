"""CSV cell rules: RFC 4180 quoting and spreadsheet-formula neutralisation (api.md §17, §25.4 item 18)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.api.csv import csv_line, format_time, neutralise, parse_timezone


def test_formula_triggers_are_neutralised() -> None:
    for cell in ("=SUM(A1)", "+cmd", "-2+3", "@import", "\tx", "\rx", "=1"):
        assert neutralise(cell).startswith("'"), cell
    for cell in ("plain", "SOL", "-1.25", "+15.00", "10.00%", "0", ""):
        assert neutralise(cell) == cell, cell


def test_quoting() -> None:
    assert csv_line(["a", "b,c", 'say "hi"', "two\nlines", None, 3]) == 'a,"b,c","say ""hi""","two\nlines",,3\n'
    assert csv_line(["=x,y"]) == '"\'=x,y"\n'


def test_time_format_and_zones() -> None:
    moment = datetime(2025, 1, 27, 15, 4, 5, tzinfo=UTC)
    assert format_time(moment, parse_timezone("Asia/Tokyo")) == "Jan 28, 2025 12:04:05 AM"
    assert format_time(moment, parse_timezone("Not/AZone")) == "Jan 27, 2025 03:04:05 PM"
    assert format_time(moment, parse_timezone(None)) == "Jan 27, 2025 03:04:05 PM"
    assert format_time(None, UTC) == ""
