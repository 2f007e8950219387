"""The audit trail: every access becomes a FHIR AuditEvent in an append-only keyed chain.

Each record of ``audit_log`` is one R4 AuditEvent (https://hl7.org/fhir/R4/auditevent.html)
with its sequence number, the hash of the record before it, and its own hash. A FHIR
interaction (nearly every record) is kept as the facts its AuditEvent is made of, one
column each (``FACTS``: when, interaction, action, outcome, caller, address, resources,
query, patient, failure, emergency), and its hash covers a canonical encoding of them,
absent values as "" (RFC 7693 keyed BLAKE2b: a MAC in one pass)::

    hash(n) = BLAKE2b-256(key = audit key, hash(n-1) | n | "f" | JSON array of FACTS)

``event_of`` builds the AuditEvent JSON from those columns when the trail is read (the
"who looked at my record" page, exports, tests), the same every time. Other events
(sign-ins, security alerts, exports), and the records written before the facts had
columns, keep their whole AuditEvent as canonical JSON bytes in ``event``::

    hash(n) = HMAC-SHA256(audit key, hash(n-1) | n | recorded | action | outcome | agent
                                     | event bytes)

Keeping facts rather than JSON is what makes the trail cheap enough to record every
read: nothing is serialised per access, and most records need one row (the patient is
a column; only an access to several patients' records adds rows to ``audit_patient``).

The key is derived from the master key, which lives outside the database: someone who
can write to the database but not read the key file cannot rewrite the chain after
changing a record. ``verify`` walks the chain and names each record that was altered
(its hash no longer matches), removed (a gap in the numbers, or a ``prev_hash`` that
points at nothing) or moved (a record whose hash verifies at another position). The
last record written is also kept in ``<var_dir>/audit/head``, so that cutting records
off the end is seen too.

Records are queued by the ``AuditWriter`` of each process (``audit_writer``) and
appended in batches, one transaction each, holding the chain's lock (``BEGIN
IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL) so that several processes extend
one chain. Reads are not held up by the audit: their events are appended within
``FLUSH_INTERVAL_S``. Writes, sign-ins and emergency accesses wait until their event is
committed before the caller gets an answer (durable before acknowledged).
"""

from __future__ import annotations

import hmac
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import blake2b
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, select

from hygie.security.audit_events import (
    BREAK_THE_GLASS,
    CLIENT_ADDRESS,
    EMERGENCY,
    EXPORT,
    FACTS,
    LOGIN,
    MINOR_FAILURE,
    REST,
    SECURITY_ALERT,
    SERIOUS_FAILURE,
    SUCCESS,
    agent_facts,
    agent_json,
    agent_of,
    build_event,
    entity,
    event_of,
    facts_of,
    instant,
    interaction_facts,
    interaction_subtype,
    login_subtype,
)
from hygie.security.audit_writer import FLUSH_INTERVAL_S, AuditRecord, AuditWriter, Facts
from hygie.security.tables import audit_log, audit_patient
from hygie.store.connections import autocommit_driver_connection

__all__ = [
    "BREAK_THE_GLASS",
    "CLIENT_ADDRESS",
    "EMERGENCY",
    "EXPORT",
    "FACTS",
    "FLUSH_INTERVAL_S",
    "GENESIS",
    "LOGIN",
    "MINOR_FAILURE",
    "REST",
    "SECURITY_ALERT",
    "SERIOUS_FAILURE",
    "SUCCESS",
    "AuditChain",
    "AuditRecord",
    "AuditWriter",
    "Facts",
    "VerifyReport",
    "agent_facts",
    "agent_json",
    "agent_of",
    "build_event",
    "chain_hash",
    "entity",
    "event_hash",
    "event_of",
    "facts_hash",
    "facts_of",
    "instant",
    "interaction_facts",
    "interaction_subtype",
    "login_subtype",
    "read_head",
    "verify",
]

#: Shortest time between two writes of the head file (the last record, kept outside).
HEAD_INTERVAL_S = 0.5

GENESIS = "0" * 64

