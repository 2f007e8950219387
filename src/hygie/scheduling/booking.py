"""Booking, moving and cancelling: exactly one booking per slot, within the site's cap.

The slot is claimed by one conditional update, ``UPDATE sched_slot SET status='booked'
WHERE id = :slot AND status = 'free'``, in the same transaction as the booking row:
whoever updates the row first wins and every other attempt sees ``rowcount == 0``.
On PostgreSQL the second writer waits for the first one's row lock and then re-reads
the condition (READ COMMITTED, "EvalPlanQual"); on SQLite writers are serialised by
``BEGIN IMMEDIATE``. A partial unique index on live bookings per slot is the last line
of defence should a future code path forget the condition.

The arrival cap is checked before the claim under advisory locks on the three
quarter-hour buckets around the start (ascending, so no two bookings deadlock): any
two bookings whose windows could interact share one of those buckets.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.errors import (
    ArrivalCapReached,
    InvalidState,
    NotFound,
    SlotUnavailable,
)
from hygie.scheduling.model import Booking, BookingStatus, Patient, SlotStatus
from hygie.scheduling.slots import Cap, booked_starts, cap_allows
from hygie.scheduling.transactions import advisory_lock

SecretFor = Callable[[str], str]


def token_hash(secret: str) -> str:
    """How link secrets are kept: their SHA-256 (the secret itself is never stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_cap(conn: Connection, site_id: str, start: int, exclude: str | None,
               cap: Cap | None) -> None:
    if cap is None:
        return
    bucket = start // cap.window_s
    for b in (bucket - 1, bucket, bucket + 1):
        advisory_lock(conn, f"sched-cap:{site_id}:{cap.window_s}:{b}")
    starts = booked_starts(conn, site_id, start - cap.window_s, start + cap.window_s, exclude)
    if not cap_allows(starts, start, cap):
        raise ArrivalCapReached(
            f"no more than {cap.max_arrivals} arrivals in any {cap.window_s // 60} minutes "
            "at this site: choose another time")


#: The slot with what booking it needs to know, in one read: its agenda's zone, whether
#: its type needs a pre-admission, and the site's arrival cap.
_SLOT_FOR_BOOKING = (
    select(t.slot, t.agenda.c.timezone, t.appointment_type.c.preadmission,
           t.site_cap.c.max_arrivals, t.site_cap.c.window_min)
    .join(t.agenda, t.agenda.c.id == t.slot.c.agenda_id)
    .outerjoin(t.appointment_type, t.appointment_type.c.code == t.slot.c.type_code)
    .outerjoin(t.site_cap, t.site_cap.c.site_id == t.slot.c.site_id)
    .where(t.slot.c.id == bindparam("slot_id"))
)
_TAKE_FREE = (update(t.slot).where(t.slot.c.id == bindparam("slot_id"),
                                   t.slot.c.status == SlotStatus.FREE)
              .values(status=SlotStatus.BOOKED))
_TAKE_HELD = (update(t.slot).where(t.slot.c.id == bindparam("slot_id"),
                                   t.slot.c.status == SlotStatus.HELD,
                                   t.slot.c.hold_entry == bindparam("entry"))
              .values(status=SlotStatus.BOOKED, hold_until=None, hold_entry=None))
_INSERT_BOOKING = insert(t.booking)


@dataclass(frozen=True)
class Claimed:
    """The slot a booking just took, with its agenda's zone and its type's needs."""

    slot_id: int
    agenda_id: str
    site_id: str
    type_code: str
    start_utc: int
    end_utc: int
    timezone: str
    preadmission: bool


def _claim(conn: Connection, slot_id: int, now: int, hold_entry: int | None,
           exclude: str | None) -> Claimed:
    row = conn.execute(_SLOT_FOR_BOOKING, {"slot_id": slot_id}).first()
    if row is None:
        raise NotFound(f"no slot {slot_id}")
    if row.start_utc <= now:
        raise SlotUnavailable("this slot has already started")
    cap = Cap(row.max_arrivals, row.window_min * 60) if row.max_arrivals else None
    _check_cap(conn, row.site_id, row.start_utc, exclude, cap)
    if hold_entry is None:
        done = conn.execute(_TAKE_FREE, {"slot_id": slot_id})
    else:
        done = conn.execute(_TAKE_HELD, {"slot_id": slot_id, "entry": hold_entry})
    if done.rowcount != 1:
        raise SlotUnavailable("this slot is no longer free")
    return Claimed(slot_id, row.agenda_id, row.site_id, row.type_code, row.start_utc,
                   row.end_utc, row.timezone, bool(row.preadmission))


def _booking(row: object, secret: str | None = None) -> Booking:
    r = row
    return Booking(
        id=r.id, slot_id=r.slot_id, agenda_id=r.agenda_id,  # type: ignore[attr-defined]
        site_id=r.site_id, type_code=r.type_code,  # type: ignore[attr-defined]
        start_utc=r.start_utc, end_utc=r.end_utc, status=r.status,  # type: ignore[attr-defined]
        patient=Patient(r.family, r.given, r.birth_date, r.phone,  # type: ignore[attr-defined]
                        r.email, r.patient_ref),  # type: ignore[attr-defined]
        source=r.source, revision=r.revision, manage_secret=secret,  # type: ignore[attr-defined]
    )


def book(conn: Connection, slot_id: int, patient: Patient, *, source: str, now: int,
         hold_entry: int | None = None,
         secret_for: SecretFor | None = None) -> tuple[Booking, Claimed]:
    """Book ``slot_id`` for ``patient``; raises ``SlotUnavailable`` if someone was first.

    ``secret_for`` derives the secret of the patient's manage link from the booking id
    (so that reminders can repeat the link without the secret being stored); by
    default it is random. Returns the booking and what the slot's agenda and type say.
    """
    slot = _claim(conn, slot_id, now, hold_entry, None)
    booking_id = uuid.uuid4().hex
    secret = secret_for(booking_id) if secret_for else secrets.token_urlsafe(24)
    conn.execute(_INSERT_BOOKING, {
        "id": booking_id, "slot_id": slot_id, "agenda_id": slot.agenda_id,
        "site_id": slot.site_id, "type_code": slot.type_code, "start_utc": slot.start_utc,
        "end_utc": slot.end_utc, "status": BookingStatus.BOOKED, "family": patient.family,
        "given": patient.given, "birth_date": patient.birth_date, "phone": patient.phone,
        "email": patient.email, "patient_ref": patient.patient_ref,
        "manage_token": token_hash(secret), "source": source, "created_utc": now,
        "updated_utc": now, "revision": 1, "projected_revision": 0})
    booking = Booking(booking_id, slot_id, slot.agenda_id, slot.site_id, slot.type_code,
                      slot.start_utc, slot.end_utc, BookingStatus.BOOKED, patient, source,
                      1, secret)
    return booking, slot


def get(conn: Connection, booking_id: str, secret: str | None = None) -> Booking:
    row = conn.execute(select(t.booking).where(t.booking.c.id == booking_id)).first()
    if row is None:
        raise NotFound(f"no booking {booking_id!r}")
    return _booking(row, secret)


def by_secret(conn: Connection, secret: str) -> Booking:
    """The booking a patient's cancel/move link points to."""
    row = conn.execute(select(t.booking).where(
        t.booking.c.manage_token == token_hash(secret))).first()
    if row is None:
        raise NotFound("this link does not match any appointment")
    return _booking(row)


def _live(conn: Connection, booking_id: str) -> Booking:
    current = get(conn, booking_id)
    if current.status != BookingStatus.BOOKED:
        raise InvalidState("this appointment is cancelled")
    return current


def cancel(conn: Connection, booking_id: str, now: int) -> tuple[Booking, int | None]:
    """Cancel a booking; returns it and the slot it freed (None when already past)."""
    current = _live(conn, booking_id)
    conn.execute(update(t.booking).where(t.booking.c.id == booking_id).values(
        status=BookingStatus.CANCELLED, updated_utc=now, revision=t.booking.c.revision + 1))
    freed = None
    if current.start_utc > now:
        conn.execute(update(t.slot).where(t.slot.c.id == current.slot_id,
                                          t.slot.c.status == SlotStatus.BOOKED)
                     .values(status=SlotStatus.FREE))
        freed = current.slot_id
    return get(conn, booking_id), freed


def move(conn: Connection, booking_id: str, new_slot_id: int, now: int) -> tuple[Booking, int]:
    """Move a booking to another free slot; returns it and the slot it freed."""
    current = _live(conn, booking_id)
    if new_slot_id == current.slot_id:
        raise InvalidState("the appointment is already in this slot")
    if current.start_utc <= now:
        raise InvalidState("this appointment has already started")
    slot = _claim(conn, new_slot_id, now, None, booking_id)
    conn.execute(update(t.slot).where(t.slot.c.id == current.slot_id,
                                      t.slot.c.status == SlotStatus.BOOKED)
                 .values(status=SlotStatus.FREE))
    conn.execute(update(t.booking).where(t.booking.c.id == booking_id).values(
        slot_id=new_slot_id, agenda_id=slot.agenda_id, site_id=slot.site_id,
        type_code=slot.type_code, start_utc=slot.start_utc, end_utc=slot.end_utc,
        updated_utc=now, revision=t.booking.c.revision + 1))
    return get(conn, booking_id), current.slot_id


def bookings_of(conn: Connection, agenda_ids: list[str], lo: int, hi: int) -> list[Booking]:
    rows = conn.execute(select(t.booking).where(
        t.booking.c.agenda_id.in_(agenda_ids), t.booking.c.start_utc >= lo,
        t.booking.c.start_utc < hi).order_by(t.booking.c.start_utc))
    return [_booking(r) for r in rows]
