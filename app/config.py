"""Settings, read once from environment variables into one immutable struct.

Every variable is documented in the README (section "Configuration") with its default. Field names map to
upper-case environment variables: ``database_url`` <- ``DATABASE_URL``.
"""

from __future__ import annotations

import os
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
