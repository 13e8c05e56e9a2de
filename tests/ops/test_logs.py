"""Structured logs: every request's JSON log line carries its request id (the thread to pull when tracing)."""

from __future__ import annotations

import io
import logging

import msgspec

from app.logs import JsonFormatter, _ContextFilter, bind


def _capture(logger_name: str) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_ContextFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler, stream


async def test_request_log_line_is_json_with_the_request_id(client) -> None:
    handler, stream = _capture("app.http")
    try:
        response = await client.get("/api/v1/health/live", headers={"x-request-id": "trace-me-42"})
        generated = await client.get("/api/v1/health/live")
    finally:
        logging.getLogger("app.http").removeHandler(handler)
    assert response.headers["x-request-id"] == "trace-me-42"
    lines = [msgspec.json.decode(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "trace-me-42"]
    assert len(mine) == 1
    assert mine[0]["msg"] == "request completed"
    assert mine[0]["path"] == "/api/v1/health/live" and mine[0]["status"] == 200 and mine[0]["level"] == "info"
    assert any(line.get("request_id") == generated.headers["x-request-id"] for line in lines)


def test_bound_signal_ids_reach_every_line_of_the_block() -> None:
    handler, stream = _capture("app.worker.test")
    log = logging.getLogger("app.worker.test")
    try:
        with bind(signal_id=17, agent_id="a-1"):
            log.info("trade executed", extra={"fields": {"transaction_id": "t-9"}})
        log.info("after")
    finally:
        log.removeHandler(handler)
    inside, after = (msgspec.json.decode(line) for line in stream.getvalue().splitlines())
    assert inside["signal_id"] == 17 and inside["agent_id"] == "a-1" and inside["transaction_id"] == "t-9"
    assert "signal_id" not in after
