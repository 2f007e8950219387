"""The audit trail: every access becomes a FHIR AuditEvent in an append-only keyed chain.

Each record of ``audit_log`` holds one R4 AuditEvent (https://hl7.org/fhir/R4/auditevent.html)
as canonical JSON, its sequence number, the hash of the record before it, and its own
hash::

    hash(n) = HMAC-SHA256(audit key, hash(n-1) | n | recorded | action | outcome | agent
                                     | event bytes)

The key is derived from the master key, which lives outside the database: someone who
can write to the database but not read the key file cannot rewrite the chain after
changing a record. ``verify`` walks the chain and names each record that was altered
(its hash no longer matches), removed (a gap in the numbers, or a ``prev_hash`` that
points at nothing) or moved (a record whose hash verifies at another position). The
last record written is also kept in ``<var_dir>/audit/head``, so that cutting records
off the end is seen too.

Writing is done by one ``AuditWriter`` thread per process, which appends queued events
in batches, one transaction each, holding the chain's lock (``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL) so that several processes extend one chain.
Reads are not held up by the audit: their events are appended within
``FLUSH_INTERVAL_S``. Writes, sign-ins and emergency accesses wait until their event is
committed before the caller gets an answer (durable before acknowledged).
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from hygie.security.tables import audit_log, audit_patient

log = logging.getLogger("hygie.security.audit")

#: Longest wait before a queued event is written.
FLUSH_INTERVAL_S = 0.05
#: Most events appended in one transaction.
MAX_BATCH = 2000
#: Shortest time between two writes of the head file (the last record, kept outside).
HEAD_INTERVAL_S = 0.5
#: How long a caller that must wait for its event waits at most.
WAIT_TIMEOUT_S = 10.0

GENESIS = "0" * 64

#: The network address of the request being served (set by the authentication middleware).
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("hygie_client_address", default=None)

_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

#: AuditEvent.outcome codes (http://hl7.org/fhir/R4/valueset-audit-event-outcome.html).
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"


# --- events ------------------------------------------------------------------------------


@dataclass
class AuditRecord:
    """An event waiting to be appended: the AuditEvent and who it is about.

    ``build``, when given, makes ``(event, patients)`` in the writer thread, so that a
    request only pays for queueing its facts, not for turning them into an AuditEvent.
    """

    event: dict[str, Any] | None
    patients: frozenset[str] = frozenset()
    action: str = ""
    outcome: str = SUCCESS
    agent: str | None = None
    build: Callable[[], tuple[dict[str, Any], frozenset[str]]] | None = None
    #: Set once the record is committed (for callers that wait).
    done: threading.Event | None = None
    failed: bool = False

    def materialise(self) -> dict[str, Any]:
        if self.event is None:
            assert self.build is not None
            self.event, self.patients = self.build()
        return self.event


def agent_json(principal: Any, address: str | None) -> dict[str, Any]:
    """AuditEvent.agent for the caller: who (FHIR reference or account), and from where."""
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": _PARTICIPATION, "code": "IRCP" if principal is None
                             else "AUT", "display": "author" if principal else "recipient"}]},
        "requestor": True,
    }
    if principal is None:
        agent["who"] = {"display": "anonymous"}
    else:
        fhir_user = getattr(principal, "fhir_user", None)
        who: dict[str, Any] = {"identifier": {"system": "urn:hygie:account",
                                              "value": principal.subject}}
        if fhir_user:
            who["reference"] = fhir_user
        agent["who"] = who
        agent["altId"] = principal.subject
        client_id = getattr(principal, "client_id", None)
        if client_id and client_id != principal.subject:
            agent["name"] = f"client {client_id}"
        roles = sorted(getattr(principal, "roles", ()) or ())
        if roles:
            agent["role"] = [{"text": r} for r in roles]
    if address:
        agent["network"] = {"address": address, "type": "2"}
    return agent


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def instant(us: int) -> str:
    """A FHIR instant (UTC, milliseconds) for epoch microseconds, formatting each second
    once: the audit dates thousands of events a second."""
    return f"{_second(us // 1_000_000)}.{us // 1000 % 1000:03d}Z"


def build_event(*, type_code: tuple[str, str, str], subtype: tuple[str, str, str] | None,
                action: str, outcome: str, description: str | None, principal: Any,
                entities: Iterable[dict[str, Any]] = (), emergency: bool = False,
                address: str | None = None, recorded_us: int | None = None) -> dict[str, Any]:
    """An R4 AuditEvent; ``type_code`` and ``subtype`` are (system, code, display)."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": type_code[0], "code": type_code[1], "display": type_code[2]},
        "action": action,
        "recorded": instant(recorded_us or time.time_ns() // 1000),
        "outcome": outcome,
        "agent": [agent_json(principal, address if address is not None
                             else CLIENT_ADDRESS.get())],
        "source": {"site": "hygie", "observer": {"display": "Hygie"},
                   "type": [{"system": _SOURCE_TYPE, "code": "4",
                             "display": "Application Server"}]},
    }
    if subtype is not None:
        event["subtype"] = [{"system": subtype[0], "code": subtype[1], "display": subtype[2]}]
    if description:
        event["outcomeDesc"] = description[:1000]
    if emergency:
        event["purposeOfEvent"] = [{"coding": [{"system": _ACT_REASON, "code": "BTG",
                                                "display": "break the glass"}]}]
    listed = list(entities)
    if listed:
        event["entity"] = listed
    return event


