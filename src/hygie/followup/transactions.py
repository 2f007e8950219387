"""Units of work on the follow-up tables.

A writer takes SQLite's write lock up front (``BEGIN IMMEDIATE``): a transaction that
reads a session and then writes it must not find, at its first write, that another
writer committed since its read (SQLite would refuse the upgrade at once). Threads of
one process queue on the platform's lock rather than in SQLite's busy handler, which
sleeps in steps of up to 100 ms. On PostgreSQL, rows read to be changed are locked
with ``SELECT ... FOR UPDATE`` by the callers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, Table

from hygie.platform import insert_many, write_transaction


def now_ms() -> int:
    return int(time.time() * 1000)



def writing(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection in a write transaction that commits on success (SQLite: queued
    behind the process's other writers, then ``BEGIN IMMEDIATE``)."""
    return write_transaction(engine)


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows with one ``executemany``: SQLite runs it in process, and psycopg
    pipelines it on PostgreSQL (measured faster here than multi-row ``VALUES`` batches,
    whose statements SQLAlchemy must compile for each batch size)."""
    insert_many(conn, table, rows)
