"""What pages, the API and the CLI read: alerts by severity with their history, the
dashboard's counts, and a patient's sessions and messages (no writes here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from hygie.followup import tables as t
from hygie.followup.errors import NotFound
from hygie.followup.model import (
    Alert,
    AlertEvent,
    AlertKind,
    AlertStatus,
    EnrollmentStatus,
    Level,
    SessionStatus,
    SessionView,
)


def alerts(
    engine: Engine,
    status: str | None = "active",
    limit: int = 500,
    enrollment_id: str | None = None,
) -> list[Alert]:
    """Alerts by severity, then oldest first. ``status="active"``: open or
    acknowledged; ``None``: all."""
    q = (
        select(t.alert, t.enrollment.c.patient_name)
        .join(t.enrollment, t.enrollment.c.id == t.alert.c.enrollment_id)
        .order_by(t.alert.c.level.desc(), t.alert.c.raised_ms)
        .limit(limit)
    )
    if status == "active":
        q = q.where(t.alert.c.status != AlertStatus.RESOLVED)
    elif status:
        q = q.where(t.alert.c.status == status)
    if enrollment_id:
        q = q.where(t.alert.c.enrollment_id == enrollment_id)
    with engine.connect() as conn:
        return [alert_of(r) for r in conn.execute(q)]


def alert_of(r: Any, events: tuple[AlertEvent, ...] = ()) -> Alert:
    return Alert(
        id=r.id,
        enrollment_id=r.enrollment_id,
        patient_id=r.patient_id,
        patient_name=r.patient_name,
        session_id=r.session_id,
        kind=AlertKind(r.kind),
        level=Level(r.level),
        reasons=tuple(r.reasons),
        status=AlertStatus(r.status),
        raised_ms=r.raised_ms,
        updated_ms=r.updated_ms,
        escalations=r.escalations,
        escalate_at_ms=r.escalate_at_ms,
        comment=r.comment,
        events=events,
    )


def alert(engine: Engine, alert_id: str) -> Alert:
    with engine.connect() as conn:
        row = conn.execute(
            select(t.alert, t.enrollment.c.patient_name)
            .join(t.enrollment, t.enrollment.c.id == t.alert.c.enrollment_id)
            .where(t.alert.c.id == alert_id)
        ).first()
        if row is None:
            raise NotFound(f"no alert {alert_id!r}")
        events = tuple(
            AlertEvent(e.at_ms, e.kind, e.actor, e.detail)
            for e in conn.execute(
                select(t.alert_event)
                .where(t.alert_event.c.alert_id == alert_id)
                .order_by(t.alert_event.c.id)
            )
        )
    return alert_of(row, events)


def counts(engine: Engine) -> dict[str, int]:
    """Open alerts per level and active enrollments, for the dashboard's header."""
    with engine.connect() as conn:
        levels = dict(
            conn.execute(
                select(t.alert.c.level, func.count())
                .where(t.alert.c.status == AlertStatus.OPEN)
                .group_by(t.alert.c.level)
            ).all()
        )
        active = conn.scalar(
            select(func.count())
            .select_from(t.enrollment)
            .where(t.enrollment.c.status == EnrollmentStatus.ACTIVE)
        )
    return {"active": int(active or 0), **{f"level{k}": int(v) for k, v in levels.items()}}


def sessions(engine: Engine, enrollment_id: str, limit: int = 200) -> list[SessionView]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.session)
            .where(t.session.c.enrollment_id == enrollment_id)
            .order_by(t.session.c.due_ms.desc())
            .limit(limit)
        ).all()
    return [
        SessionView(
            r.id,
            r.due_ms,
            SessionStatus(r.status),
            dict(r.answers or {}),
            r.level,
            bool(r.late),
            r.started_ms,
            r.completed_ms,
        )
        for r in rows
    ]


def answers(engine: Engine, enrollment_id: str, limit: int = 200) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.answer)
            .where(t.answer.c.enrollment_id == enrollment_id)
            .order_by(t.answer.c.received_ms.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "session": r.session_id,
            "question": r.link_id,
            "text": r.text,
            "outcome": r.outcome,
            "received_ms": r.received_ms,
        }
        for r in rows
    ]
