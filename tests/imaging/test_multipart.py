"""multipart/related parsing, whole and chunk by chunk, and writing."""

from __future__ import annotations

import random

import pytest

from hygie.imaging.errors import InvalidRequest, UnsupportedMediaType
from hygie.imaging.multipart import (
    MultipartStream,
    iter_blocks,
    iter_multipart,
    parse_multipart,
)

CTYPE = 'multipart/related; type="application/dicom"; boundary=xyz'


def _body(contents: list[bytes]) -> bytes:
    return b"".join(iter_multipart([("application/dicom", c) for c in contents], "xyz"))


@pytest.mark.parametrize("seed", range(5))
def test_any_chunking_gives_the_same_parts(seed: int) -> None:
    rng = random.Random(seed)
    contents = [rng.randbytes(rng.randrange(0, 5000)) + b"\r\n--xy" for _ in range(6)]
    contents.append(b"")
    body = b"preamble\r\n" + _body(contents)
    part_type, whole = parse_multipart(body, CTYPE)
    assert part_type == "application/dicom"
    assert [p.content for p in whole] == contents
    assert all(p.content_type == "application/dicom" for p in whole)
    stream = MultipartStream("xyz")
    got = []
    position = 0
    while position < len(body):
        step = rng.choice([1, 2, 7, 64, 1000, 70000])
        got += stream.feed(body[position:position + step])
        position += step
    stream.close()
    assert [p.content for p in got] == contents


def test_bad_bodies() -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_multipart(b"", "application/dicom")
    with pytest.raises(InvalidRequest):
        parse_multipart(b"--xyz\r\n\r\nabc", CTYPE)  # no closing delimiter
    with pytest.raises(InvalidRequest):
        parse_multipart(b"nothing here", CTYPE)
    with pytest.raises(InvalidRequest):
        parse_multipart(b"--xyz\r\nbad header\r\n\r\nabc\r\n--xyz--", CTYPE)
    with pytest.raises(InvalidRequest):
        parse_multipart(b"", "multipart/related")


def test_blocks_keep_the_bytes() -> None:
    chunks = [bytes([i]) * 1000 for i in range(50)]
    blocks = list(iter_blocks(chunks, size=4096))
    assert b"".join(blocks) == b"".join(chunks)
    assert len(blocks) == 10  # five chunks reach 4096 bytes
