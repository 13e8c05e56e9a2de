"""Jupiter adapters: Ultra order/execute, Metis swap v1, Price v3 and Tokens v2 (spec §10.1-10.3,
peers §5.1-5.5).

All calls send ``x-api-key`` (Nexgent's mixed Bearer/lite-api usage is not copied; mints are never
lower-cased). Ultra ``execute`` is sent exactly once: Jupiter submits the transaction itself, so a
retry after a timeout could land the swap twice (§16.14). Any doubt is surfaced as a non-retryable
``EXECUTE_FAILED`` carrying the transaction signature so the caller can settle from chain.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
from solders.transaction import VersionedTransaction

from app.market.budget import UpstreamBudget
from app.market.http import NO_RETRY, JsonHttp, RetryPolicy, Sleep, outcome_unknown, timeout
from app.market.types import (
    SOL_MINT,
    ErrorCode,
    ExecuteResult,
    MarketError,
    Quote,
    SolUsdSource,
    TokenMetrics,
    TokenPrice,
    to_decimal,
    to_int,
)

log = logging.getLogger(__name__)

ULTRA_URL = "https://api.jup.ag/ultra"
SWAP_V1_URL = "https://api.jup.ag/swap/v1"
PRICE_V3_URL = "https://api.jup.ag/price/v3"
TOKENS_V2_URL = "https://api.jup.ag/tokens/v2"
PRICE_BATCH = 50


def _utcnow() -> datetime:
    return datetime.now(UTC)


def price_impact_fraction(payload: dict[str, Any]) -> Decimal:
    """Signed price impact as an exact fraction.

    ``priceImpactPct`` (string) is already a fraction despite its name ("-0.0012" = 0.12 %);
    ``priceImpact`` (number) is in percent, so it is scaled by 10^-2 (an exact exponent shift).
    Unparseable or absent ⇒ 0, as upstream does.
    """
    pct = to_decimal(payload.get("priceImpactPct"))
    if pct is not None:
        return pct
    percent = to_decimal(payload.get("priceImpact"))
    return percent.scaleb(-2) if percent is not None else Decimal(0)


def parse_order(payload: Any, *, taker: str | None = None) -> Quote:
    """Validate an Ultra order response (§10.1 rules, in upstream order) into a :class:`Quote`."""
    if not isinstance(payload, dict):
        raise MarketError(ErrorCode.INVALID_RESPONSE, f"Jupiter order: expected object, got {type(payload)}")
    err_code = payload.get("errorCode")
    err_text = payload.get("errorMessage") or payload.get("error")
    if err_code not in (None, 0, "0"):
        raise MarketError(
            ErrorCode.JUPITER_API_ERROR,
            f"Jupiter API error: {err_text or err_code}",
            details={"errorCode": err_code},
        )
    request_id = payload.get("requestId")
    if not request_id or not isinstance(request_id, str):
        raise MarketError(ErrorCode.INVALID_RESPONSE, "Jupiter order: missing requestId")
    transaction = payload.get("transaction") or None
    if taker and transaction is None and err_text:
        raise MarketError(ErrorCode.JUPITER_API_ERROR, f"Jupiter API error: {err_text}")
    in_amount, out_amount = to_int(payload.get("inAmount")), to_int(payload.get("outAmount"))
    if not in_amount or not out_amount or in_amount < 0 or out_amount < 0:
        raise MarketError(
            ErrorCode.INVALID_RESPONSE,
            f"Jupiter order: invalid amounts in={payload.get('inAmount')!r} out={payload.get('outAmount')!r}",
        )
    return Quote(
        request_id=request_id,
        input_mint=str(payload.get("inputMint", "")),
        output_mint=str(payload.get("outputMint", "")),
        in_amount=in_amount,
        out_amount=out_amount,
        price_impact=price_impact_fraction(payload),
        slippage_bps=to_int(payload.get("slippageBps")) or 0,
        route_plan=list(payload.get("routePlan") or []),
        transaction=transaction,
        last_valid_block_height=to_int(payload.get("lastValidBlockHeight")),
        payload=payload,
        other_amount_threshold=to_int(payload.get("otherAmountThreshold")),
        swap_type=str(payload.get("swapType") or "aggregator"),
    )


def transaction_signature(signed_transaction: str) -> str | None:
    """First signature of a base64 versioned transaction: the id to look the swap up on chain."""
    try:
        return str(VersionedTransaction.from_bytes(base64.b64decode(signed_transaction)).signatures[0])
    except Exception:
        return None


def _require_key(api_key: str | None) -> str:
    if not api_key:
        raise MarketError(ErrorCode.API_KEY_MISSING, "JUPITER_API_KEY is not configured")
    return api_key


class _JupiterSwapApi:
    """What the Ultra and Metis clients share: the API key every call must send, the base URL, and the
    retried JSON client their quotes go through (a quote has no side effect, so it is retried)."""

    name: str

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None,
        base_url: str,
        quote_timeout: float,
        retry: RetryPolicy,
        sleep: Sleep,
        budget: UpstreamBudget | None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.http = JsonHttp(
            session, name=self.name, timeout=timeout(quote_timeout), retry=retry, sleep=sleep, budget=budget
        )

    def _auth(self) -> dict[str, str]:
        """The headers of every call; raises ``API_KEY_MISSING`` before anything is sent without a key."""
        return {"x-api-key": _require_key(self.api_key)}

    async def _fetch_quote(self, path: str, input_mint: str, output_mint: str, amount_raw: int, **params: str) -> Any:
        """GET ``path`` for a quote of ``amount_raw`` base units of ``input_mint`` into ``output_mint``."""
        headers = self._auth()
        return await self.http.get(
            f"{self.base_url}{path}",
            params={"inputMint": input_mint, "outputMint": output_mint, "amount": str(amount_raw), **params},
            headers=headers,
            error_code=ErrorCode.QUOTE_FAILED,
            # Spending SOL opens or adds to a position; a quote into SOL is an exit and must not wait behind them.
            bulk=input_mint == SOL_MINT,
        )


class JupiterUltra(_JupiterSwapApi):
    """Ultra swap: ``quote`` = GET /v1/order, ``execute`` = POST /v1/execute. Quoter + SwapExecutor."""

    name = "jupiter-ultra"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None,
        base_url: str = ULTRA_URL,
        quote_timeout: float = 10.0,
        execute_timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
        budget: UpstreamBudget | None = None,
    ) -> None:
        super().__init__(
            session,
            api_key=api_key,
            base_url=base_url,
            quote_timeout=quote_timeout,
            retry=retry,
            sleep=sleep,
            budget=budget,
        )
        self.execute_timeout = timeout(execute_timeout)

    async def quote(
        self,
        input_mint: str,
        output_mint: str,
        amount_raw: int,
        *,
        taker: str | None = None,
        slippage_bps: int | None = None,
    ) -> Quote:
        """Ultra manages slippage itself; ``slippage_bps`` is forwarded only when given."""
        params: dict[str, str] = {}
        if taker:
            params["taker"] = taker
        if slippage_bps is not None:
            params["slippageBps"] = str(slippage_bps)
        payload = await self._fetch_quote("/v1/order", input_mint, output_mint, amount_raw, **params)
        return parse_order(payload, taker=taker)

    async def execute(self, signed_transaction: str, request_id: str) -> ExecuteResult:
        headers = self._auth()
        signature = transaction_signature(signed_transaction)
        ctx = {"request_id": request_id, "signature": signature}
        try:
            payload = await self.http.post(
                f"{self.base_url}/v1/execute",
                json={"signedTransaction": signed_transaction, "requestId": request_id},
                headers=headers,
                error_code=ErrorCode.EXECUTE_FAILED,
                retry=NO_RETRY,
                call_timeout=self.execute_timeout,
            )
        except MarketError as exc:
            # 4xx = rejected before submission; anything else (timeout, 5xx, broken body) may have
            # landed. Either way: never retried here, the caller settles via the signature.
            raise MarketError(
                ErrorCode.EXECUTE_FAILED,
                f"Jupiter execute failed ({exc.code}): {exc.message}",
                status=exc.status,
                details={**ctx, "outcome_unknown": outcome_unknown(exc), "cause": exc.code},
            ) from exc
        if not isinstance(payload, dict):
            raise MarketError(
                ErrorCode.EXECUTE_FAILED,
                "Jupiter execute: non-object response",
                details={**ctx, "outcome_unknown": True},
            )
        if payload.get("status") == "Failed":
            raise MarketError(
                ErrorCode.SWAP_FAILED,
                f"Swap execution failed: {payload.get('error') or payload.get('code')}",
                details={
                    **ctx,
                    "code": payload.get("code"),
                    "signature": payload.get("signature") or signature,
                    "payload": payload,
                },
            )
        sig = payload.get("signature")
        if not sig:
            raise MarketError(
                ErrorCode.MISSING_SIGNATURE,
                "Jupiter execute returned no signature",
                details={**ctx, "outcome_unknown": True, "payload": payload},
            )
        return ExecuteResult(
            signature=str(sig),
            status=str(payload.get("status") or ""),
            input_amount_result=to_int(payload.get("inputAmountResult")),
            output_amount_result=to_int(payload.get("outputAmountResult")),
            total_input_amount=to_int(payload.get("totalInputAmount")),
            total_output_amount=to_int(payload.get("totalOutputAmount")),
            payload=payload,
            slot=to_int(payload.get("slot")),
        )


class JupiterMetis(_JupiterSwapApi):
    """Swap API v1 for the self-send path: ``quote`` then ``build_swap`` (unsigned tx + expiry)."""

    name = "jupiter-metis"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None,
        base_url: str = SWAP_V1_URL,
        default_slippage_bps: int = 50,
        quote_timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
        budget: UpstreamBudget | None = None,
    ) -> None:
        super().__init__(
            session,
            api_key=api_key,
            base_url=base_url,
            quote_timeout=quote_timeout,
            retry=retry,
            sleep=sleep,
            budget=budget,
        )
        self.default_slippage_bps = default_slippage_bps

    async def quote(
        self,
        input_mint: str,
        output_mint: str,
        amount_raw: int,
        *,
        taker: str | None = None,
        slippage_bps: int | None = None,
    ) -> Quote:
        """``taker`` is unused by /quote; pass the wallet to :meth:`build_swap`. ``request_id`` is a
        local id (Metis has none)."""
        bps = self.default_slippage_bps if slippage_bps is None else slippage_bps
        payload = await self._fetch_quote(
            "/quote", input_mint, output_mint, amount_raw, slippageBps=str(bps), swapMode="ExactIn"
        )
        if isinstance(payload, dict) and "requestId" not in payload:
            payload = {**payload, "requestId": f"metis-{uuid.uuid4().hex}"}
        quote = parse_order(payload)
        # parse_order keeps the synthetic requestId in payload; /swap must get the pristine quote.
        return msgspec.structs.replace(quote, payload={k: v for k, v in payload.items() if k != "requestId"})

    async def build_swap(
        self, quote: Quote, user_public_key: str, *, priority_fee: Any = "auto", **extra: Any
    ) -> Quote:
        """POST /swap → the quote with ``transaction`` (unsigned v0, base64) and
        ``last_valid_block_height`` set. ``payload`` gains ``prioritizationFeeLamports`` so fee
        extraction sees the network fee. Building is side-effect free, so it is retried."""
        headers = self._auth()
        body = {
            "userPublicKey": user_public_key,
            "quoteResponse": quote.payload,
            "wrapAndUnwrapSol": True,
            "dynamicComputeUnitLimit": True,
            "prioritizationFeeLamports": priority_fee,
            **extra,
        }
        resp = await self.http.post(
            f"{self.base_url}/swap", json=body, headers=headers, error_code=ErrorCode.QUOTE_FAILED
        )
        tx = resp.get("swapTransaction") if isinstance(resp, dict) else None
        lvbh = to_int(resp.get("lastValidBlockHeight")) if isinstance(resp, dict) else None
        if not tx or lvbh is None:
            raise MarketError(ErrorCode.INVALID_RESPONSE, "Jupiter swap: missing swapTransaction/lastValidBlockHeight")
        payload = {**quote.payload, "prioritizationFeeLamports": resp.get("prioritizationFeeLamports", 0)}
        return msgspec.structs.replace(quote, transaction=tx, last_valid_block_height=lvbh, payload=payload)


class JupiterPriceSource:
    """Price v3 → TokenPrice. SOL prices need a real SOL/USD: without one, nothing is priced
    (upstream divides by a made-up 100, §16.21)."""

    name = "jupiter"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        sol_usd: SolUsdSource,
        *,
        api_key: str | None = None,
        base_url: str = PRICE_V3_URL,
        request_timeout: float = 5.0,
        max_sol_usd_age: timedelta | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], datetime] = _utcnow,
        budget: UpstreamBudget | None = None,
    ) -> None:
        self.sol_usd_source = sol_usd
        self.base_url = base_url.rstrip("/")
        self.max_sol_usd_age = max_sol_usd_age
        self.clock = clock
        headers = {"x-api-key": api_key} if api_key else {}
        self.http = JsonHttp(
            session,
            name="jupiter-price",
            timeout=timeout(request_timeout),
            retry=retry,
            headers=headers,
            sleep=sleep,
            budget=budget,
        )

    async def prices(self, mints: Sequence[str]) -> dict[str, TokenPrice]:
        wanted = list(dict.fromkeys(mints))
        if not wanted:
            return {}
        sol = await self.sol_usd_source.sol_usd()
        now = self.clock()
        if sol is None or sol.price <= 0:
            log.warning("jupiter-price: SOL/USD unknown, not pricing %d tokens", len(wanted))
            return {}
        if self.max_sol_usd_age is not None and sol.is_stale(now, self.max_sol_usd_age):
            log.warning("jupiter-price: SOL/USD stale since %s, not pricing", sol.observed_at)
            return {}
        batches = [wanted[i : i + PRICE_BATCH] for i in range(0, len(wanted), PRICE_BATCH)]
        results = await asyncio.gather(*(self._batch(b) for b in batches), return_exceptions=True)
        out: dict[str, TokenPrice] = {}
        for batch, data in zip(batches, results, strict=True):
            if isinstance(data, BaseException):
                log.warning("jupiter-price: batch of %d failed: %s", len(batch), data)
                continue
            if not isinstance(data, dict):
                continue
            lower = {str(k).lower(): v for k, v in data.items()}
            for mint in batch:
                entry = data.get(mint) or lower.get(mint.lower())
                usd = to_decimal(entry.get("usdPrice")) if isinstance(entry, dict) else None
                if usd is None or usd <= 0:
                    continue
                out[mint] = TokenPrice(
                    mint=mint,
                    price_sol=usd / sol.price,
                    price_usd=usd,
                    liquidity_usd=None,
                    observed_at=now,
                    source=self.name,
                    price_change_24h=to_decimal(entry.get("priceChange24h")),
                )
        return out

    async def _batch(self, mints: list[str]) -> Any:
        return await self.http.get(self.base_url, params={"ids": ",".join(mints)})


class JupiterTokenMetrics:
    """Tokens v2 search → TokenMetrics of the first hit. Best effort: any failure ⇒ None."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str | None,
        base_url: str = TOKENS_V2_URL,
        request_timeout: float = 8.0,
        retry: RetryPolicy = NO_RETRY,
        sleep: Sleep = asyncio.sleep,
        budget: UpstreamBudget | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.http = JsonHttp(
            session, name="jupiter-tokens", timeout=timeout(request_timeout), retry=retry, sleep=sleep, budget=budget
        )

    async def token_metrics(self, mint: str) -> TokenMetrics | None:
        if not self.api_key:
            return None
        try:
            data = await self.http.get(
                f"{self.base_url}/search",
                params={"query": mint},
                headers={"x-api-key": self.api_key},
                bulk=True,  # read for entry checks only
            )
        except Exception as exc:  # best effort by contract (§10.3)
            log.info("jupiter-tokens: metrics for %s unavailable: %s", mint, exc)
            return None
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            return None
        first = data[0]
        return TokenMetrics(
            mcap=to_decimal(first.get("mcap")),
            liquidity=to_decimal(first.get("liquidity")),
            holder_count=to_int(first.get("holderCount")),
        )
