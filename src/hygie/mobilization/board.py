"""Reading a campaign for the live board: each request's needed / confirmed / declined /
pending, expected arrivals, the same by unit, and the journal since a given entry.

The board is read from the tables in a handful of grouped queries, never from memory,
so that any process (the one holding the browser's event stream, or another) shows the
same thing. ``version`` is the id of the campaign's latest journal entry: the stream
sends a new board only when it moves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, func, select

from hygie.mobilization import messages as msg
from hygie.mobilization import tables as t
from hygie.mobilization.errors import NotFound
from hygie.mobilization.model import Arrival, Campaign, ContactState, RequestBoard
from hygie.mobilization.waves import state_counts

S = ContactState


def campaign_of(row: Any) -> Campaign:
    return Campaign(
        id=row.id,
        plan_id=row.plan_id,
        plan_name=row.plan_name,
        level=row.level,
        level_name=row.level_name,
        exercise=row.exercise,
        status=row.status,
        launched_by=row.launched_by,
        launched_ms=row.launched_ms,
        closed_ms=row.closed_ms,
        closed_by=row.closed_by,
        note=row.note,
    )


def get_campaign(conn: Connection, campaign_id: str) -> Campaign:
    row = conn.execute(select(t.campaign).where(t.campaign.c.id == campaign_id)).first()
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    return campaign_of(row)


def list_campaigns(
    conn: Connection, *, status: str | None = None, exercise: bool | None = None, limit: int = 100
) -> list[Campaign]:
    q = select(t.campaign).order_by(t.campaign.c.launched_ms.desc())
    if status:
        q = q.where(t.campaign.c.status == status)
    if exercise is not None:
        q = q.where(t.campaign.c.exercise.is_(exercise))
    return [campaign_of(r) for r in conn.execute(q.limit(max(1, min(limit, 1000))))]


def version(conn: Connection, campaign_id: str) -> int:
    """Id of the campaign's latest journal entry (0: none)."""
    return int(
        conn.scalar(select(func.max(t.journal.c.id)).where(t.journal.c.campaign_id == campaign_id))
        or 0
    )


def requests(conn: Connection, campaign_id: str) -> list[RequestBoard]:
    c = t.contact.c
    counts = state_counts(conn, campaign_id)
    # Late: confirmed with an arrival after the deadline (counted by the database, not
    # row by row here: thousands of confirmations on every board).
    late_now = case((c.eta_ms > t.request.c.deadline_ms, 1), else_=0)
    timing = {
        row.request_id: (row.n - row.late, row.late)
        for row in conn.execute(
            select(c.request_id, func.count().label("n"), func.sum(late_now).label("late"))
            .join(t.request, t.request.c.id == c.request_id)
            .where(c.campaign_id == campaign_id, c.state == S.CONFIRMED)
            .group_by(c.request_id)
        )
    }
    out = []
    for r in conn.execute(
        select(t.request)
        .where(t.request.c.campaign_id == campaign_id)
        .order_by(t.request.c.position)
    ):
        n = counts.get(r.id, {})
        on_time, late = timing.get(r.id, (0, 0))
        out.append(
            RequestBoard(
                id=r.id,
                role_label=r.role_label,
                unit_id=r.unit_id,
                unit_label=r.unit_label,
                quota=r.quota,
                deadline_ms=r.deadline_ms,
                status=r.status,
                confirmed=n.get(S.CONFIRMED, 0),
                declined=n.get(S.DECLINED, 0),
                pending=n.get(S.PENDING, 0),
                silent=n.get(S.SILENT, 0),
                waiting=n.get(S.WAITING, 0),
                released=n.get(S.RELEASED, 0),
                exhausted=n.get(S.EXHAUSTED, 0),
                on_time=on_time,
                late=late,
            )
        )
    return out


def arrivals(conn: Connection, campaign_id: str, limit: int = 500) -> list[Arrival]:
    """Confirmed people, by expected arrival (those without a delay last)."""
    c, r = t.contact.c, t.request.c
    rows = conn.execute(
        select(c.id, c.name, c.request_id, r.unit_label, r.role_label, c.eta_ms, c.answered_ms)
        .join(t.request, r.id == c.request_id)
        .where(c.campaign_id == campaign_id, c.state == S.CONFIRMED)
        .order_by(c.eta_ms.is_(None), c.eta_ms, c.answered_ms)
        .limit(limit)
    )
    return [
        Arrival(
            x.id, x.name, x.request_id, x.unit_label, x.role_label, x.eta_ms, x.answered_ms or 0
        )
        for x in rows
    ]


