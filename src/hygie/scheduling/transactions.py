"""Units of work on the service's tables, and the locks that serialise bookings.

A writer takes the database's write lock up front on SQLite (``BEGIN IMMEDIATE``,
through the platform's ``sqlite_begin`` execution option), so that two bookings never
both read "free" and then both write. On PostgreSQL the row-level lock of the
conditional ``UPDATE ... WHERE status = 'free'`` does that for a slot, and
``advisory_lock`` (``pg_advisory_xact_lock``) serialises bookings that compete for
the same arrival window of a site.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

#: One lock per SQLite engine: threads of one process queue here instead of in
#: SQLite's busy handler, which sleeps in steps of up to 100 ms.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> threading.RLock | None:
    if engine.dialect.name != "sqlite":
        return None
    with _GUARD:
        lock = _SQLITE_WRITERS.get(engine)
        if lock is None:
            lock = _SQLITE_WRITERS[engine] = threading.RLock()
        return lock


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection inside a write transaction that commits on success."""
    lock = _writer_lock(engine)
    if lock is None:
        with engine.connect() as conn, conn.begin():
            yield conn
        return
    with lock, engine.connect() as conn:
        conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads (one consistent snapshot on both engines)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def advisory_lock(conn: Connection, name: str) -> None:
    """Hold a lock named ``name`` until the transaction ends (no-op on SQLite).

    SQLite writers already hold the one database write lock (``BEGIN IMMEDIATE``).
    """
    if conn.dialect.name == "sqlite":
        return
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                         signed=True)
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
