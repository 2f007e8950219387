"""Database writes of the channels package: one lock order, bounded statements.

Writers take the write lock first (``BEGIN IMMEDIATE`` on SQLite), so that two writers
queue instead of deadlocking; lists of ids are cut into chunks so that no statement
binds more parameters than a backend accepts. Times are UTC milliseconds.

On PostgreSQL rows are locked one by one, in the order each statement meets them, and
the dispatcher runs several writers at once (receipts, replies, the record of a batch,
the FHIR mirror). So that no two of them ever wait for each other, every transaction
that changes messages locks *all* of them first with :func:`lock_messages`, in id
order, before any other write on them (their SMS parts, answers and events come after,
and are only written under the message's lock). Claims and cancellations take
``SKIP LOCKED`` rows instead: they never wait, so they close no cycle.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from hygie.channels import tables as t


def now_ms() -> int:
    return int(time.time() * 1000)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def lock_messages(conn: Connection, ids: Iterable[str], *columns: Any) -> dict[str, Row[Any]]:
    """Lock these messages in id order and read ``columns`` of them (id always).

    The rows come back current: a writer that waited here sees what the one before it
    committed, so a status read here is the status it changes (reading without the lock
    let a late receipt write ``delivered`` over an answer). ``FOR NO KEY UPDATE`` is the
    lock an UPDATE takes anyway; it leaves inserts of parts and events of other
    messages free. Unknown ids are left out. On SQLite the write lock is already held.
    """
    found: dict[str, Row[Any]] = {}
    for chunk in chunks(sorted(set(ids)), 500):
        for row in conn.execute(
            select(t.message.c.id, *columns)
            .where(t.message.c.id.in_(chunk))
            .order_by(t.message.c.id)
            .with_for_update(key_share=True)
        ):
            found[row.id] = row
    return found
