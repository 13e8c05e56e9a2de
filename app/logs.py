"""Logging: JSON lines in production, readable lines in development, with context ids.

``bind(request_id=..., signal_id=...)`` puts ids in a context variable so every log line of a request or a
signal's processing carries them, which lets one trace a signal from intake to each trade.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

_context: contextvars.ContextVar[dict[str, object]] = contextvars.ContextVar("log_context", default={})  # noqa: B039


@contextmanager
def bind(**ids: object) -> Iterator[None]:
    token = _context.set({**_context.get(), **ids})
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = _context.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "ctx", {}),
        }
        extra = getattr(record, "fields", None)
        if extra:
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry, enc_hook=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = {**getattr(record, "ctx", {}), **(getattr(record, "fields", None) or {})}
        suffix = " ".join(f"{k}={v}" for k, v in ctx.items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if suffix:
            line = f"{line} [{suffix}]"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def setup_logging(level: str = "INFO", fmt: str = "auto", production: bool = False) -> None:
    use_json = fmt == "json" or (fmt == "auto" and production)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("asyncio", "aiohttp.access", "uvicorn.access", "yoyo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
