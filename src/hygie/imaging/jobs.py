"""The durable queue of quantifications: one row per chest CT series in ``imaging_job``.

A series is queued when its instances arrive and becomes *due* ``stable_s`` seconds
after the last one (each arrival pushes the date back). A worker thread claims due
jobs one at a time (pending -> running with a conditional update, so two workers never
run the same job), runs them and records the result or the error; a failed job is
retried later, three times at most. At start, jobs left running by a stopped process
go back to pending: a restart loses no work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Engine, select, update

from hygie.imaging import tables
from hygie.imaging.archive import now_us

__all__ = ["JobQueue"]

log = logging.getLogger("hygie.imaging")

MAX_ATTEMPTS = 3
RETRY_AFTER_S = 60.0


class JobQueue:
    """Queue and worker; ``run`` is the function that quantifies one series."""

    def __init__(self, engine: Engine, *, stable_s: float,
                 run: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.engine = engine
        self.stable_s = stable_s
        self.run = run
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue(self, series_uid: str, study_uid: str) -> None:
        """Queue (or push back) the quantification of a series."""
        now = now_us()
        due = now + int(self.stable_s * 1e6)
        t = tables.job
        statement = tables.insert_for(self.engine, t).values(
            series_uid=series_uid, study_uid=study_uid, state="pending", due_at=due,
            attempts=0, updated_at=now)
        with self.engine.begin() as conn:
            # A running job is left alone (it will see the series as it was when it
            # started); any other state becomes pending again, due later.
            conn.execute(statement.on_conflict_do_update(
                index_elements=["series_uid"],
                set_={"state": "pending", "due_at": due, "attempts": 0, "error": None,
                      "updated_at": now},
                where=t.c.state != "running"))
        self._wake.set()

    def recover(self) -> int:
        """Put back jobs a stopped process left running; returns how many."""
        t = tables.job
        with self.engine.begin() as conn:
            return conn.execute(update(t).where(t.c.state == "running")
                                .values(state="pending", updated_at=now_us())).rowcount

    def claim(self, now: int | None = None) -> Any | None:
        """Take the next due job (pending -> running), or None."""
        now = now_us() if now is None else now
        t = tables.job
        with self.engine.connect() as conn, \
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE").begin():
            row = conn.execute(select(t).where(t.c.state == "pending", t.c.due_at <= now)
                               .order_by(t.c.due_at).limit(1)).first()
            if row is None:
                return None
            done = conn.execute(update(t).where(t.c.pk == row.pk, t.c.state == "pending")
                                .values(state="running", attempts=row.attempts + 1,
                                        updated_at=now))
            return row if done.rowcount == 1 else None

    def run_due(self, now: int | None = None) -> int:
        """Run every due job now, in this thread; returns how many ran."""
        count = 0
        while (job := self.claim(now)) is not None:
            self._execute(job)
            count += 1
        return count

    def _execute(self, job: Any) -> None:
        t = tables.job
        assert self.run is not None
        try:
            result = self.run(job.series_uid)
        except Exception as exc:  # recorded on the job, retried, never kills the worker
            log.warning("quantification of a series failed: %s", type(exc).__name__)
            attempts = job.attempts + 1
            state = "failed" if attempts >= MAX_ATTEMPTS else "pending"
            with self.engine.begin() as conn:
                conn.execute(update(t).where(t.c.pk == job.pk).values(
                    state=state, error=f"{type(exc).__name__}: {exc}"[:2000],
                    due_at=now_us() + int(RETRY_AFTER_S * 1e6), updated_at=now_us()))
            return
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.pk == job.pk, t.c.state == "running").values(
                state="done", error=None, result=orjson.dumps(result["figures"]).decode(),
                seg_instance_uid=result.get("seg_uid"), report_id=result.get("report_id"),
                updated_at=now_us()))

    def get(self, series_uid: str) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(select(tables.job)
                                .where(tables.job.c.series_uid == series_uid)).first()

    def for_study(self, study_uid: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(tables.job)
                                     .where(tables.job.c.study_uid == study_uid)))

    # --- worker ----------------------------------------------------------------------

    def start(self, poll_s: float = 2.0) -> None:
        """Start the worker thread (once)."""
        if self._thread is not None:
            return
        self.recover()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_due()
                except Exception:  # a database hiccup: log, wait, go on
                    log.exception("imaging job worker")
                self._wake.wait(poll_s)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="imaging-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
