"""The audit trail's writer: records queued by the threads that serve requests and
appended to the chain (``hygie.security.audit.AuditChain``) in batches.

A transaction per access would cost more than the access, so records are queued and
appended in batches, one transaction each, by the writer thread: what was queued in the
last ``flush_interval_s``, or at once when a batch's worth (``MAX_BATCH``) is waiting.
A record somebody waits for (a write outside a transaction, a sign-in) is appended by
its caller at once, with whatever else is queued: no hand-over to the writer thread
and back.

Nothing is dropped under load, and the queue does not grow without bound: once
``MAX_QUEUED`` records wait (the database takes fewer than the requests make), a thread
that queues one appends the queue before it goes on, waiting for the writer thread if
it is appending, so requests slow down to what the database takes.

Request threads do not append the queue on a timer of their own: that would spare the
hand-overs to the writer thread, but a read on SQLite makes about 0.05 of them, and the
smaller batches would cost more transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hygie.security.audit_events import SUCCESS
from hygie.store.sql_repository import in_transaction

if TYPE_CHECKING:
    from hygie.security.audit import AuditChain

__all__ = ["FLUSH_INTERVAL_S", "MAX_BATCH", "MAX_QUEUED", "WAIT_TIMEOUT_S", "AuditRecord",
           "AuditWriter", "Facts"]

log = logging.getLogger("hygie.security.audit")

#: Longest wait before a queued record is appended.
FLUSH_INTERVAL_S = 0.05
#: Most records appended in one transaction.
MAX_BATCH = 2000
#: Queued records past which a thread that queues one appends the queue first.
MAX_QUEUED = 10 * MAX_BATCH
#: How long a caller that must wait for its record waits at most.
WAIT_TIMEOUT_S = 10.0

#: An interaction's facts as the request queued them: a tuple whose first item, called
#: with the tuple when it is appended, returns ``(FACTS values, patient ids)``. A tuple
#: of plain values, so that a queued access keeps nothing of its request alive.
Facts = tuple[Any, ...]


@dataclass(slots=True)
class AuditRecord:
    """An event waiting to be appended: a whole AuditEvent and who it is about, or an
    interaction's ``facts`` (see ``Facts``) that a caller waits for."""

    event: dict[str, Any] | None
    patients: frozenset[str] = frozenset()
    action: str = ""
    outcome: str = SUCCESS
    agent: str | None = None
    facts: Facts | None = None
    #: Set once the record is committed (for callers that wait).
    done: threading.Event | None = None
    failed: bool = False


class AuditWriter:
    """Appends queued records in batches (see the module docstring)."""

    def __init__(self, chain: AuditChain, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.chain = chain
        self.flush_interval_s = flush_interval_s
        self._pending: deque[AuditRecord | Facts] = deque()
        #: When the oldest queued record was queued (monotonic; infinite: none is).
        self._oldest = float("inf")
        self._cond = threading.Condition(threading.Lock())
        #: Held by the thread that appends: batches go in the order they were taken.
        self._appending = threading.Lock()
        self._urgent = False
        self._thread = threading.Thread(target=self._run, name="hygie-audit", daemon=True)
        self._started = False
        self._closed = False

    def submit(self, record: AuditRecord | Facts, wait: bool = False) -> bool:
        """Queue ``record``; with ``wait``, return once committed (False if it failed).

        An interaction's ``Facts`` are queued as they are (nobody waits for them: to
        wait, wrap them in an ``AuditRecord``).
        """
        if wait:
            assert isinstance(record, AuditRecord), "wrap facts to wait for them"
            record.done = threading.Event()
        now = time.monotonic()
        with self._cond:
            closed = self._closed
            if not closed:
                if not self._started:
                    self._thread.start()
                    self._started = True
                if not self._pending:
                    self._oldest = now
                self._pending.append(record)
                queued = len(self._pending)
        if closed:  # after close (a command ending, a test): written here and now
            self.chain.append([record])
            return True
        # Appending here would wait on the database's write lock that this thread's
        # own transaction may hold (SQLite): the writer thread does it after the commit.
        here = not in_transaction()
        if wait:
            assert isinstance(record, AuditRecord) and record.done is not None
            if here and self._appending.acquire(timeout=WAIT_TIMEOUT_S):
                try:
                    if not record.done.is_set():  # else another thread appended it
                        self._append_queued()
                finally:
                    self._appending.release()
            else:
                self._wake()
            return record.done.wait(WAIT_TIMEOUT_S) and not record.failed
        if queued >= MAX_QUEUED and here:
            with self._appending:  # backpressure: the queue is appended before going on
                self._append_queued()
        elif queued >= MAX_BATCH:
            self._wake()
        return True

    def flush(self, timeout: float = WAIT_TIMEOUT_S) -> bool:
        """Append everything queued so far (False if that took longer than ``timeout``)."""
        if not self._started or self._closed:
            return True
        if not self._appending.acquire(timeout=timeout):
            return False
        try:
            self._append_queued()
            self.chain.write_pending_head()
        finally:
            self._appending.release()
        return True

    def _wake(self) -> None:
        with self._cond:
            self._urgent = True
            self._cond.notify()

    def _append_queued(self) -> None:
        """Append every queued record, in order; the caller holds ``_appending``."""
        with self._cond:
            items = list(self._pending)
            self._pending.clear()
            self._oldest = float("inf")
            self._urgent = False
        for start in range(0, len(items), MAX_BATCH):
            self._write(items[start:start + MAX_BATCH])

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._urgent and not self._closed:
                    wait = self._oldest + self.flush_interval_s - time.monotonic()
                    if wait > 0:
                        self._cond.wait(min(wait, self.flush_interval_s))
                closing = self._closed
                due = (self._urgent or closing
                       or time.monotonic() - self._oldest >= self.flush_interval_s)
                idle = not self._pending
            with self._appending:
                if due:
                    self._append_queued()
                if idle or closing:
                    self.chain.write_pending_head()
            if closing:
                return

    def _write(self, batch: list[AuditRecord | Facts]) -> None:
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
                if isinstance(record, AuditRecord):
                    record.failed = True
        for record in batch:
            if isinstance(record, AuditRecord) and record.done is not None:
                record.done.set()

    def close(self) -> None:
        """Append what is queued, then stop the thread; later records are appended at once."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._started:
            self._thread.join(timeout=30)
