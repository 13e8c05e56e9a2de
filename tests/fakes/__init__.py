"""Local fake upstreams (aiohttp, 127.0.0.1, ephemeral ports) shared by every test suite.

    async with FakeSolanaRpc() as rpc, FakeJupiter(rpc=rpc) as jup:
        ultra = JupiterUltra(session, api_key="test-key", base_url=jup.ultra_url)

See each module's docstring for its knobs and :mod:`tests.fakes.base` for failure injection.
Pytest fixtures (``fake_rpc``, ``fake_jupiter``, ``fake_dexscreener``, ``fake_hermes``,
``http_session``) live in :mod:`tests.fakes.fixtures`; enable them with
``pytest_plugins = ["tests.fakes.fixtures"]`` in the root conftest or import them by name into a
sub-directory conftest (see ``tests/market/conftest.py``).
"""

from tests.fakes.base import FakeServer, Fault
from tests.fakes.dexscreener import FakeDexScreener
from tests.fakes.hermes import SOL_FEED, FakeHermes
from tests.fakes.jupiter import REMOVE, FakeJupiter, build_unsigned_tx
from tests.fakes.solana_rpc import (
    SLIPPAGE_EXCEEDED,
    FakeSolanaRpc,
    SentTx,
    mint_account_data,
    token_account_address,
)

__all__ = [
    "REMOVE",
    "SLIPPAGE_EXCEEDED",
    "SOL_FEED",
    "FakeDexScreener",
    "FakeHermes",
    "FakeJupiter",
    "FakeServer",
    "FakeSolanaRpc",
    "Fault",
    "SentTx",
    "build_unsigned_tx",
    "mint_account_data",
    "token_account_address",
]
