"""DP-3T low-cost design: day keys and ephemeral ids (DP-3T white paper, section 3.1).

- SK_t = SHA-256(SK_{t-1}): each day's secret key hashes the previous one, so a
  positive user publishing SK_t lets others recompute every later day's EphIDs.
- EphIDs of a day: PRG(PRF(SK_t, "broadcast key")), with PRF = HMAC-SHA256 and PRG =
  AES-256 in counter mode from a zero counter, cut into 16-byte EphIDs (the phone then
  broadcasts them in a random order).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BROADCAST_KEY_LABEL = b"broadcast key"
EPOCHS_PER_DAY = 96


def next_day_key(sk: bytes) -> bytes:
    """SK_{t+1} from SK_t."""
    if len(sk) != 32:
        raise ValueError("a DP-3T day key is 32 bytes")
    return hashlib.sha256(sk).digest()


def ephids(sk: bytes, count: int = EPOCHS_PER_DAY) -> list[bytes]:
    """The day's EphIDs in generation order (before the phone shuffles them)."""
    bk = hmac.digest(sk, BROADCAST_KEY_LABEL, "sha256")
    enc = Cipher(algorithms.AES(bk), modes.CTR(bytes(16))).encryptor()
    stream = enc.update(bytes(16 * count)) + enc.finalize()
    return [stream[16 * i: 16 * i + 16] for i in range(count)]
