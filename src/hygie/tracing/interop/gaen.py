"""GAEN cryptography: Exposure Notification Cryptography Specification v1.2 (April 2020).

Section references are to that specification. A Temporary Exposure Key (TEK) is 16
random bytes valid for ``TEKRollingPeriod`` = 144 intervals of 10 minutes; from it:

- RPIK = HKDF-SHA256(TEK, salt=NULL, info="EN-RPIK", 16)                 (section 3.3)
- RPI_j = AES-128(RPIK, "EN-RPI" || 0x000000000000 || ENIntervalNumber_j)  (ENIN little-endian)
- AEMK = HKDF-SHA256(TEK, salt=NULL, info="EN-AEMK", 16)                 (section 3.5)
- AEM = AES-128-CTR(AEMK, IV=RPI, metadata)
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INTERVAL_SECONDS = 600
TEK_ROLLING_PERIOD = 144


def interval_number(unix_seconds: int) -> int:
    """ENIntervalNumber: the 10-minute interval containing this time (section 3.1)."""
    return unix_seconds // INTERVAL_SECONDS


def _hkdf(tek: bytes, info: bytes) -> bytes:
    if len(tek) != 16:
        raise ValueError("a Temporary Exposure Key is 16 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(tek)


def rpi_key(tek: bytes) -> bytes:
    """Rolling Proximity Identifier Key (section 3.3)."""
    return _hkdf(tek, b"EN-RPIK")


def aem_key(tek: bytes) -> bytes:
    """Associated Encrypted Metadata Key (section 3.5)."""
    return _hkdf(tek, b"EN-AEMK")


def _padded(interval: int) -> bytes:
    return b"EN-RPI" + bytes(6) + struct.pack("<I", interval)


def rolling_proximity_identifier(rpik: bytes, interval: int) -> bytes:
    """RPI broadcast during one interval (section 3.4)."""
    enc = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()
    return enc.update(_padded(interval)) + enc.finalize()


def rpis_for_day(tek: bytes, first_interval: int,
                 count: int = TEK_ROLLING_PERIOD) -> list[bytes]:
    """Every RPI of a TEK's validity, in one AES-ECB call (what a matcher recomputes)."""
    enc = Cipher(algorithms.AES(rpi_key(tek)), modes.ECB()).encryptor()
    blob = enc.update(b"".join(_padded(first_interval + i) for i in range(count)))
    return [blob[16 * i: 16 * i + 16] for i in range(count)]


def encrypt_metadata(aemk: bytes, rpi: bytes, metadata: bytes) -> bytes:
    """Associated Encrypted Metadata (section 3.6): AES-CTR with the RPI as IV."""
    enc = Cipher(algorithms.AES(aemk), modes.CTR(rpi)).encryptor()
    return enc.update(metadata) + enc.finalize()


def decrypt_metadata(aemk: bytes, rpi: bytes, aem: bytes) -> bytes:
    """Inverse of :func:`encrypt_metadata` (CTR mode is its own inverse)."""
    return encrypt_metadata(aemk, rpi, aem)
