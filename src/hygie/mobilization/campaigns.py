"""Launching and closing campaigns, and applying what people answer.

Each function works inside the caller's write transaction (which holds the campaign's
lock, ``transactions.py``) and leaves the next step to :func:`waves.advance`, so that a
launch, an answer and a close each commit with their consequences: the first wave's
alerts, a confirmation and the replacement asked for a refusal, the stand-downs.

Who is sought for a request: the directory entries of its role (any role for ``*``),
in its unit (or, without a unit, in the plan's hospital), with its skill, available,
with a mobile phone or an e-mail address. A person who fits several requests of the
campaign is sought for the first only: two alerts to one phone would make their
answers ambiguous. Off-duty people are asked first (those on duty are already there),
then by name.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from hygie.mobilization import messages as msg
from hygie.mobilization import tables as t
from hygie.mobilization.answers import ParsedAnswer, parse_answer
from hygie.mobilization.directory import on_duty
from hygie.mobilization.errors import CampaignClosed, InvalidInput, NotFound
from hygie.mobilization.model import ANY_ROLE, ContactState, Meaning, Plan, RequestStatus
from hygie.mobilization.plans import parse_plan, plan_to_dict
from hygie.mobilization.transactions import chunks
from hygie.mobilization.waves import (
    StepResult,
    insert_outgoing,
    note,
    note_many,
    outgoing_row,
    release,
    reply_channel,
    reply_key,
    request_values,
    state_counts,
)

S = ContactState
#: Delay of each e-mail answer (minutes; None: a refusal).
EMAIL_DELAYS = dict(zip(msg.EMAIL_ANSWERS, (30, 60, 120, None), strict=True))


def new_campaign_id() -> str:
    return secrets.token_hex(8)


def _matching_staff(conn: Connection, plan: Plan, spec: Any) -> list[Any]:
    s = t.staff.c
    q = select(t.staff).where(s.available.is_(True), s.phone.is_not(None) | s.email.is_not(None))
    if spec.role != ANY_ROLE:
        q = q.where(s.role_code == spec.role)
    if spec.unit:
        q = q.where(s.unit_id == spec.unit)
    elif plan.hospital:
        q = q.where(s.hospital_id == plan.hospital)
    rows = conn.execute(q).all()
    if spec.skill:
        wanted = spec.skill.casefold()
        rows = [r for r in rows if any(wanted == k.casefold() for k in (r.skills or ()))]
    return rows


def _labels(conn: Connection, plan: Plan, spec: Any, people: Sequence[Any]) -> tuple[str, str]:
    """Display texts of a request's role and unit (from the directory when it knows)."""
    role_label = (
        "tout personnel"
        if spec.role == ANY_ROLE
        else next((p.role_label for p in people), None)
        or conn.scalar(
            select(t.staff.c.role_label).where(t.staff.c.role_code == spec.role).limit(1)
        )
        or spec.role
    )
    if spec.unit:
        unit_label = (
            next((p.unit_label for p in people if p.unit_label), None)
            or conn.scalar(
                select(t.staff.c.unit_label).where(t.staff.c.unit_id == spec.unit).limit(1)
            )
            or spec.unit
        )
    else:
        unit_label = (
            next((p.hospital_label for p in people if p.hospital_label), None)
            or plan.hospital
            or "tous services"
        )
    return role_label, unit_label


