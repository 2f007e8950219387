"""HMAC-SHA256 of many short HELLO messages at once, compiled with numba.

Why hand-written: a HELLO MAC is HMAC-SHA256 over 12 bytes (FIPS 198-1 over FIPS
180-4). ``hmac.digest`` (OpenSSL) spends most of each call re-deriving the key's
inner and outer pads and crossing from Python to C, which caps one core at a few
hundred thousand MACs per second. HMAC's definition allows computing, once per key,
the SHA-256 states after the ``K ^ ipad`` and ``K ^ opad`` blocks (the "midstates");
each message then costs exactly two compressions: the inner block (message, padding,
length 64 + 12 bytes) and the outer block (inner digest, padding, length 64 + 32
bytes). No library exposes SHA-256 midstates, so the compression function (FIPS
180-4, section 6.2.2) is written here and compiled by numba over the whole batch.
Results are checked against ``hmac.digest`` by the tests.

``available()`` says whether numba is installed; callers fall back to ``hmac.digest``.
"""

from __future__ import annotations

import numpy as np

try:  # numba comes with the hygie[tracing] extra
    import numba
except ImportError:  # pragma: no cover - exercised only without the extra
    numba = None

_K = np.array([
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
    0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
    0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
    0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
    0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
    0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
    0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
    0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
    0xC67178F2], dtype=np.int64)
_IV = np.array([0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C,
                0x1F83D9AB, 0x5BE0CD19], dtype=np.uint32)


def available() -> bool:
    return numba is not None


_M = 0xFFFFFFFF


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & _M


def _compress_into(state: np.ndarray, block: np.ndarray, k: np.ndarray, w: np.ndarray,
                   out: np.ndarray) -> None:
    """One SHA-256 compression (FIPS 180-4, 6.2.2) of 16 big-endian words.

    Words are carried in signed 64-bit integers (numba mixes unsigned and signed into
    floats) and cut to 32 bits after every addition and rotation. ``w`` (64 words) is
    scratch space and ``out`` receives the 8 words of the new state.
    """
    for t in range(16):
        w[t] = np.int64(block[t])
    for t in range(16, 64):
        x, y = w[t - 15], w[t - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3)
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> 10)
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & _M
    a, b, c, d = np.int64(state[0]), np.int64(state[1]), np.int64(state[2]), np.int64(state[3])
    e, f, g, h = np.int64(state[4]), np.int64(state[5]), np.int64(state[6]), np.int64(state[7])
    for t in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ ((~e & _M) & g)
        t1 = (h + s1 + ch + k[t] + w[t]) & _M
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = (s0 + maj) & _M
        h, g, f, e, d, c, b, a = g, f, e, (d + t1) & _M, c, b, a, (t1 + t2) & _M
    out[0], out[1] = (np.int64(state[0]) + a) & _M, (np.int64(state[1]) + b) & _M
    out[2], out[3] = (np.int64(state[2]) + c) & _M, (np.int64(state[3]) + d) & _M
    out[4], out[5] = (np.int64(state[4]) + e) & _M, (np.int64(state[5]) + f) & _M
    out[6], out[7] = (np.int64(state[6]) + g) & _M, (np.int64(state[7]) + h) & _M


def _compress_impl(state: np.ndarray, block: np.ndarray, k: np.ndarray) -> np.ndarray:
    out = np.empty(8, dtype=np.uint32)
    _compress_into_c(state, block, k, np.zeros(64, dtype=np.int64), out)
    return out


