"""The gateway's journal: messages committed before they are acknowledged.

``append`` writes a batch of received messages in one transaction (group commit: the
MLLP server gathers what arrived while the previous commit ran), skipping those whose
(sender, control id) is already there and telling which ones were duplicates, with
the first one's outcome; the same transaction records the outcomes the mapper reported
since the previous one. ``pending`` is the mapper's side.

On SQLite the journal is a database file of its own, beside the platform's
(``open_journal``): SQLite has one write lock per file, and the receipt path, which
commits every few milliseconds, would otherwise wait behind the mapper's store writes,
as long as the operating system takes to schedule the process holding them (tens of
milliseconds on a busy machine). On PostgreSQL, whose locks are per row, the journal
is the ``devices_message`` table of the platform's database.

A message names its patient (PID), so with encryption at rest on, each one is sealed
by the platform's vault before it is written (``hygie.security.vault_for``), bound to
its (sender, control id): the journal keeps no identifier in clear until its
retention purge, as the store keeps none in the bodies it maps them to.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateIndex, CreateTable

from hygie.devices.model import DevicesSettings
from hygie.devices.tables import message
from hygie.platform import Platform, create_engine, pairs_in
from hygie.store.access import BodyCodec
from hygie.store.model import now_us

PENDING, STORED, REJECTED = "pending", "stored", "rejected"
_COLUMNS = (
    "channel",
    "sender",
    "control_id",
    "codec",
    "raw",
    "received_at",
    "status",
    "error",
    "processed_at",
    "observations",
)


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
    #: Why the sealed message does not open (its data key lost, its bytes altered).
    unreadable: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the mapper did with a message."""

    journal_id: int
    status: str
    error: dict[str, object] | None = None
    observations: int = 0


def _context(sender: str, control_id: str) -> str:
    """What a sealed message is bound to: its key in the journal, unambiguously."""
    return "devices-journal " + orjson.dumps([sender, control_id]).decode()


class JournalBusy(Exception):
    """Another writer holds the SQLite write lock; the caller may try again shortly."""


def _is_busy(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def journal_url(database_url: str) -> str | None:
    """The URL of the journal's own SQLite file, beside the platform's (None: no file).

    ``sqlite:///var/hygie.db`` gives ``sqlite:///var/hygie.devices-journal.db``; an
    in-memory SQLite database and PostgreSQL keep the journal in the platform's database.
    """
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or database_url.startswith(prefix + ":memory:"):
        return None
    path, _, query = database_url.removeprefix(prefix).partition("?")
    if not path:
        return None
    db = Path(path)
    journal = db.with_name(f"{db.stem}.devices-journal{db.suffix or '.db'}")
    return prefix + str(journal) + (f"?{query}" if query else "")


def open_journal(platform: Platform) -> Journal:
    """The platform's journal: on SQLite in its own file (created on first use).

    One engine per platform, disposed with it. On PostgreSQL, the setting
    ``devices_journal_synchronous_commit`` (default true) says whether its commits
    wait for the disk. Messages are sealed when encryption at rest is on.
    """
    journal = platform.parts.get("devices.journal")
    if journal is not None:
        return journal  # type: ignore[no-any-return]
    from hygie.security import vault_for

    codec = vault_for(platform)
    url = journal_url(platform.settings.database_url)
    if url is None:
        synchronous = DevicesSettings.from_settings(platform.settings).journal_synchronous_commit
        journal = Journal(platform.engine, synchronous_commit=bool(synchronous), codec=codec)
    else:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(CreateTable(message, if_not_exists=True))
            for index in message.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))
        platform.closers.insert(0, engine.dispose)
        journal = Journal(engine, codec=codec)
    platform.parts["devices.journal"] = journal
    return journal


