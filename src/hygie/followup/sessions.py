"""Conversations at scale, in the database: sessions started in waves, batches of
answers, due timers.

Each function runs one transaction over many sessions: it loads the rows it needs with
a few ``IN`` queries (locked ``FOR UPDATE`` on PostgreSQL; SQLite's writer holds the
database lock), runs the state machine of ``conversation.py`` on each, and writes the
results back with ``executemany``: the session rows, the messages to hand over, the
resources for the store and the alerts, all in the same commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from hygie.channels import Answer
from hygie.followup import alerts as al
from hygie.followup import conversation as cv
from hygie.followup import tables as t
from hygie.followup.enrollments import overrides_of
from hygie.followup.fhir import project, response_resource
from hygie.followup.model import AlertKind, EnrollmentStatus, Level, SessionStatus
from hygie.followup.outgoing import Outgoing, queue
from hygie.followup.protocols import effective_rules
from hygie.followup.schedule import next_session_ms
from hygie.followup.transactions import chunks, insert_rows

if TYPE_CHECKING:
    from hygie.followup.engine import FollowupService

log = logging.getLogger("hygie.followup")
#: Owners of follow-up conversations start with this (``followup:<enrollment id>``).
OWNER_PREFIX = "followup:"


def patient_of(row: Any) -> cv.Patient:
    return cv.Patient(row.id, row.patient_id, row.phone, row.language)


SESSION_UPDATE = (
    update(t.session)
    .where(t.session.c.id == bindparam("b_id"))
    .values(
        {
            c: bindparam(f"b_{c}")
            for c in (
                "status",
                "position",
                "attempt",
                "reminded",
                "missing_alerted",
                "asked_ms",
                "timer_ms",
                "timer_kind",
                "answers",
                "level",
                "late",
                "completed_ms",
                "rev",
            )
        }
    )
)


def session_params(state: cv.SessionState) -> dict[str, Any]:
    row = state.as_row()
    return {
        "b_id": state.id,
        **{
            f"b_{k}": row[k]
            for k in (
                "status",
                "position",
                "attempt",
                "reminded",
                "missing_alerted",
                "asked_ms",
                "timer_ms",
                "timer_kind",
                "answers",
                "level",
                "late",
                "completed_ms",
            )
        },
        "b_rev": state.rev + 1,
    }


def take_answers(service: FollowupService, answers: Sequence[Answer]) -> bool:
    """Process a batch of replies (the channels batch handler): one transaction, which
    also marks them handled in the inbox (hence True)."""
    mine = [a for a in answers if a.owner.startswith(OWNER_PREFIX)]
    if not mine:
        return False
    protocols = service.protocol_map()
    notifier = service.notifier
    stopped: list[str] = []
    with service.writing() as conn:
        ids = [a.id for a in mine]
        known: set[str] = set()
        for part in chunks(ids):
            known.update(conn.scalars(select(t.answer.c.id).where(t.answer.c.id.in_(part))))
        eids = sorted({a.owner[len(OWNER_PREFIX) :] for a in mine})
        enrollments: dict[str, Any] = {}
        for part in chunks(eids):
            for row in conn.execute(
                select(t.enrollment).where(t.enrollment.c.id.in_(part)).with_for_update()
            ):
                enrollments[row.id] = row
        sids = sorted({r.current_session for r in enrollments.values() if r.current_session})
        sessions: dict[str, cv.SessionState] = {}
        for part in chunks(sids):
            for row in conn.execute(
                select(t.session).where(t.session.c.id.in_(part)).with_for_update()
            ):
                sessions[row.id] = cv.SessionState.from_row(row)
        answer_rows: list[dict[str, Any]] = []
        dirty: dict[str, cv.SessionState] = {}
        messages: list[Outgoing] = []
        resources: list[dict[str, Any]] = []
        raised: list[al.AlertRequest] = []
        for a in mine:
            if a.id in known:
                continue
            known.add(a.id)
            eid = a.owner[len(OWNER_PREFIX) :]
            e = enrollments.get(eid)
            row = {
                "id": a.id,
                "enrollment_id": eid,
                "session_id": None,
                "link_id": None,
                "text": a.text[:2000],
                "outcome": "ignored",
                "received_ms": a.received_ms,
            }
            answer_rows.append(row)
            if e is None or e.status != EnrollmentStatus.ACTIVE or eid in stopped:
                continue
            protocol = protocols.get(e.protocol_id)
            if protocol is None:
                continue
            if a.value == "STOP":
                row["outcome"] = "stop"
                pending = dirty.pop(e.current_session, None) if e.current_session else None
                if pending is not None:  # answers earlier in this batch: written first
                    conn.execute(SESSION_UPDATE, [session_params(pending)])
                service.close_enrollment(
                    conn,
                    e,
                    EnrollmentStatus.STOPPED,
                    "le patient a répondu STOP",
                    service.clock(),
                )
                al.raise_alert(
                    conn,
                    notifier,
                    protocol,
                    e,
                    None,
                    AlertKind.STOPPED,
                    Level.WARNING,
                    ["Le patient a répondu STOP : plus aucun message ne lui est envoyé"],
                    service.clock(),
                )
                stopped.append(eid)
                continue
            state = sessions.get(e.current_session) if e.current_session else None
            now = service.clock()
            if e.overrides:
                overrides = overrides_of(e.overrides)
                rules = effective_rules(protocol, overrides.rules, overrides.removed)
            else:
                rules = protocol.rules
            effects = cv.take_answer(protocol, rules, state, patient_of(e), a.text, now)
            row["outcome"] = effects.outcome
            row["link_id"] = effects.link_id
            if state is not None:
                row["session_id"] = state.id
                if effects.outcome != "unsolicited":
                    dirty[state.id] = state
            messages.extend(effects.messages)
            resources.extend(effects.resources)
            raised.extend(
                al.AlertRequest(protocol, e, state.id if state is not None else None, k, lv, why)
                for k, lv, why in effects.alerts
            )
        al.raise_alerts(conn, notifier, raised, service.clock())
        if answer_rows:
            insert_rows(conn, t.answer, answer_rows)
        if dirty:
            conn.execute(SESSION_UPDATE, [session_params(s) for s in dirty.values()])
        now = service.clock()
        if stopped:  # what earlier answers of the batch asked of them is not sent
            messages = [m for m in messages if m.enrollment_id not in stopped]
        queue(conn, messages, now)
        project(conn, resources, now)
        service.channels.mark_handled(conn, answers)
    if stopped:
        service.cancel_outbox(stopped, "opted out (STOP)")
    try:
        service.hand_over_pending()
    except Exception as exc:  # the worker hands them over on its next pass
        log.warning("follow-up hand-over deferred: %s", type(exc).__name__)
    return True


def start_due(service: FollowupService, chunk: int) -> int:
    """One chunk of due sessions; -1 when nothing was due."""
    now = service.clock()
    protocols = service.protocol_map()
    with service.writing() as conn:
        q = (
            select(t.enrollment)
            .where(
                t.enrollment.c.status == EnrollmentStatus.ACTIVE,
                t.enrollment.c.next_due_ms <= now,
            )
            .order_by(t.enrollment.c.next_due_ms)
            .limit(chunk)
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = conn.execute(q).all()
        if not rows:
            return -1
        # A session still open when the next one falls due is closed as missed; its
        # response, if it has answers, is recorded as stopped.
        previous = [r.current_session for r in rows if r.current_session]
        by_id = {r.id: r for r in rows}
        stopped_responses = []
        for part in chunks(previous):
            still_open = [
                (sid, eid, answers)
                for sid, eid, answers in conn.execute(
                    select(t.session.c.id, t.session.c.enrollment_id, t.session.c.answers).where(
                        t.session.c.id.in_(part),
                        t.session.c.status == SessionStatus.IN_PROGRESS,
                    )
                )
            ]
            if not still_open:
                continue
            conn.execute(
                update(t.session)
                .where(
                    t.session.c.id.in_([sid for sid, _e, _a in still_open]),
                    t.session.c.status == SessionStatus.IN_PROGRESS,
                )
                .values(status=SessionStatus.MISSED, timer_ms=None, timer_kind=None)
            )
            for sid, eid, answers in still_open:
                e = by_id[eid]
                protocol = protocols.get(e.protocol_id)
                if answers and protocol is not None:
                    stopped_responses.append(
                        response_resource(
                            sid, e.patient_id, protocol, dict(answers), "stopped", now, e.language
                        )
                    )
        project(conn, stopped_responses, now)
        sessions, moves, messages = [], [], []
        started = 0
        for e in rows:
            protocol = protocols.get(e.protocol_id)
            overrides = overrides_of(e.overrides)
            due = e.next_due_ms
            if protocol is None:
                moves.append({"id": e.id, "due": due, "next": None, "started": False})
                continue
            start, end = date.fromisoformat(e.start_date), date.fromisoformat(e.end_date)
            times = overrides.times or protocol.schedule.times
            on_days = (
                overrides.on_days if overrides.on_days is not None else protocol.schedule.on_days
            )
            following = next_session_ms(max(due, now), start, end, times, on_days)
            if now - due > protocol.timing.expire_after_min * 60_000 or due >= e.end_ms:
                # The server was down past this session's window: do not send it late.
                moves.append({"id": e.id, "due": due, "next": following, "started": False})
                continue
            state = cv.SessionState(
                id=f"{e.id}-{due}",
                enrollment_id=e.id,
                due_ms=due,
                status=SessionStatus.IN_PROGRESS,
                position=0,
                attempt=0,
                reminded=False,
                missing_alerted=False,
                asked_ms=None,
                timer_ms=None,
                timer_kind=None,
                answers={},
                level=0,
                late=False,
                started_ms=now,
                completed_ms=None,
                rev=0,
            )
            effects = cv.start(protocol, state, patient_of(e), now)
            messages.extend(effects.messages)
            sessions.append(state.as_row())
            moves.append({"id": e.id, "due": due, "next": following, "started": True})
            started += 1
        if sessions:
            insert_rows(conn, t.session, sessions)
        # Most of a wave shares its due time and its next one: one UPDATE per pair.
        groups: dict[tuple[int, int | None, bool], list[str]] = {}
        for move in moves:
            groups.setdefault((move["due"], move["next"], move["started"]), []).append(move["id"])
        for (due, following, began), ids in groups.items():
            values: dict[str, Any] = {"next_due_ms": following}
            if began:
                values["current_session"] = t.enrollment.c.id + f"-{due}"
            for part in chunks(ids):
                conn.execute(
                    update(t.enrollment).where(t.enrollment.c.id.in_(part)).values(**values)
                )
        queue(conn, messages, now)
    return started


def fire_due(service: FollowupService, limit: int = 500) -> int:
    """Reminders, missing-answer alerts and closings that are due; returns how many."""
    now = service.clock()
    protocols = service.protocol_map()
    notifier = service.notifier
    with service.writing() as conn:
        rows = conn.execute(
            select(t.session)
            .where(t.session.c.status == SessionStatus.IN_PROGRESS, t.session.c.timer_ms <= now)
            .order_by(t.session.c.timer_ms)
            .limit(limit)
            .with_for_update()
        ).all()
        if not rows:
            return 0
        eids = sorted({r.enrollment_id for r in rows})
        enrollments = {}
        for part in chunks(eids):
            for e in conn.execute(select(t.enrollment).where(t.enrollment.c.id.in_(part))):
                enrollments[e.id] = e
        updates, messages, resources = [], [], []
        raised: list[al.AlertRequest] = []
        for row in rows:
            state = cv.SessionState.from_row(row)
            e = enrollments.get(row.enrollment_id)
            protocol = protocols.get(e.protocol_id) if e is not None else None
            if e is None or protocol is None or e.status != EnrollmentStatus.ACTIVE:
                state.status = SessionStatus.CANCELLED
                state.timer_ms = state.timer_kind = None
                updates.append(session_params(state))
                continue
            effects = cv.fire_timer(protocol, state, patient_of(e), now)
            messages.extend(effects.messages)
            resources.extend(effects.resources)
            raised.extend(
                al.AlertRequest(protocol, e, state.id, k, lv, why) for k, lv, why in effects.alerts
            )
            updates.append(session_params(state))
        al.raise_alerts(conn, notifier, raised, now)
        conn.execute(SESSION_UPDATE, updates)
        queue(conn, messages, now)
        project(conn, resources, now)
    return len(rows)
