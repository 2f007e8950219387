"""The signing key store: created on first use, private on disk, rotated, published."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from hygie.security.keys import FileKeyStore, thumbprint


def test_key_is_created_on_first_use_with_owner_only_mode(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    store = FileKeyStore(folder)
    assert not folder.exists()  # nothing happens before first use
    signing = store.signing_key()
    pem = folder / f"{signing.kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "active").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    assert isinstance(signing.key, ec.EllipticCurvePrivateKey)
    assert isinstance(signing.key.curve, ec.SECP256R1)
    assert signing.kid == thumbprint(signing.key.public_key())


def test_another_store_on_the_same_folder_reuses_the_key(tmp_path: Path) -> None:
    first = FileKeyStore(tmp_path / "keys").signing_key()
    second = FileKeyStore(tmp_path / "keys").signing_key()
    assert first.kid == second.kid
    assert len(list((tmp_path / "keys").glob("*.pem"))) == 1


def test_rotation_keeps_old_keys_verifying(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    old = store.signing_key().kid
    new = store.rotate()
    assert new != old
    assert store.signing_key().kid == new
    assert set(store.public_keys()) == {old, new}
    # another process (another store object) sees the rotation through the folder
    assert FileKeyStore(tmp_path / "keys").signing_key().kid == new


def test_unknown_kid_triggers_a_reread_of_the_folder(tmp_path: Path) -> None:
    reader = FileKeyStore(tmp_path / "keys")
    writer = FileKeyStore(tmp_path / "keys")
    first = reader.signing_key().kid
    rotated = writer.rotate()
    assert reader.public_key(first) is not None
    # the reader loaded the folder just now; an unknown kid rereads only after a pause
    reader._loaded_at -= 60
    assert reader.public_key(rotated) is not None
    assert reader.public_key("no-such-kid") is None


def test_jwks_lists_public_keys_only_and_verifies_tokens(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    signing = store.signing_key()
    jwks = store.jwks()
    (key,) = jwks["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256"
    assert key["kid"] == signing.kid and key["use"] == "sig"
    assert "d" not in key  # no private part
    token = jwt.encode({"sub": "x"}, signing.key, algorithm="ES256",
                       headers={"kid": signing.kid})
    public = jwt.PyJWKSet.from_dict(jwks)[signing.kid]
    assert jwt.decode(token, public.key, algorithms=["ES256"])["sub"] == "x"


def _first_kid(folder: str) -> str:
    return FileKeyStore(folder).signing_key().kid


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        kids = pool.map(_first_kid, [str(tmp_path / "keys")] * 6)
    assert len(set(kids)) == 1
    assert len(list((tmp_path / "keys").glob("*.pem"))) == 1
