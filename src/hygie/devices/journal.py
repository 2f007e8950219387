"""The gateway's journal: messages committed before they are acknowledged.

``append`` writes a batch of received messages in one transaction (group commit: the
MLLP server gathers what arrived while the previous commit ran), skipping those whose
(sender, control id) is already there and telling which ones were duplicates, with
the first one's outcome. ``pending`` and ``finish`` are the mapper's side.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, Engine, delete, func, select, tuple_, update
from sqlalchemy.exc import OperationalError

from hygie.devices.tables import message
from hygie.store.model import now_us

PENDING, STORED, REJECTED = "pending", "stored", "rejected"
_COLUMNS = ("channel", "sender", "control_id", "codec", "raw", "received_at", "status", "error",
            "processed_at", "observations")


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message to journal."""

    channel: str
    sender: str
    control_id: str
    codec: str
    raw: bytes
    #: Known bad at receipt (an MQTT payload that is not the documented JSON).
    error: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class Appended:
    """Where a message landed: its journal row, and whether it was already there."""

    journal_id: int
    duplicate: bool
    status: str
    error: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class PendingRow:
    journal_id: int
    channel: str
    sender: str
    control_id: str
    codec: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the mapper did with a message."""

    journal_id: int
    status: str
    error: dict[str, object] | None = None
    observations: int = 0


class JournalBusy(Exception):
    """Another writer holds the SQLite write lock; the caller may try again shortly."""


def _is_busy(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Journal:
    """Journal rows on the platform's engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with conn.begin():
                yield conn

    def append(self, batch: Sequence[Incoming], *, wait: bool = True) -> list[Appended]:
        """Commit ``batch``; one ``Appended`` per message, in order.

        When the database is locked by another writer (SQLite), ``wait`` retries every
        millisecond for up to 30 s; without it ``JournalBusy`` is raised at once, for a
        caller that has better things to do meanwhile (the MLLP event loop). SQLite's
        own busy handler backs off in steps of up to 100 ms, far too coarse for an
        acknowledgment that should take milliseconds.
        """
        if not batch:
            return []
        deadline = time.monotonic() + 30
        while True:
            try:
                return self._append(batch)
            except OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if not wait:
                    raise JournalBusy(str(exc)) from exc
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)

    def _append(self, batch: Sequence[Incoming]) -> list[Appended]:
        when = now_us()
        # one row per key: a key twice in one batch is a duplicate of its first copy
        unique: dict[tuple[str, str], tuple[object, ...]] = {}
        for m in batch:
            unique.setdefault((m.sender, m.control_id), (
                m.channel, m.sender, m.control_id, m.codec, m.raw, when,
                REJECTED if m.error else PENDING,
                orjson.dumps(m.error).decode() if m.error else None,
                when if m.error else None, 0))
        with self._writing() as conn:
            inserted = self._insert(conn, list(unique.values()))
            missing = [k for k in unique if k not in inserted]
            existing: dict[tuple[str, str], tuple[int, str, str | None]] = {}
            if missing:
                for r in conn.execute(select(
                        message.c.id, message.c.sender, message.c.control_id,
                        message.c.status, message.c.error).where(
                        tuple_(message.c.sender, message.c.control_id).in_(missing))):
                    existing[(r.sender, r.control_id)] = (r.id, r.status, r.error)
        out: list[Appended] = []
        seen: set[tuple[str, str]] = set()
        for m in batch:
            key = (m.sender, m.control_id)
            if key in inserted and key not in seen:
                seen.add(key)
                out.append(Appended(inserted[key], False, REJECTED if m.error else PENDING,
                                    m.error))
                continue
            if key in inserted:  # twice in one batch: the second is a duplicate
                out.append(Appended(inserted[key], True, PENDING))
                continue
            jid, status, error = existing[key]
            out.append(Appended(jid, True, status, orjson.loads(error) if error else None))
        return out

    def _insert(self, conn: Connection, rows: list[tuple[object, ...]]
                ) -> dict[tuple[str, str], int]:
        """Insert rows whose key is new; return the new rows' ids by key.

        One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on the DBAPI
        cursor: the receipt path commits a batch per turn of the event loop, and
        building the statement through SQLAlchemy cost about as much as the commit.
        """
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        mark = "?" if self.is_sqlite else "%s"
        one = "(" + ", ".join([mark] * len(_COLUMNS)) + ")"
        inserted: dict[tuple[str, str], int] = {}
        cursor = dbapi.cursor()
        try:
            for start in range(0, len(rows), 500):
                chunk = rows[start:start + 500]
                cursor.execute(
                    f"INSERT INTO {message.name} ({', '.join(_COLUMNS)}) VALUES "
                    f"{', '.join([one] * len(chunk))} ON CONFLICT (sender, control_id) "
                    "DO NOTHING RETURNING id, sender, control_id",
                    [value for row in chunk for value in row])
                for jid, sender, control_id in cursor.fetchall():
                    inserted[(sender, control_id)] = jid
        finally:
            cursor.close()
        return inserted

    def pending(self, limit: int) -> list[PendingRow]:
        """The oldest messages not mapped yet."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(message.c.id, message.c.channel, message.c.sender, message.c.control_id,
                       message.c.codec, message.c.raw)
                .where(message.c.status == PENDING).order_by(message.c.id).limit(limit)
            ).all()
        return [PendingRow(r.id, r.channel, r.sender, r.control_id, r.codec, bytes(r.raw))
                for r in rows]

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record what the mapper did (one transaction)."""
        if not outcomes:
            return
        when = now_us()
        with self._writing() as conn:
            for o in outcomes:
                conn.execute(update(message).where(message.c.id == o.journal_id).values(
                    status=o.status, processed_at=when, observations=o.observations,
                    error=orjson.dumps(o.error).decode() if o.error else None))

    def outcome(self, journal_id: int) -> Outcome:
        with self.engine.connect() as conn:
            r = conn.execute(select(message.c.status, message.c.error, message.c.observations)
                             .where(message.c.id == journal_id)).one()
        return Outcome(journal_id, r.status, orjson.loads(r.error) if r.error else None,
                       r.observations)

    def purge(self, older_than_us: int, chunk: int = 2000) -> int:
        """Delete processed messages received before ``older_than_us``; return how many.

        Pending messages are never deleted. Deleting in chunks keeps each write short
        (on SQLite the receipt path waits for it). A message resent after its row was
        purged is stored again: the retention is the window of duplicate detection.
        """
        removed = 0
        while True:
            with self._writing() as conn:
                ids = select(message.c.id).where(
                    message.c.status != PENDING, message.c.received_at < older_than_us
                ).order_by(message.c.id).limit(chunk)
                count = conn.execute(delete(message).where(message.c.id.in_(ids))).rowcount
            removed += count
            if count < chunk:
                return removed

    def counts(self) -> dict[str, int]:
        """Messages by status."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(message.c.status, func.count())
                                .group_by(message.c.status)).all()
        return {status: n for status, n in rows}
