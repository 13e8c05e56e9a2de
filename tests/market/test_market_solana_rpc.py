"""Solana JSON-RPC client against the fake node, including signature verification on send."""

from __future__ import annotations

import base64

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.transaction import VersionedTransaction

from app.market.solana_rpc import TOKEN_2022_PROGRAM_ID, SolanaRpc
from app.market.types import SOL_MINT, ErrorCode, MarketError, RpcError
from tests.fakes import SLIPPAGE_EXCEEDED, build_unsigned_tx

MINT = "7GCihgDB8fe6KNjn2MYtkzZcRjQy3t9GHdC8uHYmW2hr"
MINT_B = "9BB6NFEcjBCtnNLFko2FqVQBq8HHM13kCyYcdQbgpump"


@pytest.fixture
def rpc(http_session, fake_rpc, no_sleep) -> SolanaRpc:
    return SolanaRpc(http_session, fake_rpc.url, sleep=no_sleep)


def signed_tx(kp: Keypair, blockhash: str, signer: Keypair | None = None) -> str:
    tx = VersionedTransaction.from_bytes(base64.b64decode(build_unsigned_tx(str(kp.pubkey()), blockhash)))
    return base64.b64encode(bytes(VersionedTransaction(tx.message, [signer or kp]))).decode()


def forged_tx(kp: Keypair, blockhash: str) -> str:
    """Right shape, wrong key: signed by someone else over the payer's slot."""
    tx = VersionedTransaction.from_bytes(base64.b64decode(build_unsigned_tx(str(kp.pubkey()), blockhash)))
    sig = Keypair().sign_message(to_bytes_versioned(tx.message))
    return base64.b64encode(bytes(VersionedTransaction.populate(tx.message, [sig]))).decode()


async def test_balance_and_block_data(rpc, fake_rpc):
    fake_rpc.balances["Wallet1111111111111111111111111111111111111"] = 1_234_567_890
    assert await rpc.get_balance("Wallet1111111111111111111111111111111111111") == 1_234_567_890
    assert await rpc.get_balance("Other11111111111111111111111111111111111111") == 0
    bh = await rpc.get_latest_blockhash()
    assert (bh.blockhash, bh.last_valid_block_height) == fake_rpc.latest_blockhash()
    assert await rpc.get_block_height() == fake_rpc.block_height
    _, _, _, _, _, body = fake_rpc.requests[0]
    assert body["jsonrpc"] == "2.0" and body["params"][1] == {"commitment": "confirmed"}


async def test_mint_decimals_byte_44_cached_and_sol_free(rpc, fake_rpc):
    fake_rpc.mint_decimals[MINT] = 6
    fake_rpc.mint_decimals[MINT_B] = 9
    assert await rpc.get_mint_decimals(MINT) == 6
    assert await rpc.get_mint_decimals(MINT) == 6
    assert await rpc.get_mint_decimals(MINT_B) == 9
    assert await rpc.get_mint_decimals(SOL_MINT) == 9
    assert fake_rpc.calls["getAccountInfo"] == 2


async def test_decimals_come_from_offset_44_exactly(rpc, fake_rpc):
    data = bytearray(82)
    data[44], data[43], data[45] = 5, 7, 8
    fake_rpc.account_data[MINT] = bytes(data)
    assert await rpc.get_mint_decimals(MINT) == 5


@pytest.mark.parametrize("case", ["short", "missing", "rpc_error"])
async def test_decimals_two_attempts_then_error(rpc, fake_rpc, no_sleep, case):
    if case == "short":
        fake_rpc.account_data[MINT] = bytes(44)  # byte 44 absent
    elif case == "rpc_error":
        fake_rpc.mint_decimals[MINT] = 6
        fake_rpc.rpc_error("getAccountInfo", -32005, "Node is behind", times=None)
    with pytest.raises(MarketError) as ei:
        await rpc.get_mint_decimals(MINT)
    assert ei.value.code == ErrorCode.DECIMALS_FETCH_FAILED
    assert fake_rpc.calls["getAccountInfo"] == 2 and no_sleep.delays == [0.5]


async def test_decimals_second_attempt_succeeds(rpc, fake_rpc):
    fake_rpc.mint_decimals[MINT] = 6
    fake_rpc.fail("getAccountInfo", 503)
    assert await rpc.get_mint_decimals(MINT) == 6


