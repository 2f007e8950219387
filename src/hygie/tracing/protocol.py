"""ROBERT message cryptography (ROBERT v1.1, sections 3 to 7), server side.

- Keys of a user (section 4): ECDH on P-256 between the app's key and the server's,
  then ``K_A = HMAC-SHA256(secret, "mac")`` and ``K_A_enc = HMAC-SHA256(secret, "tuples")``.
- EBID (section 3.2): SKINNY-64-192 under the day's key ``K_S`` of
  ``epoch (24 bits) || id_A (40 bits)``; 64 bits, one per epoch and user.
- ECC (section 3.3): first byte of ``AES(K_G, EBID || 0^64)`` XOR the country code, so
  that only a server holding K_G learns which country issued an EBID.
- HELLO (section 5): ``ECC || EBID || time (16 low bits of NTP seconds) || MAC``, where
  ``MAC = HMAC-SHA256(K_A, 0x01 || ECC || EBID || time)`` truncated to 40 bits.
- Authenticated requests (sections 7 and 8): ``HMAC-SHA256(K_A, salt || EBID || epoch
  (32 bits) || time (32 bits))`` with salt 0x02 (status), 0x03 (unregister), 0x04
  (delete history).
- Tuples: the (epoch, EBID, ECC) list sent to the app, as JSON sealed with AES-GCM
  under K_A_enc (12-byte nonce first).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct

import numpy as np
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hygie.tracing.epochs import EPOCHS_PER_DAY, day_of_epoch
from hygie.tracing.errors import InvalidRequest
from hygie.tracing.keystore import KeyStore
from hygie.tracing.skinny import Skinny64192

COUNTRY_FRANCE = 0x21
SALT_HELLO = 0x01
SALT_STATUS = 0x02
SALT_UNREGISTER = 0x03
SALT_DELETE_HISTORY = 0x04
HELLO_MAC_BYTES = 5
ID_BITS = 40
ID_MASK = (1 << ID_BITS) - 1
EPOCH_MASK = (1 << 24) - 1
#: The base64 text of each possible one-byte ECC.
_ECC_B64 = [base64.b64encode(bytes((v,))).decode() for v in range(256)]


def derive_user_keys(shared_secret: bytes) -> tuple[bytes, bytes]:
    """(K_A, K_A_enc) from the ECDH shared secret (section 4)."""
    return (hmac.digest(shared_secret, b"mac", "sha256"),
            hmac.digest(shared_secret, b"tuples", "sha256"))


def load_public_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    """An app's P-256 public key, as SubjectPublicKeyInfo DER or an X9.62 point."""
    try:
        if raw[:1] in (b"\x02", b"\x03", b"\x04") and len(raw) in (33, 65):
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        key = serialization.load_der_public_key(raw)
    except ValueError as exc:
        raise InvalidRequest("clientPublicECDHKey is not a P-256 public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidRequest("clientPublicECDHKey must be on the P-256 curve")
    return key


def hello_mac(ka: bytes, ecc: int, ebid: bytes, time16: int) -> bytes:
    """The 40-bit MAC of a HELLO message (section 5)."""
    msg = bytes((SALT_HELLO, ecc)) + ebid + struct.pack(">H", time16)
    return hmac.digest(ka, msg, "sha256")[:HELLO_MAC_BYTES]


def request_mac(ka: bytes, salt: int, ebid: bytes, epoch: int, time32: int) -> bytes:
    """The MAC of an authenticated request (status, unregister, delete history)."""
    msg = bytes((salt,)) + ebid + struct.pack(">II", epoch & 0xFFFFFFFF, time32 & 0xFFFFFFFF)
    return hmac.digest(ka, msg, "sha256")


def seal(key: bytes, payload: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, payload, None)


def unseal(key: bytes, blob: bytes) -> bytes:
    return AESGCM(key).decrypt(blob[:12], blob[12:], None)


class EbidCodec:
    """EBID and ECC computations with the key store's keys (ciphers cached per day)."""

    def __init__(self, keystore: KeyStore, country: int = COUNTRY_FRANCE) -> None:
        self.keystore = keystore
        self.country = country
        self._ciphers: dict[int, Skinny64192] = {}
        self._kg = Cipher(algorithms.AES(keystore.federation_key()), modes.ECB())

    def cipher(self, day: int, *, create: bool = False) -> Skinny64192 | None:
        c = self._ciphers.get(day)
        if c is None:
            key = self.keystore.daily_key(day, create=create)
            if key is None:
                return None
            c = self._ciphers[day] = Skinny64192(key)
        return c

    def forget_days_before(self, day: int) -> int:
        for d in [d for d in self._ciphers if d < day]:
            del self._ciphers[d]
        return self.keystore.forget_days_before(day)

    def ebids(self, id_a: int, epochs: np.ndarray) -> np.ndarray:
        """EBIDs of one user for these epochs (uint64 array), creating day keys as needed."""
        epochs = np.asarray(epochs, dtype=np.uint64)
        plain = ((epochs & np.uint64(EPOCH_MASK)) << np.uint64(ID_BITS)) | np.uint64(id_a)
        out = np.empty_like(plain)
        days = epochs // np.uint64(EPOCHS_PER_DAY)
        for day in np.unique(days):
            sel = days == day
            cipher = self.cipher(int(day), create=True)
            assert cipher is not None
            out[sel] = cipher.encrypt_blocks(plain[sel])
        return out

    def ecc_pads(self, ebids: np.ndarray) -> np.ndarray:
        """First byte of AES(K_G, EBID || 0^64) for each EBID (one ECB call for all)."""
        blocks = np.zeros((len(ebids), 2), dtype=">u8")
        blocks[:, 0] = ebids
        enc = self._kg.encryptor()
        out = enc.update(blocks.tobytes()) + enc.finalize()
        return np.frombuffer(out, dtype=np.uint8)[::16].copy()

    def eccs(self, ebids: np.ndarray) -> np.ndarray:
        return self.ecc_pads(ebids) ^ np.uint8(self.country)

    def decrypt(self, ebid: bytes, epoch_hint: int) -> tuple[int, int] | None:
        """(epoch, id_A) of one EBID using the key of ``epoch_hint``'s day, or None."""
        cipher = self.cipher(day_of_epoch(epoch_hint))
        if cipher is None:
            return None
        plain = cipher.decrypt_block(int.from_bytes(ebid, "big"))
        return plain >> ID_BITS, plain & ID_MASK

    def tuples(self, id_a: int, first_epoch: int, n_epochs: int) -> list[dict[str, object]]:
        """The (epoch, EBID, ECC) tuples of a user, as the app receives them."""
        epochs = np.arange(first_epoch, first_epoch + n_epochs, dtype=np.uint64)
        ebids = self.ebids(id_a, epochs)
        eccs = self.eccs(ebids).tolist()
        raw = ebids.astype(">u8").tobytes()
        b64 = binascii.b2a_base64
        return [{"epochId": first_epoch + i,
                 "key": {"ebid": b64(raw[8 * i: 8 * i + 8], newline=False).decode(),
                         "ecc": _ECC_B64[eccs[i]]}}
                for i in range(n_epochs)]

    def sealed_tuples(self, kenc: bytes, id_a: int, first_epoch: int, n_epochs: int) -> str:
        """Tuples as JSON, sealed with AES-GCM under K_A_enc, in base64."""
        payload = orjson.dumps(self.tuples(id_a, first_epoch, n_epochs))
        return base64.b64encode(seal(kenc, payload)).decode()


def fingerprint(value: str) -> str:
    """SHA-256 of a secret we must recognise but never keep (submission codes)."""
    return hashlib.sha256(value.encode()).hexdigest()
