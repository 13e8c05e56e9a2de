"""Live wallet keys: loaded once per process from ``WALLET_n`` variables and/or a key file.

Every key is bound to the e-mail of the one user allowed to assign it to an agent (domain api.md
§25.1: upstream let any user trade with any server key). Sources:

* ``WALLET_1``, ``WALLET_2``, … (scanning stops at the first missing index) with the owner in
  ``WALLET_n_OWNER``;
* ``LIVE_WALLET_KEY_FILE``: JSON ``{"wallets": [{"key": …, "owner": "alice@example.com"}]}`` (or the
  bare list). Keep it ``chmod 600``; a group/world-readable file is reported.

A key without an owner falls back to ``ADMIN_EMAIL`` (the operator of a single-user deployment) and
is otherwise loaded but assignable by nobody. Accepted key formats: base58 of a 32-byte seed or of
a 64-byte secret key, or a JSON array of 64 integers 0–255. ``sim_…`` values, malformed keys and
duplicate addresses are reported (by source name, never by value) and skipped.

Secrets never leave this module except as a signature: there is no accessor that returns the
secret, :class:`KeyStore` has a redacting ``repr``, and load problems name the variable, not the key.
solders' ``str(Keypair)`` *is* the base58 secret, so :meth:`KeyStore.keypair` is for signing only.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction

log = logging.getLogger(__name__)

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
MAX_WALLET_SCAN = 1000


class WalletNotLoaded(LookupError):
    """No key for this address in this process (code ``WALLET_NOT_LOADED``)."""

    code = "WALLET_NOT_LOADED"


def b58decode(text: str) -> bytes:
    """Bitcoin-alphabet base58 → bytes (leading '1's are zero bytes). Raises ValueError."""
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise ValueError("not base58")
        number = number * 58 + _B58_INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + body


def parse_secret(value: str) -> Keypair:
    """A keypair from one of the accepted formats. Raises ValueError without echoing the value."""
    text = value.strip()
    if not text:
        raise ValueError("empty value")
    if text.startswith("sim_"):
        raise ValueError("simulation addresses are not keys")
    if text.startswith("["):
        try:
            numbers = msgspec.json.decode(text, type=list[int])
        except msgspec.DecodeError:
            raise ValueError("not a JSON array of integers") from None
        if len(numbers) != 64 or any(not 0 <= n <= 255 for n in numbers):
            raise ValueError("JSON key must hold exactly 64 integers 0-255")
        raw = bytes(numbers)
    else:
        raw = b58decode(text)
    if len(raw) == 32:
        return Keypair.from_seed(raw)
    if len(raw) == 64:
        try:
            return Keypair.from_bytes(raw)
        except Exception:
            # solders checks that the public half matches the secret half.
            raise ValueError("64-byte key whose public half does not match its secret") from None
    raise ValueError(f"decoded to {len(raw)} bytes; expected 32 or 64")


def normalize_owner(email: str | None) -> str | None:
    if email is None:
        return None
    email = email.strip().lower()
    return email or None


@dataclass(frozen=True, slots=True)
class _Entry:
    keypair: Keypair
    owner: str | None
    source: str

    def __repr__(self) -> str:
        return f"_Entry(address={self.keypair.pubkey()}, owner={self.owner!r}, source={self.source!r})"


class KeyStore:
    """Public address → (keypair, owner e-mail). Immutable after loading."""

    def __init__(self, entries: Mapping[str, _Entry] | None = None, problems: Iterable[str] = ()) -> None:
        self._entries: dict[str, _Entry] = dict(entries or {})
        self.problems: list[str] = list(problems)

    def __repr__(self) -> str:
        return f"KeyStore({len(self._entries)} wallets)"

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._entries)

    def addresses(self) -> list[str]:
        return sorted(self._entries)

    def addresses_for(self, owner_email: str) -> list[str]:
        """Addresses the user with this e-mail may assign (the only ones to ever show them)."""
        owner = normalize_owner(owner_email)
        return sorted(a for a, e in self._entries.items() if owner is not None and e.owner == owner)

    def has(self, address: str) -> bool:
        return address in self._entries

    def owner_of(self, address: str) -> str | None:
        """E-mail (lower-case) of the user allowed to assign ``address``; None if unknown or unowned."""
        entry = self._entries.get(address)
        return entry.owner if entry else None

    wallet_owner = owner_of

    def may_assign(self, address: str, user_email: str) -> bool:
        owner = self.owner_of(address)
        return owner is not None and owner == normalize_owner(user_email)

    def keypair(self, address: str) -> Keypair:
        """The signing key. Never log or serialize it: ``str()`` of a Keypair is its secret."""
        entry = self._entries.get(address)
        if entry is None:
            raise WalletNotLoaded(f"No private key loaded for wallet {address}")
        return entry.keypair

    def sign(self, address: str, tx: VersionedTransaction) -> VersionedTransaction:
        """Sign ``tx`` as ``address``, which must be its fee payer and sole required signer.

        A second required signer would mean the first signature (the id we journal before sending)
        is not ours to know in advance, so such transactions are refused.
        """
        keypair = self.keypair(address)
        message = tx.message
        signers = message.header.num_required_signatures
        if signers != 1:
            raise ValueError(f"transaction requires {signers} signatures; only single-signer swaps are supported")
        if message.account_keys[0] != keypair.pubkey():
            raise ValueError(f"transaction fee payer {message.account_keys[0]} is not wallet {address}")
        return VersionedTransaction(message, [keypair])


class _KeyFileEntry(msgspec.Struct):
    key: str | list[int]
    owner: str | None = None


class _KeyFile(msgspec.Struct):
    wallets: list[_KeyFileEntry]


def _read_key_file(path: Path, problems: list[str]) -> list[tuple[str, str, str | None]]:
    try:
        mode = path.stat().st_mode
        text = path.read_bytes()
    except OSError as exc:
        problems.append(f"key file {path}: cannot read ({exc.strerror})")
        return []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        problems.append(f"key file {path} is readable by group or others; chmod 600 it")
    try:
        data = msgspec.json.decode(text)
        doc = msgspec.convert({"wallets": data} if isinstance(data, list) else data, _KeyFile)
    except (msgspec.DecodeError, msgspec.ValidationError):
        problems.append(f'key file {path}: expected {{"wallets": [{{"key": ..., "owner": ...}}]}}')
        return []
    out = []
    for i, item in enumerate(doc.wallets):
        key = item.key if isinstance(item.key, str) else msgspec.json.encode(item.key).decode()
        out.append((f"{path.name}[{i}]", key, item.owner))
    return out


def _env_entries(environ: Mapping[str, str]) -> list[tuple[str, str, str | None]]:
    out = []
    for n in range(1, MAX_WALLET_SCAN + 1):
        value = environ.get(f"WALLET_{n}")
        if value is None:
            break
        out.append((f"WALLET_{n}", value, environ.get(f"WALLET_{n}_OWNER")))
    return out


def load_keystore(
    environ: Mapping[str, str] | None = None,
    *,
    key_file: str | os.PathLike[str] | None = None,
    default_owner: str | None = None,
) -> KeyStore:
    """Read every configured key; problems are collected (and logged), never fatal."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    sources = _env_entries(env)
    if key_file:
        sources += _read_key_file(Path(key_file), problems)
    entries: dict[str, _Entry] = {}
    fallback = normalize_owner(default_owner)
    for source, value, owner in sources:
        try:
            keypair = parse_secret(value)
        except ValueError as exc:
            problems.append(f"{source}: skipped ({exc})")
            continue
        address = str(keypair.pubkey())
        if address in entries:
            problems.append(f"{source}: skipped (duplicate of {entries[address].source})")
            continue
        bound = normalize_owner(owner) or fallback
        if bound is None:
            problems.append(f"{source}: wallet {address} has no owner; nobody can assign it")
        entries[address] = _Entry(keypair, bound, source)
    for problem in problems:
        log.warning("live wallet keys: %s", problem)
    if entries:
        log.info("live wallet keys loaded", extra={"fields": {"wallets": len(entries)}})
    return KeyStore(entries, problems)


_process_store: KeyStore | None = None


def get_keystore(settings: Any = None) -> KeyStore:
    """The process-wide store, loaded on first use from the environment and ``settings``."""
    global _process_store
    if _process_store is None:
        _process_store = load_keystore(
            key_file=getattr(settings, "live_wallet_key_file", None),
            default_owner=getattr(settings, "admin_email", None),
        )
    return _process_store


def set_keystore(store: KeyStore | None) -> None:
    """Replace the process-wide store (tests, or a reload after the operator rotates keys)."""
    global _process_store
    _process_store = store