async def test_send_verified_transaction_then_settle(rpc, fake_rpc):
    kp = Keypair()
    owner = str(kp.pubkey())
    fake_rpc.balances[owner] = 1_000_000_000
    fake_rpc.token_accounts[owner] = {MINT: 10}
    fake_rpc.mint_decimals[MINT] = 6
    bh = await rpc.get_latest_blockhash()
    sig = await rpc.send_transaction(signed_tx(kp, bh.blockhash))
    assert sig in fake_rpc.sent and fake_rpc.sent[sig].payer == owner
    assert await rpc.get_signature_statuses([sig]) == [None]  # pending until the test decides
    assert await rpc.get_transaction(sig) is None
    fake_rpc.confirm(sig, sol_deltas={owner: -250_000_000}, token_deltas={(owner, MINT): 5_000_000})
    [st] = await rpc.get_signature_statuses([sig])
    assert st.ok and st.confirmation_status == "confirmed" and st.slot == fake_rpc.slot
    meta = await rpc.get_transaction(sig)
    assert meta.fee == 5_000 and meta.err is None
    assert meta.sol_delta(owner) == -250_005_000
    assert meta.token_deltas(owner) == {MINT: 5_000_000}
    assert await rpc.get_balance(owner) == 749_995_000
    fake_rpc.finalize(sig)
    [st] = await rpc.get_signature_statuses([sig])
    assert st.confirmation_status == "finalized" and st.confirmations is None


async def test_new_token_account_has_no_pre_balance(rpc, fake_rpc):
    kp = Keypair()
    owner = str(kp.pubkey())
    sig = await rpc.send_transaction(signed_tx(kp, fake_rpc.latest_blockhash()[0]))
    fake_rpc.confirm(sig, token_deltas={(owner, MINT): 42})
    meta = await rpc.get_transaction(sig)
    assert meta.pre_token_balances == [] and meta.token_deltas(owner) == {MINT: 42}


async def test_badly_signed_transaction_is_rejected(rpc, fake_rpc):
    kp = Keypair()
    bh = fake_rpc.latest_blockhash()[0]
    for bad in (forged_tx(kp, bh), build_unsigned_tx(str(kp.pubkey()), bh)):
        with pytest.raises(RpcError) as ei:
            await rpc.send_transaction(bad)
        assert ei.value.rpc_code == -32003 and "signature verification" in ei.value.rpc_message
        assert not ei.value.retryable
    assert fake_rpc.sent == {}


async def test_wrong_keypair_cannot_even_sign(fake_rpc):
    kp = Keypair()
    tx = VersionedTransaction.from_bytes(base64.b64decode(build_unsigned_tx(str(kp.pubkey()), str(Hash.default()))))
    with pytest.raises(Exception, match="mismatch"):
        VersionedTransaction(tx.message, [Keypair()])


async def test_garbage_transaction_is_rejected(rpc):
    with pytest.raises(RpcError) as ei:
        await rpc.send_transaction(base64.b64encode(b"not a transaction").decode())
    assert ei.value.rpc_code == -32602


async def test_failed_transaction_charges_fee_only(rpc, fake_rpc):
    kp = Keypair()
    owner = str(kp.pubkey())
    fake_rpc.balances[owner] = 100_000
    sig = await rpc.send_transaction(signed_tx(kp, fake_rpc.latest_blockhash()[0]))
    fake_rpc.fail_tx(sig)
    [st] = await rpc.get_signature_statuses([sig])
    assert st.err == SLIPPAGE_EXCEEDED and not st.ok
    meta = await rpc.get_transaction(sig)
    assert meta.err == SLIPPAGE_EXCEEDED and meta.sol_delta(owner) == -5_000


async def test_blockhash_expiry(rpc, fake_rpc):
    kp = Keypair()
    bh = await rpc.get_latest_blockhash()
    sig = await rpc.send_transaction(signed_tx(kp, bh.blockhash))
    fake_rpc.advance_blocks(10)
    assert fake_rpc.sent[sig].status == "pending"
    fake_rpc.expire_blockhashes()
    assert await rpc.get_block_height() > bh.last_valid_block_height
    assert fake_rpc.sent[sig].status == "expired" and await rpc.get_signature_statuses([sig]) == [None]
    with pytest.raises(AssertionError):
        fake_rpc.confirm(sig)
    # re-sending with the old blockhash: preflight rejects, skipPreflight accepts but never lands
    kp2 = Keypair()
    with pytest.raises(RpcError) as ei:
        await rpc.send_transaction(signed_tx(kp2, bh.blockhash))
    assert ei.value.rpc_code == -32002 and "Blockhash not found" in ei.value.rpc_message
    sig2 = await rpc.send_transaction(signed_tx(kp2, bh.blockhash), skip_preflight=True)
    assert fake_rpc.sent[sig2].status == "expired"
    assert fake_rpc.requests[-1][5]["params"][1]["skipPreflight"] is True


