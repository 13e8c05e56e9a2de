"""Settings, read once from environment variables into one immutable struct.

Every variable is documented in the README (section "Configuration") with its default. Field names map to
upper-case environment variables: ``database_url`` <- ``DATABASE_URL``.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Secrets that appear in documentation or example files anywhere; refusing them in production stops a
# copied example from becoming a live signing key (the reference accepted its own env.example value).
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "secret",
        "dev-secret-change-me-dev-secret-change-me",
        "your-secret-here-minimum-32-characters",
        "your-strong-random-secret-key-minimum-32-characters-long",
    }
)
DEV_JWT_SECRET = "dev-secret-change-me-dev-secret-change-me"


class ConfigError(Exception):
    """A setting is missing or invalid; the process refuses to start."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    app_env: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    db_pool_min: int = 2
    db_pool_max: int = 10
    data_dir: str = str(PROJECT_ROOT / ".data")
    host: str = "127.0.0.1"
    port: int = 4000
    jwt_secret: str = DEV_JWT_SECRET
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    cors_origin: str = ""
    trusted_proxies: int = 0
    registration_enabled: bool = True
    admin_email: str | None = None
    admin_password: str | None = None
    # Market data and execution.
    price_source: Literal["replay", "jupiter", "dexscreener"] = "replay"
    price_replay_file: str | None = None
    jupiter_api_key: str | None = None
    jupiter_base_url: str = "https://api.jup.ag"
    jupiter_price_url: str = "https://lite-api.jup.ag/price/v3"
    dexscreener_url: str = "https://api.dexscreener.com"
    pyth_hermes_url: str = "https://hermes.pyth.network"
    solana_rpc_url: str = "https://api.mainnet-beta.solana.com"
    sim_random_seed: int | None = None
    # Client-side pace of the worker's calls (requests per second, shared by every client of the account;
    # unset = no pace, a 429 still pauses them all). Jupiter counts all its endpoints against one bucket.
    jupiter_max_rps: float | None = None
    solana_rpc_max_rps: float | None = None
    # Worker timing.
    worker_signal_poll_ms: int = 1000
    worker_price_poll_ms: int = 1500
    worker_heartbeat_s: float = 5.0
    worker_heartbeat_stale_s: float = 30.0
    worker_concurrency: int = 8
    snapshot_interval_s: int = 3600
    # Operations.
    metrics_token: str | None = None
    live_trading_enabled: bool = True
    # Operations (issue 8): the worker's own Prometheus listener on 127.0.0.1 (0 = off; 9464 by convention),
    # and the WebSocket application-level heartbeat (ping every interval, close after the timeout).
    worker_metrics_port: int = 0
    ws_heartbeat_s: float = 30.0
    ws_heartbeat_timeout_s: float = 60.0
    # Position management (price monitor, snapshots).
    price_max_age_ms: int = 0  # a token price older than this never trades; 0 = three price polls
    sol_usd_max_age_s: float = 30.0  # SOL/USD older than this prices nothing derived from USD
    tracking_refresh_s: float = 10.0  # re-read the set of tokens with open positions from the DB
    # One worker (the holder of an advisory lock) runs the price monitor; the others retry this often and take
    # over when it goes. The holder checks its lock connection as often and steps down when it is lost.
    monitor_leader_retry_s: float = 2.0
    rug_check_interval_s: float = 30.0  # liquidity check of an unpriced token at most this often
    snapshot_backfill_max_hours: int = 168  # missed hourly snapshots filled after downtime, at most
    # Live trading (issue 7, docs/live-trading.md). Keys come from WALLET_n (+ WALLET_n_OWNER) and/or this file.
    live_wallet_key_file: str | None = None
    live_swap_api: Literal["metis", "ultra"] = "metis"  # metis = swap v1 + our own RPC send; ultra = order/execute
    live_slippage_bps: int = 100  # slippage requested on Metis quotes
    live_priority_level: Literal["medium", "high", "veryHigh"] = "high"
    live_priority_fee_max_lamports: int = 1_000_000  # cap on the priority fee Jupiter may add (0.001 SOL)
    live_max_slippage_bps: int = 300  # rail: refuse quotes that allow more slippage than this
    live_max_price_impact: Decimal = Decimal("0.1")  # rail: refuse quotes with |impact| above this fraction
    live_daily_loss_limit_sol: Decimal | None = None  # default per-agent realized loss per UTC day (None = off)
    live_max_open_positions: int = 25  # default per-agent cap on open live positions
    live_confirm_poll_s: float = 1.0
    live_confirm_timeout_s: float = 120.0  # give up waiting in-line; settlement resolves the swap later
    live_resend_interval_s: float = 2.0  # rebroadcast the same signed bytes until confirmed or expired
    live_skip_preflight: bool = False
    live_lease_s: float = 30.0  # a swap watched by no live process for this long is settled from chain
    live_settle_interval_s: float = 5.0
    live_reconcile_interval_s: float = 300.0
    live_drift_sol_threshold: Decimal = Decimal("0.001")  # SOL drift that blocks a wallet until acknowledged
    live_drift_token_fraction: Decimal = Decimal("0.001")  # token drift, relative to the larger balance
    # Signal intake and manual trades (issue 5, docs/worker.md).
    worker_signal_max_attempts: int = 5  # a signal failing (or killing its worker) this often is written off
    worker_signal_retry_base_s: float = 1.0  # backoff after a failed attempt: base × 2^(attempts−1), ≤ 5 min
    trade_request_wait_s: float = 15.0  # how long POST /trades/execute and /close wait before answering 202
    trade_request_ttl_s: float = 120.0  # a manual trade not picked up by a worker within this is not executed
    # Authentication (issue 3, docs/security.md). argon2id cost defaults to argon2-cffi's (t=3, 64 MiB, p=4);
    # tests lower it. ADMIN_PASSWORD_RESET=true lets ADMIN_PASSWORD replace the admin's own password at start.
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536
    argon2_parallelism: int = 4
    admin_password_reset: bool = False
    api_key_cache_ttl_s: float = 60.0
    # Operations (issue 8): where the worker's metrics listener binds; keep loopback unless the port is only
    # reachable on a private network (e.g. a container network scraped by Prometheus).
    worker_metrics_host: str = "127.0.0.1"
    # Withdrawals (issue 9, docs/withdrawals.md): how long POST /wallets/{address}/withdraw waits for a live
    # transfer to confirm before answering 202 (settlement records it later).
    withdrawal_wait_s: float = 20.0
    # POST /api/v1/webhooks/test echoes a sender's call (credentials redacted); off unless asked for (api.md §14.3).
    enable_test_webhook: bool = False

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise ConfigError on an invalid or unsafe value."""
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for field in msgspec.structs.fields(Settings):
        value = env.get(field.name.upper())
        if value is not None and value != "":
            raw[field.name] = value
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
    if settings.is_production:
        secret = settings.jwt_secret
        if secret in PLACEHOLDER_SECRETS or len(secret) < 32 or "JWT_SECRET" not in env:
            raise ConfigError("JWT_SECRET must be set to a random value of at least 32 characters in production")
    elif len(settings.jwt_secret) < 32:
        raise ConfigError("JWT_SECRET must be at least 32 characters")
    return settings