# --- the chain -------------------------------------------------------------------------------


def chain_hash(key: bytes, prev_hash: str, seq: int, row: Any) -> str:
    """The hash of one record (see the module docstring); ``row`` has the columns."""
    if row.event is None:
        return facts_hash(key, prev_hash, seq, facts_of(row))
    return event_hash(key, prev_hash, seq, row.recorded, row.action, row.outcome, row.agent,
                      bytes(row.event))


def facts_hash(key: bytes, prev_hash: str, seq: int, facts: tuple[int | str, ...]) -> str:
    """The hash of an interaction's record, kept as its ``FACTS``: keyed BLAKE2b-256
    (RFC 7693 §2.9: the key makes it a MAC, in one pass where HMAC needs two)."""
    return blake2b(f"{prev_hash}|{seq}|f|".encode() + orjson.dumps(facts), key=key,
                   digest_size=32).hexdigest()


def event_hash(key: bytes, prev_hash: str, seq: int, recorded: int, action: str,
               outcome: str, agent: str | None, event: bytes) -> str:
    """The hash of a record that keeps its whole AuditEvent."""
    head = f"{prev_hash}|{seq}|{recorded}|{action}|{outcome}|{agent or ''}|"
    return hmac.digest(key, head.encode() + event, "sha256").hex()


#: Rows per INSERT statement on SQLite, largest first, each used only where the build
#: allows that many variables in a statement (256 x 16 values: SQLite 3.32 or later;
#: older builds allow 999, which leaves 16 rows and less). Each statement lets go of the
#: interpreter lock once, and the serving threads take it: 256 rows a statement instead
#: of 32 made a secured read 0.81x of an unsecured one instead of 0.77x (in-process).
_CHUNKS = (256, 64, 16, 4, 1)
#: The columns of ``FACTS`` that may be NULL (written "" by ``interaction_facts``).
_NULLABLE = frozenset(FACTS) - {"recorded", "action", "outcome"}
#: The columns of an interaction's record, in the order ``_link`` gives their values.
_FACT_ROW = ("seq", *FACTS, "prev_hash", "hash")
#: The chain's lock on PostgreSQL, taken by every process that appends (released at
#: commit), and the last record, read once the lock is held.
_PG_LOCK = "SELECT pg_advisory_xact_lock(7215469110)"
_LAST = f"SELECT seq, hash FROM {audit_log.name} ORDER BY seq DESC LIMIT 1"


@lru_cache(maxsize=16)
def _facts_insert(mark: str, n: int) -> str:
    """The INSERT of ``n`` interactions' records: seq, ``FACTS``, prev_hash and hash."""
    values = [f"NULLIF({mark}, '')" if name in _NULLABLE else mark for name in FACTS]
    row = f"({mark}, {', '.join(values)}, {mark}, {mark})"
    return (f"INSERT INTO {audit_log.name} ({', '.join(_FACT_ROW)}) "
            f"VALUES {', '.join([row] * n)}")


def _facts_insert_json() -> str:
    """The INSERT of a whole batch of interactions' records on PostgreSQL, from one
    parameter: a JSON array of rows, each the values of ``_FACT_ROW`` in order."""
    values = []
    for i, name in enumerate(_FACT_ROW):
        value = f"r->>{i}"
        if name in ("seq", "recorded"):
            value = f"({value})::bigint"
        elif name in _NULLABLE:
            value = f"NULLIF({value}, '')"
        values.append(value)
    return (f"INSERT INTO {audit_log.name} ({', '.join(_FACT_ROW)}) "
            f"SELECT {', '.join(values)} FROM jsonb_array_elements(%s::jsonb) AS r")


_PG_INSERT_FACTS = _facts_insert_json()
_PG_INSERT_LINKS = (f"INSERT INTO {audit_patient.name} (patient_id, seq) "
                    "SELECT r->>0, (r->>1)::bigint FROM jsonb_array_elements(%s::jsonb) AS r")


def _without_nul(values: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """``values`` with each NUL character of a string replaced (PostgreSQL keeps no NUL
    in text; a request path can carry one, and one such record must not fail a batch)."""
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in values)


