"""Units of work on the follow-up tables.

A writer takes SQLite's write lock up front (``BEGIN IMMEDIATE``): a transaction that
reads a session and then writes it must not find, at its first write, that another
writer committed since its read (SQLite would refuse the upgrade at once). Threads of
one process queue on a lock of their own rather than in SQLite's busy handler, which
sleeps in steps of up to 100 ms. On PostgreSQL, rows read to be changed are locked
with ``SELECT ... FOR UPDATE`` by the callers.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert

_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def now_ms() -> int:
    return int(time.time() * 1000)


def _lock(engine: Engine) -> threading.RLock | None:
    if engine.dialect.name != "sqlite":
        return None
    with _GUARD:
        found = _LOCKS.get(engine)
        if found is None:
            found = _LOCKS[engine] = threading.RLock()
        return found


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction that commits on success."""
    lock = _lock(engine)
    if lock is None:
        with engine.connect() as conn, conn.begin():
            yield conn
        return
    with lock, engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            yield conn


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows with one ``executemany``: SQLite runs it in process, and psycopg
    pipelines it on PostgreSQL (measured faster here than multi-row ``VALUES`` batches,
    whose statements SQLAlchemy must compile for each batch size)."""
    if rows:
        conn.execute(insert(table), list(rows))
