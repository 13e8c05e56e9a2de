"""Jupiter adapters against the fake: Ultra order/execute, Metis swap, Price v3, Tokens v2."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction

from app.market.jupiter import (
    JupiterMetis,
    JupiterPriceSource,
    JupiterTokenMetrics,
    JupiterUltra,
    parse_order,
    price_impact_fraction,
)
from app.market.solana_rpc import SolanaRpc
from app.market.types import SOL_MINT, ErrorCode, MarketError, PriceSource, Quoter, SolUsd, TokenMetrics
from tests.fakes import REMOVE, FakeJupiter, FakeSolanaRpc

TOKEN = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"
KEY = "test-key"


def sign(tx_b64: str, kp: Keypair) -> str:
    tx = VersionedTransaction.from_bytes(base64.b64decode(tx_b64))
    return base64.b64encode(bytes(VersionedTransaction(tx.message, [kp]))).decode()


@pytest.fixture
def ultra(http_session, fake_jupiter, no_sleep) -> JupiterUltra:
    return JupiterUltra(http_session, api_key=KEY, base_url=fake_jupiter.ultra_url, sleep=no_sleep)


# -- Ultra order ------------------------------------------------------------------------------------


async def test_order_amounts_are_ints_and_impact_a_fraction(ultra, fake_jupiter):
    fake_jupiter.sol_per_token[TOKEN] = Decimal("0.0000271")
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000_000_000)
    assert isinstance(ultra, Quoter)
    assert q.in_amount == 1_000_000_000 and q.out_amount == 36_900_369_003  # floor(1e9 * 1e6 / (0.0000271e9))
    assert q.price_impact == Decimal("-0.0012") and q.slippage_bps == 50
    assert q.transaction is None  # no taker ⇒ no transaction
    assert q.request_id.startswith("fake-req-") and q.payload["platformFee"]["feeBps"] == 10
    *_, query, headers, _ = fake_jupiter.requests[-1]
    assert headers["x-api-key"] == KEY and query["amount"] == "1000000000" and "taker" not in query


async def test_order_with_taker_returns_signable_transaction(ultra, fake_jupiter, fake_rpc):
    kp = Keypair()
    q = await ultra.quote(SOL_MINT, TOKEN, 5_000_000, taker=str(kp.pubkey()))
    tx = VersionedTransaction.from_bytes(base64.b64decode(q.transaction))
    assert tx.message.account_keys[0] == kp.pubkey()
    assert str(tx.message.recent_blockhash) == fake_rpc.latest_blockhash()[0]
    assert all(VersionedTransaction.from_bytes(base64.b64decode(sign(q.transaction, kp))).verify_with_results())


async def test_missing_api_key_fails_before_any_call(http_session, fake_jupiter):
    ultra = JupiterUltra(http_session, api_key=None, base_url=fake_jupiter.ultra_url)
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1)
    assert ei.value.code == ErrorCode.API_KEY_MISSING
    with pytest.raises(MarketError) as ei:
        await ultra.execute("AA==", "r")
    assert ei.value.code == ErrorCode.API_KEY_MISSING
    assert sum(fake_jupiter.calls.values()) == 0


async def test_bad_api_key_is_401_not_retried(http_session, fake_jupiter, no_sleep):
    ultra = JupiterUltra(http_session, api_key="wrong", base_url=fake_jupiter.ultra_url, sleep=no_sleep)
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1_000)
    assert ei.value.code == ErrorCode.QUOTE_FAILED and ei.value.status == 401 and not ei.value.retryable
    assert fake_jupiter.calls["order"] == 1


async def test_error_code_on_http_200(ultra, fake_jupiter):
    fake_jupiter.order_error = (1, "Insufficient funds")
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1_000, taker=str(Keypair().pubkey()))
    assert ei.value.code == ErrorCode.JUPITER_API_ERROR
    assert str(ei.value) == "Jupiter API error: Insufficient funds"
    assert fake_jupiter.calls["order"] == 1


async def test_taker_without_transaction_but_error_field(ultra, fake_jupiter):
    fake_jupiter.order_overrides = {"transaction": None, "error": "Taker has no SOL"}
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1_000, taker=str(Keypair().pubkey()))
    assert ei.value.code == ErrorCode.JUPITER_API_ERROR and "Taker has no SOL" in str(ei.value)


async def test_missing_request_id(ultra, fake_jupiter):
    fake_jupiter.order_overrides = {"requestId": REMOVE}
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1_000)
    assert ei.value.code == ErrorCode.INVALID_RESPONSE and "requestId" in str(ei.value)


@pytest.mark.parametrize("field", ["inAmount", "outAmount"])
async def test_zero_amount_is_invalid(ultra, fake_jupiter, field):
    fake_jupiter.order_overrides = {field: "0"}
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1_000)
    assert ei.value.code == ErrorCode.INVALID_RESPONSE


async def test_order_5xx_retried_then_ok(ultra, fake_jupiter, no_sleep):
    fake_jupiter.fail("order", 500, times=2)
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000)
    assert q.out_amount > 0 and fake_jupiter.calls["order"] == 3 and no_sleep.delays == [1.0, 2.0]


async def test_order_400_body_in_message(ultra, fake_jupiter):
    fake_jupiter.fail("order", 400, body={"error": "Invalid mint"})
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1_000)
    assert ei.value.code == ErrorCode.QUOTE_FAILED and "400" in str(ei.value) and "Invalid mint" in str(ei.value)
    assert fake_jupiter.calls["order"] == 1


async def test_order_malformed_json(ultra, fake_jupiter):
    fake_jupiter.malformed("order")
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1_000)
    assert ei.value.code == ErrorCode.INVALID_RESPONSE


async def test_order_timeout(http_session, fake_jupiter, no_sleep):
    ultra = JupiterUltra(http_session, api_key=KEY, base_url=fake_jupiter.ultra_url, quote_timeout=0.1, sleep=no_sleep)
    fake_jupiter.delay("order", 0.5, times=None)
    with pytest.raises(MarketError) as ei:
        await ultra.quote(SOL_MINT, TOKEN, 1_000)
    assert ei.value.code == ErrorCode.TIMEOUT and fake_jupiter.calls["order"] == 3


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"priceImpactPct": "-0.0012", "priceImpact": Decimal("-0.12")}, Decimal("-0.0012")),
        ({"priceImpact": Decimal("-0.12")}, Decimal("-0.0012")),  # percent ⇒ fraction
        ({"priceImpact": Decimal("5")}, Decimal("0.05")),
        ({"priceImpact": 3}, Decimal("0.03")),
        ({"priceImpactPct": "0.000000123456789"}, Decimal("0.000000123456789")),
        ({}, Decimal(0)),
        ({"priceImpactPct": "n/a"}, Decimal(0)),
    ],
)
def test_price_impact_normalised_to_exact_fraction(payload, expected):
    got = price_impact_fraction(payload)
    assert got == expected and isinstance(got, Decimal)


async def test_percent_only_impact_over_the_wire(ultra, fake_jupiter):
    fake_jupiter.price_impact_pct = None
    fake_jupiter.price_impact = Decimal("-1.25")
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000)
    assert q.price_impact == Decimal("-0.0125")


def test_parse_order_rejects_non_object_and_error_first():
    with pytest.raises(MarketError, match="expected object"):
        parse_order([1])
    with pytest.raises(MarketError) as ei:  # errorCode wins over a missing requestId
        parse_order({"errorCode": 3, "error": "no route"})
    assert ei.value.code == ErrorCode.JUPITER_API_ERROR


# -- Ultra execute ----------------------------------------------------------------------------------


async def test_execute_success_lands_on_linked_rpc(ultra, fake_jupiter, fake_rpc, http_session):
    kp = Keypair()
    owner = str(kp.pubkey())
    fake_rpc.balances[owner] = 2_000_000_000
    q = await ultra.quote(SOL_MINT, TOKEN, 300_000_000, taker=owner)
    res = await ultra.execute(sign(q.transaction, kp), q.request_id)
    assert res.status == "Success"
    assert res.input_amount_result == 300_000_000 and res.total_input_amount == 300_300_000
    assert res.output_amount_result == q.out_amount and res.total_output_amount == q.out_amount
    assert res.payload["swapEvents"][0]["inputMint"] == SOL_MINT
    assert fake_jupiter.executed[-1]["requestId"] == q.request_id
    rpc = SolanaRpc(http_session, fake_rpc.url)
    [status] = await rpc.get_signature_statuses([res.signature])
    assert status is not None and status.ok and status.confirmation_status == "confirmed"
    meta = await rpc.get_transaction(res.signature)
    assert meta.sol_delta(owner) == -300_300_000 - 5_000
    assert meta.token_deltas(owner) == {TOKEN: q.out_amount}


async def test_execute_sell_total_output_net_of_fee(ultra, fake_jupiter):
    kp = Keypair()
    fake_jupiter.sol_per_token[TOKEN] = Decimal("0.000308459830")
    q = await ultra.quote(TOKEN, SOL_MINT, 1_000_000_000, taker=str(kp.pubkey()))
    res = await ultra.execute(sign(q.transaction, kp), q.request_id)
    assert res.output_amount_result == 308_459_830
    assert res.total_output_amount == 308_459_830 - 308_459
    assert res.total_input_amount == 1_000_000_000


async def test_execute_failed_status_is_swap_failed(ultra, fake_jupiter):
    kp = Keypair()
    fake_jupiter.execute_status, fake_jupiter.execute_error = "Failed", "Slippage tolerance exceeded"
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000, taker=str(kp.pubkey()))
    with pytest.raises(MarketError) as ei:
        await ultra.execute(sign(q.transaction, kp), q.request_id)
    assert ei.value.code == ErrorCode.SWAP_FAILED and not ei.value.retryable
    assert str(ei.value) == "Swap execution failed: Slippage tolerance exceeded"


async def test_execute_badly_signed_is_rejected(ultra, fake_jupiter):
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000, taker=str(Keypair().pubkey()))
    with pytest.raises(MarketError) as ei:  # the unsigned order, as if signing was skipped
        await ultra.execute(q.transaction, q.request_id)
    assert ei.value.code == ErrorCode.SWAP_FAILED and "signature" in str(ei.value).lower()


async def test_execute_without_signature(ultra, fake_jupiter):
    kp = Keypair()
    fake_jupiter.execute_overrides = {"signature": REMOVE}
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000, taker=str(kp.pubkey()))
    with pytest.raises(MarketError) as ei:
        await ultra.execute(sign(q.transaction, kp), q.request_id)
    assert ei.value.code == ErrorCode.MISSING_SIGNATURE


@pytest.mark.parametrize("fault", ["5xx", "timeout", "malformed"])
async def test_execute_is_never_retried_and_reports_signature(http_session, fake_jupiter, no_sleep, fault):
    ultra = JupiterUltra(
        http_session, api_key=KEY, base_url=fake_jupiter.ultra_url, execute_timeout=0.2, sleep=no_sleep
    )
    kp = Keypair()
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000, taker=str(kp.pubkey()))
    signed = sign(q.transaction, kp)
    {
        "5xx": lambda: fake_jupiter.fail("execute", 503, times=None),
        "timeout": lambda: fake_jupiter.delay("execute", 1.0, times=None),
        "malformed": lambda: fake_jupiter.malformed("execute", times=None),
    }[fault]()
    with pytest.raises(MarketError) as ei:
        await ultra.execute(signed, q.request_id)
    err = ei.value
    assert err.code == ErrorCode.EXECUTE_FAILED and not err.retryable
    assert err.details["outcome_unknown"] is True and err.details["request_id"] == q.request_id
    assert err.details["signature"] == str(VersionedTransaction.from_bytes(base64.b64decode(signed)).signatures[0])
    assert fake_jupiter.calls["execute"] == 1 and no_sleep.delays == []


async def test_execute_4xx_is_definitely_not_submitted(ultra, fake_jupiter):
    kp = Keypair()
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000, taker=str(kp.pubkey()))
    with pytest.raises(MarketError) as ei:
        await ultra.execute(sign(q.transaction, kp), "unknown-request")
    assert ei.value.code == ErrorCode.EXECUTE_FAILED and ei.value.details["outcome_unknown"] is False


async def test_execute_is_idempotent_per_request_id_on_the_fake(ultra, fake_jupiter):
    kp = Keypair()
    q = await ultra.quote(SOL_MINT, TOKEN, 1_000, taker=str(kp.pubkey()))
    signed = sign(q.transaction, kp)
    a = await ultra.execute(signed, q.request_id)
    b = await ultra.execute(signed, q.request_id)
    assert a.signature == b.signature and a.payload == b.payload


# -- Metis swap v1 ----------------------------------------------------------------------------------


async def test_metis_quote_swap_sign_send_confirm(http_session, fake_jupiter, fake_rpc):
    kp = Keypair()
    owner = str(kp.pubkey())
    fake_rpc.balances[owner] = 10**9
    metis = JupiterMetis(http_session, api_key=KEY, base_url=fake_jupiter.swap_url)
    q = await metis.quote(SOL_MINT, TOKEN, 100_000_000, slippage_bps=75)
    assert q.slippage_bps == 75 and q.transaction is None and q.price_impact == Decimal("-0.0012")
    assert q.request_id.startswith("metis-") and "requestId" not in q.payload
    built = await metis.build_swap(q, owner)
    swap_body = fake_jupiter.requests[-1][5]
    assert swap_body["quoteResponse"] == q.payload and swap_body["userPublicKey"] == owner
    lvbh = fake_rpc.latest_blockhash()[1]
    assert built.last_valid_block_height == lvbh and built.payload["prioritizationFeeLamports"] == 100_000
    rpc = SolanaRpc(http_session, fake_rpc.url)
    sig = await rpc.send_transaction(sign(built.transaction, kp))
    fake_rpc.confirm(sig, sol_deltas={owner: -100_000_000}, token_deltas={(owner, TOKEN): q.out_amount})
    [st] = await rpc.get_signature_statuses([sig])
    assert st.ok
    assert (await rpc.get_token_accounts_by_owner(owner))[TOKEN].amount == q.out_amount


async def test_metis_swap_missing_fields_is_invalid(http_session, fake_jupiter):
    metis = JupiterMetis(http_session, api_key=KEY, base_url=fake_jupiter.swap_url)
    q = await metis.quote(SOL_MINT, TOKEN, 1_000)
    with pytest.raises(MarketError) as ei:
        await metis.build_swap(q, "sim_wallet_1")
    assert ei.value.status == 400


# -- Price v3 ---------------------------------------------------------------------------------------


class FixedSolUsd:
    def __init__(self, value: SolUsd | None) -> None:
        self.value = value

    async def sol_usd(self) -> SolUsd | None:
        return self.value


NOW = datetime(2025, 6, 1, tzinfo=UTC)


def price_source(session, fake, sol: SolUsd | None, **kw) -> JupiterPriceSource:
    return JupiterPriceSource(session, FixedSolUsd(sol), api_key=KEY, base_url=fake.price_url, clock=lambda: NOW, **kw)


async def test_price_v3_converts_with_real_sol_usd(http_session, fake_jupiter):
    fake_jupiter.usd_prices[TOKEN] = Decimal("0.0041")
    src = price_source(http_session, fake_jupiter, SolUsd(price=Decimal("164"), observed_at=NOW, source="pyth"))
    assert isinstance(src, PriceSource)
    prices = await src.prices([TOKEN, "Missing1111111111111111111111111111111111111"])
    assert list(prices) == [TOKEN]
    p = prices[TOKEN]
    assert p.price_usd == Decimal("0.0041") and p.price_sol == Decimal("0.000025")
    assert p.observed_at == NOW and p.source == "jupiter" and p.price_change_24h == Decimal("-3.2")
    assert fake_jupiter.requests[-1][4]["x-api-key"] == KEY


async def test_price_v3_sol_usd_unknown_returns_nothing(http_session, fake_jupiter):
    fake_jupiter.usd_prices[TOKEN] = Decimal("0.0041")
    src = price_source(http_session, fake_jupiter, None)
    assert await src.prices([TOKEN]) == {}
    assert fake_jupiter.calls["price"] == 0


async def test_price_v3_stale_sol_usd_can_be_refused(http_session, fake_jupiter):
    fake_jupiter.usd_prices[TOKEN] = Decimal("0.0041")
    old = SolUsd(price=Decimal("150"), observed_at=NOW - timedelta(minutes=5), source="pyth")
    assert await price_source(http_session, fake_jupiter, old).prices([TOKEN])
    strict = price_source(http_session, fake_jupiter, old, max_sol_usd_age=timedelta(seconds=30))
    assert await strict.prices([TOKEN]) == {}


async def test_price_v3_case_insensitive_fallback_and_positive_only(http_session, fake_jupiter):
    fake_jupiter.usd_prices[TOKEN.lower()] = Decimal("2")
    zero = "Zero111111111111111111111111111111111111111"
    fake_jupiter.usd_prices[zero] = Decimal(0)
    src = price_source(http_session, fake_jupiter, SolUsd(price=Decimal("200"), observed_at=NOW, source="t"))
    prices = await src.prices([TOKEN, zero])
    assert set(prices) == {TOKEN} and prices[TOKEN].price_sol == Decimal("0.01")


async def test_price_v3_batches_of_50_and_failed_batch_skipped(http_session, fake_jupiter, no_sleep):
    mints = [f"Mint{i:040d}" for i in range(120)]
    for m in mints:
        fake_jupiter.usd_prices[m] = Decimal(1)
    src = price_source(
        http_session, fake_jupiter, SolUsd(price=Decimal(100), observed_at=NOW, source="t"), sleep=no_sleep
    )
    assert len(await src.prices(mints)) == 120
    sizes = sorted(len(r[3]["ids"].split(",")) for r in fake_jupiter.requests if r[0] == "price")
    assert sizes == [20, 50, 50]
    fake_jupiter.fail("price", 400)  # one batch fails permanently, the others still price
    assert len(await src.prices(mints)) in (70, 100)


# -- Tokens v2 --------------------------------------------------------------------------------------


async def test_token_metrics(http_session, fake_jupiter, no_sleep):
    fake_jupiter.token_info[TOKEN] = {
        "id": TOKEN,
        "mcap": Decimal("45000000000.5"),
        "liquidity": 50_000_000,
        "holderCount": 2_500_000,
        "symbol": "X",
    }
    m = JupiterTokenMetrics(http_session, api_key=KEY, base_url=fake_jupiter.tokens_url, sleep=no_sleep)
    assert await m.token_metrics(TOKEN) == TokenMetrics(
        mcap=Decimal("45000000000.5"), liquidity=Decimal(50_000_000), holder_count=2_500_000
    )
    fake_jupiter.token_info["Partial"] = {"id": "Partial"}
    assert await m.token_metrics("Partial") == TokenMetrics()
    assert await m.token_metrics("Unknown") is None
    fake_jupiter.fail("search", 500)
    assert await m.token_metrics(TOKEN) is None
    fake_jupiter.malformed("search")
    assert await m.token_metrics(TOKEN) is None
    assert (
        await JupiterTokenMetrics(http_session, api_key=None, base_url=fake_jupiter.tokens_url).token_metrics(TOKEN)
        is None
    )


async def test_token_metrics_timeout_is_none(http_session, fake_jupiter):
    fake_jupiter.token_info[TOKEN] = {"id": TOKEN}
    fake_jupiter.delay("search", 1.0)
    m = JupiterTokenMetrics(http_session, api_key=KEY, base_url=fake_jupiter.tokens_url, request_timeout=0.1)
    assert await m.token_metrics(TOKEN) is None


async def test_standalone_fake_without_rpc_still_builds_transactions(http_session):
    async with FakeJupiter() as jup:
        ultra = JupiterUltra(http_session, api_key=KEY, base_url=jup.ultra_url)
        q = await ultra.quote(SOL_MINT, TOKEN, 10, taker=str(Keypair().pubkey()))
        assert VersionedTransaction.from_bytes(base64.b64decode(q.transaction))
    assert isinstance(FakeSolanaRpc(), FakeSolanaRpc)


async def test_execute_connection_refused_is_known_not_sent(http_session, fake_jupiter, no_sleep):
    kp = Keypair()
    q = await JupiterUltra(http_session, api_key=KEY, base_url=fake_jupiter.ultra_url).quote(
        SOL_MINT, TOKEN, 1_000, taker=str(kp.pubkey())
    )
    dead = JupiterUltra(http_session, api_key=KEY, base_url="http://127.0.0.1:9/ultra", sleep=no_sleep)
    with pytest.raises(MarketError) as ei:
        await dead.execute(sign(q.transaction, kp), q.request_id)
    assert ei.value.code == ErrorCode.EXECUTE_FAILED and ei.value.details["outcome_unknown"] is False
    assert not ei.value.retryable and no_sleep.delays == []
