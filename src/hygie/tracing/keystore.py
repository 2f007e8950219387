"""Server keys of the ROBERT backend, behind one small interface.

ROBERT's server holds four kinds of secrets (ROBERT v1.1, section 3): the daily key
``K_S`` that encrypts EBIDs (one per day, destroyed once no EBID of that day can still
matter), the federation key ``K_G`` that seals the country code into the ECC, the
long-term P-256 key pair of the registration ECDH, and (an operational addition) a
key-encryption key that wraps each user's K_A and K_A_enc at rest. A real deployment
keeps them in an HSM; ``KeyStore`` is the seam: everything secret goes through its
methods, and the registration private key never leaves it (``ecdh`` derives inside).

``FileKeyStore`` is the default: one JSON file readable only by its owner, created on
first use under ``var_dir/tracing``. ``Pkcs11KeyStore`` (module ``pkcs11store``) keeps
the same keys in a PKCS#11 token.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hygie.tracing.skinny import KEY_BYTES

NONCE_BYTES = 12


class KeyStore(ABC):
    """Where the server's secrets live; see the module docstring."""

    @abstractmethod
    def daily_key(self, day: int, *, create: bool = False) -> bytes | None:
        """The 24-byte SKINNY key K_S of a day, or None when it does not (or no longer) exist."""

    @abstractmethod
    def federation_key(self) -> bytes:
        """K_G, the AES key that seals the country code into ECCs."""

    @abstractmethod
    def registration_public_key(self) -> bytes:
        """The server's P-256 public key (SubjectPublicKeyInfo, DER) that apps use for ECDH."""

    @abstractmethod
    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        """ECDH shared secret (x coordinate) between the server key and ``peer``."""

    @abstractmethod
    def wrap(self, secret: bytes, aad: bytes) -> bytes:
        """Encrypt a per-user secret for storage, bound to ``aad`` (the user's id)."""

    @abstractmethod
    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """Inverse of :meth:`wrap`; raises ``cryptography.exceptions.InvalidTag`` if altered."""

    @abstractmethod
    def forget_days_before(self, day: int) -> int:
        """Destroy every daily key older than ``day``; returns how many were destroyed."""

    def days(self) -> list[int]:
        """Days that currently have a key (for the operator's listing)."""
        return []


class FileKeyStore(KeyStore):
    """Keys in one owner-only JSON file; new daily keys are added under a file lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._data = self._locked_update(lambda data: data)
        self._aead = AESGCM(bytes.fromhex(self._data["kek"]))
        self._private = serialization.load_pem_private_key(
            self._data["registration_key"].encode(), password=None)
        assert isinstance(self._private, ec.EllipticCurvePrivateKey)

    # --- file handling ----------------------------------------------------------------
    def _fresh(self) -> dict[str, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        return {"kek": secrets.token_hex(32), "federation_key": secrets.token_hex(32),
                "registration_key": pem, "daily": {}}

    def _locked_update(self, change: Any) -> dict[str, Any]:
        lock = self.path.with_suffix(".lock")
        with open(lock, "a") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                if self.path.exists():
                    data = json.loads(self.path.read_text())
                    before = json.dumps(data, sort_keys=True)
                else:
                    data, before = self._fresh(), ""
                data = change(data)
                if json.dumps(data, sort_keys=True) != before:
                    tmp = self.path.with_suffix(".tmp")
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as fh:
                        json.dump(data, fh)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(tmp, self.path)
                return data
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)

    # --- KeyStore ----------------------------------------------------------------------
    def daily_key(self, day: int, *, create: bool = False) -> bytes | None:
        found = self._data["daily"].get(str(day))
        if found is None:
            # Another process may have created it since we loaded the file.
            self._data = self._locked_update(lambda data: data)
            found = self._data["daily"].get(str(day))
        if found is None and create:
            def add(data: dict[str, Any]) -> dict[str, Any]:
                data["daily"].setdefault(str(day), secrets.token_hex(KEY_BYTES))
                return data

            self._data = self._locked_update(add)
            found = self._data["daily"][str(day)]
        return bytes.fromhex(found) if found is not None else None

    def federation_key(self) -> bytes:
        return bytes.fromhex(self._data["federation_key"])

    def registration_public_key(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        return self._private.exchange(ec.ECDH(), peer)

    def wrap(self, secret: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)

    def forget_days_before(self, day: int) -> int:
        gone: list[str] = []

        def drop(data: dict[str, Any]) -> dict[str, Any]:
            for d in list(data["daily"]):
                if int(d) < day:
                    gone.append(d)
                    del data["daily"][d]
            return data

        self._data = self._locked_update(drop)
        return len(gone)

    def days(self) -> list[int]:
        return sorted(int(d) for d in self._data["daily"])
