"""Prometheus metrics (the reference's names where they make sense; spec api.md §20).

Each process (API, worker) has its own registry; labels stay low-cardinality (no agent ids, no token
addresses, route templates instead of raw paths).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

SIGNAL_PROCESSING_LATENCY = Histogram(
    "signal_processing_latency_seconds",
    "Time from picking a signal up to writing every agent's execution row",
    ["status"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5),
    registry=REGISTRY,
)
SIGNAL_PROCESSING_TOTAL = Counter(
    "signal_processing_total", "Signal executions by outcome", ["status"], registry=REGISTRY
)
SIGNAL_TO_FILL_LATENCY = Histogram(
    "signal_to_fill_latency_seconds",
    "Time from a signal's creation to the commit of a trade it caused",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
TRADE_EXECUTION_LATENCY = Histogram(
    "trade_execution_latency_seconds",
    "Trade execution time",
    ["type", "status"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
TRADE_EXECUTION_TOTAL = Counter(
    "trade_execution_total", "Trades by type and outcome", ["type", "status"], registry=REGISTRY
)
STOP_LOSS_TRIGGER_TOTAL = Counter("stop_loss_trigger_total", "Stop-loss sales triggered", registry=REGISTRY)
STALE_TRADE_TRIGGER_TOTAL = Counter("stale_trade_trigger_total", "Stale-trade closes triggered", registry=REGISTRY)
TAKE_PROFIT_TRIGGER_TOTAL = Counter("take_profit_trigger_total", "Take-profit sales triggered", registry=REGISTRY)
DCA_TRIGGER_TOTAL = Counter("dca_trigger_total", "DCA buys triggered", registry=REGISTRY)
PRICE_UPDATE_LATENCY = Histogram(
    "price_update_latency_seconds", "Price fetch time", ["source"], buckets=(0.1, 0.5, 1, 2, 5), registry=REGISTRY
)
PRICE_UPDATE_TOTAL = Counter("price_update_total", "Price fetches by outcome", ["source", "status"], registry=REGISTRY)
PRICE_FEED_STALENESS = Gauge(
    "price_feed_staleness_seconds", "Age of the newest price from each feed", ["feed"], registry=REGISTRY
)
WORKER_LAG = Gauge("worker_lag_seconds", "Age of the oldest unprocessed signal", registry=REGISTRY)
OPEN_POSITIONS = Gauge("open_positions", "Open positions across all agents", registry=REGISTRY)
API_REQUESTS_TOTAL = Counter("api_requests_total", "HTTP requests", ["method", "path", "status"], registry=REGISTRY)
API_REQUEST_LATENCY = Histogram(
    "api_request_latency_seconds",
    "HTTP request latency by route template",
    ["method", "path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
    registry=REGISTRY,
)
DB_POOL_CONNECTIONS = Gauge("db_pool_connections", "Database pool connections", ["state"], registry=REGISTRY)
ERRORS_TOTAL = Counter("errors_total", "Errors by area and code", ["type", "code"], registry=REGISTRY)