class AuditChain:
    """Appends records to ``audit_log`` and reads them back; one per platform."""

    def __init__(self, engine: Engine, key: bytes, head_file: Path | None = None) -> None:
        self.engine = engine
        self.key = key
        self.head_file = head_file
        self.is_sqlite = engine.dialect.name == "sqlite"
        #: BLAKE2b with the key block already compressed: each record's hash starts from
        #: a copy of it (the same digest as ``facts_hash``, a third cheaper).
        self._keyed = blake2b(key=key, digest_size=32)
        self._head_written = float("-inf")
        self._head_pending: tuple[int, str] | None = None
        mark = "?" if self.is_sqlite else "%s"
        self._insert_event = (
            f"INSERT INTO {audit_log.name} (seq, recorded, action, outcome, agent, patient, "
            f"event, prev_hash, hash) VALUES ({', '.join([mark] * 9)})")
        self._insert_link = (f"INSERT INTO {audit_patient.name} (patient_id, seq) "
                             f"VALUES ({mark}, {mark})")

    def write_pending_head(self) -> None:
        """Write the head the interval held back, if any."""
        if self._head_pending is not None:
            self._write_head(*self._head_pending, force=True)

    def append(self, records: list[AuditRecord | Facts]) -> None:
        """Append ``records`` in one transaction of their own, extending the chain."""
        if not records:
            return
        if self.is_sqlite:
            with self.engine.connect() as conn:
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                with conn.begin():
                    seq, prev = self._append_sqlite(conn, records)
        else:
            seq, prev = self._append_postgresql(records)
        self._write_head(seq, prev)

    def append_within(self, conn: Connection, records: list[AuditRecord | Facts]) -> None:
        """Append ``records`` in the caller's transaction (a write's own), so that they
        commit or roll back with it. The head file is left to the next ordinary append:
        it must never name a record that a rollback could still take away."""
        if not records:
            return
        if self.is_sqlite:
            self._append_sqlite(conn, records)
            return
        pg = conn.connection.dbapi_connection
        assert pg is not None
        self._append_pipelined(pg, records, own_transaction=False)

    def _append_sqlite(self, conn: Connection,
                       records: list[AuditRecord | Facts]) -> tuple[int, str]:
        # plain DB-API calls: on the write path every statement's overhead shows
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.execute(_LAST)
            seq, prev, rows, events, links = self._link(records, cursor.fetchone())
            self._insert_facts(cursor, rows)
            if events:
                cursor.executemany(self._insert_event, events)
            if links:
                cursor.executemany(self._insert_link, links)
        finally:
            cursor.close()
        return seq, prev

    def _append_postgresql(self, records: list[AuditRecord | Facts]) -> tuple[int, str]:
        """Append in a transaction of its own on a pooled connection, in two round trips
        (see ``_append_pipelined``): the connection is switched to autocommit so that
        BEGIN and COMMIT travel with the statements instead of on their own."""
        with autocommit_driver_connection(self.engine) as pg:
            return self._append_pipelined(pg, records, own_transaction=True)

    def _append_pipelined(self, pg: Any, records: list[AuditRecord | Facts],
                          own_transaction: bool) -> tuple[int, str]:
        """Append on a psycopg connection in pipeline mode: the lock and the last record
        in one round trip, then every row of the batch in one statement (a JSON array
        that the server takes apart) and the commit in a second.

        A round trip is what a busy server pays most for: the writer thread waits for
        the interpreter lock after each one. Inserting rows several per statement, as
        on SQLite, cost 33 us of CPU per record on PostgreSQL, half of it the driver
        parsing a statement too long for its cache; the JSON array costs about 1 us.
        """
        with pg.pipeline(), pg.cursor() as cursor:
            if own_transaction:
                cursor.execute("BEGIN")
            cursor.execute(_PG_LOCK)
            cursor.execute(_LAST)
            seq, prev, rows, events, links = self._link(records, cursor.fetchone())
            if rows:
                cursor.execute(_PG_INSERT_FACTS, (orjson.dumps(rows).decode(),))
            if events:
                cursor.executemany(self._insert_event, events)
            if links:
                cursor.execute(_PG_INSERT_LINKS, (orjson.dumps(links).decode(),))
            if own_transaction:
                cursor.execute("COMMIT")
        return seq, prev

    def _link(self, records: list[AuditRecord | Facts], last: Any) -> tuple[
            int, str, list[tuple[int | str, ...]], list[tuple[Any, ...]], list[tuple[str, int]]]:
        """Number and hash ``records`` after ``last`` (the chain's last (seq, hash), None
        for an empty chain): the new head, and the rows of ``audit_log`` (interactions'
        records, others) and of ``audit_patient`` to insert."""
        seq, prev = (int(last[0]), str(last[1])) if last else (0, GENESIS)
        key, keyed = self.key, self._keyed
        rows: list[tuple[int | str, ...]] = []
        events: list[tuple[Any, ...]] = []
        links: list[tuple[str, int]] = []
        for record in records:
            seq += 1
            if type(record) is tuple:
                facts, patients = record[0](record)
            elif record.facts is not None:
                facts, patients = record.facts[0](record.facts)
            else:
                facts = None
            if facts is not None:
                data = orjson.dumps(facts)
                if b"\\u0000" in data:
                    facts = _without_nul(facts)
                    data = orjson.dumps(facts)
                mac = keyed.copy()
                mac.update(f"{prev}|{seq}|f|".encode())
                mac.update(data)
                digest = mac.hexdigest()
                rows.append((seq, *facts, prev, digest))
            else:
                assert isinstance(record, AuditRecord) and record.event is not None
                recorded = time.time_ns() // 1000
                record.event["id"] = str(seq)
                data = orjson.dumps(record.event)  # the hash covers these exact bytes
                action = record.action[:32].replace("\x00", "\ufffd")
                agent = (record.agent or "")[:128].replace("\x00", "\ufffd") or None
                patients = record.patients
                patient = next(iter(patients))[:64] if len(patients) == 1 else None
                digest = event_hash(key, prev, seq, recorded, action, record.outcome, agent,
                                    data)
                events.append((seq, recorded, action, record.outcome, agent, patient, data,
                               prev, digest))
            if len(patients) > 1:
                links += [(p[:64], seq) for p in sorted(patients)]
            prev = digest
        return seq, prev, rows, events, links

    def _insert_facts(self, cursor: Any, rows: list[tuple[int | str, ...]]) -> None:
        """Insert interactions' records on SQLite, several per statement.

        ``executemany`` would step once per row, and the sqlite3 module lets go of the
        interpreter lock around every step: with the request threads waiting for it,
        each row would cost two thread switches. A batch is cut into ``_CHUNKS``, so
        that a few statements, prepared once per connection, serve every batch. (The
        values are integers and strings only: a None, or bytes, goes through the
        sqlite3 module's adaptation machinery, a failed attribute lookup each.)
        """
        most = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_FACT_ROW)
        start = 0
        for size in _CHUNKS:
            if size > most:
                continue
            while len(rows) - start >= size:
                cursor.execute(_facts_insert("?", size),
                               list(itertools.chain.from_iterable(rows[start:start + size])))
                start += size

    def _write_head(self, seq: int, digest: str, force: bool = False) -> None:
        """Keep the newest (seq, hash) outside the database, never going backwards.

        Written at most every ``HEAD_INTERVAL_S`` (and when the writer stops), so that a
        busy trail does not pay a file replacement per batch.
        """
        if self.head_file is None:
            return
        now = time.monotonic()
        if not force and now - self._head_written < HEAD_INTERVAL_S:
            self._head_pending = (seq, digest)
            return
        self._head_written, self._head_pending = now, None
        self.head_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        current = read_head(self.head_file)
        if current is not None and current[0] >= seq:
            return
        tmp = self.head_file.with_name(f".head.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(f"{seq} {digest}\n")
        os.replace(tmp, self.head_file)

    def records(self, after: int = 0, batch: int = 5000) -> Iterator[Any]:
        """Every record in ``seq`` order, read in batches."""
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(select(audit_log).where(audit_log.c.seq > after)
                                    .order_by(audit_log.c.seq).limit(batch)).all()
            if not rows:
                return
            yield from rows
            after = rows[-1].seq

    def events(self, *where: ColumnElement[bool]) -> list[dict[str, Any]]:
        """The AuditEvents of the records that meet ``where`` (columns of ``audit_log``),
        in chain order."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_log).where(*where)
                                .order_by(audit_log.c.seq)).all()
        return [event_of(row) for row in rows]

    def for_patient(self, patient_id: str, limit: int = 200,
                    before: int | None = None) -> list[dict[str, Any]]:
        """AuditEvents about one patient's record, newest first.

        An access to this patient alone has the patient in its own row; an access to
        several patients at once names them in ``audit_patient`` (as every record did
        before the patient had a column).
        """
        direct = select(audit_log).where(audit_log.c.patient == patient_id)
        linked = (select(audit_log)
                  .join(audit_patient, audit_patient.c.seq == audit_log.c.seq)
                  .where(audit_patient.c.patient_id == patient_id))
        if before is not None:
            direct = direct.where(audit_log.c.seq < before)
            linked = linked.where(audit_log.c.seq < before)
        with self.engine.connect() as conn:
            rows = [*conn.execute(direct.order_by(audit_log.c.seq.desc()).limit(limit)),
                    *conn.execute(linked.order_by(audit_log.c.seq.desc()).limit(limit))]
        rows.sort(key=lambda row: row.seq, reverse=True)
        return [event_of(row) for row in rows[:limit]]


def read_head(path: Path) -> tuple[int, str] | None:
    try:
        seq_text, digest = path.read_text().split()
        return int(seq_text), digest
    except (FileNotFoundError, ValueError):
        return None


# --- verification ------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What ``verify`` found: how many records it checked, and each problem."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(chain: AuditChain) -> VerifyReport:
    """Check every record; each problem names the record(s) concerned."""
    report = VerifyReport()
    rows = list(chain.records())
    by_hash = {row.hash: row.seq for row in rows}
    expected_seq, prev = 1, GENESIS
    for row in rows:
        report.checked += 1
        if row.seq > expected_seq:
            missing = (f"record {expected_seq}" if row.seq == expected_seq + 1
                       else f"records {expected_seq} to {row.seq - 1}")
            report.problems.append(f"{missing} removed (the chain jumps to record {row.seq})")
        genuine = chain_hash(chain.key, row.prev_hash, row.seq, row) == row.hash
        if not genuine:
            origin = by_hash.get(row.prev_hash)
            moved = origin is not None and chain_hash(
                chain.key, row.prev_hash, origin + 1, row) == row.hash
            if moved and origin is not None:
                report.problems.append(f"record {row.seq} was written as record {origin + 1}: "
                                       "the records were reordered")
            else:
                report.problems.append(f"record {row.seq} was altered: "
                                       "its content does not match its hash")
        elif row.prev_hash != prev and row.seq == expected_seq:
            report.problems.append(f"record {row.seq} does not follow record {row.seq - 1}: "
                                   "a record before it was removed, replaced or moved")
        expected_seq, prev = row.seq + 1, row.hash
    head = read_head(chain.head_file) if chain.head_file else None
    if head is not None:
        last_seq = rows[-1].seq if rows else 0
        if head[0] > last_seq:
            gone = f"record {head[0]}" if head[0] == last_seq + 1 else \
                f"records {last_seq + 1} to {head[0]}"
            report.problems.append(f"{gone} removed from the end of the trail "
                                   f"(the last record written was {head[0]})")
        elif head[0] in by_hash.values():
            row = next(r for r in rows if r.seq == head[0])
            if row.hash != head[1]:
                report.problems.append(f"record {head[0]} differs from the one written "
                                       "(its hash is not the one kept outside the database)")
    return report