def launch(
    conn: Connection,
    plan: Plan,
    level_number: int,
    *,
    exercise: bool,
    launched_by: str,
    launched_by_ref: str | None,
    now: int,
    launch_key: str | None = None,
    note_text: str | None = None,
) -> tuple[str, bool]:
    """Create a campaign of one plan level with its requests and people; return
    ``(campaign id, created)`` (``created`` False: this launch key was seen before)."""
    if launch_key:
        known = conn.scalar(select(t.campaign.c.id).where(t.campaign.c.launch_key == launch_key))
        if known is not None:
            return known, False
    try:
        level = plan.level(level_number)
    except KeyError:
        raise InvalidInput(
            f"level: the plan {plan.id!r} has no level {level_number} "
            f"(levels: {', '.join(str(lv.number) for lv in plan.levels)})"
        ) from None
    campaign_id = new_campaign_id()
    conn.execute(
        insert(t.campaign).values(
            id=campaign_id,
            launch_key=launch_key,
            plan_id=plan.id,
            plan_version=plan.version,
            plan_name=plan.name,
            level=level.number,
            level_name=level.name,
            exercise=exercise,
            status="active",
            definition=plan_to_dict(plan),
            launched_by=launched_by[:200],
            launched_by_ref=launched_by_ref,
            launched_ms=now,
            note=(note_text or None) and note_text[:500],
            updated_ms=now,
            launch_audited=False,
            close_audited=False,
        )
    )
    seen: set[str] = set()
    sought = 0
    for position, spec in enumerate(level.requests):
        request_id = f"{campaign_id}-r{position}"
        people = [p for p in _matching_staff(conn, plan, spec) if p.practitioner_id not in seen]
        role_label, unit_label = _labels(conn, plan, spec, people)
        conn.execute(
            insert(t.request).values(
                id=request_id,
                campaign_id=campaign_id,
                position=position,
                role_code=spec.role,
                role_label=role_label[:200],
                unit_id=spec.unit,
                unit_label=unit_label[:200],
                skill=spec.skill,
                quota=spec.quota,
                deadline_ms=now + spec.deadline_minutes * 60_000,
                status=RequestStatus.OPEN,
                met_ms=None,
                deadline_noted=False,
            )
        )
        # One row per person (a person with two roles in the unit is asked once).
        unique: dict[str, Any] = {}
        for p in people:
            unique.setdefault(p.practitioner_id, p)
        ordered = sorted(unique.values(), key=lambda p: (on_duty(p.hours or (), now), p.name, p.id))
        rows = [
            {
                "id": f"{request_id}-{i}",
                "campaign_id": campaign_id,
                "request_id": request_id,
                "staff_id": p.id,
                "practitioner_id": p.practitioner_id,
                "name": p.name,
                "unit_label": p.unit_label,
                "phone": p.phone,
                "email": p.email,
                "rank": i,
                "state": S.WAITING,
                "attempts": 0,
                "channel": None,
                "due_ms": None,
                "contacted_ms": None,
                "answered_ms": None,
                "answer": None,
                "answer_channel": None,
                "eta_ms": None,
                "stood_down_ms": None,
                "clarified": False,
                "updated_ms": now,
            }
            for i, p in enumerate(ordered)
        ]
        for part in chunks(rows, 2000):
            conn.execute(insert(t.contact), list(part))
        seen.update(unique)
        sought += len(rows)
    note(
        conn,
        campaign_id,
        "launch",
        now,
        by=launched_by[:200],
        plan=plan.id,
        plan_version=plan.version,
        level=level.number,
        exercise=exercise,
        sought=sought,
    )
    return campaign_id, True


def close(conn: Connection, campaign_id: str, *, closed_by: str, now: int) -> StepResult:
    """Close a campaign: open requests close, and everyone asked is stood down."""
    campaign = conn.execute(select(t.campaign).where(t.campaign.c.id == campaign_id)).first()
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    if campaign.status != "active":
        raise CampaignClosed(f"the campaign {campaign_id} is closed already")
    plan = parse_plan(campaign.definition)
    requests = conn.execute(select(t.request).where(t.request.c.campaign_id == campaign_id)).all()
    result = release(
        conn,
        campaign,
        plan,
        requests,
        "closing",
        now,
        [S.PENDING, S.SILENT, S.WAITING, S.CONFIRMED, S.EXHAUSTED],
    )
    conn.execute(
        update(t.request)
        .where(t.request.c.campaign_id == campaign_id, t.request.c.status == RequestStatus.OPEN)
        .values(status=RequestStatus.CLOSED)
    )
    conn.execute(
        update(t.campaign)
        .where(t.campaign.c.id == campaign_id)
        .values(status="closed", closed_by=closed_by[:200], closed_ms=now, updated_ms=now)
    )
    note(conn, campaign_id, "closed", now, by=closed_by[:200])
    result.changed = True
    return result


@dataclass(frozen=True)
class Incoming:
    """An answer as the channels hand it over, with the person it is from."""

    id: str
    campaign_id: str
    contact_id: str
    channel: str
    text: str
    value: str | None
    received_ms: int


def interpret(item: Incoming) -> ParsedAnswer:
    """What an answer means: keys pressed, an e-mail choice, or an SMS read in French."""
    if item.value == "STOP":
        return ParsedAnswer(Meaning.NO)
    if item.channel == "voice":
        keys = (item.value or item.text or "").strip()
        if keys[:1] == "1":
            return ParsedAnswer(Meaning.YES)
        if keys[:1] == "2":
            return ParsedAnswer(Meaning.NO)
        return ParsedAnswer(Meaning.UNKNOWN)
    if item.channel == "email" and item.value in EMAIL_DELAYS:
        delay = EMAIL_DELAYS[item.value]
        return ParsedAnswer(Meaning.NO) if delay is None else ParsedAnswer(Meaning.YES, delay)
    return parse_answer(item.text, item.received_ms)


def _eta_text(eta_ms: int | None) -> str:
    return f"à {msg.clock(eta_ms)}" if eta_ms is not None else "dès que possible"


