"""The batched HELLO MACs give exactly what ``hmac.digest`` gives."""

from __future__ import annotations

import hmac

import numpy as np
import pytest

from hygie.tracing import macs
from hygie.tracing.hello import _macs_with_hashlib


@pytest.mark.skipif(not macs.available(), reason="numba is not installed")
def test_batched_macs_equal_hmac_digest() -> None:
    rng = np.random.default_rng(11)
    keys = [rng.bytes(32) for _ in range(6)] + [b"k", rng.bytes(64)]
    msgs = rng.integers(0, 256, (500, 12), dtype=np.uint8)
    key_of = rng.integers(-1, len(keys), 500)
    got = macs.hello_macs(keys, key_of, msgs)
    for n in range(500):
        if key_of[n] < 0:
            assert not got[n].any()
        else:
            want = hmac.digest(keys[key_of[n]], msgs[n].tobytes(), "sha256")[:5]
            assert got[n].tobytes() == want
    assert (_macs_with_hashlib(keys, key_of, msgs) == got).all()


def test_midstates_refuse_long_keys() -> None:
    if not macs.available():
        pytest.skip("numba is not installed")
    with pytest.raises(ValueError, match="longer"):
        macs.midstates([bytes(65)])
