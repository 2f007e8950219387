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

from sqlalchemy import Connection, insert, select, update

from hygie.followup import tables as t
from hygie.followup.errors import Conflict, NotFound
from hygie.followup.fhir import flag_resource, project
from hygie.followup.model import AlertKind, AlertStatus, Level, Protocol
from hygie.followup.outgoing import Outgoing, queue
from hygie.followup.team import Contact, TeamDirectory

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
    """Raise an alert (or raise it higher), tell the team on duty; returns its id.

    ``enrollment`` is a ``followup_enrollment`` row.
    """
    anchor = session_id or f"{enrollment.id}-{now}"
    alert_id = f"{anchor}-{kind}"[:80]
    row = conn.execute(select(t.alert).where(t.alert.c.id == alert_id).with_for_update()).first()
    if row is not None:
        merged = list(dict.fromkeys([*row.reasons, *reasons]))
        if level <= row.level and row.status != AlertStatus.RESOLVED:
            if merged != list(row.reasons):
                conn.execute(
                    update(t.alert)
                    .where(t.alert.c.id == alert_id)
                    .values(reasons=merged, updated_ms=now)
                )
                project(
                    conn,
                    [
                        flag_resource(
                            alert_id,
                            enrollment.patient_id,
                            kind,
                            Level(row.level),
                            merged,
                            row.raised_ms,
                            None,
                        )
                    ],
                    now,
                )
            return alert_id
        level = Level(max(level, row.level))
        conn.execute(
            update(t.alert)
            .where(t.alert.c.id == alert_id)
            .values(
                level=int(level),
                reasons=merged,
                status=AlertStatus.OPEN,
                updated_ms=now,
                escalate_at_ms=_escalate_at(protocol, level, 0, now),
                escalations=0,
                resolved_ms=None,
                resolved_by=None,
            )
        )
        _event(conn, alert_id, "raised", now, detail=f"niveau {int(level)} : " + "; ".join(reasons))
        raised_ms = row.raised_ms
    else:
        merged = list(dict.fromkeys(reasons))
        conn.execute(
            insert(t.alert).values(
                id=alert_id,
                enrollment_id=enrollment.id,
                patient_id=enrollment.patient_id,
                session_id=session_id,
                hospital=enrollment.hospital,
                kind=str(kind),
                level=int(level),
                reasons=merged,
                status=AlertStatus.OPEN,
                raised_ms=now,
                updated_ms=now,
                escalate_at_ms=_escalate_at(protocol, level, 0, now),
                escalations=0,
            )
        )
        _event(conn, alert_id, "raised", now, detail=f"niveau {int(level)} : " + "; ".join(merged))
        raised_ms = now
    project(
        conn,
        [flag_resource(alert_id, enrollment.patient_id, kind, level, merged, raised_ms, None)],
        now,
    )
    team = team_of(notifier, enrollment.team_id)
    contacts = team.on_duty(now) if team is not None else []
    messages = _messages(notifier, protocol, alert_id, level, kind, contacts, f"l{int(level)}")
    queue(conn, messages, now)
    _event(
        conn,
        alert_id,
        "notified",
        now,
        detail=f"{len(messages)} destinataire(s) de garde"
        if messages
        else "aucune équipe à prévenir",
    )
    return alert_id


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
