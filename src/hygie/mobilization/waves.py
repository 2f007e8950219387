"""Moving a campaign forward: time-outs, waves, escalation, quotas and stand-downs.

:func:`advance` is the one step every actor runs (the worker's timer pass, the answer
handler, a close) inside one write transaction holding the campaign's lock
(``transactions.py``). It reads where each request stands and decides, from the rows
alone, what to do next, so that a process started after a crash decides the same:

1. *time-outs*: a pending person whose answer window (``due_ms``, the persisted timer)
   has passed, or whose message failed (no key pressed, refused number, STOP), becomes
   ``silent`` and may be asked again on the next channel; with every attempt used, they
   are ``exhausted``;
2. *quota met*: once a request has ``quota`` confirmations, the people of that request
   who were asked and have not answered are stood down (a message on the channel they
   were last asked on), and those never asked are released without a word;
3. *waves*: otherwise the request asks as many people as answers are still needed
   (capped by the plan's ``wave_size``), minus those already waiting for an answer:
   never-asked people first, in rank order, then those who stayed silent, on their next
   channel. The channel of attempt ``n`` is ``channels[n % len(channels)]`` (SMS, then
   phone, then e-mail, for as many cycles as the plan says); a channel the person has
   no address for is skipped;
4. a request with nobody left to ask and nobody pending is ``exhausted``.

Every message decided here is written as an *outgoing* row in the same transaction
(``messages.py``), keyed by campaign, person and attempt; the engine hands those rows
to the channels outbox after the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from hygie.mobilization import messages as msg
from hygie.mobilization import tables as t
from hygie.mobilization.model import ContactState, Plan, RequestStatus
from hygie.mobilization.transactions import chunks

S = ContactState


@dataclass
class StepResult:
    """What one step decided that must happen outside its transaction."""

    #: Channels message ids of alerts to call back (their person was stood down).
    cancel_ids: list[str] = field(default_factory=list)
    #: Number of new outgoing rows (alerts and replies) to hand over.
    queued: int = 0
    #: Whether the step changed anything (the board has news).
    changed: bool = False

    def merge(self, other: StepResult) -> None:
        self.cancel_ids += other.cancel_ids
        self.queued += other.queued
        self.changed = self.changed or other.changed


def note(
    conn: Connection,
    campaign_id: str,
    kind: str,
    now: int,
    request_id: str | None = None,
    contact_id: str | None = None,
    **detail: Any,
) -> None:
    """Append one entry to the campaign's journal (its record and the board's feed)."""
    conn.execute(
        insert(t.journal).values(
            campaign_id=campaign_id,
            at_ms=now,
            kind=kind,
            request_id=request_id,
            contact_id=contact_id,
            detail=detail,
        )
    )


def note_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    for part in chunks(rows, 1000):
        conn.execute(insert(t.journal), list(part))


def alert_key(campaign_id: str, contact_id: str, attempt: int) -> str:
    return f"mobilization:{campaign_id}:{contact_id}:alert:{attempt}"


def reply_key(campaign_id: str, contact_id: str, kind: str, suffix: str = "") -> str:
    return f"mobilization:{campaign_id}:{contact_id}:{kind}{':' + suffix if suffix else ''}"


def address_for(channel: str, phone: str | None, email: str | None) -> str | None:
    return email if channel == "email" else phone


def next_attempt(
    plan: Plan, attempts: int, phone: str | None, email: str | None
) -> tuple[int, str] | None:
    """(attempt number, channel) of the next try after ``attempts``, or None when every
    attempt is used or no channel left has an address."""
    for n in range(attempts, plan.max_attempts):
        channel = plan.channels[n % len(plan.channels)]
        if address_for(channel, phone, email):
            return n + 1, channel
    return None


def request_values(plan: Plan, campaign: Any, req: Any) -> dict[str, Any]:
    """Placeholders of the templates for one request."""
    return {
        "plan": plan.name,
        "level": campaign.level_name,
        "role": req.role_label,
        "unit": req.unit_label,
        "hospital": plan.hospital or "",
        "deadline": msg.clock(req.deadline_ms),
        "quota": req.quota,
    }


def outgoing_row(
    campaign: Any,
    contact: Any,
    kind: str,
    channel: str,
    text: msg.Text,
    key: str,
    now: int,
    *,
    attempt: int | None = None,
    expected: list[str] | None = None,
    ttl_s: int | None = None,
) -> dict[str, Any]:
    recipient = address_for(channel, contact.phone, contact.email)
    assert recipient is not None
    return {
        "key": key,
        "campaign_id": campaign.id,
        "contact_id": contact.id,
        "kind": kind,
        "attempt": attempt,
        "channel": channel,
        "recipient": recipient,
        "recipient_ref": f"Practitioner/{contact.practitioner_id}",
        "subject": text.subject,
        "text": text.text,
        "expected": expected,
        "created_ms": now,
        "message_id": None,
        "cancelled": False,
        "ttl_s": ttl_s,
        "error": None,
    }


def insert_outgoing(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert outgoing rows, skipping keys already written (a step run twice)."""
    if not rows:
        return
    present: set[str] = set()
    for part in chunks([r["key"] for r in rows]):
        present.update(
            conn.scalars(select(t.outgoing.c.key).where(t.outgoing.c.key.in_(list(part))))
        )
    fresh = [r for r in rows if r["key"] not in present]
    for part in chunks(fresh, 1000):
        conn.execute(insert(t.outgoing), list(part))


