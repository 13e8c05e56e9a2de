"""Fake Jupiter (``api.jup.ag``): Ultra order/execute, Swap v1 quote/swap, Price v3, Tokens v2.

Base URLs for the clients: ``ultra_url`` (``/ultra``; client appends ``/v1/order``), ``swap_url``
(``/swap/v1``), ``price_url`` (``/price/v3``), ``tokens_url`` (``/tokens/v2``). Route names for
faults: ``order``, ``execute``, ``quote``, ``swap``, ``price``, ``search``.

Knobs:

* ``api_key`` (default "test-key"): every route answers 401 unless ``x-api-key`` or
  ``Authorization: Bearer`` matches; None disables auth.
* Quoting: ``sol_per_token[mint]`` (Decimal SOL per whole token, default 0.001) and
  ``decimals[mint]`` (default 6, SOL 9) give ``outAmount = floor(in × rate)`` as strings;
  ``price_impact_pct`` (fraction string, default "-0.0012") and ``price_impact`` (percent number,
  default -0.12; None omits it); ``slippage_bps``; ``fee_bps`` (platform fee, SOL fee mint).
* ``order_error = (code, message)``: HTTP 200 with ``errorCode``/``errorMessage`` and empty
  ``transaction`` (e.g. insufficient funds). ``order_overrides`` / ``execute_overrides``: dicts
  merged into the response; a value of :data:`REMOVE` deletes the key (e.g. ``requestId``).
* Ultra ``/order`` returns an unsigned v0 ``transaction`` only with a valid ``taker`` (a memo with
  the taker as fee payer and signer); invalid takers (``sim_…``) → 400. The blockhash comes from the
  linked ``rpc`` fake (:class:`~tests.fakes.solana_rpc.FakeSolanaRpc`) when given.
* ``/execute`` verifies the signed transaction's signatures (→ ``Failed`` code -2 if invalid),
  then answers ``execute_status`` ("Success"/"Failed" with ``execute_code``/``execute_error``).
  Success amounts: ``inputAmountResult``/``outputAmountResult`` = the order's, ``totalInputAmount``
  adds the fee on SOL input, ``totalOutputAmount`` subtracts it on SOL output. Results are
  idempotent per ``requestId`` (like Jupiter's dedupe). With a linked ``rpc`` a successful swap is
  landed there (confirmed, balances moved) so settlement code can read it back.
* Price v3: ``usd_prices[mint]`` (Decimal); tokens without an entry are omitted; keys are matched
  case-insensitively and returned as stored; more than 50 ids → 400.
* Tokens v2: ``token_info[mint]`` = MintInformation dict (returned as a one-element array; [] if
  unknown).
* Records: ``orders`` (requestId → order JSON), ``executed`` (execute request bodies).
"""

from __future__ import annotations

import base64
import itertools
import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from aiohttp import web
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from tests.fakes.base import JSON_BODY, FakeServer, json_response
from tests.fakes.solana_rpc import FakeSolanaRpc, RpcReject

SOL_MINT = "So11111111111111111111111111111111111111112"
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
REMOVE = object()


def build_unsigned_tx(payer: str, blockhash: str, memo: str = "nexgent-fake") -> str:
    """Base64 unsigned v0 transaction: one memo instruction signed by (and paid by) ``payer``."""
    payer_key = Pubkey.from_string(payer)
    ix = Instruction(MEMO_PROGRAM, memo.encode(), [AccountMeta(payer_key, True, True)])
    msg = MessageV0.try_compile(payer_key, [ix], [], Hash.from_string(blockhash))
    return base64.b64encode(bytes(VersionedTransaction.populate(msg, [Signature.default()]))).decode()


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = {**base, **overrides}
    return {k: v for k, v in out.items() if v is not REMOVE}


