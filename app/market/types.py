"""Market-data and swap contract shared by the trading core and every market adapter.

Money rules: prices and USD values are ``Decimal`` (never float), on-chain amounts are raw
``int`` units (lamports / token base units). Every observation carries ``observed_at`` (UTC)
so callers can decide what is too old to act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import msgspec

SOL_MINT = "So11111111111111111111111111111111111111112"
SOL_DECIMALS = 9
LAMPORTS_PER_SOL = 10**SOL_DECIMALS


class ErrorCode(StrEnum):
    """§14 swap/price/metadata codes plus transport-level ones (RATE_LIMITED, TIMEOUT, RPC_ERROR)."""

    FETCH_FAILED = "FETCH_FAILED"
    TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"
    NO_SOL_PAIR = "NO_SOL_PAIR"
    INVALID_SOL_PRICE = "INVALID_SOL_PRICE"
    API_KEY_MISSING = "API_KEY_MISSING"
    JUPITER_API_ERROR = "JUPITER_API_ERROR"
    INVALID_RESPONSE = "INVALID_RESPONSE"
    QUOTE_FAILED = "QUOTE_FAILED"
    MISSING_TRANSACTION = "MISSING_TRANSACTION"
    SWAP_FAILED = "SWAP_FAILED"
    MISSING_SIGNATURE = "MISSING_SIGNATURE"
    EXECUTE_FAILED = "EXECUTE_FAILED"
    DECIMALS_FETCH_FAILED = "DECIMALS_FETCH_FAILED"
    RATE_LIMITED = "RATE_LIMITED"
    TIMEOUT = "TIMEOUT"
    RPC_ERROR = "RPC_ERROR"


class MarketError(Exception):
    """Failure of a market adapter.

    ``code`` is one of :class:`ErrorCode` (a ``str``). ``retryable`` tells the caller whether
    repeating the *same operation later* is safe and may succeed (transient transport trouble);
    it is False for anything that could double-submit a swap. ``status`` is the HTTP status when
    there was one; ``details`` carries structured context (e.g. ``signature``/``request_id`` of
    an execute whose outcome is unknown, so the caller can settle it from chain later).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.details = details or {}

    def __repr__(self) -> str:
        return f"MarketError({self.code!r}, {self.message!r}, retryable={self.retryable})"


class RpcError(MarketError):
    """A JSON-RPC ``error`` object returned by a Solana node (code ``RPC_ERROR``)."""

    def __init__(self, rpc_code: int, rpc_message: str, data: Any = None, *, method: str = "") -> None:
        super().__init__(
            ErrorCode.RPC_ERROR,
            f"RPC {method} error {rpc_code}: {rpc_message}",
            details={"rpc_code": rpc_code, "rpc_message": rpc_message, "data": data, "method": method},
        )
        self.rpc_code = rpc_code
        self.rpc_message = rpc_message
        self.data = data


class TokenPrice(msgspec.Struct, frozen=True):
    """Price of one whole token. ``price_sol`` is SOL per whole token."""

    mint: str
    price_sol: Decimal
    price_usd: Decimal | None
    liquidity_usd: Decimal | None
    observed_at: datetime
    source: str
    price_change_24h: Decimal | None = None


class SolUsd(msgspec.Struct, frozen=True):
    """SOL/USD observation. ``observed_at`` is the publisher's time when known (Pyth publish_time)."""

    price: Decimal
    observed_at: datetime
    source: str

    def is_stale(self, now: datetime, max_age: timedelta) -> bool:
        return now - self.observed_at > max_age


class Quote(msgspec.Struct, kw_only=True):
    """A swap quote in raw units.

    ``price_impact`` is a signed FRACTION (``Decimal("-0.0012")`` = 0.12 % worse than mid), parsed
    exactly from Jupiter's ``priceImpactPct`` string (already a fraction) or, when only the numeric
    ``priceImpact`` is present, that value (which Jupiter expresses in percent) divided by 100.
    Compare ``abs(price_impact)`` against ``purchaseLimits.maxPriceImpact`` (§16.31).
    ``payload`` is the raw order JSON, used for fee extraction (§4.2).
    """

    request_id: str
    input_mint: str
    output_mint: str
    in_amount: int
    out_amount: int
    price_impact: Decimal
    slippage_bps: int
    route_plan: list
    transaction: str | None = None
    last_valid_block_height: int | None = None
    payload: dict = msgspec.field(default_factory=dict)
    other_amount_threshold: int | None = None
    swap_type: str = "aggregator"


class ExecuteResult(msgspec.Struct, kw_only=True):
    """Outcome of a submitted swap (Jupiter Ultra execute). Amounts are raw units."""

    signature: str
    status: str
    input_amount_result: int | None
    output_amount_result: int | None
    total_input_amount: int | None
    total_output_amount: int | None
    payload: dict = msgspec.field(default_factory=dict)
    slot: int | None = None


class TokenMetrics(msgspec.Struct, frozen=True):
    """Signal-eligibility metrics (§10.3); any field may be unknown."""

    mcap: Decimal | None = None
    liquidity: Decimal | None = None
    holder_count: int | None = None


@runtime_checkable
class PriceSource(Protocol):
    """Batch token prices. A missing key means "unpriced this tick"; partial failures never raise."""

    name: str

    async def prices(self, mints: Sequence[str]) -> dict[str, TokenPrice]: ...


@runtime_checkable
class SolUsdSource(Protocol):
    """SOL/USD. Returns None until a real observation exists: never an invented default (§16.21)."""

    async def sol_usd(self) -> SolUsd | None: ...


@runtime_checkable
class Quoter(Protocol):
    async def quote(
        self,
        input_mint: str,
        output_mint: str,
        amount_raw: int,
        *,
        taker: str | None = None,
        slippage_bps: int | None = None,
    ) -> Quote: ...


@runtime_checkable
class SwapExecutor(Protocol):
    """Submits a signed transaction for a quote. Never retried automatically (double-submit risk)."""

    async def execute(self, signed_transaction: str, request_id: str) -> ExecuteResult: ...


@runtime_checkable
class LiquidityChecker(Protocol):
    """SOL-quote liquidity (in SOL) of each mint's SOL pairs.

    ``None`` = fetch failed / unknown (never treat as a rug), ``[]`` = no SOL pair at all.
    """

    async def sol_pair_liquidity(self, mints: Sequence[str]) -> dict[str, list[Decimal] | None]: ...


@runtime_checkable
class MetricsSource(Protocol):
    async def token_metrics(self, mint: str) -> TokenMetrics | None: ...


def to_decimal(value: Any) -> Decimal | None:
    """Exact Decimal from a JSON scalar (str/int/Decimal). Floats and bools are refused: a float
    here means the JSON was decoded without ``float_hook=Decimal`` and precision is already lost."""
    if value is None or isinstance(value, bool | float):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and value.strip():
        try:
            d = Decimal(value.strip())
        except ArithmeticError:
            return None
        return d if d.is_finite() else None
    return None


def to_int(value: Any) -> int | None:
    """Raw amount from a JSON string/int (Jupiter sends amounts as strings). Non-integers → None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    d = to_decimal(value)
    if d is None or d != d.to_integral_value():
        return None
    return int(d)