def reply_channel(answer_channel: str, contact: Any) -> str | None:
    """Where a reply to an answer goes: back on SMS or e-mail; a call's answer is
    confirmed by SMS (a call cannot carry it), else by e-mail."""
    order = {"sms": ("sms", "email"), "email": ("email", "sms"), "voice": ("sms", "email")}.get(
        answer_channel, ("sms", "email")
    )
    for channel in order:
        if address_for(channel, contact.phone, contact.email):
            return channel
    return None


#: How long a time-out is put off when the alert has not left yet (milliseconds).
HOLD_MS = 5_000


def _time_outs(
    conn: Connection,
    campaign: Any,
    plan: Plan,
    now: int,
    failed: Sequence[tuple[str, int, str]],
    held: AbstractSet[str] = frozenset(),
) -> int:
    """Move pending people past their window (or whose message failed) on; those
    whose alert has not left yet (``held``) get their window put off a little."""
    c = t.contact.c
    due = conn.execute(
        select(c.id, c.request_id, c.attempts, c.phone, c.email, c.channel).where(
            c.campaign_id == campaign.id, c.state == S.PENDING, c.due_ms <= now
        )
    ).all()
    waiting = [row.id for row in due if row.id in held]
    for part in chunks(waiting):
        conn.execute(
            update(t.contact)
            .where(c.id.in_(list(part)))
            .values(due_ms=now + min(HOLD_MS, int(plan.wait_s * 1000)))
        )
    due = [row for row in due if row.id not in held]
    reasons = {row.id: "timeout" for row in due}
    rows = {row.id: row for row in due}
    if failed:
        failed_by_id = {cid: (attempt, error) for cid, attempt, error in failed}
        for part in chunks(sorted(failed_by_id)):
            for row in conn.execute(
                select(c.id, c.request_id, c.attempts, c.phone, c.email, c.channel).where(
                    c.id.in_(list(part)), c.state == S.PENDING
                )
            ):
                if row.attempts == failed_by_id[row.id][0]:
                    rows[row.id] = row
                    reasons[row.id] = "failed: " + failed_by_id[row.id][1][:100]
    if not rows:
        return 0
    silent, exhausted, journal = [], [], []
    for row in rows.values():
        more = next_attempt(plan, row.attempts, row.phone, row.email)
        (silent if more is not None else exhausted).append(row.id)
        journal.append(
            {
                "campaign_id": campaign.id,
                "at_ms": now,
                "kind": "timeout",
                "request_id": row.request_id,
                "contact_id": row.id,
                "detail": {
                    "channel": row.channel,
                    "attempt": row.attempts,
                    "reason": reasons[row.id],
                    "exhausted": more is None,
                },
            }
        )
    for ids, state in ((silent, S.SILENT), (exhausted, S.EXHAUSTED)):
        for part in chunks(ids):
            conn.execute(
                update(t.contact)
                .where(c.id.in_(list(part)))
                .values(state=state, due_ms=None, updated_ms=now)
            )
    note_many(conn, journal)
    return len(rows)


