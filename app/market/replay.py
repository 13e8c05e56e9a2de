"""Replay market: recorded or generated prices played back with no network, plus a simulated
Jupiter-Ultra quoter. This is the default market so the whole engine runs end to end offline.

File format (JSONL, one object per line; numbers may be JSON numbers or strings, read as Decimal)::

    {"t": 0, "mint": "So11111111111111111111111111111111111111112", "priceUsd": "150.25"}
    {"t": 0, "mint": "<mint>", "symbol": "PUMP", "decimals": 6,
     "priceSol": "0.0000271", "priceUsd": "0.00406", "liquidityUsd": "40000", "mcap": "1e6", "holders": 900}
    {"t": 600, "mint": "<mint>", "priceSol": null}

* ``t``: seconds from the start (number) or an ISO-8601 timestamp (offsets are taken from the first).
* SOL-mint lines carry SOL/USD in ``priceUsd``.
* A token line states the token's market from ``t`` until its next line. ``priceSol: null`` means the
  token is gone (rug / delisted): it drops out of ``prices`` and reports no SOL pair.
* ``priceUsd`` is optional for tokens (derived as priceSol × SOL/USD); ``symbol``/``decimals``
  (default 6) need only appear once per mint.

Playback is real time from construction × ``speed`` (looping by default), or manual (``manual=True``)
where tests move the cursor with :meth:`ReplayMarket.step` / :meth:`ReplayMarket.seek`.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
from solders.pubkey import Pubkey

from app.market.http import decode_json
from app.market.jupiter import parse_order
from app.market.types import (
    SOL_DECIMALS,
    SOL_MINT,
    ErrorCode,
    MarketError,
    Quote,
    SolUsd,
    TokenMetrics,
    TokenPrice,
    to_decimal,
    to_int,
)

SAMPLE_FILE = Path(__file__).with_name("sample_prices.jsonl")
DEFAULT_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_MISSING = object()


class _Rec(msgspec.Struct, frozen=True):
    price_sol: Decimal | None  # None = token removed
    price_usd: Decimal | None
    liquidity_usd: Decimal | None
    mcap: Decimal | None
    holders: int | None


def _parse_t(value: Any) -> Decimal | datetime:
    t = to_decimal(value)
    if t is not None:
        return t
    if not isinstance(value, str):
        raise ValueError(f"replay: bad t {value!r}")
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def load_records(source: str | Path | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records from a JSONL path or an iterable of dicts (blank and ``#`` lines skipped)."""
    if isinstance(source, str | Path):
        lines = Path(source).read_text().splitlines()
        return [decode_json(ln) for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return list(source)


class ReplayMarket:
    """PriceSource + SolUsdSource + LiquidityChecker + MetricsSource over a price timeline."""

    name = "replay"

    def __init__(
        self,
        records: str | Path | Iterable[dict[str, Any]] = SAMPLE_FILE,
        *,
        speed: float = 1.0,
        loop: bool = True,
        manual: bool = False,
        default_decimals: int = 6,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        epoch: datetime = DEFAULT_EPOCH,
    ) -> None:
        rows = load_records(records)
        if not rows:
            raise ValueError("replay: no records")
        parsed = [(_parse_t(r.get("t", 0)), r) for r in rows]
        stamps = [t for t, _ in parsed if isinstance(t, datetime)]
        origin = min(stamps) if stamps else None

        def offset(t: Decimal | datetime) -> Decimal:
            if isinstance(t, datetime):
                assert origin is not None
                return Decimal(str((t - origin).total_seconds()))
            return t

        parsed.sort(key=lambda p: offset(p[0]))  # stable: later lines win on equal t
        start = offset(parsed[0][0])
        self._timeline: dict[str, tuple[list[Decimal], list[_Rec]]] = {}
        self.decimals: dict[str, int] = {SOL_MINT: SOL_DECIMALS}
        self.symbols: dict[str, str] = {}
        for t, r in parsed:
            mint = str(r["mint"])
            if r.get("symbol"):
                self.symbols.setdefault(mint, str(r["symbol"]))
            if r.get("decimals") is not None and mint != SOL_MINT:
                self.decimals.setdefault(mint, int(r["decimals"]))
            ps = r.get("priceSol", _MISSING)
            rec = _Rec(
                price_sol=None if ps is None else (Decimal(1) if mint == SOL_MINT else to_decimal(ps)),
                price_usd=to_decimal(r.get("priceUsd")),
                liquidity_usd=to_decimal(r.get("liquidityUsd")),
                mcap=to_decimal(r.get("mcap")),
                holders=to_int(r.get("holders")),
            )
            if ps is _MISSING and mint != SOL_MINT:
                raise ValueError(f"replay: token line without priceSol: {r}")
            times, recs = self._timeline.setdefault(mint, ([], []))
            times.append(offset(t) - start)
            recs.append(rec)
        self.times = sorted({t for ts, _ in self._timeline.values() for t in ts})
        gap = self.times[-1] - self.times[-2] if len(self.times) > 1 else Decimal(1)
        self.period = self.times[-1] + gap
        self.speed, self.loop, self.manual = speed, loop, manual
        self.default_decimals = default_decimals
        self.clock, self._now, self.epoch = clock, now, epoch
        self._t0 = clock()
        self._cursor = Decimal(0)
        self._lower = {m.lower(): m for m in self._timeline}

    # -- time -------------------------------------------------------------------------------------
    @property
    def mints(self) -> list[str]:
        """Token mints in the file (SOL excluded)."""
        return [m for m in self._timeline if m != SOL_MINT]

    def elapsed(self) -> Decimal:
        if self.manual:
            return self._cursor
        return Decimal(max(0.0, (self.clock() - self._t0) * self.speed))

    @property
    def offset(self) -> Decimal:
        """Current position in the timeline (seconds from its start)."""
        e = self.elapsed()
        return e % self.period if self.loop else min(e, self.times[-1])

    def restart(self) -> None:
        self._t0, self._cursor = self.clock(), Decimal(0)

    def seek(self, offset: Decimal | float | int) -> None:
        if not self.manual:
            raise RuntimeError("seek() requires manual=True")
        self._cursor = Decimal(str(offset))

    def step(self, n: int = 1) -> Decimal:
        """Manual mode: advance to the n-th next timestamp (wrapping when looping). Returns offset."""
        if not self.manual:
            raise RuntimeError("step() requires manual=True")
        for _ in range(n):
            off = self.offset
            i = bisect.bisect_right(self.times, off)
            if i < len(self.times):
                self._cursor += self.times[i] - off
            elif self.loop:
                self._cursor += self.period - off
        return self.offset

    def observed_at(self) -> datetime:
        if self._now is not None:
            return self._now()
        if self.manual:
            return self.epoch + timedelta(seconds=float(self._cursor))
        return datetime.now(UTC)

    # -- state ------------------------------------------------------------------------------------
    def _resolve(self, mint: str) -> str | None:
        return mint if mint in self._timeline else self._lower.get(mint.lower())

    def _state(self, mint: str, off: Decimal) -> _Rec | None:
        key = self._resolve(mint)
        if key is None:
            return None
        times, recs = self._timeline[key]
        i = bisect.bisect_right(times, off) - 1
        return recs[i] if i >= 0 else None

    def _sol(self, off: Decimal) -> Decimal | None:
        rec = self._state(SOL_MINT, off)
        return rec.price_usd if rec and rec.price_usd and rec.price_usd > 0 else None

    def token_decimals(self, mint: str) -> int:
        key = self._resolve(mint)
        return self.decimals.get(key or mint, self.default_decimals)

    # -- protocols --------------------------------------------------------------------------------
    async def sol_usd(self) -> SolUsd | None:
        sol = self._sol(self.offset)
        return None if sol is None else SolUsd(price=sol, observed_at=self.observed_at(), source=self.name)

    def prices_now(self, mints: Sequence[str]) -> dict[str, TokenPrice]:
        off, now = self.offset, self.observed_at()
        sol = self._sol(off)
        out: dict[str, TokenPrice] = {}
        for mint in dict.fromkeys(mints):
            if mint == SOL_MINT:
                if sol is not None:
                    out[mint] = TokenPrice(
                        mint=mint,
                        price_sol=Decimal(1),
                        price_usd=sol,
                        liquidity_usd=None,
                        observed_at=now,
                        source=self.name,
                    )
                continue
            rec = self._state(mint, off)
            if rec is None or rec.price_sol is None or rec.price_sol <= 0:
                continue
            usd = rec.price_usd if rec.price_usd is not None else (rec.price_sol * sol if sol else None)
            out[mint] = TokenPrice(
                mint=mint,
                price_sol=rec.price_sol,
                price_usd=usd,
                liquidity_usd=rec.liquidity_usd,
                observed_at=now,
                source=self.name,
            )
        return out

    async def prices(self, mints: Sequence[str]) -> dict[str, TokenPrice]:
        return self.prices_now(mints)

    async def sol_pair_liquidity(self, mints: Sequence[str]) -> dict[str, list[Decimal] | None]:
        """SOL side of the pool = half its USD liquidity / SOL-USD. Gone or unknown-to-the-file
        tokens have no SOL pair ([]); a listed token without liquidity data is unknown (None)."""
        off = self.offset
        sol = self._sol(off)
        out: dict[str, list[Decimal] | None] = {}
        for mint in dict.fromkeys(mints):
            rec = self._state(mint, off)
            if rec is None or rec.price_sol is None:
                out[mint] = []
            elif rec.liquidity_usd is None or sol is None:
                out[mint] = None
            else:
                out[mint] = [rec.liquidity_usd / 2 / sol]
        return out

    async def token_metrics(self, mint: str) -> TokenMetrics | None:
        rec = self._state(mint, self.offset)
        if rec is None or rec.price_sol is None:
            return None
        return TokenMetrics(mcap=rec.mcap, liquidity=rec.liquidity_usd, holder_count=rec.holders)


def liquidity_impact(size_usd: Decimal, liquidity_usd: Decimal) -> Decimal:
    """Constant-product-like impact: size / (liquidity + size). 0 for unknown/zero liquidity."""
    if liquidity_usd <= 0 or size_usd <= 0:
        return Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 40
        return size_usd / (liquidity_usd + size_usd)


class SimulatedQuoter:
    """Quoter producing Jupiter-Ultra-order-shaped payloads from the replay market.

    ``out = floor(in × rate × (1 − impact) × (1 − fill_slippage_bps/10⁴))`` computed with exact
    rationals, where ``rate`` converts raw input units to raw output units at the current SOL
    prices and ``impact`` (rounded to ``impact_places``, at most one quantum below 1) comes from
    ``impact_model(size_usd, liquidity_usd)``. The protocol fee (``platformFee.feeBps``, SOL) is *not* deducted from
    ``outAmount``: like a real order it is left to fee extraction (§4.2). ``slippage_bps`` is the
    tolerance echoed in the order and used for ``otherAmountThreshold``. No transaction is built
    (simulation wallets never sign), so ``transaction`` is None.
    """

    name = "simulated"

    def __init__(
        self,
        market: ReplayMarket,
        *,
        slippage_bps: int = 50,
        fill_slippage_bps: int = 0,
        fee_bps: int = 10,
        signature_fee_lamports: int = 5000,
        prioritization_fee_lamports: int = 100_000,
        impact_model: Callable[[Decimal, Decimal], Decimal] = liquidity_impact,
        impact_places: int = 10,
        seed: int = 0,
    ) -> None:
        self.market = market
        self.slippage_bps = slippage_bps
        self.fill_slippage_bps = fill_slippage_bps
        self.fee_bps = fee_bps
        self.signature_fee_lamports = signature_fee_lamports
        self.prioritization_fee_lamports = prioritization_fee_lamports
        self.impact_model = impact_model
        self.impact_quantum = Decimal(1).scaleb(-impact_places)
        self.seed = seed
        self._n = 0

    def build_order(
        self,
        input_mint: str,
        output_mint: str,
        amount_raw: int,
        *,
        taker: str | None = None,
        slippage_bps: int | None = None,
    ) -> dict[str, Any]:
        if isinstance(amount_raw, bool) or not isinstance(amount_raw, int) or amount_raw <= 0:
            raise MarketError(ErrorCode.QUOTE_FAILED, f"amount must be a positive raw integer, got {amount_raw!r}")
        m = self.market
        off = m.offset
        sol = m._sol(off)
        legs = []
        for mint in (input_mint, output_mint):
            if mint == SOL_MINT:
                legs.append((Decimal(1), None))
                continue
            rec = m._state(mint, off)
            if rec is None or rec.price_sol is None or rec.price_sol <= 0:
                raise MarketError(ErrorCode.JUPITER_API_ERROR, f"Jupiter API error: No routes found for {mint}")
            legs.append((rec.price_sol, rec.liquidity_usd))
        (p_in, liq_in), (p_out, liq_out) = legs
        dec_in, dec_out = m.token_decimals(input_mint), m.token_decimals(output_mint)
        liqs = [x for x in (liq_in, liq_out) if x is not None]
        impact = Decimal(0)
        if liqs and sol is not None:
            size_usd = Decimal(amount_raw).scaleb(-dec_in) * p_in * sol
            impact = self.impact_model(size_usd, min(liqs)).quantize(self.impact_quantum, ROUND_HALF_EVEN)
            # A pool never takes the whole order: an impact within half a quantum of 100 % (a huge order into
            # dust liquidity) stays one quantum below it instead of rounding to a 100 % impact.
            impact = min(impact, 1 - self.impact_quantum)
        fill = (
            Fraction(amount_raw)
            * Fraction(p_in)
            * 10**dec_out
            / (Fraction(p_out) * 10**dec_in)
            * (1 - Fraction(impact))
            * Fraction(10_000 - self.fill_slippage_bps, 10_000)
        )
        out_raw = math.floor(fill)
        bps = self.slippage_bps if slippage_bps is None else slippage_bps
        self._n += 1
        return {
            "mode": "ultra",
            "swapType": "aggregator",
            "router": "replay",
            "swapMode": "ExactIn",
            "requestId": f"sim-{self.seed}-{self._n:08d}",
            "inputMint": input_mint,
            "outputMint": output_mint,
            "inAmount": str(amount_raw),
            "outAmount": str(out_raw),
            "otherAmountThreshold": str(out_raw * (10_000 - bps) // 10_000),
            "slippageBps": bps,
            "priceImpactPct": "0" if impact == 0 else format(-impact, "f"),
            "routePlan": [
                {
                    "swapInfo": {
                        "ammKey": "replay",
                        "label": "Replay",
                        "inputMint": input_mint,
                        "outputMint": output_mint,
                        "inAmount": str(amount_raw),
                        "outAmount": str(out_raw),
                        "feeAmount": "0",
                        "feeMint": SOL_MINT,
                    },
                    "percent": 100,
                    "bps": 10_000,
                }
            ],
            "feeMint": SOL_MINT,
            "feeBps": self.fee_bps,
            "platformFee": {"feeBps": self.fee_bps, "feeMint": SOL_MINT},
            "signatureFeeLamports": self.signature_fee_lamports,
            "prioritizationFeeLamports": self.prioritization_fee_lamports,
            "rentFeeLamports": 0,
            "transaction": None,
            "gasless": False,
            "taker": taker,
        }

    async def quote(
        self,
        input_mint: str,
        output_mint: str,
        amount_raw: int,
        *,
        taker: str | None = None,
        slippage_bps: int | None = None,
    ) -> Quote:
        order = self.build_order(input_mint, output_mint, amount_raw, taker=taker, slippage_bps=slippage_bps)
        return parse_order(order)


# -- generation ------------------------------------------------------------------------------------


def generate_price_path(
    seed: int | str,
    *,
    steps: int,
    start: Decimal | str,
    vol_bps: int = 50,
    drift_bps: int = 0,
    regimes: Sequence[tuple[int, int]] = (),
    digits: int = 10,
    floor: Decimal | str = "1e-12",
) -> list[Decimal]:
    """Deterministic multiplicative random walk of ``steps`` Decimal prices (first = ``start``).

    Each step multiplies by ``1 + (drift + shock)/10⁴`` with an integer shock uniform in
    ``[-vol_bps, vol_bps]`` from ``random.Random(seed)``; ``regimes`` = ``[(n_steps, drift_bps), …]``
    override the drift for consecutive stretches (e.g. a pump then a dump). Values are rounded to
    ``digits`` significant digits and never fall below ``floor``. Same arguments ⇒ same path.
    """
    rng = random.Random(f"price-path:{seed}")
    drifts = [d for n, d in regimes for _ in range(n)]
    p, lo = Decimal(start), Decimal(floor)
    path = [p]
    with localcontext() as ctx:
        ctx.prec = digits
        for i in range(1, steps):
            drift = drifts[i - 1] if i - 1 < len(drifts) else drift_bps
            p = max(lo, p * (1 + Decimal(drift + rng.randint(-vol_bps, vol_bps)) / 10_000))
            path.append(p)
    return path


def sample_mint(seed: int | str, symbol: str) -> str:
    """Deterministic, valid-looking base58 mint for generated data."""
    return str(Pubkey.from_bytes(hashlib.sha256(f"nexgent-replay:{seed}:{symbol}".encode()).digest()))


def build_sample_records(seed: int = 42, *, minutes: int = 20, step_seconds: int = 5) -> list[dict[str, Any]]:
    """The shipped sample: SOL/USD near 150 and four tokens.

    STEADY (random walk, deep pool), PUMP (flat, +~1.2 %/step pump, then a dump), RUG (trades, pool
    drains, then vanishes at 60 % of the run) and NINE (a 9-decimal token).
    """
    steps = minutes * 60 // step_seconds
    third = steps // 3
    sol = generate_price_path(seed, steps=steps, start="150", vol_bps=8, digits=6)
    tokens = [
        ("STEADY", 6, "0.00002", "250000", {"vol_bps": 60}),
        ("PUMP", 6, "0.000005", "40000", {"vol_bps": 80, "regimes": [(third, 0), (third, 120), (steps // 8, -600)]}),
        ("RUG", 6, "0.0001", "20000", {"vol_bps": 90, "drift_bps": -5}),
        ("NINE", 9, "0.0003", "90000", {"vol_bps": 40}),
    ]
    rug_end = steps * 3 // 5
    paths = {
        sym: generate_price_path(f"{seed}:{sym}", steps=steps, start=start, **kw) for sym, _, start, _, kw in tokens
    }
    rows: list[dict[str, Any]] = []
    for i in range(steps):
        t = i * step_seconds
        rows.append({"t": t, "mint": SOL_MINT, "priceUsd": str(sol[i])})
        for sym, decimals, start, liq, _ in tokens:
            mint = sample_mint(seed, sym)
            if sym == "RUG" and i >= rug_end:
                if i == rug_end:
                    rows.append({"t": t, "mint": mint, "priceSol": None, "liquidityUsd": "0"})
                continue
            price = paths[sym][i]
            liquidity = Decimal(liq) * price / Decimal(start)
            if sym == "RUG" and i >= rug_end - 12:  # pool drains in the last minute
                liquidity = liquidity * (rug_end - i) / 13
            row: dict[str, Any] = {
                "t": t,
                "mint": mint,
                "priceSol": str(price),
                "liquidityUsd": str(liquidity.quantize(Decimal("0.01"))),
            }
            if i == 0:
                row.update(symbol=sym, decimals=decimals)
            rows.append(row)
    return rows


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> None:
    Path(path).write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in records))


if __name__ == "__main__":  # regenerate the shipped sample: python -m app.market.replay [path]
    write_jsonl(build_sample_records(), sys.argv[1] if len(sys.argv) > 1 else SAMPLE_FILE)