class Journal:
    """Journal rows on one engine (see ``open_journal`` for which).

    ``synchronous_commit`` False lets a PostgreSQL commit return before its WAL
    record is flushed to disk (``SET LOCAL synchronous_commit = off``): a crash of the
    gateway still loses nothing, a crash of the database server can lose the last
    fraction of a second, which is what SQLite's ``synchronous=NORMAL`` gives too.

    With a ``codec``, messages are sealed on the way in and opened on the way out;
    rows written in clear before still read.
    """

    def __init__(
        self, engine: Engine, *, synchronous_commit: bool = True, codec: BodyCodec | None = None
    ) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.synchronous_commit = synchronous_commit
        self.codec = codec

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with conn.begin():
                if not self.is_sqlite and not self.synchronous_commit:
                    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield conn

    def append(
        self, batch: Sequence[Incoming], *, wait: bool = True, finished: Sequence[Outcome] = ()
    ) -> list[Appended]:
        """Commit ``batch``; one ``Appended`` per message, in order.

        ``finished`` are outcomes of the mapper to record in the same transaction,
        before the new messages are matched against the journal: a copy of a message
        whose outcome arrives in the same batch is answered with that outcome.

        When the database is locked by another writer (SQLite), ``wait`` retries every
        millisecond for up to 30 s; without it ``JournalBusy`` is raised at once, for a
        caller that has better things to do meanwhile (the MLLP event loop). SQLite's
        own busy handler backs off in steps of up to 100 ms, far too coarse for an
        acknowledgment that should take milliseconds.
        """
        if not batch and not finished:
            return []
        deadline = time.monotonic() + 30
        while True:
            try:
                return self._append(batch, finished)
            except OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if not wait:
                    raise JournalBusy(str(exc)) from exc
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)

    def _append(self, batch: Sequence[Incoming], finished: Sequence[Outcome]) -> list[Appended]:
        when = now_us()
        # one row per key: a key twice in one batch is a duplicate of its first copy
        unique: dict[tuple[str, str], tuple[object, ...]] = {}
        codec = self.codec
        for m in batch:
            key = (m.sender, m.control_id)
            if key in unique:
                continue
            unique[key] = (
                m.channel,
                m.sender,
                m.control_id,
                m.codec,
                codec.seal(m.raw, _context(*key)) if codec is not None else m.raw,
                when,
                REJECTED if m.error else PENDING,
                orjson.dumps(m.error).decode() if m.error else None,
                when if m.error else None,
                0,
            )
        with self._writing() as conn:
            if finished:
                self._finish(conn, finished, when)
            if not unique:
                return []
            inserted = self._insert(conn, list(unique.values()))
            missing = [k for k in unique if k not in inserted]
            existing: dict[tuple[str, str], tuple[int, str, str | None]] = {}
            if missing:
                for r in conn.execute(
                    select(
                        message.c.id,
                        message.c.sender,
                        message.c.control_id,
                        message.c.status,
                        message.c.error,
                    ).where(pairs_in(message.c.sender, message.c.control_id, missing))
                ):
                    existing[(r.sender, r.control_id)] = (r.id, r.status, r.error)
        out: list[Appended] = []
        seen: set[tuple[str, str]] = set()
        for m in batch:
            key = (m.sender, m.control_id)
            if key in inserted and key not in seen:
                seen.add(key)
                out.append(
                    Appended(inserted[key], False, REJECTED if m.error else PENDING, m.error)
                )
                continue
            if key in inserted:  # twice in one batch: the second is a duplicate
                out.append(Appended(inserted[key], True, PENDING))
                continue
            jid, status, error = existing[key]
            out.append(Appended(jid, True, status, orjson.loads(error) if error else None))
        return out

    def _insert(
        self, conn: Connection, rows: list[tuple[object, ...]]
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
                chunk = rows[start : start + 500]
                cursor.execute(
                    f"INSERT INTO {message.name} ({', '.join(_COLUMNS)}) VALUES "
                    f"{', '.join([one] * len(chunk))} ON CONFLICT (sender, control_id) "
                    "DO NOTHING RETURNING id, sender, control_id",
                    [value for row in chunk for value in row],
                )
                for jid, sender, control_id in cursor.fetchall():
                    inserted[(sender, control_id)] = jid
        finally:
            cursor.close()
        return inserted

    def pending(self, limit: int, skip: Collection[int] = ()) -> list[PendingRow]:
        """The oldest messages not mapped yet, but for those in ``skip``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    message.c.id,
                    message.c.channel,
                    message.c.sender,
                    message.c.control_id,
                    message.c.codec,
                    message.c.raw,
                )
                .where(message.c.status == PENDING)
                .order_by(message.c.id)
                .limit(limit + len(skip))
            ).all()
        return [self._pending_row(r) for r in rows if r.id not in skip][:limit]

    def _pending_row(self, r: Any) -> PendingRow:
        raw, unreadable = bytes(r.raw), None
        if self.codec is not None:
            try:
                raw = self.codec.open(raw, _context(r.sender, r.control_id))
            except ValueError as exc:  # SealError: rejected by the mapper, not retried
                raw, unreadable = b"", str(exc)
        return PendingRow(r.id, r.channel, r.sender, r.control_id, r.codec, raw, unreadable)

    def pending_among(self, ids: Collection[int]) -> set[int]:
        """Which of ``ids`` are still pending."""
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(message.c.id).where(
                        message.c.status == PENDING, message.c.id.in_(list(ids))
                    )
                ).scalars()
            )

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record what the mapper did (one transaction)."""
        if outcomes:
            self.append((), finished=outcomes)

    def _finish(self, conn: Connection, outcomes: Sequence[Outcome], when: int) -> None:
        conn.execute(
            update(message)
            .where(message.c.id == bindparam("jid"))
            .values(
                status=bindparam("new_status"),
                processed_at=when,
                observations=bindparam("count"),
                error=bindparam("error_json"),
            ),
            [
                {
                    "jid": o.journal_id,
                    "new_status": o.status,
                    "count": o.observations,
                    "error_json": orjson.dumps(o.error).decode() if o.error else None,
                }
                for o in outcomes
            ],
        )

    def checkpoint(self, restart_above: int = 64 * 1024 * 1024) -> None:
        """Copy the SQLite write-ahead log into the database, and keep the log bounded.

        The receipt path's connections never checkpoint (it would hold acknowledgments
        behind an fsync), so the mapper calls this between batches. A passive checkpoint
        never blocks the writer, but under a steady stream of commits the log is never
        entirely copied at the moment a commit starts, which is when SQLite goes back
        to its beginning: it grew by 20 MB a second at 1,000 messages a second. So once
        a passive checkpoint has copied everything and the log is larger than
        ``restart_above`` bytes, a RESTART checkpoint makes the next commit start the
        log afresh; it has almost nothing left to copy and gives up at once if a
        commit is under way (busy timeout 0).
        """
        if not self.is_sqlite:
            return
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="")  # a checkpoint needs no transaction
            busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            if busy or frames != copied or frames * 4096 < restart_above:
                return
            conn.exec_driver_sql("PRAGMA busy_timeout=0")
            try:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").one()
            finally:
                conn.exec_driver_sql("PRAGMA busy_timeout=30000")

    def outcome(self, journal_id: int) -> Outcome:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(message.c.status, message.c.error, message.c.observations).where(
                    message.c.id == journal_id
                )
            ).one()
        return Outcome(
            journal_id, r.status, orjson.loads(r.error) if r.error else None, r.observations
        )

    def purge(self, older_than_us: int, chunk: int = 2000) -> int:
        """Delete processed messages received before ``older_than_us``; return how many.

        Pending messages are never deleted. Deleting in chunks keeps each write short
        (on SQLite the receipt path waits for it). A message resent after its row was
        purged is stored again: the retention is the window of duplicate detection.
        """
        removed = 0
        while True:
            with self._writing() as conn:
                ids = (
                    select(message.c.id)
                    .where(message.c.status != PENDING, message.c.received_at < older_than_us)
                    .order_by(message.c.id)
                    .limit(chunk)
                )
                count = conn.execute(delete(message).where(message.c.id.in_(ids))).rowcount
            removed += count
            if count < chunk:
                return removed

    def counts(self) -> dict[str, int]:
        """Messages by status."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(message.c.status, func.count()).group_by(message.c.status)
            ).all()
        return {status: n for status, n in rows}
