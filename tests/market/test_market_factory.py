"""build_market: source selection, wiring to the fakes, and ownership of the shared session."""

from __future__ import annotations

from decimal import Decimal

import pytest
from solders.keypair import Keypair

from app.market import build_market
from app.market.dexscreener import DexScreener
from app.market.jupiter import JupiterPriceSource
from app.market.replay import SimulatedQuoter, sample_mint
from app.market.types import SOL_MINT

TOKEN = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"


async def test_replay_is_the_offline_default():
    market = build_market()
    async with market as m:
        assert m.source == "replay" and m.rpc is None and m.executor is None and m.metis is None
        mints = m.replay.mints
        prices = await m.price_source.prices(mints)
        assert set(prices) == set(mints) and (await m.sol_usd.sol_usd()).price > 100
        assert isinstance(m.quoter, SimulatedQuoter)
        q = await m.quoter.quote(SOL_MINT, mints[0], 10**8)
        assert q.out_amount > 0
        assert (await m.liquidity.sol_pair_liquidity(mints[:1]))[mints[0]]
        session = m.session
    assert session.closed and market.session is None


async def test_replay_seed_generates_a_fresh_timeline_and_rpc_is_optional(fake_rpc):
    async with build_market(seed=7, solana_rpc_url=fake_rpc.url) as m:
        assert sample_mint(7, "PUMP") in m.replay.mints
        assert await m.rpc.get_block_height() == fake_rpc.block_height


async def test_live_sources_wired_to_fakes(fake_jupiter, fake_rpc, fake_dexscreener, live_market_options):
    fake_jupiter.usd_prices[TOKEN] = Decimal("0.0144655")
    fake_dexscreener.add_pair(TOKEN, price_native="0.0001", liquidity_quote="55")
    fake_jupiter.token_info[TOKEN] = {"id": TOKEN, "mcap": 1, "liquidity": 2, "holderCount": 3}
    kw = live_market_options
    async with build_market("jupiter", **kw) as m:
        assert isinstance(m.price_source, JupiterPriceSource)
        assert (await m.sol_usd.wait_ready(3)).price == Decimal("144.655")
        prices = await m.price_source.prices([TOKEN])
        assert prices[TOKEN].price_sol == Decimal("0.0001")
        q = await m.quoter.quote(SOL_MINT, TOKEN, 10**9, taker=str(Keypair().pubkey()))
        assert q.transaction and m.executor is m.quoter
        assert (await m.metis.quote(SOL_MINT, TOKEN, 10**6)).in_amount == 10**6
        assert await m.liquidity.sol_pair_liquidity([TOKEN]) == {TOKEN: [Decimal(55)]}
        assert (await m.metrics.token_metrics(TOKEN)).holder_count == 3
        assert await m.rpc.get_block_height() == fake_rpc.block_height
    async with build_market("dexscreener", **kw) as m:
        assert isinstance(m.price_source, DexScreener)
        assert (await m.price_source.prices([TOKEN]))[TOKEN].price_sol == Decimal("0.0001")


def test_unknown_source():
    with pytest.raises(ValueError, match="unknown market source"):
        build_market("binance")
