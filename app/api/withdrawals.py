"""``POST /api/v1/wallets/{walletAddress}/withdraw``: take SOL or a held token out of a wallet (docs/withdrawals.md).

Only the wallet's owner with a user access token (API keys never move money out: 401). Body
``{tokenAddress, amount, destinationAddress}``: ``amount`` is a decimal string or JSON number > 0 (read exactly,
never through float) or ``"all"``; the destination must be a 32-byte base58 Solana public key other than the
wallet itself. An optional ``Idempotency-Key`` (≤ 255 printable ASCII characters, kept forever) makes a retry
return the same withdrawal instead of making another one; the same key with a different request is a 422.

Answers: 201 completed (simulation, or a live transfer confirmed and recorded in time), 202 pending (a live
transfer still settling: the live settlement loop records it), 502 ``WITHDRAWAL_FAILED``/``WITHDRAWAL_EXPIRED``
(nothing left the wallet but possibly the network fee, which the journal keeps), 409 ``INSUFFICIENT_BALANCE``
with ``details.available``. Money fields are decimal strings, as in transactions.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import aiohttp
import asyncpg
import msgspec
from litestar import Request, Response, post
from litestar.params import PathParameter

from app.api.auth import Principal, jwt_only
from app.api.deps import PoolDep, PrincipalDep, SettingsDep
from app.api.errors import ApiError
from app.api.serialization import (
    IdempotencyHeader,
    bad_request,
    checked_idempotency_key,
    dec_str,
    encode_json,
    error_responses,
    is_base58_address,
    iso,
)
from app.api.transactions import TransactionOut, transaction_out
from app.config import Settings
from app.live.keys import get_keystore
from app.market.solana_rpc import SolanaRpc
from app.metrics import WITHDRAWALS_TOTAL
from app.withdrawals import (
    LiveWithdrawals,
    Outcome,
    OwnedWallet,
    WithdrawalRefused,
    WithdrawalRequest,
    check_amount,
    load_view,
    owned_wallet,
    status_of,
    validate_destination,
    withdraw_simulation,
)

_DECIMAL_TEXT = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,30})?$")


class WithdrawBody(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=False):
    token_address: Any = None
    amount: Any = None
    destination_address: Any = None


# JSON numbers arrive as Decimal (float_hook), so 0.1 is exactly 0.1.
_BODY = msgspec.json.Decoder(WithdrawBody, float_hook=Decimal)


class PositionEffect(msgspec.Struct, rename="camel"):
    id: str
    action: str  # reduced | closed
    cost_basis_sol: str | None


class WithdrawalOut(msgspec.Struct, rename="camel"):
    id: str
    status: str  # completed | pending | failed | expired
    wallet_address: str
    wallet_type: str
    agent_id: str
    token_address: str
    token_symbol: str
    amount: str
    destination_address: str
    fees: str | None  # SOL the withdrawal cost besides the amount (network fee, created account rent)
    transaction_hash: str | None
    transaction: TransactionOut | None
    position: PositionEffect | None
    error: str | None
    created_at: str


def _transaction(view: dict[str, Any]) -> TransactionOut | None:
    if view["tx_id"] is None:
        return None
    row = {key[3:]: value for key, value in view.items() if key.startswith("tx_")}
    return transaction_out(row)


def withdrawal_out(view: dict[str, Any]) -> WithdrawalOut:
    position = None
    if view["position_id"] is not None and view["position_action"] is not None:
        position = PositionEffect(str(view["position_id"]), view["position_action"], dec_str(view["cost_basis_sol"]))
    return WithdrawalOut(
        id=str(view["id"]),
        status=status_of(view),
        wallet_address=view["wallet_address"],
        wallet_type=view["wallet_type"],
        agent_id=str(view["agent_id"]),
        token_address=view["token_address"],
        token_symbol=view["token_symbol"],
        amount=dec_str(view["amount"]) or "0",
        destination_address=view["destination_address"],
        fees=dec_str(view["tx_fees"]),
        transaction_hash=view["live_signature"],
        transaction=_transaction(view),
        position=position,
        error=view["live_error"],
        created_at=iso(view["created_at"]) or "",
    )


# ---------------------------------------------------------------- request parsing


def _amount(value: Any) -> Decimal | None:
    """``"all"`` → None; a decimal string or JSON number → Decimal (no signs, exponents, NaN or booleans)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "all":
            return None
        if not _DECIMAL_TEXT.match(text):
            raise bad_request('amount must be a decimal number greater than 0 or "all"')
        number = Decimal(text)
    elif isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        raise bad_request('amount is required: a decimal number greater than 0 or "all"')
    try:
        return check_amount(number)
    except InvalidOperation:
        raise bad_request("amount must be a finite number") from None