def entity(reference: str | None = None, *, query: str | None = None,
           description: str | None = None) -> dict[str, Any]:
    """An AuditEvent.entity: a resource by reference, or a search query."""
    out: dict[str, Any] = {}
    if reference:
        out["what"] = {"reference": reference}
        out["type"] = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
    if query is not None:
        out["query"] = base64.b64encode(query.encode()).decode()
        out["type"] = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
    if description:
        out["description"] = description
    return out


REST = (_EVENT_TYPE, "rest", "RESTful Operation")
LOGIN = (_DCM, "110114", "User Authentication")
SECURITY_ALERT = (_DCM, "110113", "Security Alert")
EXPORT = (_DCM, "110106", "Export")
EMERGENCY = (_DCM, "110113", "Security Alert")


def interaction_subtype(code: str) -> tuple[str, str, str]:
    return (_INTERACTION, code, code)


def login_subtype(code: str) -> tuple[str, str, str]:
    return (_DCM, {"login": "110122", "logout": "110123"}[code], code.capitalize())


# --- the chain -------------------------------------------------------------------------------


def chain_hash(key: bytes, prev_hash: str, seq: int, row: Any, event: bytes) -> str:
    """The hash of one record (see the module docstring); ``row`` has the columns."""
    head = f"{prev_hash}|{seq}|{row.recorded}|{row.action}|{row.outcome}|{row.agent or ''}|"
    return hmac.digest(key, head.encode() + event, "sha256").hex()


@dataclass(frozen=True)
class _Columns:
    recorded: int
    action: str
    outcome: str
    agent: str | None


class AuditChain:
    """Appends records to ``audit_log`` and reads them back; one per platform."""

    def __init__(self, engine: Engine, key: bytes, head_file: Path | None = None) -> None:
        self.engine = engine
        self.key = key
        self.head_file = head_file
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._head_written = float("-inf")
        self._head_pending: tuple[int, str] | None = None

    def write_pending_head(self) -> None:
        """Write the head the interval held back, if any."""
        if self._head_pending is not None:
            self._write_head(*self._head_pending, force=True)

    def append(self, records: list[AuditRecord]) -> None:
        """Append ``records`` in one transaction of their own, extending the chain."""
        if not records:
            return
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with conn.begin():
                seq, prev = self._append_on(conn, records)
        self._write_head(seq, prev)

    def append_within(self, conn: Connection, records: list[AuditRecord]) -> None:
        """Append ``records`` in the caller's transaction (a write's own), so that they
        commit or roll back with it. The head file is left to the next ordinary append:
        it must never name a record that a rollback could still take away."""
        if records:
            self._append_on(conn, records)

    def _append_on(self, conn: Connection, records: list[AuditRecord]) -> tuple[int, str]:
        # plain DB-API calls: on the write path every statement's overhead shows
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            if not self.is_sqlite:
                cursor.execute("SELECT pg_advisory_xact_lock(7215469110)")
            cursor.execute(f"SELECT seq, hash FROM {audit_log.name} ORDER BY seq DESC LIMIT 1")
            last = cursor.fetchone()
        finally:
            cursor.close()
        seq, prev = (int(last[0]), str(last[1])) if last else (0, GENESIS)
        rows, links = [], []
        for record in records:
            seq += 1
            recorded = time.time_ns() // 1000
            event = record.materialise()
            event["id"] = str(seq)
            data = orjson.dumps(event)  # the hash covers these exact bytes
            columns = _Columns(recorded, record.action[:32], record.outcome,
                               (record.agent or "")[:128] or None)
            digest = chain_hash(self.key, prev, seq, columns, data)
            rows.append((seq, recorded, columns.action, columns.outcome, columns.agent,
                         data, prev, digest))
            links += [(p[:64], seq) for p in sorted(record.patients)]
            prev = digest
        mark = "?" if self.is_sqlite else "%s"
        cursor = dbapi.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO {audit_log.name} (seq, recorded, action, outcome, agent, "
                f"event, prev_hash, hash) VALUES ({', '.join([mark] * 8)})", rows)
            if links:
                cursor.executemany(f"INSERT INTO {audit_patient.name} (patient_id, seq) "
                                   f"VALUES ({mark}, {mark})", links)
        finally:
            cursor.close()
        return seq, prev

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

    def for_patient(self, patient_id: str, limit: int = 200,
                    before: int | None = None) -> list[dict[str, Any]]:
        """AuditEvents about one patient's record, newest first."""
        query = (select(audit_log.c.event).join(audit_patient,
                                                audit_patient.c.seq == audit_log.c.seq)
                 .where(audit_patient.c.patient_id == patient_id))
        if before is not None:
            query = query.where(audit_log.c.seq < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(audit_log.c.seq.desc()).limit(limit)).all()
        return [orjson.loads(r.event) for r in rows]


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
        data = bytes(row.event)
        if row.seq > expected_seq:
            missing = (f"record {expected_seq}" if row.seq == expected_seq + 1
                       else f"records {expected_seq} to {row.seq - 1}")
            report.problems.append(f"{missing} removed (the chain jumps to record {row.seq})")
        genuine = chain_hash(chain.key, row.prev_hash, row.seq, row, data) == row.hash
        if not genuine:
            origin = by_hash.get(row.prev_hash)
            moved = origin is not None and chain_hash(
                chain.key, row.prev_hash, origin + 1, row, data) == row.hash
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


