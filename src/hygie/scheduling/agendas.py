"""Publishing availability: appointment types, agendas, opening rules, closures, caps,
and the slots generated from them.

Generation is idempotent: it inserts the slots the rules give that are not stored
yet (the ``(agenda, start)`` key makes a second run a no-op), so an operator may run
it every night to keep a rolling horizon open. A closure blocks the free slots it
covers at once; booked ones stay booked and are reported so that staff can move them.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, delete, insert, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.availability import check_rule, expand, rules_overlap
from hygie.scheduling.errors import InvalidInput, NotFound
from hygie.scheduling.model import Agenda, AppointmentType, Closure, OpeningRule, SlotStatus

#: Rows per INSERT when storing generated slots.
_BATCH = 5000


def put_appointment_type(conn: Connection, kind: AppointmentType) -> None:
    """Create or replace an appointment type."""
    if not kind.code or not kind.label:
        raise InvalidInput("an appointment type needs a code and a label")
    if not 1 <= kind.duration_min <= 24 * 60:
        raise InvalidInput("duration_min must be between 1 and 1440")
    values = {"label": kind.label, "duration_min": kind.duration_min,
              "preadmission": kind.preadmission}
    done = conn.execute(update(t.appointment_type)
                        .where(t.appointment_type.c.code == kind.code).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(t.appointment_type).values(code=kind.code, **values))


def appointment_types(conn: Connection) -> dict[str, AppointmentType]:
    rows = conn.execute(select(t.appointment_type).order_by(t.appointment_type.c.label))
    return {r.code: AppointmentType(r.code, r.label, r.duration_min, r.preadmission)
            for r in rows}


def put_agenda(conn: Connection, agenda: Agenda) -> None:
    """Create or replace an agenda."""
    if not agenda.id or not agenda.site_id or not agenda.service_code:
        raise InvalidInput("an agenda needs an id, a site and a service")
    if agenda.kind not in ("practitioner", "service"):
        raise InvalidInput("an agenda's kind is 'practitioner' or 'service'")
    try:
        ZoneInfo(agenda.timezone)
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {agenda.timezone!r}") from exc
    values = {k: getattr(agenda, k) for k in (
        "kind", "actor_ref", "display", "site_id", "site_name", "service_code",
        "service_label", "timezone", "public_holidays", "active")}
    done = conn.execute(update(t.agenda).where(t.agenda.c.id == agenda.id).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(t.agenda).values(id=agenda.id, **values))


def _agenda(row: object) -> Agenda:
    return Agenda(**{k: getattr(row, k) for k in Agenda.__dataclass_fields__})


def get_agenda(conn: Connection, agenda_id: str) -> Agenda:
    row = conn.execute(select(t.agenda).where(t.agenda.c.id == agenda_id)).first()
    if row is None:
        raise NotFound(f"no agenda {agenda_id!r}")
    return _agenda(row)


def list_agendas(conn: Connection, site_id: str | None = None) -> list[Agenda]:
    query = select(t.agenda).order_by(t.agenda.c.site_name, t.agenda.c.service_label,
                                      t.agenda.c.display)
    if site_id:
        query = query.where(t.agenda.c.site_id == site_id)
    return [_agenda(r) for r in conn.execute(query)]


def _rule(row: object) -> OpeningRule:
    return OpeningRule(
        id=row.id, agenda_id=row.agenda_id,  # type: ignore[attr-defined]
        weekdays=tuple(int(d) for d in row.weekdays.split(",")),  # type: ignore[attr-defined]
        start_local=row.start_local, end_local=row.end_local,  # type: ignore[attr-defined]
        type_code=row.type_code,  # type: ignore[attr-defined]
        valid_from=date.fromisoformat(row.valid_from),  # type: ignore[attr-defined]
        valid_to=date.fromisoformat(row.valid_to) if row.valid_to else None,  # type: ignore[attr-defined]
    )


def rules_of(conn: Connection, agenda_id: str) -> list[OpeningRule]:
    rows = conn.execute(select(t.rule).where(t.rule.c.agenda_id == agenda_id)
                        .order_by(t.rule.c.id))
    return [_rule(r) for r in rows]


def add_rule(conn: Connection, rule: OpeningRule) -> int:
    """Add an opening rule; it may not overlap another rule of the same agenda."""
    get_agenda(conn, rule.agenda_id)
    kinds = appointment_types(conn)
    if rule.type_code not in kinds:
        raise InvalidInput(f"unknown appointment type {rule.type_code!r}")
    check_rule(rule, kinds[rule.type_code].duration_min)
    for other in rules_of(conn, rule.agenda_id):
        if rules_overlap(rule, other):
            raise InvalidInput(
                f"this rule overlaps rule {other.id} ({other.start_local}-{other.end_local})")
    return int(conn.execute(insert(t.rule).values(
        agenda_id=rule.agenda_id, weekdays=",".join(str(d) for d in sorted(rule.weekdays)),
        start_local=rule.start_local, end_local=rule.end_local, type_code=rule.type_code,
        valid_from=rule.valid_from.isoformat(),
        valid_to=rule.valid_to.isoformat() if rule.valid_to else None,
    )).inserted_primary_key[0])


def remove_rule(conn: Connection, rule_id: int, from_utc: int) -> int:
    """Remove a rule and the free slots it opened from ``from_utc`` on; returns how many."""
    row = conn.execute(select(t.rule).where(t.rule.c.id == rule_id)).first()
    if row is None:
        raise NotFound(f"no opening rule {rule_id}")
    conn.execute(delete(t.rule).where(t.rule.c.id == rule_id))
    kept = [_rule(r) for r in conn.execute(select(t.rule).where(
        t.rule.c.agenda_id == row.agenda_id))]
    agenda = get_agenda(conn, row.agenda_id)
    zone = ZoneInfo(agenda.timezone)
    candidates = conn.execute(select(t.slot.c.id, t.slot.c.start_utc).where(
        t.slot.c.agenda_id == row.agenda_id, t.slot.c.start_utc >= from_utc,
        t.slot.c.status.in_([SlotStatus.FREE, SlotStatus.BLOCKED]))).all()
    kinds = {k: v.duration_min for k, v in appointment_types(conn).items()}
    doomed = []
    for slot_id, start in candidates:
        day = _local_day(start, zone)
        still = expand(kept, kinds, day, day, zone=zone, skip_public_holidays=False)
        if not any(s.start_utc == start for s in still):
            doomed.append(slot_id)
    for i in range(0, len(doomed), 500):
        conn.execute(delete(t.slot).where(t.slot.c.id.in_(doomed[i:i + 500])))
    return len(doomed)


def _local_day(instant: int, zone: ZoneInfo) -> date:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(instant, UTC).astimezone(zone).date()


def closures_for(conn: Connection, agenda: Agenda) -> list[Closure]:
    rows = conn.execute(select(t.closure).where(
        (t.closure.c.agenda_id == agenda.id)
        | (and_(t.closure.c.agenda_id.is_(None), t.closure.c.site_id == agenda.site_id))))
    return [Closure(r.start_utc, r.end_utc, r.reason, r.agenda_id, r.site_id, r.id)
            for r in rows]


def add_closure(conn: Connection, closure: Closure) -> tuple[int, list[str]]:
    """Close an agenda (or a whole site) for a while: free slots inside become blocked.

    Returns the closure's id and the bookings inside it, which staff must move.
    """
    if closure.end_utc <= closure.start_utc:
        raise InvalidInput("a closure must end after it starts")
    if (closure.agenda_id is None) == (closure.site_id is None):
        raise InvalidInput("a closure is for one agenda or for one site")
    if closure.agenda_id is not None:
        get_agenda(conn, closure.agenda_id)
    closure_id = int(conn.execute(insert(t.closure).values(
        agenda_id=closure.agenda_id, site_id=closure.site_id, start_utc=closure.start_utc,
        end_utc=closure.end_utc, reason=closure.reason)).inserted_primary_key[0])
    scope = (t.slot.c.agenda_id == closure.agenda_id if closure.agenda_id is not None
             else t.slot.c.site_id == closure.site_id)
    inside = and_(scope, t.slot.c.start_utc < closure.end_utc,
                  t.slot.c.end_utc > closure.start_utc)
    conn.execute(update(t.slot).where(inside, t.slot.c.status == SlotStatus.FREE)
                 .values(status=SlotStatus.BLOCKED))
    affected = conn.execute(select(t.booking.c.id).join(
        t.slot, t.slot.c.id == t.booking.c.slot_id).where(
        inside, t.booking.c.status == "booked")).scalars().all()
    return closure_id, list(affected)


def put_site_cap(conn: Connection, site_id: str, max_arrivals: int, window_min: int = 15) -> None:
    """Set the arrival cap of a site: at most ``max_arrivals`` in any ``window_min``."""
    if max_arrivals < 1 or not 1 <= window_min <= 240:
        raise InvalidInput("the cap needs max_arrivals >= 1 and a window of 1 to 240 minutes")
    done = conn.execute(update(t.site_cap).where(t.site_cap.c.site_id == site_id)
                        .values(max_arrivals=max_arrivals, window_min=window_min))
    if done.rowcount == 0:
        conn.execute(insert(t.site_cap).values(site_id=site_id, max_arrivals=max_arrivals,
                                               window_min=window_min))


def generate(conn: Connection, agenda_id: str, first: date, last: date) -> int:
    """Store the slots the agenda's rules open from ``first`` to ``last``; returns how many
    were new."""
    agenda = get_agenda(conn, agenda_id)
    rules = rules_of(conn, agenda_id)
    if not rules:
        return 0
    kinds = {k: v.duration_min for k, v in appointment_types(conn).items()}
    specs = expand(rules, kinds, first, last, zone=ZoneInfo(agenda.timezone),
                   closures=closures_for(conn, agenda),
                   skip_public_holidays=agenda.public_holidays)
    if not specs:
        return 0
    existing = set(conn.execute(select(t.slot.c.start_utc).where(
        t.slot.c.agenda_id == agenda_id, t.slot.c.start_utc >= specs[0].start_utc,
        t.slot.c.start_utc <= specs[-1].start_utc)).scalars())
    rows = [{"agenda_id": agenda_id, "site_id": agenda.site_id,
             "service_code": agenda.service_code, "type_code": s.type_code,
             "start_utc": s.start_utc, "end_utc": s.end_utc, "status": SlotStatus.FREE}
            for s in specs if s.start_utc not in existing]
    for i in range(0, len(rows), _BATCH):
        conn.execute(insert(t.slot), rows[i:i + _BATCH])
    return len(rows)
