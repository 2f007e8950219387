"""Persisted timers: reminders and offer expiries are rows, so a restart loses none.

A job is run in one write transaction together with what it does (queue the reminder
messages, pass an offer on) and its own ``done`` mark, so it runs exactly once even if
the process dies mid-way. Reminders go the day before at 18:00 local time and two hours
before; both are computed in the agenda's zone, so a daylight-saving change between
booking and appointment does not move them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.availability import local_instant, parse_hhmm
from hygie.scheduling.model import to_local
from hygie.scheduling.transactions import writing

#: Local time of the reminder sent the day before.
DAY_BEFORE_AT = "18:00"
#: Lead time of the second reminder, in seconds.
SHORT_LEAD_S = 2 * 3600


_INSERT_JOB = insert(t.job)


def _job_row(kind: str, due_utc: int, payload: dict[str, Any],
             booking_id: str | None) -> dict[str, Any]:
    return {"kind": kind, "due_utc": due_utc, "booking_id": booking_id,
            "payload": orjson.dumps(payload).decode(), "status": "due", "attempts": 0}


def schedule(conn: Connection, kind: str, due_utc: int, payload: dict[str, Any],
             booking_id: str | None = None) -> None:
    conn.execute(_INSERT_JOB, _job_row(kind, due_utc, payload, booking_id))


def reminder_times(start_utc: int, zone: ZoneInfo) -> list[tuple[str, int]]:
    """The reminders of an appointment: ``("day-before", t)`` and ``("two-hours", t)``."""
    day_before = to_local(start_utc, zone).date() - timedelta(days=1)
    return [("day-before", local_instant(day_before, parse_hhmm(DAY_BEFORE_AT), zone)),
            ("two-hours", start_utc - SHORT_LEAD_S)]


def schedule_reminders(conn: Connection, booking_id: str, start_utc: int, zone: ZoneInfo,
                       now: int) -> int:
    """Plan the reminders of a booking that are still ahead; returns how many."""
    rows = [_job_row("reminder", due, {"which": which, "start": start_utc}, booking_id)
            for which, due in reminder_times(start_utc, zone) if now < due < start_utc]
    if rows:
        conn.execute(_INSERT_JOB, rows)
    return len(rows)


def cancel_for_booking(conn: Connection, booking_id: str) -> None:
    conn.execute(update(t.job).where(t.job.c.booking_id == booking_id,
                                     t.job.c.status == "due").values(status="cancelled"))


#: Runs one job inside its transaction: (connection, booking id, payload, now).
Runner = Callable[[Connection, str | None, dict[str, Any], int], None]


def run_due(engine: Engine, runners: dict[str, Runner], now: int, limit: int = 200) -> int:
    """Run the jobs due by ``now``, each in its own transaction; returns how many ran."""
    with engine.connect() as conn:
        ids = conn.execute(select(t.job.c.id).where(t.job.c.status == "due",
                                                    t.job.c.due_utc <= now)
                           .order_by(t.job.c.due_utc, t.job.c.id).limit(limit)).scalars().all()
    ran = 0
    for job_id in ids:
        try:
            with writing(engine) as conn:
                row = conn.execute(select(t.job).where(t.job.c.id == job_id,
                                                       t.job.c.status == "due")).first()
                if row is None:  # another runner took it
                    continue
                runners[row.kind](conn, row.booking_id, orjson.loads(row.payload), now)
                conn.execute(update(t.job).where(t.job.c.id == job_id).values(
                    status="done", attempts=row.attempts + 1))
            ran += 1
        except Exception as exc:  # recorded on the job; the others still run
            with writing(engine) as conn:
                attempts = conn.execute(select(t.job.c.attempts).where(
                    t.job.c.id == job_id)).scalar_one() + 1
                conn.execute(update(t.job).where(t.job.c.id == job_id).values(
                    attempts=attempts, last_error=f"{type(exc).__name__}: {exc}"[:500],
                    status="failed" if attempts >= 5 else "due",
                    due_utc=now + 60 * attempts))
    return ran


def pending_jobs(conn: Connection, booking_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(t.job).where(t.job.c.booking_id == booking_id)
                        .order_by(t.job.c.due_utc))
    return [{"kind": r.kind, "due_utc": r.due_utc, "status": r.status,
             **orjson.loads(r.payload)} for r in rows]
