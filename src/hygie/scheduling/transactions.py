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
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Connection, Engine, text

from hygie.platform import write_transaction


def writing(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection in a write transaction that commits on success (SQLite: queued
    behind the process's other writers, then ``BEGIN IMMEDIATE``)."""
    return write_transaction(engine)


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
