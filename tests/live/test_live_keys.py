"""Wallet keys: formats, owner binding, refusal of bad keys, and secrets that never leave the process
as text — not in logs, not in API responses, not in reprs."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from app.live.keys import KeyStore, b58decode, load_keystore, parse_secret, set_keystore
from tests.live.conftest import LiveRig, headers


def b58encode(data: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number, out = int.from_bytes(data, "big"), ""
    while number:
        number, rem = divmod(number, 58)
        out = alphabet[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def secret_forms(keypair: Keypair) -> list[str]:
    """Every way a secret could be written down."""
    raw = bytes(keypair)
    return [str(keypair), b58encode(raw[:32]), msgspec.json.encode(list(raw)).decode(), raw.hex(), raw[:32].hex()]


def test_accepted_formats_give_the_same_wallet() -> None:
    keypair = Keypair()
    raw = bytes(keypair)
    for text in (str(keypair), b58encode(raw[:32]), msgspec.json.encode(list(raw)).decode(), f"  {keypair}\n"):
        assert parse_secret(text).pubkey() == keypair.pubkey()
    assert b58decode(b58encode(b"\0\0abc")) == b"\0\0abc"


@pytest.mark.parametrize(
    "value",
    ["sim_abcdef", "not-base58-0OIl", "[1, 2, 3]", b58encode(bytes(40)), "[" + ",".join(["300"] * 64) + "]", ""],
)
def test_bad_keys_are_refused_without_echoing_them(value: str) -> None:
    store = load_keystore({"WALLET_1": value, "WALLET_1_OWNER": "a@example.com"})
    assert len(store) == 0
    [problem] = store.problems
    assert problem.startswith("WALLET_1: skipped")
    if value:
        assert value not in problem


def test_mismatched_64_byte_key_is_refused() -> None:
    forged = bytes(Keypair())[:32] + bytes(Keypair().pubkey())
    with pytest.raises(ValueError, match="public half"):
        parse_secret(b58encode(forged))


def test_owner_binding_scanning_and_duplicates() -> None:
    a, b, c = Keypair(), Keypair(), Keypair()
    env = {
        "WALLET_1": str(a),
        "WALLET_1_OWNER": " Alice@Example.COM ",
        "WALLET_2": str(b),
        "WALLET_3": str(a),
        "WALLET_5": str(c),  # after the gap at 4: never read
    }
    store = load_keystore(env, default_owner=None)
    assert store.addresses() == sorted([str(a.pubkey()), str(b.pubkey())])
    assert store.owner_of(str(a.pubkey())) == "alice@example.com"
    assert store.may_assign(str(a.pubkey()), "ALICE@example.com")
    assert not store.may_assign(str(a.pubkey()), "mallory@example.com")
    assert store.owner_of(str(b.pubkey())) is None and not store.may_assign(str(b.pubkey()), "alice@example.com")
    assert store.addresses_for("alice@example.com") == [str(a.pubkey())]
    assert not store.has(str(c.pubkey()))
    assert any("duplicate of WALLET_1" in p for p in store.problems)
    assert any("has no owner" in p for p in store.problems)

    with_admin = load_keystore({"WALLET_1": str(b)}, default_owner="Admin@Example.com")
    assert with_admin.owner_of(str(b.pubkey())) == "admin@example.com"


def test_key_file_with_owners_and_permission_warning(tmp_path: Path) -> None:
    a, b = Keypair(), Keypair()
    path = tmp_path / "keys.json"
    doc = {"wallets": [{"key": list(bytes(a)), "owner": "bob@example.com"}, {"key": str(b), "owner": "c@example.com"}]}
    path.write_bytes(msgspec.json.encode(doc))
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    store = load_keystore({}, key_file=path)
    assert store.problems == []
    assert store.owner_of(str(a.pubkey())) == "bob@example.com" and store.owner_of(str(b.pubkey())) == "c@example.com"

    os.chmod(path, 0o644)
    assert any("chmod 600" in p for p in load_keystore({}, key_file=path).problems)
    path.write_text("{not json")
    assert any("expected" in p for p in load_keystore({}, key_file=path).problems)


def test_signing_refuses_foreign_payers_and_extra_signers() -> None:
    mine, other = Keypair(), Keypair()
    store = load_keystore({"WALLET_1": str(mine), "WALLET_1_OWNER": "x@example.com"})
    memo = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")

    def unsigned(payer: Pubkey, *signers: Pubkey) -> VersionedTransaction:
        metas = [AccountMeta(payer, True, True), *(AccountMeta(s, True, False) for s in signers)]
        msg = MessageV0.try_compile(payer, [Instruction(memo, b"x", metas)], [], Hash.new_unique())
        return VersionedTransaction.populate(msg, [Signature.default()] * (1 + len(signers)))

    signed = store.sign(str(mine.pubkey()), unsigned(mine.pubkey()))
    assert all(signed.verify_with_results())
    with pytest.raises(ValueError, match="fee payer"):
        store.sign(str(mine.pubkey()), unsigned(other.pubkey()))
    with pytest.raises(ValueError, match="2 signatures"):
        store.sign(str(mine.pubkey()), unsigned(mine.pubkey(), other.pubkey()))


def test_reprs_never_show_secrets() -> None:
    keypair = Keypair()
    store = load_keystore({"WALLET_1": str(keypair), "WALLET_1_OWNER": "x@example.com"})
    texts = [repr(store), str(store), repr(store._entries), f"{store}"]
    for form in secret_forms(keypair):
        assert not any(form in text for text in texts)


async def test_secret_never_in_logs_or_api_responses(
    rig: LiveRig, live_client: AsyncTestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await rig.setup()
    rig.auto_land()
    set_keystore(rig.keystore)  # what the API process would have loaded from WALLET_1
    try:
        bought = await rig.buy("1")
        await rig.sell_all(bought.position_id)
        # A malformed second key and the load report must not echo values either.
        load_keystore({"WALLET_1": rig.secret[:-3] + "000", "WALLET_2": rig.secret})
        bodies = []
        for path in (
            "/api/v1/live/status",
            f"/api/v1/live/wallets/{rig.wallet}/swaps",
            f"/api/v1/wallets/agent/{rig.agent_id}",
            f"/api/v1/agent-transactions?agentId={rig.agent_id}",
        ):
            resp = await live_client.get(path, headers=headers(rig))
            assert resp.status_code == 200, (path, resp.text)
            bodies.append(resp.text)
    finally:
        set_keystore(None)
    assert rig.wallet in bodies[0] and rig.wallet in bodies[2]  # public addresses are fine
    records = caplog.records
    assert records, "the trade should have logged something"
    logged = caplog.text + "".join(repr(getattr(r, "fields", "")) + repr(r.args) for r in records)
    for form in secret_forms(rig.keypair):
        assert form not in logged
        assert not any(form in body for body in bodies)


def test_keystore_default_is_empty_without_configuration() -> None:
    assert len(KeyStore()) == 0 and KeyStore().owner_of("anything") is None
