"""SKINNY-64-192, the tweakable block cipher that ROBERT uses to build EBIDs.

Why hand-written: ROBERT encrypts ``epoch (24 bits) || id_A (40 bits)`` with
SKINNY-64-192 under the server's key of the day, and no maintained Python library
provides SKINNY. This module implements the cipher as specified in Beierle et al.,
"The SKINNY Family of Block Ciphers and its Low-Latency Variant MANTIS" (CRYPTO 2016),
section 2: 64-bit state of sixteen 4-bit cells, 192-bit tweakey (TK1 || TK2 || TK3),
40 rounds of SubCells, AddConstants, AddRoundTweakey, ShiftRows and MixColumns. The
published test vector of the paper (appendix B) is checked by the tests.

How it is fast: the round function is ``x -> L(S(x) ^ k_r)`` where ``S`` acts on each
cell, ``k_r`` is the round's constants and tweakey (independent of the block) and
``L = MixColumns o ShiftRows`` is linear over GF(2). So ``L(S(x))`` splits over the
four 16-bit rows of ``x`` into four table look-ups (as AES T-tables do), and the round
key enters as ``L(k_r)``. Decryption chains ``L^-1 o S^-1`` tables the same way. Blocks
are unsigned 64-bit integers (cell 0 is the most significant nibble, matching the
paper's byte order); a batch is a ``numpy.uint64`` array. With numba (the
``hygie[tracing]`` extra) a compiled loop runs the table look-ups; without it, numpy
does one operation per table per round over the whole batch. Both are tested.
"""

from __future__ import annotations

import sys
from functools import cache

import numpy as np
from numpy.typing import NDArray

__all__ = ["BLOCK_BYTES", "KEY_BYTES", "ROUNDS", "Skinny64192"]

BLOCK_BYTES = 8
KEY_BYTES = 24
ROUNDS = 40

#: The 4-bit S-box S4 (paper, table 1).
SBOX = (0xC, 0x6, 0x9, 0x0, 0x1, 0xA, 0x2, 0xB, 0x3, 0x8, 0x5, 0xD, 0x4, 0xE, 0x7, 0xF)
SBOX_INV = tuple(SBOX.index(v) for v in range(16))
#: Tweakey cell permutation P_T (paper, section 2.3).
TWEAKEY_PERMUTATION = (9, 15, 8, 13, 10, 14, 12, 11, 0, 1, 2, 3, 4, 5, 6, 7)

U64 = NDArray[np.uint64]
_MASK16 = np.uint64(0xFFFF)


def _round_constants() -> list[int]:
    """The 6-bit affine LFSR state of each round (AddConstants, section 2.3)."""
    rc, out = 0, []
    for _ in range(ROUNDS):
        rc = ((rc << 1) & 0x3F) | (((rc >> 5) ^ (rc >> 4) ^ 1) & 1)
        out.append(rc)
    return out


def _nibbles(value: int) -> list[int]:
    return [(value >> (60 - 4 * i)) & 0xF for i in range(16)]


def _pack(cells: list[int]) -> int:
    out = 0
    for c in cells:
        out = (out << 4) | c
    return out


def _lfsr_tk2(x: int) -> int:
    return ((x << 1) & 0xE) | (((x >> 3) ^ (x >> 2)) & 1)


def _lfsr_tk3(x: int) -> int:
    return (x >> 1) | (((x ^ (x >> 3)) & 1) << 3)


