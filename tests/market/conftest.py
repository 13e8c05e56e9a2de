"""Market tests use the shared fakes' fixtures (``pytest_plugins`` is only allowed in the root conftest)."""

from tests.fakes.fixtures import (  # noqa: F401
    SleepRecorder,
    fake_dexscreener,
    fake_hermes,
    fake_jupiter,
    fake_rpc,
    http_session,
    live_market_options,
    no_sleep,
)
