"""Where DICOM Part 10 files are kept: the one seam between the archive and the disk.

Everything the imaging service writes or reads as a file goes through an
``InstanceFiles``: ``write`` (durable when it returns), ``read`` and ``delete``, by
key. ``LocalInstanceFiles`` keeps files under ``<var_dir>/imaging/files``;
``SealedInstanceFiles`` wraps it to encrypt at rest like the rest of the store (the
platform's ``encrypt_at_rest``): each file is sealed by the security package's vault
(AES-256-GCM under a wrapped data key) with its key as authenticated data, so a file
copied under another name does not open. Nothing else in the service touches the disk.

Writes go to a temporary name, are flushed with ``fsync`` and then renamed, so a file
under its final name is always complete; the archive records the key in the index
only after ``write`` returned (durable before acknowledged).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Protocol

from hygie.store.access import BodyCodec

__all__ = ["InstanceFiles", "LocalInstanceFiles", "SealedInstanceFiles"]


class InstanceFiles(Protocol):
    """Storage of DICOM files by key (a relative path made of safe characters)."""

    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing it), durably once this returns."""

    def read(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``FileNotFoundError`` when absent."""

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error when absent)."""


class LocalInstanceFiles:
    """Plain files in a folder, written atomically and synced."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self._made: set[Path] = set()

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"unsafe file key {key!r}")
        return self.root / key

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        folder = path.parent
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        tmp = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class SealedInstanceFiles:
    """Files sealed on write and opened on read; plain files written before still read."""

    def __init__(self, inner: InstanceFiles, codec: BodyCodec) -> None:
        self.inner = inner
        self.codec = codec

    @staticmethod
    def context(key: str) -> str:
        return f"imaging/{key}"

    def write(self, key: str, data: bytes) -> None:
        self.inner.write(key, self.codec.seal(data, self.context(key)))

    def read(self, key: str) -> bytes:
        return self.codec.open(self.inner.read(key), self.context(key))

    def delete(self, key: str) -> None:
        self.inner.delete(key)
