"""Encryption at rest: resource bodies sealed with AES-256-GCM under wrapped data keys.

Envelope encryption, as KMS products and NIST SP 800-57 describe it:

* a **master key** (key-encryption key) never touches the data; it only wraps and
  unwraps data keys. ``MasterKey`` is the interface a KMS implements (two calls:
  ``wrap``, ``unwrap``); ``LocalMasterKey`` is the default, 32 random bytes from
  ``HYGIE_MASTER_KEY`` (base64) or from ``<var_dir>/keys/master.key`` (mode 0600,
  created on first use). Keep that file out of the database backups: a backup is only
  readable with it.
* **data keys** (AES-256) are rows of ``data_key``, stored wrapped by the master key.
  One is active and seals new writes; the others still open what they sealed. Before
  the first rotation, key 0 is derived from the master key and stored nowhere.
* a sealed body is ``MAGIC (4 bytes) | data key id (4, big-endian) | nonce (12) |
  ciphertext + GCM tag (16)``. The authenticated data is the row's ``Type/id/version``,
  so a body copied onto another row, or an old version replayed as the current one,
  fails to open instead of being served. JSON bodies start with ``{``, never with the
  magic, so rows written before encryption was turned on still read as they are.

``hygie keys rotate`` adds a data key, waits until every process has picked it up
(they re-read the active key every ``REFRESH_S`` seconds), then re-seals every stored
body under it in small transactions while the platform keeps serving: a row is only
rewritten if it still holds the bytes that were read, so a concurrent update is never
overwritten. Rows are found by their key id, so the pass repeats until none is left.

Exception tree::

    ValueError
     +-- SealError            a body that does not open (wrong key, altered bytes, wrong row)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from hygie.config import Settings
from hygie.platform import Platform, write_transaction
from hygie.security.tables import data_key
from hygie.store.access import PARTS
from hygie.store.schema import resource as resource_tbl
from hygie.store.schema import resource_version

#: First bytes of every sealed body (a NUL never starts a JSON document).
MAGIC = b"\x00HYE"
_HEADER = struct.Struct(">4sI12s")
#: Seconds between two reads of the active data key by a running process.
REFRESH_S = 2.0
#: Authenticated data of a wrapped data key.
_WRAP_AAD = b"hygie data key"


class SealError(ValueError):
    """Raised when sealed bytes do not open: unknown key, altered bytes, or another row's."""


# --- master keys ----------------------------------------------------------------------------


class MasterKey(ABC):
    """The key-encryption key: wraps and unwraps data keys (a KMS implements these two)."""

    #: A short name of the key, stored next to each data key it wrapped.
    key_id: str

    @abstractmethod
    def wrap(self, key: bytes) -> bytes:
        """Encrypt a data key."""

    @abstractmethod
    def unwrap(self, wrapped: bytes) -> bytes:
        """Decrypt a data key wrapped by ``wrap``; raises ``SealError`` if it does not open."""

    @abstractmethod
    def derive(self, label: str) -> bytes:
        """A 32-byte key for one purpose (the audit chain's MAC), bound to this key."""


