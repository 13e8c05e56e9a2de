"""Child process for the crash test: one live buy through the real execution path, configured only
from the environment (as a worker would be). The test SIGKILLs it while its send is in flight."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from decimal import Decimal

import aiohttp

from app.config import load_settings
from app.db import create_pool
from app.live.executor import LiveExecutor
from app.live.services import build_swapper
from app.logs import setup_logging
from app.worker.execution import ExecutionContext, execute_buy
from app.worker.executor import SimulationExecutor


async def main(agent_id: str, mint: str, size: str) -> None:
    settings = load_settings()
    setup_logging(settings.log_level)
    pool = await create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=4)
    try:
        async with aiohttp.ClientSession() as session:
            swapper = build_swapper(settings, session)
            live = LiveExecutor(pool, settings, swapper)
            ctx = ExecutionContext(
                pool=pool,
                settings=settings,
                quoter=live,
                sol_usd=None,
                executor=SimulationExecutor(),
                rng=random.Random(1),
                decimals_lookup=swapper.rpc.get_mint_decimals,
                live_executor=live,
                live_decimals_lookup=swapper.rpc.get_mint_decimals,
            )
            result = await execute_buy(
                ctx, agent_id=uuid.UUID(agent_id), token_address=mint, token_symbol="FAKE", position_size=Decimal(size)
            )
            print("recorded", result.transaction_id, flush=True)
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