def round_keys(key: bytes) -> list[int]:
    """The 40 per-round 64-bit values XORed after SubCells (constants and tweakey)."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"SKINNY-64-192 takes a {KEY_BYTES}-byte tweakey, not {len(key)}")
    tks = [_nibbles(int.from_bytes(key[8 * z: 8 * z + 8], "big")) for z in range(3)]
    out = []
    for rc in _round_constants():
        cells = [0] * 16
        for i in range(8):
            cells[i] = tks[0][i] ^ tks[1][i] ^ tks[2][i]
        cells[0] ^= rc & 0xF
        cells[4] ^= (rc >> 4) & 0x3
        cells[8] ^= 0x2
        out.append(_pack(cells))
        tks = [[tk[TWEAKEY_PERMUTATION[i]] for i in range(16)] for tk in tks]
        for i in range(8):
            tks[1][i] = _lfsr_tk2(tks[1][i])
            tks[2][i] = _lfsr_tk3(tks[2][i])
    return out


# --- the linear layer on whole arrays (used to build the tables) -----------------------

def _rows(x: U64) -> list[U64]:
    return [(x >> np.uint64(48 - 16 * r)) & _MASK16 for r in range(4)]


def _from_rows(rows: list[U64]) -> U64:
    out = np.zeros_like(rows[0])
    for r, row in enumerate(rows):
        out |= row << np.uint64(48 - 16 * r)
    return out


def _rotr16(v: U64, bits: int) -> U64:
    if bits == 0:
        return v
    return ((v >> np.uint64(bits)) | (v << np.uint64(16 - bits))) & _MASK16


def _linear(x: U64) -> U64:
    """MixColumns o ShiftRows: row r turns right by r cells, then M mixes the rows."""
    r0, r1, r2, r3 = (_rotr16(row, 4 * i) for i, row in enumerate(_rows(x)))
    return _from_rows([r0 ^ r2 ^ r3, r0, r1 ^ r2, r0 ^ r2])


def _linear_inv(x: U64) -> U64:
    n0, n1, n2, n3 = _rows(x)
    r0, r2 = n1, n1 ^ n3
    r1, r3 = n2 ^ r2, n0 ^ n3
    return _from_rows([_rotr16(row, (16 - 4 * i) % 16) for i, row in enumerate([r0, r1, r2, r3])])


def _substitute(x: U64, box: tuple[int, ...]) -> U64:
    table = np.array(box, dtype=np.uint64)
    out = np.zeros_like(x)
    for shift in range(0, 64, 4):
        s = np.uint64(shift)
        out |= table[(x >> s) & np.uint64(0xF)] << s
    return out


@cache
def _tables(chunk_bits: int) -> dict[str, np.ndarray]:
    """Per-chunk tables: ``enc`` = L(S(.)), ``dec`` = L^-1(S^-1(.)), ``linv``, ``sinv``."""
    n_chunks = 64 // chunk_bits
    values = np.arange(1 << chunk_bits, dtype=np.uint64)
    mask = np.uint64((1 << chunk_bits) - 1)
    out: dict[str, np.ndarray] = {}
    for name in ("enc", "dec", "linv", "sinv"):
        tabs = []
        for j in range(n_chunks):
            # S is not linear (S(0) != 0): substitute the chunk alone, then place it.
            shift = np.uint64(64 - chunk_bits * (j + 1))
            if name in ("enc", "dec"):
                box = SBOX if name == "enc" else SBOX_INV
                sub = (_substitute(values, box) & mask) << shift
                tabs.append(_linear(sub) if name == "enc" else _linear_inv(sub))
            elif name == "linv":
                tabs.append(_linear_inv(values << shift))
            else:
                tabs.append((_substitute(values, SBOX_INV) & mask) << shift)
        out[name] = np.stack(tabs)
    return out


@cache
def _scalar_tables() -> dict[str, list[list[int]]]:
    return {k: [[int(v) for v in row] for row in t] for k, t in _tables(8).items()}


# Column of the uint16 view of a uint64 that holds row r (row 0 is the top 16 bits).
_ROW_COLUMN = [3 - r for r in range(4)] if sys.byteorder == "little" else list(range(4))


def _apply(tables: np.ndarray, x: U64) -> U64:
    """XOR of the four row tables applied to each block of ``x``."""
    view = x.view(np.uint16).reshape(-1, 4)
    out = tables[0].take(view[:, _ROW_COLUMN[0]])
    for r in range(1, 4):
        out ^= tables[r].take(view[:, _ROW_COLUMN[r]])
    return out


try:  # numba comes with the hygie[tracing] extra; numpy alone is enough otherwise
    import numba
except ImportError:  # pragma: no cover - exercised only without the extra
    numba = None


def _lookup8(t: np.ndarray, x: np.uint64) -> np.uint64:
    """XOR of the eight byte tables applied to the eight bytes of ``x`` (byte 0 on top)."""
    m = np.uint64(0xFF)
    return (t[0, x >> np.uint64(56)] ^ t[1, (x >> np.uint64(48)) & m]
            ^ t[2, (x >> np.uint64(40)) & m] ^ t[3, (x >> np.uint64(32)) & m]
            ^ t[4, (x >> np.uint64(24)) & m] ^ t[5, (x >> np.uint64(16)) & m]
            ^ t[6, (x >> np.uint64(8)) & m] ^ t[7, x & m])


def _encrypt_loop(enc: np.ndarray, lrk: np.ndarray, blocks: np.ndarray,
                  out: np.ndarray) -> None:
    for n in range(blocks.shape[0]):
        x = blocks[n]
        for r in range(ROUNDS):
            x = _lookup8(enc, x) ^ lrk[r]
        out[n] = x


def _decrypt_loop(linv: np.ndarray, dec: np.ndarray, sinv: np.ndarray, rk: np.ndarray,
                  blocks: np.ndarray, out: np.ndarray) -> None:
    for n in range(blocks.shape[0]):
        w = _lookup8(linv, blocks[n]) ^ rk[ROUNDS - 1]
        for r in range(ROUNDS - 2, -1, -1):
            w = _lookup8(dec, w) ^ rk[r]
        out[n] = _lookup8(sinv, w)


if numba is not None:
    _lookup8 = numba.njit(cache=True, inline="always")(_lookup8)
    _encrypt_compiled = numba.njit(cache=True, nogil=True)(_encrypt_loop)
    _decrypt_compiled = numba.njit(cache=True, nogil=True)(_decrypt_loop)


def compiled() -> bool:
    """Whether the compiled loops (numba) are used; otherwise numpy does the batches."""
    return numba is not None


class Skinny64192:
    """SKINNY-64-192 under one tweakey; round keys are derived once, here."""

    def __init__(self, key: bytes) -> None:
        self.key = bytes(key)
        rk = round_keys(self.key)
        self._rk = rk
        self._rk_np = np.array(rk, dtype=np.uint64)
        self._lrk_np = _linear(self._rk_np.copy())
        self._lrk = [int(v) for v in self._lrk_np]

    # --- batches -------------------------------------------------------------------
    def encrypt_blocks(self, blocks: U64) -> U64:
        """Encrypt an array of 64-bit blocks, shape (n_blocks,)."""
        x = np.ascontiguousarray(blocks, dtype=np.uint64)
        if numba is not None:  # byte-wise tables: 16 KiB, they stay in the L1 cache
            out = np.empty_like(x)
            _encrypt_compiled(_tables(8)["enc"], self._lrk_np, x, out)
            return out
        return self.encrypt_blocks_numpy(x)

    def encrypt_blocks_numpy(self, blocks: U64) -> U64:
        """The same, one numpy operation per table and round over the whole batch."""
        t = _tables(16)["enc"]
        x = np.ascontiguousarray(blocks, dtype=np.uint64)
        for r in range(ROUNDS):
            x = _apply(t, x)
            x ^= self._lrk_np[r]
        return x

    def decrypt_blocks(self, blocks: U64) -> U64:
        """Decrypt an array of 64-bit blocks, shape (n_blocks,)."""
        x = np.ascontiguousarray(blocks, dtype=np.uint64)
        if numba is not None:
            tabs = _tables(8)
            out = np.empty_like(x)
            _decrypt_compiled(tabs["linv"], tabs["dec"], tabs["sinv"], self._rk_np, x, out)
            return out
        return self.decrypt_blocks_numpy(x)

    def decrypt_blocks_numpy(self, blocks: U64) -> U64:
        """The same, one numpy operation per table and round over the whole batch."""
        tabs = _tables(16)
        w = _apply(tabs["linv"], np.ascontiguousarray(blocks, dtype=np.uint64))
        w ^= self._rk_np[ROUNDS - 1]
        for r in range(ROUNDS - 2, -1, -1):
            w = _apply(tabs["dec"], w)
            w ^= self._rk_np[r]
        return _apply(tabs["sinv"], w)

    # --- single blocks (pure Python, byte-wise tables: no numpy call overhead) -------
    def encrypt_block(self, block: int) -> int:
        t = _scalar_tables()["enc"]
        x = block
        for lrk in self._lrk:
            x = (t[0][x >> 56] ^ t[1][(x >> 48) & 255] ^ t[2][(x >> 40) & 255]
                 ^ t[3][(x >> 32) & 255] ^ t[4][(x >> 24) & 255] ^ t[5][(x >> 16) & 255]
                 ^ t[6][(x >> 8) & 255] ^ t[7][x & 255] ^ lrk)
        return x

    def decrypt_block(self, block: int) -> int:
        if numba is not None:
            return int(self.decrypt_blocks(np.array([block], dtype=np.uint64))[0])
        return self.decrypt_block_python(block)

    def decrypt_block_python(self, block: int) -> int:
        """One block in plain Python with byte-wise tables (no numba, no numpy call)."""
        tabs = _scalar_tables()
        li, d, si = tabs["linv"], tabs["dec"], tabs["sinv"]
        x = block
        w = (li[0][x >> 56] ^ li[1][(x >> 48) & 255] ^ li[2][(x >> 40) & 255]
             ^ li[3][(x >> 32) & 255] ^ li[4][(x >> 24) & 255] ^ li[5][(x >> 16) & 255]
             ^ li[6][(x >> 8) & 255] ^ li[7][x & 255] ^ self._rk[ROUNDS - 1])
        for r in range(ROUNDS - 2, -1, -1):
            w = (d[0][w >> 56] ^ d[1][(w >> 48) & 255] ^ d[2][(w >> 40) & 255]
                 ^ d[3][(w >> 32) & 255] ^ d[4][(w >> 24) & 255] ^ d[5][(w >> 16) & 255]
                 ^ d[6][(w >> 8) & 255] ^ d[7][w & 255] ^ self._rk[r])
        return (si[0][w >> 56] ^ si[1][(w >> 48) & 255] ^ si[2][(w >> 40) & 255]
                ^ si[3][(w >> 32) & 255] ^ si[4][(w >> 24) & 255] ^ si[5][(w >> 16) & 255]
                ^ si[6][(w >> 8) & 255] ^ si[7][w & 255])

    def encrypt(self, block: bytes) -> bytes:
        """Encrypt one 8-byte block."""
        return self.encrypt_block(int.from_bytes(_check_block(block), "big")).to_bytes(8, "big")

    def decrypt(self, block: bytes) -> bytes:
        """Decrypt one 8-byte block."""
        return self.decrypt_block(int.from_bytes(_check_block(block), "big")).to_bytes(8, "big")


def _check_block(block: bytes) -> bytes:
    if len(block) != BLOCK_BYTES:
        raise ValueError(f"SKINNY-64 blocks are {BLOCK_BYTES} bytes, not {len(block)}")
    return block


def reference_encrypt(key: bytes, block: bytes) -> bytes:
    """Cell-by-cell encryption following the paper's round description literally.

    Slow; it exists so that the table-driven code above is checked against a second,
    independent reading of the specification (and both against the paper's vector).
    """
    state = _nibbles(int.from_bytes(_check_block(block), "big"))
    for rk in round_keys(key):
        state = [SBOX[c] for c in state]
        k = _nibbles(rk)
        state = [c ^ k[i] for i, c in enumerate(state)]
        rows = [state[4 * r: 4 * r + 4] for r in range(4)]
        rows = [row[-r:] + row[:-r] if r else row for r, row in enumerate(rows)]
        mixed = [[0] * 4 for _ in range(4)]
        for col in range(4):
            a, b, c, d = (rows[r][col] for r in range(4))
            mixed[0][col], mixed[1][col] = a ^ c ^ d, a
            mixed[2][col], mixed[3][col] = b ^ c, a ^ c
        state = [c for row in mixed for c in row]
    return _pack(state).to_bytes(8, "big")