def _token(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request("tokenAddress is required")
    token = value.strip()
    if not is_base58_address(token):
        raise bad_request("tokenAddress must be a base58 Solana mint address (32-44 characters)")
    return token


async def _parse(request: Request, wallet_address: str, principal: Principal, key: str | None) -> WithdrawalRequest:
    raw = await request.body()
    try:
        body = _BODY.decode(raw or b"{}")
    except msgspec.ValidationError as exc:
        raise bad_request(f"Validation failed: {exc}") from None
    except msgspec.DecodeError:
        raise bad_request("Malformed JSON body") from None
    token = _token(body.token_address)
    amount = _amount(body.amount)
    if not isinstance(body.destination_address, str):
        raise bad_request("destinationAddress is required")
    destination = validate_destination(body.destination_address, wallet_address, token)
    return WithdrawalRequest(
        user_id=principal.user_id,
        wallet_address=wallet_address,
        token_address=token,
        amount=amount,
        destination=destination,
        idempotency_key=key,
    )


# ---------------------------------------------------------------- the route


def _answer(view: dict[str, Any], outcome: Outcome) -> Response:
    body = withdrawal_out(view)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    status = body.status
    if status in ("failed", "expired"):
        message = "Withdrawal failed: nothing was transferred" if status == "failed" else "Withdrawal expired"
        reason = f" ({body.error})" if body.error else ""
        raise ApiError(
            502,
            f"{message}{reason}",
            f"WITHDRAWAL_{status.upper()}",
            details={"withdrawal": msgspec.to_builtins(body)},
            headers=headers,
        )
    code = 201 if status == "completed" else 202
    return Response(content=encode_json(body), status_code=code, media_type="application/json", headers=headers)


async def _withdraw_live(
    pool: asyncpg.Pool, settings: Settings, request: WithdrawalRequest, wallet: OwnedWallet
) -> Outcome:
    async with aiohttp.ClientSession() as session:
        service = LiveWithdrawals(pool, settings, SolanaRpc(session, settings.solana_rpc_url), get_keystore(settings))
        return await service.withdraw(request, wallet)


@post(
    "/api/v1/wallets/{wallet_address:str}/withdraw",
    dependencies={"principal": jwt_only()},
    summary="Withdraw SOL or a held token to a Solana address (owner's access token only)",
    description='Body: tokenAddress (SOL mint or a token the wallet holds), amount (decimal > 0 or "all"), '
    "destinationAddress (base58 public key). Simulation wallets: done at once (simulated 0.000005 SOL network fee). "
    "Live wallets: a signed transfer journaled before it is sent; 202 while it settles. Optional Idempotency-Key.",
    tags=["Wallets"],
    status_code=201,
    responses=error_responses(400, 401, 404, 409, 422, 502),
)
async def withdraw(
    wallet_address: Annotated[str, PathParameter(description="The wallet to withdraw from")],
    request: Request,
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    key = checked_idempotency_key(idempotency_key)
    wallet_type = "unknown"
    try:
        withdrawal = await _parse(request, wallet_address, principal, key)
        wallet = await owned_wallet(pool, wallet_address, principal.user_id)
        wallet_type = wallet.wallet_type
        if wallet.wallet_type == "live":
            outcome = await _withdraw_live(pool, settings, withdrawal, wallet)
        else:
            outcome = await withdraw_simulation(pool, withdrawal, wallet)
    except WithdrawalRefused as exc:
        WITHDRAWALS_TOTAL.labels(wallet_type, "refused").inc()
        raise ApiError(exc.status, exc.message, exc.code, details=exc.details) from None
    view = await load_view(pool, outcome.withdrawal_id)
    if not outcome.replayed:
        WITHDRAWALS_TOTAL.labels(wallet_type, status_of(view)).inc()
    return _answer(view, outcome)


ROUTES = [withdraw]
