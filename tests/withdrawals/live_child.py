"""One live withdrawal in its own process, so a test can SIGKILL it between sending and recording.

Arguments come as JSON in the environment variable ``WITHDRAW_CHILD`` (the wallet's test key must not show up
in the process list): database_url, rpc_url, secret, email, user_id, wallet, destination, amount, key.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from decimal import Decimal

import aiohttp
import msgspec

from app.config import load_settings
from app.db import create_pool
from app.live.keys import load_keystore
from app.market.solana_rpc import SolanaRpc
from app.trading.units import SOL_MINT
from app.withdrawals import LiveWithdrawals, WithdrawalRequest, owned_wallet


async def main(args: dict[str, str]) -> None:
    settings = msgspec.structs.replace(
        load_settings({"APP_ENV": "test", "LOG_LEVEL": "WARNING"}),
        solana_rpc_url=args["rpc_url"],
        withdrawal_wait_s=120.0,
        live_confirm_poll_s=0.05,
        live_resend_interval_s=0.0,
    )
    pool = await create_pool(args["database_url"], min_size=1, max_size=4)
    keystore = load_keystore({"WALLET_1": args["secret"], "WALLET_1_OWNER": args["email"]})
    try:
        async with aiohttp.ClientSession() as session:
            service = LiveWithdrawals(
                pool, settings, SolanaRpc(session, args["rpc_url"]), keystore, instance_id="killed-child"
            )
            user_id = uuid.UUID(args["user_id"])
            wallet = await owned_wallet(pool, args["wallet"], user_id)
            request = WithdrawalRequest(
                user_id=user_id,
                wallet_address=args["wallet"],
                token_address=SOL_MINT,
                amount=Decimal(args["amount"]),
                destination=args["destination"],
                idempotency_key=args["key"],
            )
            outcome = await service.withdraw(request, wallet)
            print("finished", outcome.withdrawal_id, flush=True)
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(os.environ["WITHDRAW_CHILD"])))
