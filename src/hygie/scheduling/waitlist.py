"""The waiting list: people who found no slot are offered the slots others free.

When a slot is freed (a cancellation, a move), the oldest waiting entry whose wishes
match (appointment type, and site, service and dates when given) gets an offer: the
slot is held for that person alone (status ``held``) and an SMS carries a link to
claim it. An offer that is not claimed in time passes to the next entry, and the
slot becomes free when nobody is left. Claiming books through the same conditional
update as any booking, on the condition that the slot is still held for this entry.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, or_, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.booking import token_hash
from hygie.scheduling.errors import InvalidInput, InvalidState, NotFound
from hygie.scheduling.model import Patient, SlotStatus


@dataclass(frozen=True)
class Offer:
    entry_id: int
    slot_id: int
    phone: str
    secret: str
    until_utc: int


def join(conn: Connection, patient: Patient, type_code: str, earliest_utc: int,
         latest_utc: int, now: int, site_id: str | None = None,
         service_code: str | None = None) -> int:
    """Put a person on the waiting list; returns the entry's id."""
    if latest_utc <= earliest_utc or latest_utc <= now:
        raise InvalidInput("the waiting period must end after it starts, in the future")
    if not patient.phone:
        raise InvalidInput("a verified mobile number is needed to receive offers")
    return int(conn.execute(insert(t.waitlist).values(
        type_code=type_code, site_id=site_id or None, service_code=service_code or None,
        earliest_utc=max(earliest_utc, now), latest_utc=latest_utc, family=patient.family,
        given=patient.given, birth_date=patient.birth_date, phone=patient.phone,
        email=patient.email, status="waiting", created_utc=now)).inserted_primary_key[0])


def offer_slot(conn: Connection, slot_id: int, now: int, ttl_s: int) -> Offer | None:
    """Hold a freed slot for the first matching waiting entry, if any."""
    slot = conn.execute(select(t.slot).where(t.slot.c.id == slot_id)).first()
    if slot is None or slot.status != SlotStatus.FREE or slot.start_utc <= now + ttl_s:
        return None
    w = t.waitlist.c
    entry = conn.execute(select(t.waitlist).where(
        w.status == "waiting", w.type_code == slot.type_code,
        or_(w.site_id.is_(None), w.site_id == slot.site_id),
        or_(w.service_code.is_(None), w.service_code == slot.service_code),
        w.earliest_utc <= slot.start_utc, w.latest_utc >= slot.start_utc)
        .order_by(w.created_utc, w.id).limit(1)).first()
    if entry is None:
        return None
    held = conn.execute(update(t.slot).where(t.slot.c.id == slot_id,
                                             t.slot.c.status == SlotStatus.FREE)
                        .values(status=SlotStatus.HELD, hold_entry=entry.id,
                                hold_until=now + ttl_s))
    if held.rowcount != 1:
        return None
    secret = secrets.token_urlsafe(24)
    conn.execute(update(t.waitlist).where(w.id == entry.id).values(
        status="offered", offer_slot=slot_id, offer_token=token_hash(secret),
        offer_until=now + ttl_s))
    return Offer(entry.id, slot_id, entry.phone, secret, now + ttl_s)


def offered_entry(conn: Connection, secret: str, now: int) -> tuple[object, Patient]:
    """The entry an offer link points to, while its offer stands."""
    row = conn.execute(select(t.waitlist).where(
        t.waitlist.c.offer_token == token_hash(secret))).first()
    if row is None:
        raise NotFound("this offer link does not match any offer")
    if row.status != "offered" or (row.offer_until or 0) <= now:
        raise InvalidState("this offer has expired or was already used")
    return row, Patient(row.family, row.given, row.birth_date, row.phone, row.email)


def mark_booked(conn: Connection, entry_id: int) -> None:
    # The token stays, so that the link can say the offer was used rather than unknown.
    conn.execute(update(t.waitlist).where(t.waitlist.c.id == entry_id).values(status="booked"))


def expire_offer(conn: Connection, entry_id: int, slot_id: int) -> bool:
    """End an unclaimed offer; True when the slot was released (to offer it again)."""
    done = conn.execute(update(t.waitlist).where(
        t.waitlist.c.id == entry_id, t.waitlist.c.status == "offered",
        t.waitlist.c.offer_slot == slot_id).values(status="expired"))
    if done.rowcount != 1:
        return False
    released = conn.execute(update(t.slot).where(
        t.slot.c.id == slot_id, t.slot.c.status == SlotStatus.HELD,
        t.slot.c.hold_entry == entry_id).values(status=SlotStatus.FREE, hold_entry=None,
                                                hold_until=None))
    return released.rowcount == 1


def entries(conn: Connection, status: str = "waiting", limit: int = 200) -> list[dict]:
    rows = conn.execute(select(t.waitlist).where(t.waitlist.c.status == status)
                        .order_by(t.waitlist.c.created_utc).limit(limit))
    return [{str(k): v for k, v in r._asdict().items()} for r in rows]