async def test_preflight_error_and_send_outcomes(rpc, fake_rpc):
    bh = fake_rpc.latest_blockhash()[0]
    fake_rpc.preflight_err = SLIPPAGE_EXCEEDED
    with pytest.raises(RpcError) as ei:
        await rpc.send_transaction(signed_tx(Keypair(), bh))
    assert ei.value.data["err"] == SLIPPAGE_EXCEEDED
    fake_rpc.preflight_err = None
    fake_rpc.send_outcome = "confirm"
    sig = await rpc.send_transaction(signed_tx(Keypair(), bh))
    assert (await rpc.get_signature_statuses([sig]))[0].ok
    fake_rpc.send_outcome = "drop"
    sig = await rpc.send_transaction(signed_tx(Keypair(), bh))
    assert await rpc.get_signature_statuses([sig]) == [None]
    fake_rpc.confirm(sig)  # landed late: the ambiguity settlement must handle
    assert (await rpc.get_signature_statuses([sig]))[0].ok
    seen = []
    fake_rpc.send_outcome, fake_rpc.on_send = "pending", seen.append
    sig = await rpc.send_transaction(signed_tx(Keypair(), bh))
    assert [s.signature for s in seen] == [sig]


async def test_send_is_never_retried(rpc, fake_rpc, no_sleep):
    kp = Keypair()
    tx = signed_tx(kp, fake_rpc.latest_blockhash()[0])
    fake_rpc.fail("sendTransaction", 503)
    with pytest.raises(MarketError) as ei:
        await rpc.send_transaction(tx)
    err = ei.value
    assert err.code == ErrorCode.EXECUTE_FAILED and not err.retryable and err.details["outcome_unknown"]
    assert err.details["signature"] == str(VersionedTransaction.from_bytes(base64.b64decode(tx)).signatures[0])
    assert fake_rpc.calls["sendTransaction"] == 1 and no_sleep.delays == []


async def test_send_timeout_is_outcome_unknown(http_session, fake_rpc, no_sleep):
    rpc = SolanaRpc(http_session, fake_rpc.url, request_timeout=0.1, sleep=no_sleep)
    fake_rpc.delay("sendTransaction", 0.5)
    with pytest.raises(MarketError) as ei:
        await rpc.send_transaction(signed_tx(Keypair(), fake_rpc.latest_blockhash()[0]))
    assert ei.value.details["outcome_unknown"] and ei.value.details["cause"] == ErrorCode.TIMEOUT


async def test_token_accounts_by_owner_both_programs(rpc, fake_rpc):
    owner = str(Keypair().pubkey())
    fake_rpc.token_accounts[owner] = {MINT: 123_456_789, MINT_B: 5}
    fake_rpc.mint_decimals.update({MINT: 6, MINT_B: 9})
    fake_rpc.mint_programs[MINT_B] = TOKEN_2022_PROGRAM_ID
    accts = await rpc.get_token_accounts_by_owner(owner)
    assert {m: (a.amount, a.decimals) for m, a in accts.items()} == {MINT: (123_456_789, 6), MINT_B: (5, 9)}
    assert fake_rpc.calls["getTokenAccountsByOwner"] == 2
    assert await rpc.get_token_accounts_by_owner(str(Keypair().pubkey())) == {}


async def test_json_rpc_error_object(rpc, fake_rpc):
    fake_rpc.rpc_error("getBalance", -32602, "Invalid param: WrongSize", data={"x": 1})
    with pytest.raises(RpcError) as ei:
        await rpc.get_balance("bad")
    e = ei.value
    assert e.code == ErrorCode.RPC_ERROR and e.rpc_code == -32602 and e.rpc_message == "Invalid param: WrongSize"
    assert e.data == {"x": 1} and e.details["method"] == "getBalance"
    with pytest.raises(RpcError) as ei:
        await rpc.call("noSuchMethod")
    assert ei.value.rpc_code == -32601


async def test_reads_retry_5xx_and_429(rpc, fake_rpc, no_sleep):
    fake_rpc.fail("getBlockHeight", 500)
    fake_rpc.rate_limit("getBlockHeight", retry_after="2")
    assert await rpc.get_block_height() == fake_rpc.block_height
    assert fake_rpc.calls["getBlockHeight"] == 3 and no_sleep.delays == [1.0, 2.0]


async def test_malformed_rpc_body(rpc, fake_rpc):
    fake_rpc.malformed("getBalance")
    with pytest.raises(MarketError) as ei:
        await rpc.get_balance("x")
    assert ei.value.code == ErrorCode.INVALID_RESPONSE


def test_message_v0_roundtrip_sanity():
    kp = Keypair()
    tx = VersionedTransaction.from_bytes(base64.b64decode(build_unsigned_tx(str(kp.pubkey()), str(Hash.default()))))
    assert isinstance(tx.message, MessageV0) and tx.message.header.num_required_signatures == 1


async def test_send_connection_refused_is_known_not_sent(http_session, fake_rpc, no_sleep):
    rpc = SolanaRpc(http_session, "http://127.0.0.1:9", sleep=no_sleep)
    with pytest.raises(MarketError) as ei:
        await rpc.send_transaction(signed_tx(Keypair(), fake_rpc.latest_blockhash()[0]))
    assert ei.value.details["outcome_unknown"] is False and ei.value.details["cause"] == ErrorCode.FETCH_FAILED
