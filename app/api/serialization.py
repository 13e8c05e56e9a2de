"""How resources look on the wire and how query strings are read.

Responses: camelCase keys, timestamps as JS ``Date.toJSON()`` (UTC, milliseconds, ``Z``), money either as
decimal strings (transactions, swaps, balances, balance history) or as exact JSON numbers (positions,
performance) — spec api.md §1.6. Decimals never pass through float on either path.

Queries: parsed strictly (``"12abc"`` is a 400, not 12 as upstream's ``parseInt`` read it); every helper
raises :class:`ApiError` 400 with a message naming the parameter.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, overload

import msgspec
from litestar import Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter

from app.api.errors import ApiError
from app.trading._num import plain
from app.trading.ledger import fits_numeric, quantize

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10**15
INT32_MAX = 2**31 - 1
MAX_IDEMPOTENCY_KEY = 255

_NUMBER_ENCODER = msgspec.json.Encoder(decimal_format="number")
_STRING_ENCODER = msgspec.json.Encoder()
_DIGITS = re.compile(r"^[0-9]+$")
_SIGNED_INT = re.compile(r"^-?[0-9]+$")
_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
# Solana addresses and mints: base58 (no 0, O, I, l), 32–44 characters (api.md §25.4 item 17).
BASE58_ADDRESS = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")


class ErrorBody(msgspec.Struct):
    """The error envelope (app.api.errors); documented on every route."""

    error: str
    code: str | None = None
    details: Any = None


_ERROR_TEXT = {
    400: "Invalid input (bad id, query parameter or body)",
    401: "Missing, invalid or expired credentials",
    403: "API key lacks the scope, or the operation is not allowed on this wallet",
    404: "Not found, or not yours",
    409: "Conflicts with the current state (duplicate, ledger consistency)",
    413: "Body larger than 1 MB",
    422: "Idempotency-Key reused with a different request",
    429: "Rate limit exceeded",
    503: "Dependency unavailable",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI ``responses=`` entries for the error statuses a route can answer. A route that authenticates (401)
    can also answer 429: the per-IP invalid-credential limit (app.auth.ratelimit) covers every such route."""
    if 401 in statuses and 429 not in statuses:
        statuses = (*statuses, 429)
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_ERROR_TEXT.get(status, "Error"))
        for status in statuses
    }


# ---------------------------------------------------------------- rendering


def assume_utc(value: datetime) -> datetime:
    """Naive timestamps (from bodies, queries or the database) are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def now_iso() -> str:
    """The current UTC time as :func:`iso` writes it."""
    return iso(datetime.now(UTC))


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """JS ``Date.toJSON()``: ``2025-01-27T12:00:00.000Z`` (naive values are UTC); None stays None."""
    if value is None:
        return None
    value = assume_utc(value).astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def dec_str(value: Decimal | None) -> str | None:
    """Decimal as the reference renders NUMERIC columns: plain digits, no exponent, no trailing zeros."""
    return None if value is None else plain(value)


def dec_num(value: Decimal | int | None) -> Decimal | None:
    """Decimal to be encoded as a JSON number (normalised so ``1.500000`` is written ``1.5``)."""
    return None if value is None else Decimal(plain(value))


def encode_json(content: Any, *, numbers: bool = False) -> bytes:
    """Decimals as JSON numbers when ``numbers``, else as strings."""
    return (_NUMBER_ENCODER if numbers else _STRING_ENCODER).encode(content)


def json_response(content: Any, status_code: int = 200, *, numbers: bool = False) -> Response:
    """Encode ``content`` ourselves (:func:`encode_json`)."""
    return Response(
        content=encode_json(content, numbers=numbers), status_code=status_code, media_type="application/json"
    )


# ---------------------------------------------------------------- parsing


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, message, "VALIDATION_ERROR", **extra)


IdempotencyHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description=f"Optional retry key (1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters, kept 24 h)",
    ),
]


def checked_idempotency_key(key: str | None) -> str | None:
    """The ``Idempotency-Key`` header checked once for every route that accepts one."""
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise bad_request(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters")
    return key


def parse_uuid(value: str | None, message: str = "Invalid ID format") -> uuid.UUID:
    if value is None:
        raise bad_request(message)
    text = value.strip()
    # uuid.UUID also accepts braces, urn: prefixes and missing hyphens; only the canonical form is an id.
    if len(text) != 36:
        raise bad_request(message)
    try:
        return uuid.UUID(text)
    except ValueError:
        raise bad_request(message) from None


def optional_uuid(value: str | None, message: str) -> uuid.UUID | None:
    return None if value is None or value == "" else parse_uuid(value, message)


def parse_limit(value: str | None) -> int:
    """``limit``: default 100, an integer ≥ 1; values above 1000 are clamped to 1000 as upstream does."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not _DIGITS.match(value) or len(value) > 12:
        raise bad_request("limit must be an integer between 1 and 1000")
    number = int(value)
    if number < 1:
        raise bad_request("limit must be an integer between 1 and 1000")
    return min(number, MAX_LIMIT)