# --- the writer thread --------------------------------------------------------------------------


class AuditWriter:
    """Appends queued records in batches from one background thread.

    A record that nobody waits for does not wake the thread: it is written with the
    others of the next ``flush_interval_s``. A record somebody waits for (a write, a
    sign-in) wakes it at once, and the whole queue goes in the same transaction.
    """

    def __init__(self, chain: AuditChain, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.chain = chain
        self.flush_interval_s = flush_interval_s
        self._pending: deque[AuditRecord | threading.Event] = deque()
        self._cond = threading.Condition()
        self._urgent = False
        self._thread = threading.Thread(target=self._run, name="hygie-audit", daemon=True)
        self._started = False
        self._closed = False

    def submit(self, record: AuditRecord, wait: bool = False) -> bool:
        """Queue ``record``; with ``wait``, return once committed (False if it failed)."""
        if wait:
            record.done = threading.Event()
        with self._cond:
            closed = self._closed
            if not closed:
                if not self._started:
                    self._thread.start()
                    self._started = True
                self._pending.append(record)
                if wait or len(self._pending) >= MAX_BATCH:
                    self._urgent = True
                    self._cond.notify()
        if closed:  # after close (a command ending, a test): written here and now
            self.chain.append([record])
            return True
        if wait and record.done is not None:
            return record.done.wait(WAIT_TIMEOUT_S) and not record.failed
        return True

    def flush(self, timeout: float = WAIT_TIMEOUT_S) -> bool:
        """Wait until everything queued so far is written (False on timeout)."""
        if not self._started or self._closed:
            return True
        marker = threading.Event()
        with self._cond:
            self._pending.append(marker)
            self._urgent = True
            self._cond.notify()
        return marker.wait(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._urgent and not self._closed:
                    self._cond.wait(self.flush_interval_s)
                items = list(self._pending)
                self._pending.clear()
                self._urgent = False
                closing = self._closed
            batch = [i for i in items if isinstance(i, AuditRecord)]
            for start in range(0, len(batch), MAX_BATCH):
                self._write(batch[start:start + MAX_BATCH])
            if not items or closing or any(isinstance(i, threading.Event) for i in items):
                self.chain.write_pending_head()
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
            if closing:
                return

    def _write(self, batch: list[AuditRecord]) -> None:
        for attempt in range(3):
            try:
                self.chain.append(batch)
                break
            except Exception as exc:  # the trail must survive a busy or restarted database
                log.error("audit append failed (attempt %d): %s", attempt + 1,
                          type(exc).__name__)
                time.sleep(0.2 * (attempt + 1))
        else:
            for record in batch:
                record.failed = True
        for record in batch:
            if record.done is not None:
                record.done.set()

    def close(self) -> None:
        """Write what is queued, then stop the thread; later records are written at once."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._started:
            self._thread.join(timeout=30)
