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
WORKER_LEADER = Gauge(
    "worker_leader",
    "1 while this worker is the elected leader for a role (e.g. price_monitor)",
    ["role"],
    registry=REGISTRY,
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
UPSTREAM_RATE_LIMITED_TOTAL = Counter(
    "upstream_rate_limited_total",
    "Upstream request budgets: 429s that paused every client (paused), requests refused unsent (refused)",
    ["upstream", "outcome"],
    registry=REGISTRY,
)
# Position management (price monitor and snapshots).
RUG_BURN_TRIGGER_TOTAL = Counter("rug_burn_trigger_total", "Rug-pull write-offs (BURN) triggered", registry=REGISTRY)
PRICE_MONITOR_TICK_LATENCY = Histogram(
    "price_monitor_tick_seconds",
    "Time to evaluate every open position of one price poll (fetch excluded)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2),
    registry=REGISTRY,
)
POSITIONS_EVALUATED_TOTAL = Counter(
    "positions_evaluated_total", "Open positions evaluated against a fresh price", registry=REGISTRY
)
PRICES_REJECTED_TOTAL = Counter(
    "prices_rejected_total", "Prices not used for trading, by reason", ["reason"], registry=REGISTRY
)
BALANCE_SNAPSHOTS_TOTAL = Counter(
    "balance_snapshots_total", "Hourly balance snapshots written", ["kind", "status"], registry=REGISTRY
)
# Operations: read from the database at scrape time by the API (app.api.metrics).
QUEUE_DEPTH = Gauge("queue_depth", "Work waiting in a durable queue", ["queue_name"], registry=REGISTRY)
# Authentication (issue 3): hash work by operation and scheme ("dummy" = the verify spent on an unknown e-mail),
# and outcomes of login, refresh, API-key and rate-limit decisions.
PASSWORD_HASH_OPERATIONS = Counter(
    "password_hash_operations_total",
    "Password hash operations by operation and scheme",
    ["op", "scheme"],
    registry=REGISTRY,
)
AUTH_EVENTS_TOTAL = Counter("auth_events_total", "Authentication decisions by event", ["event"], registry=REGISTRY)
# API-key cache: 1 while this process's revocation listener is connected; at 0 every API-key request
# reads the database (correct, slower).
API_KEY_LISTENER_UP = Gauge(
    "api_key_revocation_listener_up",
    "1 while API-key and access-token revocations are heard (caches in use)",
    registry=REGISTRY,
)
# Withdrawals (issue 9): requests by wallet type and outcome (completed, pending, failed, expired, refused).
WITHDRAWALS_TOTAL = Counter(
    "withdrawals_total", "Withdrawal requests by wallet type and outcome", ["wallet_type", "outcome"], registry=REGISTRY
)
