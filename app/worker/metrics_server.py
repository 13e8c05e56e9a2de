"""The worker's own Prometheus listener: counters and histograms of the trading loop live in this process.

``WORKER_METRICS_PORT`` (0 = off; 9464 by convention) binds ``WORKER_METRICS_HOST`` (default ``127.0.0.1``):
the listener has no authentication, so bind another address only on a private network (a container network
that only Prometheus shares), never on a public interface.
Several workers on one host each need their own port; a port already taken is logged and the worker runs on
without metrics rather than crash-looping.

System-wide gauges (worker lag, queue depth, open positions, price-feed staleness) are computed by the API
from the database at scrape time (app.api.metrics), so they stay right with any number of workers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from prometheus_client import start_http_server

from app.metrics import REGISTRY

if TYPE_CHECKING:
    from app.worker.main import WorkerContext

log = logging.getLogger(__name__)


async def metrics_server_service(ctx: WorkerContext) -> None:
    port, host = ctx.settings.worker_metrics_port, ctx.settings.worker_metrics_host
    server = None
    if port:
        try:
            server, _thread = await asyncio.to_thread(start_http_server, port, host, REGISTRY)
            log.info("worker metrics listening", extra={"fields": {"address": f"{host}:{port}"}})
        except OSError as exc:
            log.error("worker metrics port unavailable", extra={"fields": {"port": port, "error": str(exc)}})
    # A service that returns stops the worker: this one waits for the stop like the others.
    await ctx.stopping.wait()
    if server is not None:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
