"""A bulk export's files at rest: sealed in chunks when the store seals bodies.

An export copies bodies the store keeps sealed into files that stay on disk until
they expire; with a ``BodyCodec`` those files are sealed too. A whole file is not one
sealed message: a download streams, so it is cut in chunks of ``CHUNK`` bytes, each
written as its length (4 bytes, big-endian) then ``codec.seal(chunk, context)``. The
context names the file, the chunk's place and whether it is the last one, so a chunk
moved, dropped, or a file cut after a whole chunk does not open. A sealed file's name
ends with ``SEALED_SUFFIX``; without a codec files are plain NDJSON.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from hygie.store.access import BodyCodec

__all__ = ["CHUNK", "SEALED_SUFFIX", "ExportFileError", "SealedWriter", "open_file", "read_chunks"]

#: Plain bytes per sealed chunk.
CHUNK = 1 << 20
#: Added to the name of a sealed file on disk (the download keeps the plain name).
SEALED_SUFFIX = ".sealed"

_LENGTH = struct.Struct(">I")


class ExportFileError(ValueError):
    """A sealed export file that does not open whole (altered, cut, or another key)."""


def _context(name: str, index: int, last: bool) -> str:
    return f"bulk-export {name} {index} {'last' if last else 'more'}"


class SealedWriter:
    """Writes one export file as sealed chunks; ``close`` seals the last one."""

    def __init__(self, out: IO[bytes], codec: BodyCodec, name: str) -> None:
        self.out = out
        self.codec = codec
        self.name = name
        self._buffer = bytearray()
        self._index = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) > CHUNK:  # the last chunk may be full, never empty but alone
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]

    def _emit(self, chunk: bytes, last: bool) -> None:
        sealed = self.codec.seal(chunk, _context(self.name, self._index, last))
        self.out.write(_LENGTH.pack(len(sealed)) + sealed)
        self._index += 1

    def close(self) -> None:
        if not self.out.closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self.out.close()


def read_chunks(source: BinaryIO, codec: BodyCodec, name: str) -> Iterator[bytes]:
    """The plain chunks of a sealed file, in order; ``ExportFileError`` if it is not whole."""
    size_of_file = os.fstat(source.fileno()).st_size
    index = 0
    while True:
        head = source.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            raise ExportFileError(f"export file {name} is cut short")
        (size,) = _LENGTH.unpack(head)
        sealed = source.read(size)
        if len(sealed) < size:
            raise ExportFileError(f"export file {name} is cut short")
        last = source.tell() == size_of_file
        try:
            yield codec.open(sealed, _context(name, index, last))
        except ValueError as exc:
            raise ExportFileError(f"export file {name} does not open: {exc}") from None
        if last:
            return
        index += 1


def open_file(path: Path, codec: BodyCodec | None, name: str) -> Iterator[bytes]:
    """A file's plain content in chunks, sealed or not; the first chunk is opened at once.

    Opening the first chunk before the caller starts answering means that a file that
    does not open at all is refused with a proper error, not a response cut short.
    """
    if not path.name.endswith(SEALED_SUFFIX):
        return _plain(path)
    if codec is None:
        raise ExportFileError(f"export file {name} is sealed and no key is configured")
    source = path.open("rb")
    chunks = read_chunks(source, codec, name)
    try:
        first = next(chunks)
    except BaseException:
        source.close()
        raise
    return _then_close(first, chunks, source)


def _plain(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _then_close(first: bytes, rest: Iterator[bytes], source: BinaryIO) -> Iterator[bytes]:
    try:
        yield first
        yield from rest
    finally:
        source.close()
