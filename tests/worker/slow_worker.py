"""A real worker process whose quotes take ``TEST_QUOTE_DELAY_S`` (a slow Jupiter), for crash tests.

``python -m tests.worker.slow_worker`` runs the signal intake exactly as ``nexgent worker`` does (settings
from the environment, replay market from ``PRICE_REPLAY_FILE``), only the quoter sleeps before answering,
so a test can SIGKILL the process while a signal is half processed.
"""

from __future__ import annotations

import asyncio
import os
import signal

from app.config import load_settings
from app.logs import setup_logging
from app.worker import components
from app.worker.execution import build_execution_context
from app.worker.intake import signal_intake_service
from app.worker.main import heartbeat_service, run_worker
from tests.worker.helpers import RecordingQuoter


async def slow_intake_service(ctx) -> None:
    market = await components.market(ctx)
    execution = await build_execution_context(ctx.settings, ctx.pool, market)
    execution.quoter = RecordingQuoter(execution.quoter, delay_s=float(os.environ.get("TEST_QUOTE_DELAY_S", "0")))
    ctx.components["execution"] = execution
    await signal_intake_service(ctx)


async def main() -> None:
    settings = load_settings()
    setup_logging(settings.log_level, "text")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await run_worker(
        settings, os.environ["DATABASE_URL"], stopping=stopping, services=[heartbeat_service, slow_intake_service]
    )


if __name__ == "__main__":
    asyncio.run(main())
