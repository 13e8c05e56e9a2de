"""Fake Solana JSON-RPC node (``POST /``), faithful to the wire shapes the client reads.

Methods: getBalance, getAccountInfo (mint accounts get the 82-byte SPL layout, decimals at byte 44),
getLatestBlockhash, getBlockHeight, sendTransaction, getSignatureStatuses, getTokenAccountsByOwner
(jsonParsed), getTransaction (json, pre/post balances and token balances). Others → -32601.

State knobs:

* ``balances[pubkey] = lamports``; ``token_accounts[owner][mint] = raw``; ``mint_decimals[mint]``;
  ``mint_programs[mint]`` (default SPL Token); ``account_data[pubkey] = bytes`` overrides
  getAccountInfo (e.g. a too-short mint).
* ``block_height`` / ``slot``; :meth:`advance_blocks` mints a new blockhash per block;
  :meth:`expire_blockhashes` jumps past every issued ``lastValidBlockHeight`` (pending txs then
  expire and can never land). ``blockhash_ttl`` = 150 blocks.

Sending: ``sendTransaction`` decodes the base64 ``VersionedTransaction`` with solders and verifies
every required signature (fee payer first) → -32003 on failure; an unknown/expired blockhash is
-32002 "Blockhash not found" under preflight, or silently never lands with ``skipPreflight``;
``preflight_err`` (if set) makes preflight fail with that ``err``. Accepted txs are in
``sent[signature]`` (:class:`SentTx`). What happens next is the test's call:

* ``send_outcome``: "pending" (default: wait for the test), "confirm", "fail" (slippage 6001) or
  "drop" (never lands); ``on_send(sent_tx)`` runs after recording, e.g. to confirm with deltas;
* :meth:`confirm` (``sol_deltas={owner: lamports}``, ``token_deltas={(owner, mint): raw}``,
  ``err=None``, fee charged to the payer), :meth:`fail` (err + fee only), :meth:`drop`;
  ``confirm(..., commitment="processed")`` lands it unconfirmed (status ``processed``, no
  ``getTransaction`` at confirmed commitment) until :meth:`promote`.

Per-method faults: the base HTTP faults keyed by method name, plus
``rpc_error(method, code, message, data=None, times=1)`` for JSON-RPC ``error`` objects.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from tests.fakes.base import JSON_BODY, FakeServer, Fault, json_response

TOKEN_PROGRAM_ID = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
SYSTEM_PROGRAM_ID = "11111111111111111111111111111111"
SLIPPAGE_EXCEEDED = {"InstructionError": [0, {"Custom": 6001}]}


class RpcReject(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass
class SentTx:
    signature: str
    tx: VersionedTransaction
    payer: str
    blockhash: str
    last_valid_block_height: int | None
    status: str = "pending"  # pending | confirmed | finalized | failed | dropped | expired
    err: Any = None
    slot: int | None = None
    meta: dict[str, Any] | None = None


def _pubkey(value: str) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except ValueError:
        return Pubkey.from_bytes(hashlib.sha256(value.encode()).digest())


def token_account_address(owner: str, mint: str) -> str:
    return str(get_associated_token_address(_pubkey(owner), _pubkey(mint)))


def mint_account_data(decimals: int) -> bytes:
    """SPL mint layout (82 bytes): authority COption(36) + supply u64(8) + decimals u8 @44 + …"""
    return bytes(44) + bytes([decimals, 1]) + bytes(36)


class FakeSolanaRpc(FakeServer):
    def __init__(self, *, block_height: int = 1_000, blockhash_ttl: int = 150) -> None:
        self.balances: dict[str, int] = {}
        self.token_accounts: dict[str, dict[str, int]] = {}
        self.mint_decimals: dict[str, int] = {}
        self.mint_programs: dict[str, str] = {}
        self.account_data: dict[str, bytes] = {}
        self.block_height = block_height
        self.slot = block_height + 10_000
        self.blockhash_ttl = blockhash_ttl
        self.blockhashes: dict[str, int] = {}
        self.blockhash = self._new_blockhash()
        self.sent: dict[str, SentTx] = {}
        self.send_outcome = "pending"
        self.on_send: Callable[[SentTx], None] | None = None
        self.preflight_err: Any = None
        self.signature_fee = 5_000
        super().__init__()

    def setup_routes(self) -> None:
        self.route("POST", "/", self._handle, "rpc")

    def route_name_for_body(self, name: str, body: Any) -> str:
        return str(body.get("method")) if isinstance(body, dict) else name

    # -- chain clock ------------------------------------------------------------------------------
    def _new_blockhash(self) -> str:
        bh = str(Hash(hashlib.sha256(f"fake-blockhash:{self.block_height}:{len(self.blockhashes)}".encode()).digest()))
        self.blockhashes[bh] = self.block_height + self.blockhash_ttl
        return bh

    def latest_blockhash(self) -> tuple[str, int]:
        return self.blockhash, self.blockhashes[self.blockhash]

    def advance_blocks(self, n: int = 1) -> None:
        self.block_height += n
        self.slot += n
        self.blockhash = self._new_blockhash()
        for s in self.sent.values():
            if s.status == "pending" and (s.last_valid_block_height or 0) < self.block_height:
                s.status = "expired"

    def expire_blockhashes(self) -> None:
        """Advance past every issued lastValidBlockHeight."""
        self.advance_blocks(max(self.blockhashes.values()) - self.block_height + 1)

    # -- sending / landing ------------------------------------------------------------------------
    def submit(self, raw: bytes, *, skip_preflight: bool = False) -> SentTx:
        """Validate and record a signed transaction (what sendTransaction does). Raises RpcReject."""
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except Exception as exc:
            raise RpcReject(-32602, f"invalid transaction: failed to deserialize: {exc}") from None
        sig = str(tx.signatures[0])
        if sig in self.sent:
            return self.sent[sig]
        if not all(tx.verify_with_results()):
            raise RpcReject(-32003, "Transaction signature verification failure")
        bh = str(tx.message.recent_blockhash)
        lvbh = self.blockhashes.get(bh)
        valid = lvbh is not None and lvbh >= self.block_height
        if not skip_preflight:
            if not valid:
                raise RpcReject(
                    -32002,
                    "Transaction simulation failed: Blockhash not found",
                    {"err": "BlockhashNotFound", "logs": []},
                )
            if self.preflight_err is not None:
                raise RpcReject(
                    -32002,
                    "Transaction simulation failed: Error processing Instruction 0",
                    {"err": self.preflight_err, "logs": []},
                )
        sent = SentTx(sig, tx, str(tx.message.account_keys[0]), bh, lvbh, "pending" if valid else "expired")
        self.sent[sig] = sent
        if valid:
            if self.send_outcome == "confirm":
                self.confirm(sig)
            elif self.send_outcome == "fail":
                self.fail_tx(sig)
            elif self.send_outcome == "drop":
                self.drop_tx(sig)
        if self.on_send is not None:
            self.on_send(sent)
        return sent

    def confirm(
        self,
        signature: str,
        *,
        sol_deltas: dict[str, int] | None = None,
        token_deltas: dict[tuple[str, str], int] | None = None,
        err: Any = None,
        fee: int | None = None,
        commitment: str = "confirmed",
    ) -> SentTx:
        """Land a sent tx: charge ``fee`` to the payer and, unless ``err``, apply the deltas."""
        s = self.sent[signature]
        if s.status == "expired":
            raise AssertionError("transaction's blockhash expired; it can never land")
        fee = self.signature_fee * len(s.tx.signatures) if fee is None else fee
        sol_deltas, token_deltas = dict(sol_deltas or {}), dict(token_deltas or {})
        keys = [str(k) for k in s.tx.message.account_keys]
        keys += [o for o in sol_deltas if o not in keys]
        token_keys = {(o, m): token_account_address(o, m) for o, m in token_deltas}
        keys += [a for a in token_keys.values() if a not in keys]
        pre = [self.balances.get(k, 0) for k in keys]
        pre_tok = self._token_rows(token_keys, keys)
        self.balances[s.payer] = self.balances.get(s.payer, 0) - fee
        if err is None:
            for owner, d in sol_deltas.items():
                self.balances[owner] = self.balances.get(owner, 0) + d
            for (owner, mint), d in token_deltas.items():
                accts = self.token_accounts.setdefault(owner, {})
                accts[mint] = accts.get(mint, 0) + d
        s.meta = {
            "err": err,
            "fee": fee,
            "status": {"Ok": None} if err is None else {"Err": err},
            "preBalances": pre,
            "postBalances": [self.balances.get(k, 0) for k in keys],
            "preTokenBalances": pre_tok,
            "postTokenBalances": self._token_rows(token_keys, keys),
            # Keys beyond the message's static ones are reported as loaded (ALT) addresses.
            "loadedAddresses": {"writable": keys[len(s.tx.message.account_keys) :], "readonly": []},
            "logMessages": [],
            "innerInstructions": [],
            "rewards": [],
        }
        s.status, s.err, s.slot = ("failed" if err is not None else commitment), err, self.slot
        return s

    def fail_tx(self, signature: str, err: Any = SLIPPAGE_EXCEEDED, *, fee: int | None = None) -> SentTx:
        """Land as failed (default: slippage exceeded, custom program error 6001); fee only."""
        return self.confirm(signature, err=err, fee=fee)

    def drop_tx(self, signature: str) -> None:
        """Never lands (until a later :meth:`confirm`: the landed-after-timeout case)."""
        self.sent[signature].status = "dropped"

    def promote(self, signature: str) -> None:
        """A tx landed with ``commitment="processed"`` becomes confirmed (partial → full confirmation)."""
        if self.sent[signature].status == "processed":
            self.sent[signature].status = "confirmed"

    def finalize(self, signature: str) -> None:
        if self.sent[signature].status == "confirmed":
            self.sent[signature].status = "finalized"

    def _token_rows(self, token_keys: dict[tuple[str, str], str], keys: list[str]) -> list[dict[str, Any]]:
        rows = []
        for (owner, mint), addr in token_keys.items():
            if mint not in self.token_accounts.get(owner, {}):
                continue
            amount = self.token_accounts[owner][mint]
            rows.append(
                {
                    "accountIndex": keys.index(addr),
                    "mint": mint,
                    "owner": owner,
                    "programId": self.mint_programs.get(mint, TOKEN_PROGRAM_ID),
                    "uiTokenAmount": self._ui_amount(amount, self.mint_decimals.get(mint, 6)),
                }
            )
        return rows

    @staticmethod
    def _ui_amount(amount: int, decimals: int) -> dict[str, Any]:
        ui = Decimal(amount).scaleb(-decimals)
        return {"amount": str(amount), "decimals": decimals, "uiAmount": ui, "uiAmountString": format(ui, "f")}

    # -- JSON-RPC plumbing ------------------------------------------------------------------------
    def rpc_error(self, method: str, code: int, message: str, data: Any = None, *, times: int | None = 1) -> None:
        self.inject(method, Fault("rpc_error", times, body={"code": code, "message": message, "data": data}))

    async def apply_fault(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        if fault.kind == "rpc_error":
            body = request.get(JSON_BODY) or {}
            return json_response({"jsonrpc": "2.0", "error": fault.body, "id": body.get("id")})
        return await super().apply_fault(request, fault)

    def _ctx(self, value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": "2.1.0", "slot": self.slot}, "value": value}

    async def _handle(self, request: web.Request) -> web.Response:
        body = request.get(JSON_BODY)
        if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
            return json_response(
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request"}, "id": None}
            )
        rid, method, params = body.get("id"), body.get("method"), body.get("params") or []
        handler = getattr(self, f"rpc_{method}", None)
        try:
            if handler is None:
                raise RpcReject(-32601, "Method not found")
            result = handler(*params)
        except RpcReject as exc:
            err = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                err["data"] = exc.data
            return json_response({"jsonrpc": "2.0", "error": err, "id": rid})
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            return json_response(
                {"jsonrpc": "2.0", "error": {"code": -32602, "message": f"Invalid params: {exc}"}, "id": rid}
            )
        return json_response({"jsonrpc": "2.0", "result": result, "id": rid})

    # -- methods ----------------------------------------------------------------------------------
    def rpc_getBalance(self, pubkey: str, cfg: Any = None) -> Any:
        return self._ctx(self.balances.get(pubkey, 0))

    def rpc_getAccountInfo(self, pubkey: str, cfg: Any = None) -> Any:
        if pubkey in self.account_data:
            data, owner = self.account_data[pubkey], TOKEN_PROGRAM_ID
        elif pubkey in self.mint_decimals:
            data, owner = (
                mint_account_data(self.mint_decimals[pubkey]),
                self.mint_programs.get(pubkey, TOKEN_PROGRAM_ID),
            )
        elif pubkey in self.balances:
            data, owner = b"", SYSTEM_PROGRAM_ID
        else:
            return self._ctx(None)
        return self._ctx(
            {
                "data": [base64.b64encode(data).decode(), "base64"],
                "executable": False,
                "lamports": self.balances.get(pubkey, 1_461_600),
                "owner": owner,
                "rentEpoch": 18446744073709551615,
                "space": len(data),
            }
        )

    def rpc_getLatestBlockhash(self, cfg: Any = None) -> Any:
        bh, lvbh = self.latest_blockhash()
        return self._ctx({"blockhash": bh, "lastValidBlockHeight": lvbh})

    def rpc_getBlockHeight(self, cfg: Any = None) -> Any:
        return self.block_height

    def rpc_sendTransaction(self, data: str, cfg: Any = None) -> Any:
        cfg = cfg or {}
        if cfg.get("encoding", "base58") != "base64":
            raise RpcReject(-32602, "fake supports only base64 encoding")
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            raise RpcReject(-32602, "invalid base64") from None
        return self.submit(raw, skip_preflight=bool(cfg.get("skipPreflight"))).signature

    def rpc_getSignatureStatuses(self, sigs: list[str], cfg: Any = None) -> Any:
        out = []
        for sig in sigs:
            s = self.sent.get(sig)
            if s is None or s.meta is None:
                out.append(None)
                continue
            finalized = s.status == "finalized"
            level = "finalized" if finalized else "processed" if s.status == "processed" else "confirmed"
            confirmations = None if finalized else 0 if level == "processed" else max(0, self.slot - (s.slot or 0))
            out.append(
                {
                    "slot": s.slot,
                    "confirmations": confirmations,
                    "err": s.err,
                    "status": s.meta["status"],
                    "confirmationStatus": level,
                }
            )
        return self._ctx(out)

    def rpc_getTokenAccountsByOwner(self, owner: str, flt: dict[str, str], cfg: Any = None) -> Any:
        rows = []
        for mint, amount in self.token_accounts.get(owner, {}).items():
            program = self.mint_programs.get(mint, TOKEN_PROGRAM_ID)
            if ("mint" in flt and flt["mint"] != mint) or ("programId" in flt and flt["programId"] != program):
                continue
            info = {
                "isNative": False,
                "mint": mint,
                "owner": owner,
                "state": "initialized",
                "tokenAmount": self._ui_amount(amount, self.mint_decimals.get(mint, 6)),
            }
            rows.append(
                {
                    "pubkey": token_account_address(owner, mint),
                    "account": {
                        "data": {"program": "spl-token", "parsed": {"info": info, "type": "account"}, "space": 165},
                        "executable": False,
                        "lamports": 2_039_280,
                        "owner": program,
                        "rentEpoch": 18446744073709551615,
                        "space": 165,
                    },
                }
            )
        return self._ctx(rows)

    def rpc_getTransaction(self, sig: str, cfg: Any = None) -> Any:
        s = self.sent.get(sig)
        if s is None or s.meta is None:
            return None
        if s.status == "processed" and (cfg or {}).get("commitment", "finalized") != "processed":
            return None  # landed in a block the cluster has not confirmed yet
        msg = s.tx.message
        return {
            "slot": s.slot,
            "blockTime": 1_700_000_000 + (s.slot or 0),
            "version": 0,
            "meta": s.meta,
            "transaction": {
                "signatures": [str(x) for x in s.tx.signatures],
                "message": {
                    "accountKeys": [str(k) for k in msg.account_keys],
                    "recentBlockhash": str(msg.recent_blockhash),
                    "header": {
                        "numRequiredSignatures": msg.header.num_required_signatures,
                        "numReadonlySignedAccounts": msg.header.num_readonly_signed_accounts,
                        "numReadonlyUnsignedAccounts": msg.header.num_readonly_unsigned_accounts,
                    },
                    "instructions": [],
                    "addressTableLookups": [],
                },
            },
        }