def parse_offset(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not _DIGITS.match(value) or len(value) > 16 or int(value) > MAX_OFFSET:
        raise bad_request("offset must be a non-negative integer")
    return int(value)


def parse_int32(value: str | None, message: str, *, minimum: int = 1) -> int | None:
    """An integer id such as a signal id (PostgreSQL ``integer``); out-of-range values are 400, not 500."""
    if value is None or value == "":
        return None
    text = value.strip()
    if not _SIGNED_INT.match(text) or len(text) > 11:
        raise bad_request(message)
    number = int(text)
    if number < minimum or number > INT32_MAX:
        raise bad_request(message)
    return number


def parse_flag(value: str | None) -> bool | None:
    """Boolean filters as upstream reads them: absent → no filter, ``"true"`` → true, anything else false."""
    if value is None:
        return None
    return value == "true"


def parse_datetime(value: str | None, name: str) -> datetime | None:
    """ISO-8601 date or timestamp; naive values are UTC. Invalid → 400 naming the parameter."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time.min)
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"Invalid {name}: must be an ISO-8601 date or timestamp") from None
    return assume_utc(parsed)


def parse_decimal(value: str | None, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    text = value.strip()
    if not _DECIMAL.match(text) or len(text) > 40:
        raise bad_request(f"Invalid {name}: must be a decimal number")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise bad_request(f"Invalid {name}: must be a decimal number") from None


def parse_timeframe(value: str | None) -> str:
    if value is None or value == "":
        return "all"
    if value not in ("24h", "all"):
        raise bad_request("Invalid timeframe. Must be '24h' or 'all'")
    return value


def body_signal_id(value: int | str | None) -> int | None:
    """A body's ``signalId``: a JSON integer or a numeric string; null or "" means none."""
    if value is None or value == "":
        return None
    return parse_int32(str(value), "signalId must be a positive integer")


Sign = Literal["ge0", "gt0"] | None


def column_decimal(name: str, value: Decimal, precision: int, scale: int, sign: Sign) -> Decimal:
    """A body decimal for a ``numeric(precision, scale)`` column, rounded to the column scale.

    ``sign``: ``"ge0"`` (≥ 0), ``"gt0"`` (> 0) or None (any sign).
    """
    if not value.is_finite() or not fits_numeric(value, precision, scale):
        raise bad_request(f"{name} must be a finite number that fits numeric({precision},{scale})")
    if sign == "ge0" and value < 0:
        raise bad_request(f"{name} must be greater than or equal to 0")
    if sign == "gt0" and value <= 0:
        raise bad_request(f"{name} must be greater than 0")
    return quantize(value, scale)


def trimmed(value: str | None) -> str | None:
    """Trim a filter value; blank means "no filter"."""
    if value is None:
        return None
    text = value.strip()
    return text or None


def is_base58_address(value: str) -> bool:
    return bool(BASE58_ADDRESS.match(value))
