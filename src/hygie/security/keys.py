"""The platform's token signing keys, behind a small ``KeyStore`` interface.

Tokens are signed with ES256 (ECDSA on P-256 with SHA-256, RFC 7518 §3.4): short
signatures, fast verification, and a key that fits in a KMS or an HSM. Each key is named
by its ``kid``, the RFC 7638 JWK thumbprint of its public part, so the name cannot drift
from the key and every process computes the same one.

``FileKeyStore`` keeps the keys as PKCS#8 PEM files under ``<var_dir>/keys/`` (mode
0600, in a 0700 folder), creates the first one on first use, and names the key that
signs in ``keys/active``. Older keys keep verifying after a ``rotate()``; a process that
meets an unknown ``kid`` rereads the folder (at most every few seconds), so a rotation
done by one worker reaches the others. A KMS-backed store implements the same four
methods: its ``signing_key()`` returns a key handle, and it registers with PyJWT an
``Algorithm`` whose ``sign`` calls the KMS.

JWKS (RFC 7517 §5) is what ``/.well-known/jwks.json`` serves: the public keys only.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

#: JWS algorithm of every platform token.
ALGORITHM = "ES256"

#: Shortest time between two rereads of the key folder prompted by an unknown kid.
RELOAD_INTERVAL_S = 5.0


class SigningKey(NamedTuple):
    """The key that signs new tokens: its ``kid`` and what PyJWT signs with."""

    kid: str
    key: Any


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC public key."""
    jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")},
                           separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class KeyStore(ABC):
    """Where signing keys live: a folder today, a KMS tomorrow."""

    algorithm: str = ALGORITHM

    @abstractmethod
    def signing_key(self) -> SigningKey:
        """The key new tokens are signed with (created when none exists yet)."""

    @abstractmethod
    def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The public key named ``kid``, or None when no such key is known."""

    @abstractmethod
    def public_keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        """Every key that may have signed a token still in circulation, by kid."""

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (RFC 7517 §5)."""
        keys = []
        for kid, key in sorted(self.public_keys().items()):
            jwk = json.loads(ECAlgorithm.to_jwk(key))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": self.algorithm})
        return {"keys": keys}


class FileKeyStore(KeyStore):
    """Keys as PEM files in one folder; see the module docstring for the layout."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._active: str | None = None
        self._loaded_at = float("-inf")

    # --- KeyStore -------------------------------------------------------------------

    def signing_key(self) -> SigningKey:
        with self._lock:
            if self._active is None:
                self._load_or_create()
            assert self._active is not None
            return SigningKey(self._active, self._private[self._active])

    def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        key = self._private.get(kid)
        if key is None:
            with self._lock:
                if self._active is None or time.monotonic() - self._loaded_at > RELOAD_INTERVAL_S:
                    self._load_or_create()
                key = self._private.get(kid)
        return key.public_key() if key is not None else None

    def public_keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        with self._lock:
            if self._active is None:
                self._load_or_create()
            return {kid: key.public_key() for kid, key in self._private.items()}

    # --- rotation -------------------------------------------------------------------

    def rotate(self) -> str:
        """Create a new key and make it the signing one; old keys still verify."""
        with self._lock, self._folder_lock():
            kid = self._write_new_key()
            self._write_active(kid)
            self._read_folder()
            return kid

    # --- files ----------------------------------------------------------------------

    def _load_or_create(self) -> None:
        """Read the folder; create the first key if there is none (under a file lock)."""
        self._read_folder()
        if self._active is None:
            with self._folder_lock():
                self._read_folder()  # another process may have won the race
                if self._active is None:
                    self._write_active(self._write_new_key())
                    self._read_folder()
        self._loaded_at = time.monotonic()

    def _read_folder(self) -> None:
        keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        if self.directory.is_dir():
            for path in self.directory.glob("*.pem"):
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise ValueError(f"{path} is not an EC private key")
                keys[thumbprint(key.public_key())] = key
        active_file = self.directory / "active"
        active = active_file.read_text().strip() if active_file.exists() else None
        self._private = keys
        self._active = active if active in keys else None

    def _folder_lock(self) -> _FolderLock:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _FolderLock(self.directory / ".lock")

    def _write_new_key(self) -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        kid = thumbprint(key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private_file(self.directory / f"{kid}.pem", pem)
        return kid

    def _write_active(self, kid: str) -> None:
        _write_private_file(self.directory / "active", kid.encode() + b"\n")


def _write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _FolderLock:
    """An exclusive ``flock`` on a lock file, so that two processes never both create."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> _FolderLock:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
