"""The file key store: persistence, permissions, wrapping, key destruction."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hygie.tracing.keystore import FileKeyStore


def test_keys_persist_and_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "k" / "keys.json"
    a = FileKeyStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert a.daily_key(10) is None
    k10 = a.daily_key(10, create=True)
    assert k10 is not None and len(k10) == 24
    b = FileKeyStore(path)  # another process opening the same file
    assert b.daily_key(10) == k10
    assert b.federation_key() == a.federation_key()
    assert b.registration_public_key() == a.registration_public_key()
    # A key created by one instance is seen by the other.
    k11 = b.daily_key(11, create=True)
    assert a.daily_key(11) == k11
    assert a.days() == [10, 11]


def test_ecdh_matches_the_peer_side(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    peer = ec.generate_private_key(ec.SECP256R1())
    server_pub = serialization.load_der_public_key(store.registration_public_key())
    assert isinstance(server_pub, ec.EllipticCurvePublicKey)
    assert store.ecdh(peer.public_key()) == peer.exchange(ec.ECDH(), server_pub)


def test_wrap_is_bound_to_its_user(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    blob = store.wrap(b"k" * 32, b"user-1")
    assert store.unwrap(blob, b"user-1") == b"k" * 32
    assert b"k" * 32 not in blob
    with pytest.raises(InvalidTag):
        store.unwrap(blob, b"user-2")


def test_forget_days_before(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    for d in range(5):
        store.daily_key(d, create=True)
    assert store.forget_days_before(3) == 3
    assert store.days() == [3, 4]
    assert FileKeyStore(tmp_path / "keys.json").daily_key(1) is None
