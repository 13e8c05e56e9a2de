"""Decimal plumbing shared by the trading modules.

Every public function of ``app.trading`` runs its arithmetic inside :data:`CTX` (via :func:`exact`)
so results never depend on whatever decimal context the calling thread happens to have: the
default context keeps only 28 significant digits, which is not enough for a price with 18
decimals multiplied by an amount with 18 decimals.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    getcontext,
    localcontext,
    setcontext,
)
from typing import Any, ParamSpec, TypeVar

CTX = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)

P = ParamSpec("P")
R = TypeVar("R")


_working = threading.local()


def _working_context() -> Context:
    """This thread's copy of :data:`CTX` (flags are per context; threads never share one)."""
    ctx = getattr(_working, "ctx", None)
    if ctx is None:
        ctx = _working.ctx = CTX.copy()
    return ctx


def exact(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` in :data:`CTX`. Nested calls (a trading function calling another) find the context
    already in place and skip the switch: a buy makes dozens of them on the worker's hot path."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        current = getcontext()
        ours = _working_context()
        if current is ours:
            return fn(*args, **kwargs)
        setcontext(ours)
        try:
            return fn(*args, **kwargs)
        finally:
            setcontext(current)

    return wrapper


def to_decimal(value: Any) -> Decimal | None:
    """Exact Decimal from a JSON scalar; None when it is not a finite number.

    Floats go through ``repr`` so ``0.05`` becomes ``Decimal('0.05')``, the number the JSON
    text held, not the binary approximation. Bools are not numbers here.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str) and value.strip():
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return d if d.is_finite() else None


def plain(value: Decimal | int) -> str:
    """Shortest plain rendering (``2.0`` → ``2``, ``1E+2`` → ``100``), as JavaScript prints numbers
    inside upstream's error messages."""
    d = Decimal(value)
    if d.is_zero():
        return "0"
    return format(d.normalize(CTX), "f")


def seconds(delta: timedelta) -> Decimal:
    # timedelta.total_seconds() is a float; rebuild it exactly from its integer parts.
    return Decimal(delta.days * 86_400 + delta.seconds) + Decimal(delta.microseconds).scaleb(-6)


def seconds_between(later: datetime, earlier: datetime) -> Decimal:
    return seconds(later - earlier)


def gain_percent(price: Decimal, reference: Decimal) -> Decimal:
    """``(price − reference) / reference × 100``; callers guard ``reference > 0``."""
    with localcontext(CTX):
        return (price - reference) / reference * HUNDRED
