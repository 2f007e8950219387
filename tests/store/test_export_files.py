"""Sealed export files: chunks that open only whole, in order, and to the end."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hygie.store import export_files
from hygie.store.export_files import SEALED_SUFFIX, ExportFileError, SealedWriter, open_file


class Codec:
    """AES-GCM with the context as authenticated data, as the platform's vault does."""

    def __init__(self) -> None:
        self.aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(self, body: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.aead.encrypt(nonce, body, context.encode())

    def open(self, stored: bytes, context: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self.aead.decrypt(stored[:12], stored[12:], context.encode())
        except InvalidTag:
            raise ValueError("does not open") from None


def _write(path: Path, codec: Codec, lines: list[bytes]) -> None:
    writer = SealedWriter(path.open("wb"), codec, "job/Patient.ndjson")
    for line in lines:
        writer.write(line + b"\n")
    writer.close()


def _frames(path: Path) -> list[bytes]:
    data, frames = path.read_bytes(), []
    while data:
        (size,) = struct.unpack(">I", data[:4])
        frames.append(data[: 4 + size])
        data = data[4 + size :]
    return frames


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_files, "CHUNK", 64)


def test_round_trip_in_several_chunks(tmp_path: Path, small_chunks: None) -> None:
    codec = Codec()
    lines = [b'{"resourceType":"Patient","id":"p%d","name":[{"family":"Lumiere"}]}' % i
             for i in range(20)]
    path = tmp_path / ("Patient.ndjson" + SEALED_SUFFIX)
    _write(path, codec, lines)
    assert b"Lumiere" not in path.read_bytes()
    assert len(_frames(path)) > 10
    content = b"".join(open_file(path, codec, "job/Patient.ndjson"))
    assert content == b"".join(line + b"\n" for line in lines)


def test_an_empty_file_is_one_sealed_chunk(tmp_path: Path) -> None:
    codec = Codec()
    path = tmp_path / ("Empty.ndjson" + SEALED_SUFFIX)
    _write(path, codec, [])
    assert list(open_file(path, codec, "job/Patient.ndjson")) == [b""]


@pytest.mark.parametrize("damage", ["cut", "dropped", "swapped", "flipped", "renamed"])
def test_a_damaged_file_does_not_open(tmp_path: Path, small_chunks: None, damage: str) -> None:
    codec = Codec()
    path = tmp_path / ("Patient.ndjson" + SEALED_SUFFIX)
    _write(path, codec, [b'{"resourceType":"Patient","id":"p%d"}' % i for i in range(20)])
    frames = _frames(path)
    name = "job/Patient.ndjson"
    if damage == "cut":  # whole chunks missing at the end
        frames = frames[:-2]
    elif damage == "dropped":
        del frames[1]
    elif damage == "swapped":
        frames[0], frames[1] = frames[1], frames[0]
    elif damage == "flipped":
        frames[2] = frames[2][:-1] + bytes([frames[2][-1] ^ 1])
    else:  # another job's file under this name
        name = "other/Patient.ndjson"
    path.write_bytes(b"".join(frames))
    with pytest.raises(ExportFileError):
        b"".join(open_file(path, codec, name))


def test_a_sealed_file_needs_a_key_and_a_plain_one_reads_as_is(tmp_path: Path) -> None:
    sealed = tmp_path / ("Patient.ndjson" + SEALED_SUFFIX)
    _write(sealed, Codec(), [b"{}"])
    with pytest.raises(ExportFileError, match="no key"):
        open_file(sealed, None, "job/Patient.ndjson")
    plain = tmp_path / "Patient.ndjson"
    plain.write_bytes(b"{}\n")
    assert b"".join(open_file(plain, None, "job/Patient.ndjson")) == b"{}\n"