def state_counts(
    conn: Connection, campaign_id: str, states: Sequence[str] | None = None
) -> dict[str, dict[str, int]]:
    """People of each request of a campaign, by state (only ``states`` when given).

    Counted through the campaign's requests rather than its id: the contact index on
    ``(request_id, state, ...)`` then holds every column asked for, so the database
    counts index entries instead of fetching each person's row (a tenth of the time
    at 15,000 people, and this runs for every answer batch and every board).
    """
    c = t.contact.c
    requests = select(t.request.c.id).where(t.request.c.campaign_id == campaign_id)
    q = select(c.request_id, c.state, func.count().label("n")).where(c.request_id.in_(requests))
    if states is not None:
        q = q.where(c.state.in_(list(states)))
    out: dict[str, dict[str, int]] = {}
    for row in conn.execute(q.group_by(c.request_id, c.state)):
        out.setdefault(row.request_id, {})[row.state] = row.n
    return out


def _counts(conn: Connection, campaign_id: str) -> dict[str, dict[str, int]]:
    return state_counts(conn, campaign_id)


def release(
    conn: Connection,
    campaign: Any,
    plan: Plan,
    request_rows: Iterable[Any],
    kind: str,
    now: int,
    states: Sequence[str],
) -> StepResult:
    """Release the people of these requests in ``states``: a ``kind`` message
    (``standdown`` or ``closing``) to those who were asked, nothing to the others;
    their alerts still queued in the channels are called back (``cancel_ids``)."""
    result = StepResult()
    reqs = {r.id: r for r in request_rows}
    if not reqs:
        return result
    c, o = t.contact.c, t.outgoing.c
    people = []
    for part in chunks(sorted(reqs)):
        people += conn.execute(
            select(t.contact).where(c.request_id.in_(list(part)), c.state.in_(list(states)))
        ).all()
    if not people:
        return result
    asked = [p for p in people if p.attempts > 0]
    handed: dict[str, str | None] = {}
    for part in chunks([alert_key(campaign.id, p.id, p.attempts) for p in asked]):
        for key, mid in conn.execute(select(o.key, o.message_id).where(o.key.in_(list(part)))):
            handed[key] = mid
    not_handed, rows = [], []
    for p in asked:
        key = alert_key(campaign.id, p.id, p.attempts)
        mid = handed.get(key)
        if p.state in (S.PENDING, S.SILENT, S.EXHAUSTED) and mid is not None:
            result.cancel_ids.append(mid)  # still queued there? then it never leaves
        if mid is None and p.state == S.PENDING:
            not_handed.append(key)
            if p.attempts == 1:
                continue  # no alert ever left: no stand-down either
        channel = reply_channel(p.channel or "sms", p)
        if channel is None:
            continue
        text = msg.reply_text(
            plan.templates,
            kind,
            channel,
            request_values(plan, campaign, reqs[p.request_id]),
            campaign.exercise,
        )
        rows.append(
            outgoing_row(
                campaign,
                p,
                kind,
                channel,
                text,
                reply_key(campaign.id, p.id, kind),
                now,
                ttl_s=msg.REPLY_TTL_S,
            )
        )
    for part in chunks(not_handed):
        conn.execute(
            update(t.outgoing)
            .where(o.key.in_(list(part)), o.message_id.is_(None))
            .values(cancelled=True)
        )
    journal = [
        {
            "campaign_id": campaign.id,
            "at_ms": now,
            "kind": kind,
            "request_id": p.request_id,
            "contact_id": p.id,
            "detail": {"from": p.state, "asked": p.attempts > 0},
        }
        for p in people
    ]
    for part in chunks([p.id for p in people]):
        conn.execute(
            update(t.contact)
            .where(c.id.in_(list(part)))
            .values(state=S.RELEASED, due_ms=None, stood_down_ms=now, updated_ms=now)
        )
    insert_outgoing(conn, rows)
    note_many(conn, journal)
    result.queued += len(rows)
    result.changed = bool(people)
    return result


