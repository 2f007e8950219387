"""Alerts: raised by answers, silence, distress, STOP or home devices; told to the team
on duty; escalated while nobody acknowledges them; closed by a clinician.

An alert is one row of ``followup_alert`` (with its history in ``followup_alert_event``)
and one FHIR ``Flag`` in the store. Its id is fixed by what raised it (the session and
the kind: ``<session>-clinical``), so that a second worse answer in the same session
raises the same alert higher instead of a second one, and a repeated pass raises
nothing twice. Raising it higher re-opens it and tells the team again.

Notifications are messages of the channels outbox (SMS or e-mail, as the protocol says)
to the members of the enrollment's CareTeam on duty (``team.py``). They say the level
and give the link to the alert, and nothing else: an SMS is no place for a diagnosis.
An alert still open ``escalate_after_min[level]`` minutes later is escalated: every
member of the team and its own line are told, at most ``max_escalations`` times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from hygie.followup import tables as t
from hygie.followup.errors import Conflict, NotFound
from hygie.followup.fhir import flag_resource, project
from hygie.followup.model import AlertKind, AlertStatus, Level, Protocol
from hygie.followup.outgoing import Outgoing, queue
from hygie.followup.team import Contact, TeamDirectory
from hygie.followup.transactions import insert_rows

log = logging.getLogger("hygie.followup")

KIND_LABELS = {
    AlertKind.CLINICAL: "réponses inquiétantes",
    AlertKind.MISSING: "absence de réponse",
    AlertKind.UNCLEAR: "réponse non comprise",
    AlertKind.DISTRESS: "message de détresse",
    AlertKind.STOPPED: "le patient a répondu STOP",
    AlertKind.DEVICE: "mesure d'un appareil à domicile",
}


@dataclass(frozen=True)
class Notifier:
    """What raising an alert needs besides the database: the teams and the links."""

    teams: TeamDirectory
    base_url: str
    default_team: str | None = None

    def link(self, alert_id: str) -> str:
        return f"{self.base_url}/followup/alerts/{alert_id}"


def _event(
    conn: Connection,
    alert_id: str,
    kind: str,
    now: int,
    actor: str | None = None,
    detail: str | None = None,
) -> None:
    conn.execute(
        insert(t.alert_event).values(
            alert_id=alert_id,
            at_ms=now,
            kind=kind,
            actor=actor,
            detail=(detail or None) and detail[:500],
        )
    )


def _escalate_at(protocol: Protocol, level: Level, escalations: int, now: int) -> int | None:
    minutes = protocol.timing.escalate_after_min.get(int(level), 0)
    if not minutes or escalations >= protocol.timing.max_escalations:
        return None
    return now + minutes * 60_000


def _messages(
    notifier: Notifier,
    protocol: Protocol,
    alert_id: str,
    level: Level,
    kind: AlertKind,
    contacts: list[Contact],
    round_: str,
    escalation: int = 0,
) -> list[Outgoing]:
    head = f"ESCALADE {escalation} - " if escalation else ""
    text = (
        f"Hygie suivi à domicile : {head}alerte {level.label} ({KIND_LABELS[kind]}) pour "
        f"un patient suivi. Ouvrir : {notifier.link(alert_id)}"
    )
    out = []
    for contact in contacts:
        channel = protocol.notify
        address = contact.email if channel == "email" else contact.phone
        if not address:  # the other channel rather than nobody
            channel = "sms" if channel == "email" else "email"
            address = contact.phone if channel == "sms" else contact.email
        if not address:
            continue
        out.append(
            Outgoing(
                key=f"followup:alert:{alert_id}:{round_}:{contact.ref}"[:160],
                owner=f"followup-team:{alert_id}"[:80],
                recipient=address,
                text=text,
                channel=channel,
                recipient_ref=contact.ref,
                subject=f"[Hygie] Alerte {level.label} - suivi à domicile"
                if channel == "email"
                else None,
            )
        )
    return out


def team_of(notifier: Notifier, team_id: str | None) -> Any:
    wanted = team_id or notifier.default_team
    return notifier.teams.get(wanted) if wanted else None


@dataclass(frozen=True)
class AlertRequest:
    """An alert to raise: for which enrollment (a ``followup_enrollment`` row) and
    session, of which kind and level, and why."""

    protocol: Protocol
    enrollment: Any
    session_id: str | None
    kind: AlertKind
    level: Level
    reasons: list[str]


_UPDATE_ALERT = (
    update(t.alert)
    .where(t.alert.c.id == bindparam("b_id"))
    .values(
        level=bindparam("b_level"),
        reasons=bindparam("b_reasons"),
        status=bindparam("b_status"),
        updated_ms=bindparam("b_updated"),
        escalate_at_ms=bindparam("b_escalate"),
        escalations=bindparam("b_escalations"),
        resolved_ms=bindparam("b_resolved"),
        resolved_by=bindparam("b_resolved_by"),
    )
)


def alert_id_for(request: AlertRequest, now: int) -> str:
    anchor = request.session_id or f"{request.enrollment.id}-{now}"
    return f"{anchor}-{request.kind}"[:80]


def raise_alerts(
    conn: Connection, notifier: Notifier, requests: list[AlertRequest], now: int
) -> list[str]:
    """Raise alerts (or raise them higher) and tell the teams on duty, in a few
    statements for the whole list; returns their ids.

    An alert already open at the same or a higher level only gains the new reasons; a
    higher level (or an alert resolved since) re-opens it, restarts its escalation and
    tells the team again.
    """
    if not requests:
        return []
    ids = [alert_id_for(r, now) for r in requests]
    current: dict[str, dict[str, Any]] = {}
    unique = sorted(set(ids))
    for i in range(0, len(unique), 500):
        for row in conn.execute(
            select(t.alert).where(t.alert.c.id.in_(unique[i : i + 500])).with_for_update()
        ):
            current[row.id] = dict(row._mapping)
    new: dict[str, dict[str, Any]] = {}
    changed: set[str] = set()
    events: list[dict[str, Any]] = []
    told: list[tuple[AlertRequest, str, Level]] = []
    for request, alert_id in zip(requests, ids, strict=True):
        row = new.get(alert_id) or current.get(alert_id)
        level = request.level
        if row is None:
            row = {
                "id": alert_id,
                "enrollment_id": request.enrollment.id,
                "patient_id": request.enrollment.patient_id,
                "session_id": request.session_id,
                "hospital": request.enrollment.hospital,
                "kind": str(request.kind),
                "level": int(level),
                "reasons": list(dict.fromkeys(request.reasons)),
                "status": AlertStatus.OPEN,
                "raised_ms": now,
                "updated_ms": now,
                "escalate_at_ms": _escalate_at(request.protocol, level, 0, now),
                "escalations": 0,
                "resolved_ms": None,
                "resolved_by": None,
            }
            new[alert_id] = row
        else:
            merged = list(dict.fromkeys([*row["reasons"], *request.reasons]))
            if level <= row["level"] and row["status"] != AlertStatus.RESOLVED:
                if merged != row["reasons"]:
                    row.update(reasons=merged, updated_ms=now)
                    changed.add(alert_id)
                continue
            level = Level(max(level, row["level"]))
            row.update(
                level=int(level),
                reasons=merged,
                status=AlertStatus.OPEN,
                updated_ms=now,
                escalate_at_ms=_escalate_at(request.protocol, level, 0, now),
                escalations=0,
                resolved_ms=None,
                resolved_by=None,
            )
            changed.add(alert_id)
        events.append(
            {
                "alert_id": alert_id,
                "at_ms": now,
                "kind": "raised",
                "actor": None,
                "detail": f"niveau {int(level)} : {'; '.join(request.reasons)}"[:500],
            }
        )
        told.append((request, alert_id, level))
    if new:
        insert_rows(conn, t.alert, list(new.values()))
    updates = [current[a] for a in changed if a not in new]
    if updates:
        conn.execute(
            _UPDATE_ALERT,
            [
                {
                    "b_id": r["id"],
                    "b_level": r["level"],
                    "b_reasons": r["reasons"],
                    "b_status": r["status"],
                    "b_updated": r["updated_ms"],
                    "b_escalate": r["escalate_at_ms"],
                    "b_escalations": r["escalations"],
                    "b_resolved": r["resolved_ms"],
                    "b_resolved_by": r["resolved_by"],
                }
                for r in updates
            ],
        )
    flags = [
        flag_resource(
            r["id"],
            r["patient_id"],
            r["kind"],
            Level(r["level"]),
            r["reasons"],
            r["raised_ms"],
            None,
        )
        for r in [*new.values(), *updates]
    ]
    project(conn, flags, now)
    messages: list[Outgoing] = []
    for request, alert_id, level in told:
        team = team_of(notifier, request.enrollment.team_id)
        contacts = team.on_duty(now) if team is not None else []
        sent = _messages(
            notifier, request.protocol, alert_id, level, request.kind, contacts, f"l{int(level)}"
        )
        messages.extend(sent)
        events.append(
            {
                "alert_id": alert_id,
                "at_ms": now,
                "kind": "notified",
                "actor": None,
                "detail": f"{len(sent)} destinataire(s) de garde"
                if sent
                else "aucune équipe à prévenir",
            }
        )
    queue(conn, messages, now)
    if events:
        insert_rows(conn, t.alert_event, events)
    return ids


def raise_alert(
    conn: Connection,
    notifier: Notifier,
    protocol: Protocol,
    enrollment: Any,
    session_id: str | None,
    kind: AlertKind,
    level: Level,
    reasons: list[str],
    now: int,
) -> str:
    """Raise one alert (see :func:`raise_alerts`); returns its id."""
    return raise_alerts(
        conn,
        notifier,
        [AlertRequest(protocol, enrollment, session_id, kind, level, reasons)],
        now,
    )[0]


def escalate_due(
    conn: Connection, notifier: Notifier, protocols: dict[str, Protocol], now: int, limit: int = 200
) -> int:
    """Escalate the open alerts whose escalation time has come; returns how many."""
    rows = conn.execute(
        select(t.alert, t.enrollment.c.team_id, t.enrollment.c.protocol_id)
        .join(t.enrollment, t.enrollment.c.id == t.alert.c.enrollment_id)
        .where(t.alert.c.status == AlertStatus.OPEN, t.alert.c.escalate_at_ms <= now)
        .order_by(t.alert.c.escalate_at_ms)
        .limit(limit)
        .with_for_update(of=t.alert)
    ).all()
    for row in rows:
        protocol = protocols.get(row.protocol_id)
        if protocol is None:
            continue
        count = row.escalations + 1
        level = Level(row.level)
        team = team_of(notifier, row.team_id)
        contacts = team.everyone() if team is not None else []
        messages = _messages(
            notifier,
            protocol,
            row.id,
            level,
            AlertKind(row.kind),
            contacts,
            f"e{count}",
            escalation=count,
        )
        queue(conn, messages, now)
        conn.execute(
            update(t.alert)
            .where(t.alert.c.id == row.id)
            .values(
                escalations=count,
                updated_ms=now,
                escalate_at_ms=_escalate_at(protocol, level, count, now),
            )
        )
        _event(
            conn,
            row.id,
            "escalated",
            now,
            detail=f"escalade {count} : {len(messages)} destinataire(s)",
        )
    return len(rows)


def acknowledge(conn: Connection, alert_id: str, actor: str, now: int) -> None:
    row = conn.execute(select(t.alert).where(t.alert.c.id == alert_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    if row.status == AlertStatus.RESOLVED:
        raise Conflict("this alert is resolved already")
    if row.status == AlertStatus.ACKNOWLEDGED:
        return
    conn.execute(
        update(t.alert)
        .where(t.alert.c.id == alert_id)
        .values(
            status=AlertStatus.ACKNOWLEDGED,
            acknowledged_ms=now,
            acknowledged_by=actor,
            escalate_at_ms=None,
            updated_ms=now,
        )
    )
    _event(conn, alert_id, "acknowledged", now, actor)


def resolve(conn: Connection, alert_id: str, actor: str, comment: str, now: int) -> None:
    row = conn.execute(select(t.alert).where(t.alert.c.id == alert_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    if row.status == AlertStatus.RESOLVED:
        raise Conflict("this alert is resolved already")
    conn.execute(
        update(t.alert)
        .where(t.alert.c.id == alert_id)
        .values(
            status=AlertStatus.RESOLVED,
            resolved_ms=now,
            resolved_by=actor,
            comment=comment,
            escalate_at_ms=None,
            updated_ms=now,
            acknowledged_ms=row.acknowledged_ms or now,
            acknowledged_by=row.acknowledged_by or actor,
        )
    )
    _event(conn, alert_id, "resolved", now, actor, comment)
    project(
        conn,
        [
            flag_resource(
                alert_id,
                row.patient_id,
                row.kind,
                Level(row.level),
                list(row.reasons),
                row.raised_ms,
                now,
            )
        ],
        now,
    )


def record_call(
    conn: Connection, alert_id: str, actor: str, now: int, detail: str | None = None
) -> None:
    """A clinician called the patient about this alert (acknowledges it)."""
    row = conn.execute(select(t.alert.c.status).where(t.alert.c.id == alert_id)).first()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    if row.status == AlertStatus.OPEN:
        acknowledge(conn, alert_id, actor, now)
    _event(conn, alert_id, "called", now, actor, detail)