class FakeJupiter(FakeServer):
    def __init__(self, *, api_key: str | None = "test-key", rpc: FakeSolanaRpc | None = None) -> None:
        self.api_key = api_key
        self.rpc = rpc
        self.sol_per_token: dict[str, Decimal] = {}
        self.decimals: dict[str, int] = {SOL_MINT: 9}
        self.price_impact_pct: str | None = "-0.0012"
        self.price_impact: Decimal | None = Decimal("-0.12")
        self.slippage_bps = 50
        self.fee_bps = 10
        self.order_error: tuple[int, str] | None = None
        self.order_overrides: dict[str, Any] = {}
        self.execute_status = "Success"
        self.execute_code = -1000
        self.execute_error = "Simulated swap failure"
        self.execute_overrides: dict[str, Any] = {}
        self.usd_prices: dict[str, Decimal] = {}
        self.token_info: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.executed: list[dict[str, Any]] = []
        self._results: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._slot = itertools.count(300_000_000)
        super().__init__()

    @property
    def ultra_url(self) -> str:
        return f"{self.url}/ultra"

    @property
    def swap_url(self) -> str:
        return f"{self.url}/swap/v1"

    @property
    def price_url(self) -> str:
        return f"{self.url}/price/v3"

    @property
    def tokens_url(self) -> str:
        return f"{self.url}/tokens/v2"

    def setup_routes(self) -> None:
        self.route("GET", "/ultra/v1/order", self._order, "order")
        self.route("POST", "/ultra/v1/execute", self._execute, "execute")
        self.route("GET", "/swap/v1/quote", self._quote, "quote")
        self.route("POST", "/swap/v1/swap", self._swap, "swap")
        self.route("GET", "/price/v3", self._price, "price")
        self.route("GET", "/tokens/v2/search", self._search, "search")

    def pre_check(self, request: web.Request) -> web.StreamResponse | None:
        if self.api_key is None:
            return None
        given = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        return None if given == self.api_key else json_response({"error": "Unauthorized", "code": 401}, 401)

    # -- pricing helpers --------------------------------------------------------------------------
    def _dec(self, mint: str) -> int:
        return self.decimals.get(mint, 6)

    def _sol_price(self, mint: str) -> Decimal:
        return Decimal(1) if mint == SOL_MINT else self.sol_per_token.get(mint, Decimal("0.001"))

    def out_amount(self, input_mint: str, output_mint: str, amount: int) -> int:
        """Raw out for raw in at the configured SOL prices (exact rational, floored)."""
        rate = (
            Fraction(self._sol_price(input_mint))
            * 10 ** self._dec(output_mint)
            / (Fraction(self._sol_price(output_mint)) * 10 ** self._dec(input_mint))
        )
        return math.floor(amount * rate)

    def _blockhash(self) -> tuple[str, int]:
        if self.rpc is not None:
            return self.rpc.latest_blockhash()
        return str(Hash.new_unique()), 1_150

    def _build_quote(self, q: Any) -> dict[str, Any] | web.Response:
        try:
            in_mint, out_mint, amount = q["inputMint"], q["outputMint"], int(q["amount"])
        except (KeyError, ValueError):
            return json_response({"error": "inputMint, outputMint and integer amount are required"}, 400)
        out = self.out_amount(in_mint, out_mint, amount)
        slippage = int(q.get("slippageBps", self.slippage_bps))
        route = [
            {
                "swapInfo": {
                    "ammKey": "FakeAmm1111111111111111111111111111111111111",
                    "label": "FakeDex",
                    "inputMint": in_mint,
                    "outputMint": out_mint,
                    "inAmount": str(amount),
                    "outAmount": str(out),
                    "feeAmount": "0",
                    "feeMint": in_mint,
                },
                "percent": 100,
                "bps": 10_000,
            }
        ]
        body: dict[str, Any] = {
            "inputMint": in_mint,
            "outputMint": out_mint,
            "inAmount": str(amount),
            "outAmount": str(out),
            "otherAmountThreshold": str(out * (10_000 - slippage) // 10_000),
            "swapMode": "ExactIn",
            "slippageBps": slippage,
            "routePlan": route,
        }
        if self.price_impact_pct is not None:
            body["priceImpactPct"] = self.price_impact_pct
        return body

    # -- Ultra ------------------------------------------------------------------------------------
    async def _order(self, request: web.Request) -> web.Response:
        body = self._build_quote(request.query)
        if isinstance(body, web.Response):
            return body
        taker = request.query.get("taker")
        if taker:
            try:
                Pubkey.from_string(taker)
            except ValueError:
                return json_response({"error": f"Invalid taker {taker}"}, 400)
        request_id = f"fake-req-{next(self._ids):06d}"
        transaction = None
        if taker:
            transaction = build_unsigned_tx(taker, self._blockhash()[0], f"order:{request_id}")
        body.update(
            {
                "mode": "ultra",
                "router": "iris",
                "swapType": "aggregator",
                "requestId": request_id,
                "transaction": transaction,
                "taker": taker,
                "gasless": False,
                "totalTime": 42,
                "feeMint": SOL_MINT,
                "feeBps": self.fee_bps,
                "platformFee": {"amount": "0", "feeBps": self.fee_bps, "feeMint": SOL_MINT},
                "signatureFeeLamports": 5_000,
                "prioritizationFeeLamports": 100_000,
                "rentFeeLamports": 0,
                "inUsdValue": Decimal("150.1"),
                "outUsdValue": Decimal("149.9"),
                "swapUsdValue": Decimal("150.0"),
            }
        )
        if self.price_impact is not None:
            body["priceImpact"] = self.price_impact
        if self.order_error is not None:
            code, message = self.order_error
            body.update(errorCode=code, errorMessage=message, transaction="" if taker else None)
        body = _merge(body, self.order_overrides)
        if "requestId" in body:
            self.orders[body["requestId"]] = body
        return json_response(body)

    async def _execute(self, request: web.Request) -> web.Response:
        req = request.get(JSON_BODY)
        if not isinstance(req, dict) or not req.get("signedTransaction") or not req.get("requestId"):
            return json_response({"error": "signedTransaction and requestId are required", "code": -1}, 400)
        self.executed.append(req)
        request_id = req["requestId"]
        if request_id in self._results:
            return json_response(self._results[request_id])
        order = self.orders.get(request_id)
        if order is None:
            return json_response({"error": "Order not found or expired", "code": -1}, 400)
        try:
            tx = VersionedTransaction.from_bytes(base64.b64decode(req["signedTransaction"]))
        except Exception:
            return json_response({"status": "Failed", "code": -2, "error": "Invalid signed transaction"})
        sig = str(tx.signatures[0])
        if not all(tx.verify_with_results()):
            return json_response(
                {"status": "Failed", "code": -2, "error": "Invalid transaction signature", "signature": sig}
            )
        slot = str(next(self._slot))
        if self.execute_status != "Success":
            result = {
                "status": "Failed",
                "code": self.execute_code,
                "error": self.execute_error,
                "signature": sig,
                "slot": slot,
            }
        else:
            in_amt, out_amt = int(order["inAmount"]), int(order["outAmount"])
            in_sol, out_sol = order["inputMint"] == SOL_MINT, order["outputMint"] == SOL_MINT
            total_in = in_amt + (in_amt * self.fee_bps // 10_000 if in_sol else 0)
            total_out = out_amt - (out_amt * self.fee_bps // 10_000 if out_sol else 0)
            result = {
                "status": "Success",
                "code": 0,
                "signature": sig,
                "slot": slot,
                "totalInputAmount": str(total_in),
                "totalOutputAmount": str(total_out),
                "inputAmountResult": str(in_amt),
                "outputAmountResult": str(out_amt),
                "swapEvents": [
                    {
                        "inputMint": order["inputMint"],
                        "inputAmount": str(in_amt),
                        "outputMint": order["outputMint"],
                        "outputAmount": str(out_amt),
                    }
                ],
            }
            if self.rpc is not None:
                self._land(tx, order, total_in, total_out)
        result = _merge(result, self.execute_overrides)
        self._results[request_id] = result
        return json_response(result)

    def _land(self, tx: VersionedTransaction, order: dict[str, Any], total_in: int, total_out: int) -> None:
        assert self.rpc is not None
        try:
            sent = self.rpc.submit(bytes(tx), skip_preflight=True)
        except RpcReject:
            return
        taker = sent.payer
        sol: dict[str, int] = {}
        tokens: dict[tuple[str, str], int] = {}
        for mint, delta in ((order["inputMint"], -total_in), (order["outputMint"], total_out)):
            if mint == SOL_MINT:
                sol[taker] = sol.get(taker, 0) + delta
            else:
                tokens[(taker, mint)] = delta
        if sent.status == "pending":
            self.rpc.confirm(sent.signature, sol_deltas=sol, token_deltas=tokens)

    # -- Swap v1 (Metis) --------------------------------------------------------------------------
    async def _quote(self, request: web.Request) -> web.Response:
        body = self._build_quote(request.query)
        if isinstance(body, web.Response):
            return body
        body.update(platformFee=None, contextSlot=next(self._slot), timeTaken=Decimal("0.012"))
        return json_response(_merge(body, self.order_overrides))

    async def _swap(self, request: web.Request) -> web.Response:
        req = request.get(JSON_BODY)
        if not isinstance(req, dict) or not isinstance(req.get("quoteResponse"), dict):
            return json_response({"error": "quoteResponse is required"}, 400)
        try:
            Pubkey.from_string(str(req.get("userPublicKey")))
        except ValueError:
            return json_response({"error": "Invalid userPublicKey"}, 400)
        blockhash, lvbh = self._blockhash()
        return json_response(
            {
                "swapTransaction": build_unsigned_tx(req["userPublicKey"], blockhash, f"swap:{next(self._ids)}"),
                "lastValidBlockHeight": lvbh,
                "prioritizationFeeLamports": 100_000,
            }
        )

    # -- Price v3 / Tokens v2 ---------------------------------------------------------------------
    async def _price(self, request: web.Request) -> web.Response:
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not ids or len(ids) > 50:
            return json_response({"error": "ids must hold 1..50 mints"}, 400)
        lower = {k.lower(): k for k in self.usd_prices}
        out = {}
        for mint in ids:
            key = mint if mint in self.usd_prices else lower.get(mint.lower())
            if key is not None:
                out[key] = {
                    "usdPrice": self.usd_prices[key],
                    "blockId": 348_000_000,
                    "decimals": self._dec(key),
                    "priceChange24h": Decimal("-3.2"),
                }
        return json_response(out)

    async def _search(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        info = self.token_info.get(query)
        return json_response([info] if info is not None else [])