def _ask(
    conn: Connection, campaign: Any, plan: Plan, req: Any, to_ask: int, now: int
) -> tuple[int, int]:
    """Ask up to ``to_ask`` more people of one request; return (asked, exhausted)."""
    c = t.contact.c
    candidates = conn.execute(
        select(t.contact)
        .where(c.request_id == req.id, c.state.in_([S.WAITING, S.SILENT]))
        .order_by(c.attempts, c.rank)
        .limit(to_ask * 2 + 10)
    ).all()
    values = request_values(plan, campaign, req)
    texts: dict[str, msg.Text] = {}
    asked_rows, outgoing, journal, exhausted = [], [], [], []
    by_attempt: dict[tuple[int, str], list[str]] = {}
    for p in candidates:
        if len(asked_rows) >= to_ask:
            break
        nxt = next_attempt(plan, p.attempts, p.phone, p.email)
        if nxt is None:
            exhausted.append(p.id)
            continue
        attempt, channel = nxt
        if channel not in texts:
            texts[channel] = msg.alert_text(plan.templates, channel, values, campaign.exercise)
        asked_rows.append(p.id)
        by_attempt.setdefault((attempt, channel), []).append(p.id)
        outgoing.append(
            outgoing_row(
                campaign,
                p,
                "alert",
                channel,
                texts[channel],
                alert_key(campaign.id, p.id, attempt),
                now,
                attempt=attempt,
                expected=msg.expected_answers(channel),
                ttl_s=max(60, int(plan.wait_s)),
            )
        )
        journal.append(
            {
                "campaign_id": campaign.id,
                "at_ms": now,
                "kind": "asked",
                "request_id": req.id,
                "contact_id": p.id,
                "detail": {"channel": channel, "attempt": attempt},
            }
        )
    due = now + int(plan.wait_s * 1000)
    for (attempt, channel), ids in by_attempt.items():
        for part in chunks(ids):
            conn.execute(
                update(t.contact)
                .where(c.id.in_(list(part)))
                .values(
                    state=S.PENDING,
                    attempts=attempt,
                    channel=channel,
                    due_ms=due,
                    contacted_ms=func.coalesce(c.contacted_ms, now),
                    updated_ms=now,
                )
            )
    for part in chunks(exhausted):
        conn.execute(
            update(t.contact).where(c.id.in_(list(part))).values(state=S.EXHAUSTED, updated_ms=now)
        )
    insert_outgoing(conn, outgoing)
    note_many(conn, journal)
    return len(asked_rows), len(exhausted)


