"""SKINNY-64-192 against the paper's vector and against a literal reading of the spec."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hygie.tracing.skinny import Skinny64192, reference_encrypt


def test_paper_vector_single_block(vectors: dict[str, Any]) -> None:
    v = vectors["skinny_64_192"]
    key, pt, ct = (bytes.fromhex(v[k]) for k in ("key", "plaintext", "ciphertext"))
    cipher = Skinny64192(key)
    assert cipher.encrypt(pt) == ct
    assert cipher.decrypt(ct) == pt
    assert reference_encrypt(key, pt) == ct


def test_paper_vector_in_a_batch(vectors: dict[str, Any]) -> None:
    v = vectors["skinny_64_192"]
    cipher = Skinny64192(bytes.fromhex(v["key"]))
    pt = int(v["plaintext"], 16)
    blocks = np.array([pt, 0, pt, 2**64 - 1], dtype=np.uint64)
    out = cipher.encrypt_blocks(blocks)
    assert int(out[0]) == int(out[2]) == int(v["ciphertext"], 16)
    assert (cipher.decrypt_blocks(out) == blocks).all()


def test_table_code_matches_the_literal_rounds() -> None:
    rng = np.random.default_rng(3)
    key = rng.bytes(24)
    cipher = Skinny64192(key)
    blocks = rng.integers(0, 2**63, 50, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    batch = cipher.encrypt_blocks(blocks)
    for b, c in zip(blocks.tolist(), batch.tolist(), strict=True):
        expected = reference_encrypt(key, int(b).to_bytes(8, "big"))
        assert int(c).to_bytes(8, "big") == expected
        assert cipher.encrypt_block(int(b)) == int(c)
        assert cipher.decrypt_block(int(c)) == int(b)


def test_batch_round_trip_and_key_sensitivity() -> None:
    rng = np.random.default_rng(4)
    blocks = rng.integers(0, 2**63, 10_000, dtype=np.uint64)
    a, b = Skinny64192(bytes(24)), Skinny64192(bytes(23) + b"\x01")
    assert (a.decrypt_blocks(a.encrypt_blocks(blocks)) == blocks).all()
    # A one-bit change of the key changes (almost) every ciphertext.
    assert (a.encrypt_blocks(blocks) != b.encrypt_blocks(blocks)).mean() > 0.999


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="24-byte"):
        Skinny64192(bytes(16))
    with pytest.raises(ValueError, match="8 bytes"):
        Skinny64192(bytes(24)).encrypt(b"short")


def test_numpy_and_compiled_paths_agree(vectors: dict[str, Any]) -> None:
    v = vectors["skinny_64_192"]
    cipher = Skinny64192(bytes.fromhex(v["key"]))
    rng = np.random.default_rng(9)
    blocks = rng.integers(0, 2**63, 3000, dtype=np.uint64)
    blocks[0] = int(v["plaintext"], 16)
    enc = cipher.encrypt_blocks_numpy(blocks)
    assert int(enc[0]) == int(v["ciphertext"], 16)
    assert (cipher.encrypt_blocks(blocks) == enc).all()
    assert (cipher.decrypt_blocks_numpy(enc) == blocks).all()
    assert (cipher.decrypt_blocks(enc) == blocks).all()
    assert cipher.decrypt_block_python(int(enc[5])) == int(blocks[5])