def journal(
    conn: Connection, campaign_id: str, after: int = 0, limit: int = 200
) -> list[dict[str, Any]]:
    """Journal entries in order: the oldest ``limit`` after ``after`` (a stream catching
    up loses none), or the latest ``limit`` when ``after`` is 0 (a first paint)."""
    j, c = t.journal.c, t.contact.c
    q = (
        select(j.id, j.at_ms, j.kind, j.request_id, j.contact_id, j.detail, c.name)
        .outerjoin(t.contact, c.id == j.contact_id)
        .where(j.campaign_id == campaign_id, j.id > after)
    )
    if after:
        rows = conn.execute(q.order_by(j.id).limit(limit)).all()
    else:
        rows = list(reversed(conn.execute(q.order_by(j.id.desc()).limit(limit)).all()))
    return [
        {
            "id": r.id,
            "at_ms": r.at_ms,
            "at": msg.clock(r.at_ms),
            "kind": r.kind,
            "request_id": r.request_id,
            "contact_id": r.contact_id,
            "name": r.name,
            "detail": r.detail,
        }
        for r in rows
    ]


def _request_json(r: RequestBoard) -> dict[str, Any]:
    return {
        "id": r.id,
        "role": r.role_label,
        "unit_id": r.unit_id,
        "unit": r.unit_label,
        "quota": r.quota,
        "needed": r.needed,
        "confirmed": r.confirmed,
        "declined": r.declined,
        "pending": r.pending,
        "silent": r.silent,
        "waiting": r.waiting,
        "released": r.released,
        "exhausted": r.exhausted,
        "on_time": r.on_time,
        "late": r.late,
        "status": r.status,
        "deadline_ms": r.deadline_ms,
        "deadline": msg.clock(r.deadline_ms),
    }


def board(conn: Connection, campaign_id: str, after: int = 0) -> dict[str, Any]:
    """The whole board as JSON-ready data (``after``: journal entries newer than it)."""
    campaign = get_campaign(conn, campaign_id)
    reqs = requests(conn, campaign_id)
    units: dict[str, dict[str, Any]] = {}
    for r in reqs:
        unit = units.setdefault(
            r.unit_label,
            {
                "unit": r.unit_label,
                "quota": 0,
                "confirmed": 0,
                "declined": 0,
                "pending": 0,
                "needed": 0,
            },
        )
        unit["quota"] += r.quota
        unit["confirmed"] += r.confirmed
        unit["declined"] += r.declined
        unit["pending"] += r.pending
        unit["needed"] += r.needed
    people = arrivals(conn, campaign_id)
    events = journal(conn, campaign_id, after, limit=2000 if after else 30)
    latest = version(conn, campaign_id)
    return {
        # With ``after``, the last entry sent: a stream asks again from there, so that
        # a burst larger than one event's share is sent over several events.
        "version": events[-1]["id"] if after and events else latest,
        "campaign": {
            "id": campaign.id,
            "plan": campaign.plan_name,
            "level": campaign.level,
            "level_name": campaign.level_name,
            "exercise": campaign.exercise,
            "mode": "EXERCICE" if campaign.exercise else "ALERTE RÉELLE",
            "status": campaign.status,
            "launched_by": campaign.launched_by,
            "launched_ms": campaign.launched_ms,
            "launched": msg.clock(campaign.launched_ms),
            "closed_ms": campaign.closed_ms,
        },
        "totals": {
            k: sum(getattr(r, k) for r in reqs)
            for k in ("quota", "confirmed", "declined", "pending", "needed")
        },
        "requests": [_request_json(r) for r in reqs],
        "units": sorted(units.values(), key=lambda u: u["unit"]),
        "arrivals": [
            {
                "contact_id": a.contact_id,
                "name": a.name,
                "unit": a.unit_label,
                "role": a.role_label,
                "eta_ms": a.eta_ms,
                "eta": msg.clock(a.eta_ms) if a.eta_ms is not None else None,
                "answered_ms": a.answered_ms,
            }
            for a in people
        ],
        "events": events,
    }
