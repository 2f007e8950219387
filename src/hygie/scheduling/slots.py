"""Finding free slots, and the arrival cap that keeps waiting rooms from filling up.

The cap of a site is "no more than N people expected in any W minutes" (W = 15 by
default): a sliding window, not quarter-hour buckets, so that 14:14 and 14:16 count
together. A slot is offered only if booking it would keep every window that contains
its start within the cap (``cap_allows``); booking checks the same rule again under
a lock (``booking.py``), so the cap holds under concurrency too.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from hygie.scheduling import tables as t
from hygie.scheduling.model import SlotStatus, SlotView

#: Most slots one search returns.
MAX_RESULTS = 200


@dataclass(frozen=True)
class Cap:
    max_arrivals: int
    window_s: int


def cap_allows(starts: Sequence[int], at: int, cap: Cap) -> bool:
    """Whether one more arrival at ``at`` keeps every window of the cap within bounds.

    ``starts`` are the sorted arrival instants already booked at the site. The count
    of arrivals in a window ``[s, s + W)`` that contains ``at`` can only peak when ``s``
    is ``at`` itself or one of the booked arrivals in ``(at - W, at]``.
    """
    w = cap.window_s
    lo = bisect.bisect_right(starts, at - w)
    hi = bisect.bisect_right(starts, at)
    for s in [at, *starts[lo:hi]]:
        inside = bisect.bisect_left(starts, s + w) - bisect.bisect_left(starts, s)
        if inside + 1 > cap.max_arrivals:
            return False
    return True


def site_caps(conn: Connection, site_ids: Sequence[str]) -> dict[str, Cap]:
    if not site_ids:
        return {}
    rows = conn.execute(select(t.site_cap).where(t.site_cap.c.site_id.in_(list(site_ids))))
    return {r.site_id: Cap(r.max_arrivals, r.window_min * 60) for r in rows}


def booked_starts(conn: Connection, site_id: str, lo: int, hi: int,
                  exclude_booking: str | None = None) -> list[int]:
    """Sorted start instants of the live bookings at a site within ``[lo, hi]``."""
    query = select(t.booking.c.start_utc).where(
        t.booking.c.site_id == site_id, t.booking.c.status == "booked",
        t.booking.c.start_utc >= lo, t.booking.c.start_utc <= hi)
    if exclude_booking is not None:
        query = query.where(t.booking.c.id != exclude_booking)
    return sorted(conn.execute(query).scalars())


_COLUMNS = (t.slot.c.id, t.slot.c.agenda_id, t.agenda.c.display, t.slot.c.site_id,
            t.agenda.c.site_name, t.slot.c.service_code, t.agenda.c.service_label,
            t.slot.c.type_code, t.slot.c.start_utc, t.slot.c.end_utc, t.slot.c.status)


def _view(row: object) -> SlotView:
    return SlotView(*row)  # type: ignore[misc]


def get_slot(conn: Connection, slot_id: int) -> SlotView | None:
    row = conn.execute(select(*_COLUMNS).join(t.agenda, t.agenda.c.id == t.slot.c.agenda_id)
                       .where(t.slot.c.id == slot_id)).first()
    return _view(row) if row is not None else None


def search(
    conn: Connection,
    *,
    first_utc: int,
    last_utc: int,
    type_code: str | None = None,
    service_code: str | None = None,
    site_id: str | None = None,
    agenda_id: str | None = None,
    limit: int = 50,
) -> list[SlotView]:
    """Free slots starting in ``[first_utc, last_utc)``, earliest first, cap-filtered."""
    limit = max(1, min(limit, MAX_RESULTS))
    base = select(*_COLUMNS).join(t.agenda, t.agenda.c.id == t.slot.c.agenda_id).where(
        t.slot.c.status == SlotStatus.FREE, t.agenda.c.active.is_(True))
    if type_code:
        base = base.where(t.slot.c.type_code == type_code)
    if service_code:
        base = base.where(t.slot.c.service_code == service_code)
    if site_id:
        base = base.where(t.slot.c.site_id == site_id)
    if agenda_id:
        base = base.where(t.slot.c.agenda_id == agenda_id)
    found: list[SlotView] = []
    after: tuple[int, int] | None = None
    chunk = limit + 20
    for _round in range(6):
        query = base.where(t.slot.c.start_utc >= first_utc, t.slot.c.start_utc < last_utc)
        if after is not None:
            query = query.where((t.slot.c.start_utc > after[0])
                                | ((t.slot.c.start_utc == after[0]) & (t.slot.c.id > after[1])))
        rows = [_view(r) for r in conn.execute(
            query.order_by(t.slot.c.start_utc, t.slot.c.id).limit(chunk))]
        if not rows:
            break
        found.extend(_within_caps(conn, rows))
        if len(found) >= limit or len(rows) < chunk:
            break
        after = (rows[-1].start_utc, rows[-1].id)
        chunk *= 4
    return found[:limit]


def _within_caps(conn: Connection, rows: list[SlotView]) -> list[SlotView]:
    caps = site_caps(conn, sorted({r.site_id for r in rows}))
    if not caps:
        return rows
    booked: dict[str, list[int]] = {}
    for site, cap in caps.items():
        starts = [r.start_utc for r in rows if r.site_id == site]
        booked[site] = booked_starts(conn, site, min(starts) - cap.window_s,
                                     max(starts) + cap.window_s)
    return [r for r in rows
            if r.site_id not in caps or cap_allows(booked[r.site_id], r.start_utc,
                                                   caps[r.site_id])]


def day_view(conn: Connection, agenda_ids: Sequence[str], lo: int, hi: int) -> list[dict]:
    """Every slot of these agendas in ``[lo, hi)`` with its booking, for staff pages."""
    rows = conn.execute(
        select(t.slot.c.id, t.slot.c.agenda_id, t.slot.c.type_code, t.slot.c.start_utc,
               t.slot.c.end_utc, t.slot.c.status, t.booking.c.id.label("booking_id"),
               t.booking.c.family, t.booking.c.given, t.booking.c.birth_date,
               t.booking.c.source)
        .outerjoin(t.booking, (t.booking.c.slot_id == t.slot.c.id)
                   & (t.booking.c.status == "booked"))
        .where(t.slot.c.agenda_id.in_(list(agenda_ids)), t.slot.c.start_utc >= lo,
               t.slot.c.start_utc < hi)
        .order_by(t.slot.c.start_utc, t.slot.c.agenda_id))
    return [{str(k): v for k, v in r._asdict().items()} for r in rows]