class LocalMasterKey(MasterKey):
    """A master key held by the process itself (file or environment), AES-256-GCM wrap."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("a master key is 32 bytes (AES-256)")
        self._aead = AESGCM(secret)
        self._secret = secret
        self.key_id = "local:" + hashlib.sha256(b"hygie master key id" + secret).hexdigest()[:16]

    def wrap(self, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, key, _WRAP_AAD)

    def derive(self, label: str) -> bytes:
        return hmac.new(self._secret, label.encode(), hashlib.sha256).digest()

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], _WRAP_AAD)
        except InvalidTag:
            raise SealError("the data key does not open with this master key") from None


def master_key_path(settings: Settings) -> Path:
    return settings.var_dir / "keys" / "master.key"


def load_master_key(settings: Settings) -> LocalMasterKey:
    """The master key: ``HYGIE_MASTER_KEY`` (base64 of 32 bytes), else the key file.

    The file is created (32 random bytes, mode 0600) when neither exists.
    """
    from_env = os.environ.get("HYGIE_MASTER_KEY")
    if from_env:
        try:
            secret = base64.b64decode(from_env, validate=True)
        except ValueError:
            raise ValueError("HYGIE_MASTER_KEY must be the base64 of 32 bytes") from None
        return LocalMasterKey(secret)
    path = master_key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(32))
                fh.flush()
                os.fsync(fh.fileno())
    return LocalMasterKey(path.read_bytes())


# --- data keys ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataKey:
    id: int
    aead: AESGCM
    active: bool


def create_data_key(engine: Engine, master: MasterKey) -> int:
    """Add a data key and make it the active one; the others stay, to open old rows."""
    secret = AESGCM.generate_key(bit_length=256)
    with write_transaction(engine) as conn:
        conn.execute(update(data_key).where(data_key.c.state == "active").values(state="retired"))
        return int(conn.execute(insert(data_key).returning(data_key.c.id).values(
            wrapped=master.wrap(secret), master_key_id=master.key_id,
            created=time.time_ns() // 1000, state="active",
        )).scalar_one())


def rewrap_data_keys(engine: Engine, old: MasterKey, new: MasterKey) -> int:
    """Wrap every data key under a new master key (master key rotation); returns how many."""
    with write_transaction(engine) as conn:
        rows = conn.execute(select(data_key.c.id, data_key.c.wrapped)).all()
        for row in rows:
            conn.execute(update(data_key).where(data_key.c.id == row.id).values(
                wrapped=new.wrap(old.unwrap(bytes(row.wrapped))), master_key_id=new.key_id))
    return len(rows)


class BodyVault:
    """The store's body codec (``hygie.store.access.BodyCodec``) on AES-256-GCM.

    Data keys are unwrapped once and kept in memory; an unknown key id (a key made by
    another process) makes the table be read again. The active key is re-read every
    ``refresh_s`` seconds, so that a rotation reaches every process.
    """

    def __init__(self, engine: Engine, master: MasterKey, *, refresh_s: float = REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.master = master
        self.refresh_s = refresh_s
        self.clock = clock
        self._keys: dict[int, DataKey] = {}
        self._active: DataKey | None = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def _load(self) -> None:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(data_key).order_by(data_key.c.id)).all()
        except SQLAlchemyError:
            rows = []  # no key table yet (a database being migrated): key 0 only
        keys = dict(self._keys)
        if 0 not in keys:
            keys[0] = DataKey(0, AESGCM(self.master.derive("hygie data key 0")), False)
        active = keys[0]
        for row in rows:
            known = keys.get(row.id)
            aead = known.aead if known else AESGCM(self.master.unwrap(bytes(row.wrapped)))
            keys[row.id] = DataKey(row.id, aead, row.state == "active")
            if row.state == "active":
                active = keys[row.id]
        self._keys = keys
        self._active = active
        self._loaded_at = self.clock()

    def active_key(self) -> DataKey:
        """The data key that seals new writes.

        Until the first rotation it is key 0, derived from the master key and stored
        nowhere, so that sealing never has to write (it runs inside the store's write
        transaction, where a second writer would wait on the first).
        """
        if self._active is None or self.clock() - self._loaded_at > self.refresh_s:
            with self._lock:
                self._load()
        assert self._active is not None
        return self._active

    def _key(self, key_id: int) -> DataKey:
        key = self._keys.get(key_id)
        if key is None:
            with self._lock:
                self._load()
            key = self._keys.get(key_id)
            if key is None:
                raise SealError(f"no data key {key_id}")
        return key

    def seal(self, body: bytes, context: str) -> bytes:
        key = self.active_key()
        nonce = os.urandom(12)
        return _HEADER.pack(MAGIC, key.id, nonce) + key.aead.encrypt(nonce, body, context.encode())

    def open(self, stored: bytes, context: str) -> bytes:
        if not stored.startswith(MAGIC):
            return stored  # written before encryption was turned on
        if len(stored) < _HEADER.size + 16:
            raise SealError(f"sealed body of {context} is truncated")
        _magic, key_id, nonce = _HEADER.unpack_from(stored)
        try:
            return self._key(key_id).aead.decrypt(nonce, stored[_HEADER.size:], context.encode())
        except InvalidTag:
            raise SealError(f"the sealed body of {context} does not open "
                            "(altered, or copied from another row)") from None


def vault_for(platform: Platform) -> BodyVault | None:
    """The vault that seals what a service keeps at rest beside the store (files, journals).

    The installed security layer's when there is one; else, with ``encrypt_at_rest`` on
    (a command or a process that did not install the layer), one on the same master key
    and data keys, so that what it seals opens everywhere; None with encryption off.
    """
    vault: BodyVault | None = platform.parts.get(PARTS["codec"])
    if vault is None and platform.settings.encrypt_at_rest:
        master = platform.parts.get("security.master_key") or load_master_key(platform.settings)
        vault = BodyVault(platform.engine, master)
    return vault


def key_id_of(stored: bytes | None) -> int | None:
    """The data key id a stored body was sealed with (None: in clear, or no body)."""
    if stored is None or bytes(stored[:4]) != MAGIC:
        return None
    return int(_HEADER.unpack_from(bytes(stored[:_HEADER.size]))[1])


# --- re-sealing -----------------------------------------------------------------------------


@dataclass
class ResealReport:
    """What a re-sealing pass did."""

    examined: int = 0
    resealed: int = 0
    skipped_concurrent: int = 0
    remaining: int = 0


def _batches(engine: Engine, table_name: str, batch: int) -> Iterator[list]:  # type: ignore[type-arg]
    if table_name == "resource":
        t = resource_tbl
        columns = (t.c.pk, t.c.res_type, t.c.res_id, t.c.version, t.c.body)
        last: tuple = (0,)  # type: ignore[type-arg]
        while True:
            with engine.connect() as conn:
                rows = conn.execute(select(*columns).where(t.c.pk > last[0], t.c.body.is_not(None))
                                    .order_by(t.c.pk).limit(batch)).all()
            if not rows:
                return
            yield rows
            last = (rows[-1].pk,)
    else:
        v = resource_version
        columns = (v.c.res_type, v.c.res_id, v.c.version, v.c.body)
        after: tuple[str, str, int] = ("", "", 0)
        from sqlalchemy import tuple_

        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(*columns)
                    .where(tuple_(v.c.res_type, v.c.res_id, v.c.version) > tuple_(*after),
                           v.c.body.is_not(None))
                    .order_by(v.c.res_type, v.c.res_id, v.c.version).limit(batch)).all()
            if not rows:
                return
            yield rows
            last_row = rows[-1]
            after = (last_row.res_type, last_row.res_id, last_row.version)


def reseal_all(engine: Engine, vault: BodyVault, *, batch: int = 500,
               progress: Callable[[int], None] | None = None) -> ResealReport:
    """Re-seal every body not sealed by the active key (bodies in clear included).

    Each batch commits on its own, and a row is rewritten only if its body is still the
    one read (compare-and-set), so writers keep going and never lose an update.
    """
    report = ResealReport()
    active = vault.active_key()
    for table_name in ("resource", "resource_version"):
        for rows in _batches(engine, table_name, batch):
            changes = []
            for row in rows:
                report.examined += 1
                old = bytes(row.body)
                if key_id_of(old) == active.id:
                    continue
                context = f"{row.res_type}/{row.res_id}/{row.version}"
                changes.append((row, old, vault.seal(vault.open(old, context), context)))
            if changes:
                with write_transaction(engine) as conn:
                    for row, old, new in changes:
                        if table_name == "resource":
                            query = update(resource_tbl).where(resource_tbl.c.pk == row.pk,
                                                               resource_tbl.c.body == old)
                        else:
                            v = resource_version
                            query = update(v).where(v.c.res_type == row.res_type,
                                                    v.c.res_id == row.res_id,
                                                    v.c.version == row.version, v.c.body == old)
                        if conn.execute(query.values(body=new)).rowcount == 1:
                            report.resealed += 1
                        else:
                            report.skipped_concurrent += 1
            if progress is not None:
                progress(len(rows))
    report.remaining = count_not_sealed_by(engine, active.id)
    return report


def count_not_sealed_by(engine: Engine, key_id: int) -> int:
    """How many stored bodies (current and versions) are not sealed by ``key_id``."""
    prefix = _HEADER.pack(MAGIC, key_id, b"\x00" * 12)[:8]
    total = 0
    with engine.connect() as conn:
        for table in (resource_tbl, resource_version):
            total += conn.execute(
                select(func.count()).select_from(table).where(
                    table.c.body.is_not(None), func.substr(table.c.body, 1, 8) != prefix)
            ).scalar_one()
    return int(total)


def rotate(engine: Engine, vault: BodyVault, *, settle_s: float | None = None,
           progress: Callable[[int], None] | None = None) -> tuple[int, ResealReport]:
    """Make a new data key active and re-seal everything under it, platform running.

    Waits ``settle_s`` (default: twice the refresh interval) between the two, so that
    every process seals with the new key before the pass starts; then repeats the pass
    until no body is left under another key (a slow process may still have written one).
    """
    new_id = create_data_key(engine, vault.master)
    time.sleep(2 * vault.refresh_s if settle_s is None else settle_s)
    vault._load()
    report = reseal_all(engine, vault, progress=progress)
    for _ in range(5):
        if report.remaining == 0:
            break
        time.sleep(vault.refresh_s)
        again = reseal_all(engine, vault, progress=progress)
        report.examined += again.examined
        report.resealed += again.resealed
        report.skipped_concurrent += again.skipped_concurrent
        report.remaining = again.remaining
    return new_id, report
