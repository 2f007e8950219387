"""Online backups and restores of the whole database, SQLite and PostgreSQL alike.

``backup`` reads every table inside one read-only snapshot (``REPEATABLE READ`` on
PostgreSQL; one read transaction on SQLite, where WAL gives readers a stable view while
writers go on), so the copy is consistent while the platform keeps serving. Tools such
as ``pg_dump`` or SQLite's backup API serve one engine each; this logical format serves
both, and a backup taken on one engine restores on the other.

The archive is a stream of JSON lines (a manifest, then each table's columns and rows,
then a trailer with the content hash), gzip-compressed and sealed with AES-256-GCM in
1 MiB chunks under a key derived from the master key, each chunk bound to its number
and to whether it is the last (so chunks cannot be dropped, reordered or cut off). The
bodies inside are still sealed by their data keys; the search indexes, which keep some
values in clear, are protected by this outer layer. The master key is not in the backup:
keep it (or the KMS) separately.

The **content hash** is a SHA-256 over every table, parents before children, and every row,
sorted by primary key, in a canonical JSON form. ``restore`` checks that the restored
database has the hash the backup recorded.

Exception tree::

    ValueError
     +-- BackupError     an archive that does not open, or a target that is not empty
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Boolean, Connection, Engine, MetaData, Table, func, insert, select, text

from hygie.security.encryption import MasterKey

MAGIC = b"HYGIEBK1"
CHUNK = 1 << 20
_LEN = struct.Struct(">I")
FORMAT_VERSION = 1


class BackupError(ValueError):
    """Raised when an archive does not open or cannot be restored; says why."""


@dataclass
class BackupReport:
    path: Path
    tables: dict[str, int] = field(default_factory=dict)
    content_hash: str = ""
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


# --- canonical rows and the content hash ---------------------------------------------------


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, bytes | memoryview | bytearray):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value: Any, column: Any) -> Any:
    if isinstance(value, dict) and "$b" in value:
        return base64.b64decode(value["$b"])
    if isinstance(column.type, Boolean) and value is not None:
        return bool(value)
    return value


def _tables(conn: Connection) -> list[Table]:
    meta = MetaData()
    meta.reflect(bind=conn)
    return list(meta.sorted_tables)


def _ordered_rows(conn: Connection, table: Table) -> Iterator[tuple[Any, ...]]:
    keys = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(stream_results=True, yield_per=2000).execute(
        select(*table.columns).order_by(*keys))
    for row in result:
        yield tuple(row)


def _hash_table(digest: Any, name: str, columns: list[str], rows: Iterator[tuple[Any, ...]],
                count: list[int]) -> Iterator[list[Any]]:
    digest.update(orjson.dumps({"table": name, "columns": columns}))
    for row in rows:
        canonical = [_canonical(v) for v in row]
        digest.update(orjson.dumps(canonical))
        count[0] += 1
        yield canonical


def content_hash(engine: Engine) -> str:
    """The content hash of a database (see the module docstring)."""
    digest = hashlib.sha256()
    with _snapshot(engine) as conn:
        for table in _tables(conn):
            for _ in _hash_table(digest, table.name, [c.name for c in table.columns],
                                 _ordered_rows(conn, table), [0]):
                pass
    return digest.hexdigest()


class _snapshot:
    """A read-only connection that sees one consistent state of the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> Connection:
        if self.engine.dialect.name == "postgresql":
            self.conn = self.engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True)
        else:
            self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        # the snapshot starts at the first read of the database
        self.conn.execute(text("SELECT count(*) FROM sqlite_master") if
                          self.engine.dialect.name == "sqlite" else text("SELECT 1"))
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.tx.rollback()
        self.conn.close()


# --- sealed stream -------------------------------------------------------------------------


def _key(master: MasterKey, salt: bytes) -> AESGCM:
    return AESGCM(hmac.new(master.derive("hygie backup"), salt, hashlib.sha256).digest())


class _SealedWriter(io.RawIOBase):
    """A file-like sink that seals what is written in numbered chunks."""

    def __init__(self, out: IO[bytes], master: MasterKey) -> None:
        salt = os.urandom(16)
        out.write(MAGIC + salt)
        self.out, self.aead, self.buffer, self.index = out, _key(master, salt), bytearray(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:
            self._emit(bytes(self.buffer[:CHUNK]), final=False)
            del self.buffer[:CHUNK]
        return len(data)

    def _emit(self, chunk: bytes, final: bool) -> None:
        nonce = os.urandom(12)
        sealed = self.aead.encrypt(nonce, chunk, struct.pack(">Q?", self.index, final))
        self.out.write(_LEN.pack(len(sealed)) + nonce + sealed)
        self.index += 1

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self.buffer), final=True)
            self.buffer.clear()
        super().close()