def _hello_macs_impl(istates: np.ndarray, ostates: np.ndarray, key_of: np.ndarray,
                     msgs: np.ndarray, k: np.ndarray, out: np.ndarray) -> None:
    block = np.zeros(16, dtype=np.uint32)
    w = np.zeros(64, dtype=np.int64)
    inner = np.zeros(8, dtype=np.uint32)
    outer = np.zeros(8, dtype=np.uint32)
    for n in range(msgs.shape[0]):
        kk = key_of[n]
        if kk < 0:
            continue
        for word in range(3):
            block[word] = ((np.uint32(msgs[n, 4 * word]) << 24)
                           | (np.uint32(msgs[n, 4 * word + 1]) << 16)
                           | (np.uint32(msgs[n, 4 * word + 2]) << 8)
                           | np.uint32(msgs[n, 4 * word + 3]))
        block[3] = 0x80000000
        for t in range(4, 15):
            block[t] = 0
        block[15] = (64 + 12) * 8
        _compress_into_c(istates[kk], block, k, w, inner)
        for t in range(8):
            block[t] = inner[t]
        block[8] = 0x80000000
        for t in range(9, 15):
            block[t] = 0
        block[15] = (64 + 32) * 8
        _compress_into_c(ostates[kk], block, k, w, outer)
        out[n, 0] = (outer[0] >> 24) & 0xFF
        out[n, 1] = (outer[0] >> 16) & 0xFF
        out[n, 2] = (outer[0] >> 8) & 0xFF
        out[n, 3] = outer[0] & 0xFF
        out[n, 4] = (outer[1] >> 24) & 0xFF


if numba is not None:
    _rotr = numba.njit(cache=True, inline="always")(_rotr)
    _compress_into_c = numba.njit(cache=True, nogil=True)(_compress_into)
    _compress = numba.njit(cache=True, nogil=True)(_compress_impl)
    _hello_macs = numba.njit(cache=True, nogil=True)(_hello_macs_impl)
else:  # pragma: no cover - only without the extra
    _compress_into_c = _compress_into
    _compress = _compress_impl
    _hello_macs = _hello_macs_impl


def _midstates_impl(keys: np.ndarray, iv: np.ndarray, k: np.ndarray, ist: np.ndarray,
                    ost: np.ndarray) -> None:
    block = np.zeros(16, dtype=np.uint32)
    w = np.zeros(64, dtype=np.int64)
    for n in range(keys.shape[0]):
        for pad, out in ((0x36, ist), (0x5C, ost)):
            for word in range(16):
                v = np.uint32(0)
                for byte in range(4):
                    i = 4 * word + byte
                    kb = keys[n, i] if i < keys.shape[1] else np.uint8(0)
                    v = (v << np.uint32(8)) | np.uint32(kb ^ pad)
                block[word] = v
            _compress_into_c(iv, block, k, w, out[n])


if numba is not None:
    _midstates = numba.njit(cache=True, nogil=True)(_midstates_impl)
else:  # pragma: no cover - only without the extra
    _midstates = _midstates_impl


def midstates(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """SHA-256 states after ``K ^ ipad`` and ``K ^ opad`` for each key (at most 64 bytes)."""
    ist = np.empty((len(keys), 8), dtype=np.uint32)
    ost = np.empty((len(keys), 8), dtype=np.uint32)
    if keys:
        width = max(len(k) for k in keys)
        if width > 64:
            raise ValueError("HMAC keys longer than a SHA-256 block are hashed first")
        arr = np.frombuffer(b"".join(k.ljust(width, b"\0") for k in keys),
                            dtype=np.uint8).reshape(len(keys), width)
        _midstates(arr, _IV, _K, ist, ost)
    return ist, ost


def hello_macs(keys: list[bytes], key_of: np.ndarray, msgs: np.ndarray) -> np.ndarray:
    """Truncated (5-byte) HMAC-SHA256 of each 12-byte message under ``keys[key_of[n]]``.

    ``key_of``: shape (n_messages,), -1 to skip a message; ``msgs``: shape
    (n_messages, 12) of uint8. Returns shape (n_messages, 5) of uint8 (zeros if skipped).
    """
    if numba is None:
        raise RuntimeError("numba is missing: pip install 'hygie[tracing]'")
    out = np.zeros((len(msgs), 5), dtype=np.uint8)
    if len(keys) == 0 or len(msgs) == 0:
        return out
    ist, ost = midstates(keys)
    _hello_macs(ist, ost, np.ascontiguousarray(key_of, dtype=np.int64),
                np.ascontiguousarray(msgs, dtype=np.uint8), _K, out)
    return out