def advance(
    conn: Connection,
    campaign_id: str,
    now: int,
    failed: Sequence[tuple[str, int, str]] = (),
    held: AbstractSet[str] = frozenset(),
) -> StepResult:
    """One step of a campaign (see the module docstring); the caller holds its lock.

    ``failed`` lists ``(contact id, attempt, error)`` of alerts the channels gave up on;
    ``held``, people whose alert has not left yet (their window waits for it).
    """
    result = StepResult()
    campaign = conn.execute(select(t.campaign).where(t.campaign.c.id == campaign_id)).first()
    if campaign is None or campaign.status != "active":
        return result
    from hygie.mobilization.plans import parse_plan

    plan = parse_plan(campaign.definition)
    result.changed = _time_outs(conn, campaign, plan, now, failed, held) > 0
    requests = conn.execute(
        select(t.request)
        .where(t.request.c.campaign_id == campaign_id, t.request.c.status == RequestStatus.OPEN)
        .order_by(t.request.c.position)
    ).all()
    for _round in range(3):  # asking may exhaust people; the freed places are asked again
        counts = _counts(conn, campaign_id)
        again = False
        for req in requests:
            if req.status != RequestStatus.OPEN:
                continue
            n = counts.get(req.id, {})
            confirmed, pending = n.get(S.CONFIRMED, 0), n.get(S.PENDING, 0)
            if confirmed >= req.quota:
                conn.execute(
                    update(t.request)
                    .where(t.request.c.id == req.id)
                    .values(status=RequestStatus.MET, met_ms=now)
                )
                note(conn, campaign_id, "met", now, req.id, confirmed=confirmed, quota=req.quota)
                result.merge(
                    release(
                        conn,
                        campaign,
                        plan,
                        [req],
                        "standdown",
                        now,
                        [S.PENDING, S.SILENT, S.WAITING],
                    )
                )
                result.changed = True
                continue
            target = req.quota - confirmed
            if plan.wave_size:
                target = min(target, plan.wave_size)
            to_ask = target - pending
            asked = exhausted = 0
            if to_ask > 0:
                asked, exhausted = _ask(conn, campaign, plan, req, to_ask, now)
                if asked:
                    result.queued += asked
                    result.changed = True
                    note(
                        conn,
                        campaign_id,
                        "wave",
                        now,
                        req.id,
                        asked=asked,
                        needed=req.quota - confirmed,
                    )
                if exhausted:
                    result.changed = True
                    again = again or asked < to_ask
            if asked == 0 and pending == 0 and to_ask > 0:
                left = n.get(S.WAITING, 0) + n.get(S.SILENT, 0) - exhausted
                if left <= 0:
                    conn.execute(
                        update(t.request)
                        .where(t.request.c.id == req.id)
                        .values(status=RequestStatus.EXHAUSTED)
                    )
                    note(
                        conn,
                        campaign_id,
                        "exhausted",
                        now,
                        req.id,
                        confirmed=confirmed,
                        quota=req.quota,
                    )
                    result.changed = True
            if now >= req.deadline_ms and not req.deadline_noted:
                conn.execute(
                    update(t.request).where(t.request.c.id == req.id).values(deadline_noted=True)
                )
                note(
                    conn, campaign_id, "deadline", now, req.id, confirmed=confirmed, quota=req.quota
                )
                result.changed = True
        if not again:
            break
        requests = conn.execute(
            select(t.request)
            .where(t.request.c.campaign_id == campaign_id, t.request.c.status == RequestStatus.OPEN)
            .order_by(t.request.c.position)
        ).all()
    if result.changed:
        conn.execute(
            update(t.campaign).where(t.campaign.c.id == campaign_id).values(updated_ms=now)
        )
    return result


def due_campaigns(conn: Connection, now: int) -> list[str]:
    """Active campaigns with a timer due: an answer window or a deadline passed."""
    c, r, k = t.contact.c, t.request.c, t.campaign.c
    ids = set(
        conn.scalars(select(c.campaign_id).where(c.state == S.PENDING, c.due_ms <= now).distinct())
    )
    ids.update(
        conn.scalars(
            select(r.campaign_id)
            .join(t.campaign, k.id == r.campaign_id)
            .where(
                and_(
                    k.status == "active",
                    r.status == RequestStatus.OPEN,
                    r.deadline_ms <= now,
                    r.deadline_noted.is_(False),
                )
            )
            .distinct()
        )
    )
    return sorted(ids)


def next_due_ms(conn: Connection) -> int | None:
    """When the next timer of any active campaign falls due (None: none)."""
    c = t.contact.c
    return conn.scalar(select(func.min(c.due_ms)).where(c.state == S.PENDING))