def _open_chunks(source: IO[bytes], master: MasterKey) -> Iterator[bytes]:
    head = source.read(len(MAGIC) + 16)
    if not head.startswith(MAGIC) or len(head) != len(MAGIC) + 16:
        raise BackupError("this file is not a Hygie backup")
    aead = _key(master, head[len(MAGIC):])
    index = 0
    while True:
        size_bytes = source.read(4)
        if len(size_bytes) < 4:
            raise BackupError("the backup is truncated (its last chunk is missing)")
        (size,) = _LEN.unpack(size_bytes)
        nonce, sealed = source.read(12), source.read(size)
        if len(sealed) != size:
            raise BackupError("the backup is truncated")
        for final in (False, True):
            try:
                chunk = aead.decrypt(nonce, sealed, struct.pack(">Q?", index, final))
            except InvalidTag:
                continue
            break
        else:
            raise BackupError(f"chunk {index} of the backup does not open: wrong master key, "
                              "or the file was altered")
        yield chunk
        index += 1
        if final:
            return


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


# --- backup and restore ----------------------------------------------------------------------


def backup(engine: Engine, path: Path, master: MasterKey,
           progress: Callable[[int], None] | None = None) -> BackupReport:
    """Write a consistent, sealed backup of every table to ``path``."""
    started = time.perf_counter()
    report = BackupReport(path)
    digest = hashlib.sha256()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as raw:
            sealed = _SealedWriter(raw, master)
            with gzip.GzipFile(fileobj=sealed, mode="wb", compresslevel=6) as out, \
                    _snapshot(engine) as conn:
                tables = _tables(conn)
                out.write(orjson.dumps({"format": "hygie-backup", "version": FORMAT_VERSION,
                                        "created": time.time_ns() // 1000,
                                        "dialect": engine.dialect.name,
                                        "tables": [t.name for t in tables]}) + b"\n")
                for table in tables:
                    columns = [c.name for c in table.columns]
                    out.write(orjson.dumps({"table": table.name, "columns": columns}) + b"\n")
                    count = [0]
                    for row in _hash_table(digest, table.name, columns,
                                           _ordered_rows(conn, table), count):
                        out.write(orjson.dumps(row) + b"\n")
                        if progress is not None and count[0] % 1000 == 0:
                            progress(1000)
                    report.tables[str(table.name)] = count[0]
                report.content_hash = digest.hexdigest()
                out.write(orjson.dumps({"end": True, "content_hash": report.content_hash,
                                        "rows": report.tables}) + b"\n")
            sealed.close()
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:  # a backup cut short (disk full, database gone) leaves nothing
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    report.seconds = time.perf_counter() - started
    return report


def _lines(path: Path, master: MasterKey) -> Iterator[Any]:
    with open(path, "rb") as source:
        reader = io.BufferedReader(_ChunkReader(_open_chunks(source, master)))
        with gzip.GzipFile(fileobj=reader, mode="rb") as lines:
            for line in lines:
                yield orjson.loads(line)


def restore(engine: Engine, path: Path, master: MasterKey,
            progress: Callable[[int], None] | None = None) -> BackupReport:
    """Restore a backup into ``engine``'s database, which must have the same schema
    (run the migrations first) and no rows; checks the content hash at the end."""
    from hygie.store.migrations import upgrade

    started = time.perf_counter()
    upgrade(engine)
    report = BackupReport(path)
    lines = _lines(path, master)
    manifest = next(lines, None)
    if not isinstance(manifest, dict) or manifest.get("format") != "hygie-backup":
        raise BackupError("this file is not a Hygie backup")
    with engine.connect() as probe:
        targets = {t.name: t for t in _tables(probe)}
        for name in manifest["tables"]:
            if name not in targets:
                raise BackupError(f"table {name} of the backup does not exist here: the "
                                  "schema versions differ")
            if name != "alembic_version" and probe.execute(
                    select(func.count()).select_from(targets[name])).scalar():
                raise BackupError(f"table {name} is not empty: restore into an empty database")
    expected: str | None = None
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        table: Table | None = None
        columns: list[Any] = []
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            if batch and table is not None and table.name != "alembic_version":
                conn.execute(insert(table), batch)
                if progress is not None:
                    progress(len(batch))
            batch.clear()

        for item in lines:
            if isinstance(item, dict) and "table" in item:
                flush()
                table = targets[item["table"]]
                columns = [table.c[name] for name in item["columns"]]
                report.tables[str(table.name)] = 0
            elif isinstance(item, dict) and item.get("end"):
                flush()
                expected = item["content_hash"]
            elif table is not None:
                batch.append({c.name: _decode(v, c) for c, v in zip(columns, item, strict=True)})
                report.tables[str(table.name)] += 1
                if len(batch) >= 1000:
                    flush()
        if expected is None:
            raise BackupError("the backup has no trailer: it is incomplete")
        if engine.dialect.name == "postgresql":
            _reset_sequences(conn, targets)
    report.content_hash = content_hash(engine)
    if report.content_hash != expected:
        raise BackupError(f"the restored database hashes to {report.content_hash}, "
                          f"the backup recorded {expected}")
    report.seconds = time.perf_counter() - started
    return report


def _reset_sequences(conn: Connection, tables: dict[str, Table]) -> None:
    """Move PostgreSQL sequences past the restored keys."""
    for table in tables.values():
        for column in table.primary_key.columns:
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table.name, "c": column.name}).scalar()
            if seq:
                conn.execute(text(f'SELECT setval(:s, COALESCE((SELECT max("{column.name}") '
                                  f'FROM "{table.name}"), 0) + 1, false)'), {"s": seq})
