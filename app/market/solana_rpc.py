"""Solana JSON-RPC 2.0 client (§10.5) for balances, decimals, sending and settling transactions.

Reads are retried by the shared HTTP policy (timeouts, 5xx, 429). ``sendTransaction`` is sent
exactly once: a re-send of the same signed bytes is harmless on chain, but the caller must decide it
knowing the blockhash expiry, so a transport failure raises a non-retryable error carrying the
signature (``details["signature"]``, ``details["outcome_unknown"]``) for later settlement via
:meth:`SolanaRpc.get_signature_statuses` / :meth:`SolanaRpc.get_transaction`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Sequence
from typing import Any

import aiohttp
import msgspec

from app.market.budget import UpstreamBudget
from app.market.http import NO_RETRY, JsonHttp, RetryPolicy, Sleep, outcome_unknown, timeout
from app.market.jupiter import transaction_signature
from app.market.types import SOL_DECIMALS, SOL_MINT, ErrorCode, MarketError, RpcError, to_int

MAINNET_RPC_URL = "https://api.mainnet-beta.solana.com"
TOKEN_PROGRAM_ID = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM_ID = "TokenzQdBNbLqP5VEhdkAS6EPFLyg7dm2n7sdv9yyh8"
MINT_DECIMALS_OFFSET = 44  # SPL mint layout: authority option(4)+key(32)+supply(8) → decimals


class Blockhash(msgspec.Struct, frozen=True):
    blockhash: str
    last_valid_block_height: int


class SignatureStatus(msgspec.Struct, frozen=True):
    slot: int
    confirmations: int | None
    err: Any
    confirmation_status: str | None

    @property
    def ok(self) -> bool:
        return self.err is None


class TokenAmount(msgspec.Struct, frozen=True):
    amount: int
    decimals: int


class TokenBalance(msgspec.Struct, frozen=True):
    account_index: int
    mint: str
    owner: str | None
    amount: int
    decimals: int


class TransactionMeta(msgspec.Struct, frozen=True):
    """The settlement-relevant part of ``getTransaction`` (raw units)."""

    slot: int
    err: Any
    fee: int
    account_keys: list[str]
    pre_balances: list[int]
    post_balances: list[int]
    pre_token_balances: list[TokenBalance]
    post_token_balances: list[TokenBalance]

    def sol_delta(self, owner: str) -> int:
        """Lamport change of ``owner`` (fees included)."""
        if owner not in self.account_keys:
            return 0
        i = self.account_keys.index(owner)
        return self.post_balances[i] - self.pre_balances[i]

    def token_deltas(self, owner: str) -> dict[str, int]:
        """Raw token change per mint for accounts owned by ``owner``."""
        out: dict[str, int] = {}
        for sign, rows in ((-1, self.pre_token_balances), (1, self.post_token_balances)):
            for tb in rows:
                if tb.owner == owner:
                    out[tb.mint] = out.get(tb.mint, 0) + sign * tb.amount
        return out


def _token_balances(rows: Any) -> list[TokenBalance]:
    out = []
    for r in rows or []:
        amt = r.get("uiTokenAmount") or {}
        out.append(
            TokenBalance(
                account_index=int(r["accountIndex"]),
                mint=r["mint"],
                owner=r.get("owner"),
                amount=int(amt["amount"]),
                decimals=int(amt["decimals"]),
            )
        )
    return out


class SolanaRpc:
    """Async JSON-RPC client over a shared session. ``commitment`` applies to reads."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str = MAINNET_RPC_URL,
        *,
        commitment: str = "confirmed",
        request_timeout: float = 10.0,
        decimals_timeout: float = 5.0,
        decimals_retry_delay: float = 0.5,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
        budget: UpstreamBudget | None = None,
    ) -> None:
        self.url = url
        self.commitment = commitment
        self.decimals_timeout = timeout(decimals_timeout)
        self.decimals_retry_delay = decimals_retry_delay
        self.sleep = sleep
        self.http = JsonHttp(
            session, name="solana-rpc", timeout=timeout(request_timeout), retry=retry, sleep=sleep, budget=budget
        )
        self._ids = itertools.count(1)
        self._decimals: dict[str, int] = {SOL_MINT: SOL_DECIMALS}

    async def call(self, method: str, params: list[Any] | None = None, **kw: Any) -> Any:
        """One JSON-RPC call → ``result``. A JSON-RPC ``error`` object raises :class:`RpcError`."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        resp = await self.http.post(self.url, json=body, **kw)
        if not isinstance(resp, dict):
            raise MarketError(ErrorCode.INVALID_RESPONSE, f"RPC {method}: non-object response")
        if resp.get("error") is not None:
            err = resp["error"] if isinstance(resp["error"], dict) else {"message": str(resp["error"])}
            raise RpcError(to_int(err.get("code")) or 0, str(err.get("message", "")), err.get("data"), method=method)
        if "result" not in resp:
            raise MarketError(ErrorCode.INVALID_RESPONSE, f"RPC {method}: response without result")
        return resp["result"]

    @staticmethod
    def _value(result: Any, method: str) -> Any:
        if not isinstance(result, dict) or "value" not in result:
            raise MarketError(ErrorCode.INVALID_RESPONSE, f"RPC {method}: missing context/value")
        return result["value"]

    async def get_balance(self, pubkey: str) -> int:
        res = await self.call("getBalance", [pubkey, {"commitment": self.commitment}])
        value = to_int(self._value(res, "getBalance"))
        if value is None:
            raise MarketError(ErrorCode.INVALID_RESPONSE, "RPC getBalance: non-integer lamports")
        return value

    async def get_account_info(self, pubkey: str, **kw: Any) -> dict[str, Any] | None:
        """Account with base64 data (``value``), or None if the account does not exist."""
        res = await self.call("getAccountInfo", [pubkey, {"encoding": "base64", "commitment": self.commitment}], **kw)
        return self._value(res, "getAccountInfo")

    async def get_mint_decimals(self, mint: str) -> int:
        """Mint decimals = byte 44 of the mint account. Cached forever; SOL needs no call;
        2 attempts 500 ms apart, then DECIMALS_FETCH_FAILED (never guessed)."""
        if mint in self._decimals:
            return self._decimals[mint]
        last: Exception | None = None
        for attempt in range(2):
            if attempt:
                await self.sleep(self.decimals_retry_delay)
            try:
                value = await self.get_account_info(mint, retry=NO_RETRY, call_timeout=self.decimals_timeout)
                data = value.get("data") if isinstance(value, dict) else None
                raw = base64.b64decode(data[0]) if isinstance(data, list) and data else b""
                if len(raw) <= MINT_DECIMALS_OFFSET:
                    raise ValueError(f"mint account missing or too short ({len(raw)} bytes)")
                self._decimals[mint] = raw[MINT_DECIMALS_OFFSET]
                return raw[MINT_DECIMALS_OFFSET]
            except (MarketError, ValueError, TypeError) as exc:
                last = exc
        raise MarketError(ErrorCode.DECIMALS_FETCH_FAILED, f"decimals for {mint}: {last}", retryable=True)

    async def get_latest_blockhash(self) -> Blockhash:
        res = await self.call("getLatestBlockhash", [{"commitment": self.commitment}])
        v = self._value(res, "getLatestBlockhash")
        return Blockhash(blockhash=v["blockhash"], last_valid_block_height=int(v["lastValidBlockHeight"]))

    async def get_block_height(self) -> int:
        return int(await self.call("getBlockHeight", [{"commitment": self.commitment}]))

    async def send_transaction(
        self, signed_tx_b64: str, *, skip_preflight: bool = False, max_retries: int | None = None
    ) -> str:
        """Submit once; returns the signature. Node rejections raise :class:`RpcError`; transport
        failures raise ``EXECUTE_FAILED`` (retryable False, ``outcome_unknown`` when it may have
        reached the node)."""
        cfg: dict[str, Any] = {
            "encoding": "base64",
            "skipPreflight": skip_preflight,
            "preflightCommitment": self.commitment,
        }
        if max_retries is not None:
            cfg["maxRetries"] = max_retries
        try:
            return str(await self.call("sendTransaction", [signed_tx_b64, cfg], retry=NO_RETRY))
        except RpcError:
            raise
        except MarketError as exc:
            raise MarketError(
                ErrorCode.EXECUTE_FAILED,
                f"sendTransaction failed ({exc.code}): {exc.message}",
                status=exc.status,
                details={
                    "signature": transaction_signature(signed_tx_b64),
                    "outcome_unknown": outcome_unknown(exc),
                    "cause": exc.code,
                },
            ) from exc

    async def get_signature_statuses(
        self, signatures: Sequence[str], *, search_history: bool = False
    ) -> list[SignatureStatus | None]:
        res = await self.call("getSignatureStatuses", [list(signatures), {"searchTransactionHistory": search_history}])
        return [
            None
            if s is None
            else SignatureStatus(
                slot=int(s["slot"]),
                confirmations=s.get("confirmations"),
                err=s.get("err"),
                confirmation_status=s.get("confirmationStatus"),
            )
            for s in self._value(res, "getSignatureStatuses")
        ]

    async def get_token_accounts_by_owner(
        self, owner: str, *, program_ids: Sequence[str] = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
    ) -> dict[str, TokenAmount]:
        """Raw balance per mint over all of ``owner``'s token accounts (both token programs)."""
        out: dict[str, TokenAmount] = {}
        for program in program_ids:
            res = await self.call(
                "getTokenAccountsByOwner",
                [owner, {"programId": program}, {"encoding": "jsonParsed", "commitment": self.commitment}],
            )
            for acc in self._value(res, "getTokenAccountsByOwner"):
                try:
                    info = acc["account"]["data"]["parsed"]["info"]
                    mint, amt = info["mint"], info["tokenAmount"]
                    amount, decimals = int(amt["amount"]), int(amt["decimals"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise MarketError(ErrorCode.INVALID_RESPONSE, f"RPC token account malformed: {exc!r}") from None
                prev = out.get(mint)
                out[mint] = TokenAmount(amount=amount + (prev.amount if prev else 0), decimals=decimals)
        return out

    async def get_transaction(self, signature: str) -> TransactionMeta | None:
        """Landed transaction's balance data, or None if not (yet) known at this commitment."""
        res = await self.call(
            "getTransaction",
            [signature, {"encoding": "json", "commitment": self.commitment, "maxSupportedTransactionVersion": 0}],
        )
        if res is None:
            return None
        try:
            meta, msg = res["meta"], res["transaction"]["message"]
            keys = [str(k) for k in msg["accountKeys"]]
            loaded = meta.get("loadedAddresses") or {}
            keys += [*loaded.get("writable", []), *loaded.get("readonly", [])]
            return TransactionMeta(
                slot=int(res["slot"]),
                err=meta.get("err"),
                fee=int(meta["fee"]),
                account_keys=keys,
                pre_balances=[int(b) for b in meta["preBalances"]],
                post_balances=[int(b) for b in meta["postBalances"]],
                pre_token_balances=_token_balances(meta.get("preTokenBalances")),
                post_token_balances=_token_balances(meta.get("postTokenBalances")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MarketError(ErrorCode.INVALID_RESPONSE, f"RPC getTransaction malformed: {exc!r}") from None
