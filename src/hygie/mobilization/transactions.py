"""Units of work on the service's tables, and the lock that keeps one campaign's steps
in line.

A campaign is moved forward by whoever runs: the worker's timer pass, the answer
handler of the channels dispatcher, an HTTP close. Two of them must never both decide
to ask the same person, or both decide that a quota is met. Every step of a campaign
therefore runs in one write transaction that first takes the campaign's lock: on
SQLite the database's write lock (``BEGIN IMMEDIATE``, taken by the platform's
``sqlite_begin`` execution option, behind a process-wide lock so that threads queue
here rather than in SQLite's sleeping busy handler); on PostgreSQL a transaction-scoped
advisory lock named after the campaign, which also holds across processes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, text

from hygie.platform import write_transaction


def now_ms() -> int:
    return int(time.time() * 1000)



def writing(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection in a write transaction that commits on success (SQLite: queued
    behind the process's other writers, then ``BEGIN IMMEDIATE``)."""
    return write_transaction(engine)


def lock_campaign(conn: Connection, campaign_id: str) -> None:
    """Hold the campaign's lock until the transaction ends (SQLite: already held)."""
    if conn.dialect.name == "sqlite":
        return
    key = int.from_bytes(
        hashlib.blake2b(f"mobilization:{campaign_id}".encode(), digest_size=8).digest(),
        "big",
        signed=True,
    )
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Slices of ``items``, so that no statement binds more parameters than allowed."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