def apply_answers(conn: Connection, campaign_id: str, items: Sequence[Incoming], now: int) -> bool:
    """Apply the answers of one campaign's people (already-applied ones are skipped);
    return whether anything changed. The caller then runs ``advance``."""
    ids = [i.id for i in items]
    done: set[str] = set()
    for part in chunks(ids):
        done.update(conn.scalars(select(t.answer.c.id).where(t.answer.c.id.in_(list(part)))))
    fresh = [i for i in items if i.id not in done]
    if not fresh:
        return False
    campaign = conn.execute(select(t.campaign).where(t.campaign.c.id == campaign_id)).first()
    if campaign is None:
        return False
    plan = parse_plan(campaign.definition)
    contacts = {}
    for part in chunks(sorted({i.contact_id for i in fresh})):
        for row in conn.execute(select(t.contact).where(t.contact.c.id.in_(list(part)))):
            # Mutable: a second answer of one person in the batch sees the first's effect.
            contacts[row.id] = SimpleNamespace(**row._mapping)
    requests = {
        r.id: SimpleNamespace(**r._mapping)
        for r in conn.execute(select(t.request).where(t.request.c.campaign_id == campaign_id))
    }
    confirmed = {
        request_id: n.get(S.CONFIRMED, 0)
        for request_id, n in state_counts(conn, campaign_id, [S.CONFIRMED]).items()
    }
    replies: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    updates: list[tuple[str, dict[str, Any]]] = []
    journal: list[dict[str, Any]] = []
    for item in fresh:
        person = contacts.get(item.contact_id)
        if person is None or person.campaign_id != campaign_id:
            continue
        parsed = interpret(item)
        answers.append(
            {
                "id": item.id,
                "campaign_id": campaign_id,
                "contact_id": person.id,
                "received_ms": item.received_ms,
                "channel": item.channel,
                "text": item.text[:500],
                "meaning": parsed.meaning,
                "eta_minutes": parsed.eta_minutes,
            }
        )
        req = requests[person.request_id]
        values = {**request_values(plan, campaign, req)}
        state, event, detail = (
            person.state,
            "answer",
            {"channel": item.channel, "meaning": str(parsed.meaning)},
        )
        changes: dict[str, Any] = {}
        reply: str | None = None
        eta_ms = (
            item.received_ms + parsed.eta_minutes * 60_000
            if parsed.eta_minutes is not None
            else None
        )
        open_here = campaign.status == "active" and req.status == RequestStatus.OPEN
        if parsed.meaning is Meaning.YES:
            if state == S.CONFIRMED:
                if eta_ms is not None:
                    changes = {"eta_ms": eta_ms}
                    event, reply = "eta", "confirmation"
                else:
                    event = "repeat"
            elif open_here and state != S.RELEASED and confirmed.get(req.id, 0) < req.quota:
                confirmed[req.id] = confirmed.get(req.id, 0) + 1
                changes = {"state": S.CONFIRMED, "eta_ms": eta_ms, "due_ms": None}
                reply = "confirmation"
            else:
                event = "late"
                reply = "closing" if campaign.status != "active" else "standdown"
        elif parsed.meaning is Meaning.NO:
            if state == S.CONFIRMED:
                confirmed[req.id] = confirmed.get(req.id, 1) - 1
                event = "withdrawn"
                changes = {"state": S.DECLINED, "eta_ms": None}
                if req.status == RequestStatus.MET and campaign.status == "active":
                    conn.execute(
                        update(t.request)
                        .where(t.request.c.id == req.id)
                        .values(status=RequestStatus.OPEN, met_ms=None)
                    )
                    req.status, req.met_ms = RequestStatus.OPEN, None
            elif state in (S.PENDING, S.SILENT, S.EXHAUSTED, S.WAITING):
                changes = {"state": S.DECLINED, "due_ms": None}
            else:
                event = "late"
        else:
            event = "unclear"
            if state in (S.PENDING, S.SILENT) and not person.clarified:
                changes = {"clarified": True}
                reply = "clarification"
        detail["eta_minutes"] = parsed.eta_minutes
        if changes:
            changes.update(
                answered_ms=item.received_ms,
                answer=item.text[:500],
                answer_channel=item.channel,
                updated_ms=now,
            )
            updates.append((person.id, changes))
            for name, value in changes.items():
                setattr(person, name, value)
        journal.append(
            {
                "campaign_id": campaign_id,
                "at_ms": now,
                "kind": event,
                "request_id": req.id,
                "contact_id": person.id,
                "detail": detail,
            }
        )
        channel = reply_channel(item.channel, person) if reply else None
        if reply and channel:
            values["eta"] = _eta_text(changes.get("eta_ms", person.eta_ms))
            text = msg.reply_text(plan.templates, reply, channel, values, campaign.exercise)
            replies.append(
                outgoing_row(
                    campaign,
                    person,
                    reply,
                    channel,
                    text,
                    reply_key(campaign_id, person.id, reply, item.id),
                    now,
                    ttl_s=msg.REPLY_TTL_S,
                )
            )
    _update_contacts(conn, updates)
    for part in chunks(answers, 1000):
        conn.execute(insert(t.answer), list(part))
    note_many(conn, journal)
    insert_outgoing(conn, replies)
    return True


def _update_contacts(conn: Connection, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Apply per-person changes in order, one statement per run of changes to the same
    columns (a batch of "oui 20" is one executemany, not one statement per answer)."""
    i = 0
    while i < len(updates):
        columns = sorted(updates[i][1])
        j = i
        while j < len(updates) and sorted(updates[j][1]) == columns:
            j += 1
        stmt = (
            update(t.contact)
            .where(t.contact.c.id == bindparam("contact_id"))
            .values({name: bindparam("new_" + name) for name in columns})
        )
        conn.execute(
            stmt,
            [
                {"contact_id": cid, **{"new_" + k: v for k, v in changes.items()}}
                for cid, changes in updates[i:j]
            ],
        )
        i = j
