"""Reminders, the waiting list, and the Appointments written to the store."""

from __future__ import annotations

import re
from datetime import date, time

from sqlalchemy import select

from hygie.scheduling import tables as t
from hygie.scheduling.availability import local_instant
from hygie.scheduling.engine import SchedulingService
from hygie.scheduling.jobs import pending_jobs, reminder_times
from hygie.scheduling.model import PARIS, Patient, to_local

ALICE = Patient("Durand", "Alice", "1980-02-03", "+33612345678", "alice@example.org")
BOB = Patient("Leroy", "Bob", "1975-05-06", "+33698765432")


def _slot(service: SchedulingService, day: date, hhmm: str) -> int:
    at = local_instant(day, time.fromisoformat(hhmm), PARIS)
    return service.search(first_utc=at, last_utc=at + 1)[0].id


def _messages(service: SchedulingService, recipient: str) -> list[tuple[str, str]]:
    with service.engine.connect() as conn:
        return [(r.purpose, r.body) for r in conn.execute(
            select(t.message).where(t.message.c.recipient == recipient).order_by(t.message.c.id))]


def test_reminder_times_follow_paris_wall_clock_across_dst() -> None:
    # Monday 29 March 2021 10:00 (summer time); the day before is the change day.
    start = local_instant(date(2021, 3, 29), time(10), PARIS)
    (which1, day_before), (which2, short) = reminder_times(start, PARIS)
    assert which1 == "day-before" and which2 == "two-hours"
    assert to_local(day_before).strftime("%Y-%m-%d %H:%M%z") == "2021-03-28 18:00+0200"
    assert to_local(short).strftime("%H:%M") == "08:00"


def test_reminders_are_persisted_sent_once_and_follow_moves(service: SchedulingService) -> None:
    booking = service.book(_slot(service, date(2021, 3, 3), "10:00"), ALICE)
    jobs = _jobs(service, booking.id)
    assert [j["which"] for j in jobs] == ["day-before", "two-hours"]
    # A new service on the same database (a restart) runs them when they are due.
    restarted = SchedulingService(service.platform, service.options)
    restarted.clock = lambda: jobs[0]["due_utc"]
    assert restarted.run_once()["jobs"] == 1
    assert restarted.run_once()["jobs"] == 0
    sms = [b for p, b in _messages(service, ALICE.phone or "") if p == "reminder"]
    assert len(sms) == 1 and "demain à 10:00" in sms[0]
    assert service.manage_url(service.manage_secret(booking.id)) in sms[0]
    mails = [b for p, b in _messages(service, ALICE.email or "") if p == "reminder"]
    assert len(mails) == 1 and "03/03/2021 à 10:00" in mails[0]
    # Moving cancels the remaining reminder and plans new ones.
    moved = service.move(booking.id, _slot(service, date(2021, 3, 5), "11:00"))
    states = [(j["which"], j["status"]) for j in _jobs(service, moved.id)]
    assert ("two-hours", "cancelled") in states
    assert states.count(("day-before", "due")) == 1 and states.count(("two-hours", "due")) == 1
    service.cancel(moved.id)
    assert all(j["status"] != "due" for j in _jobs(service, moved.id))


def test_a_freed_slot_is_offered_to_the_waiting_list(service: SchedulingService) -> None:
    slot = _slot(service, date(2021, 3, 4), "09:40")
    held = service.book(slot, ALICE)
    token = _token(service, BOB.phone or "")
    lo = local_instant(date(2021, 3, 4), time(0), PARIS)
    service.join_waitlist(BOB, token, "consultation", lo, lo + 86400)
    service.cancel(held.id)
    offer_sms = [b for p, b in _messages(service, BOB.phone or "") if p == "waitlist"]
    assert len(offer_sms) == 1 and "04/03/2021 à 09:40" in offer_sms[0]
    secret = re.search(r"/scheduling/offer/(\S+)", offer_sms[0]).group(1)  # type: ignore[union-attr]
    # Held for Bob: nobody else finds or books it.
    assert slot not in [s.id for s in service.search(limit=200)]
    offered, who = service.offer(secret)
    assert offered.id == slot and who.family == "Leroy"
    booking = service.claim_offer(secret)
    assert booking.slot_id == slot and booking.source == "waitlist"
    assert service.waitlist("booked")[0]["family"] == "Leroy"


def test_an_unclaimed_offer_passes_to_the_next_person(service: SchedulingService) -> None:
    slot = _slot(service, date(2021, 3, 4), "10:20")
    held = service.book(slot, ALICE)
    lo = local_instant(date(2021, 3, 4), time(0), PARIS)
    service.join_waitlist(BOB, _token(service, BOB.phone or ""), "consultation", lo, lo + 86400)
    carol = Patient("Faure", "Carol", "1990-09-09", "+33611112222")
    service.join_waitlist(carol, _token(service, carol.phone or ""), "consultation", lo,
                          lo + 86400)
    service.cancel(held.id)
    later = SchedulingService(service.platform, service.options)
    later.clock = lambda: service.clock() + 31 * 60
    later.run_once()
    assert [p for p, _ in _messages(service, carol.phone or "")].count("waitlist") == 1
    assert service.waitlist("expired")[0]["family"] == "Leroy"


def test_bookings_become_appointments_in_the_store(service: SchedulingService) -> None:
    booking = service.book(_slot(service, date(2021, 3, 2), "14:00"), ALICE)
    assert service.run_once()["projected"] == 1
    repo = service.repository
    appointment = repo.read("Appointment", booking.id).resource
    assert appointment["status"] == "booked"
    assert appointment["start"] == "2021-03-02T13:00:00Z"
    patient_ref = appointment["participant"][0]["actor"]["reference"]
    patient = repo.read("Patient", patient_ref.split("/")[1]).resource
    assert patient["name"][0]["family"] == "Durand" and patient["birthDate"] == "1980-02-03"
    assert appointment["participant"][1]["actor"]["reference"] == "PractitionerRole/role-0002"
    schedule = repo.read("Schedule", "ag-anesth-1").resource
    assert schedule["actor"][0]["reference"] == "PractitionerRole/role-0002"
    # A second booking by the same person finds the same Patient; a cancel updates.
    second = service.book(_slot(service, date(2021, 3, 9), "14:30"), ALICE)
    service.cancel(booking.id)
    assert service.run_once()["projected"] == 2
    assert repo.read("Appointment", booking.id).resource["status"] == "cancelled"
    assert repo.read("Appointment", booking.id).version == 2
    again = repo.read("Appointment", second.id).resource
    assert again["participant"][0]["actor"]["reference"] == patient_ref
    found = repo.search("Appointment", [("patient", patient_ref), ("status", "booked")])
    assert [m.res_id for m in found.matches] == [second.id]


def _jobs(service: SchedulingService, booking_id: str) -> list[dict]:
    with service.engine.connect() as conn:
        return pending_jobs(conn, booking_id)


def _token(service: SchedulingService, phone: str) -> str:
    service.request_code(phone)
    body = _messages(service, phone)[-1][1]
    code = re.search(r"\b(\d{6})\b", body).group(1)  # type: ignore[union-attr]
    return service.confirm_code(phone, code)


def test_messages_are_handed_to_the_channels_outbox_once(service: SchedulingService) -> None:
    from hygie.channels import channels_for

    service.book(_slot(service, date(2021, 3, 8), "09:20"), ALICE)
    assert service.run_once()["handed"] == 1
    assert service.run_once()["handed"] == 0
    with service.engine.connect() as conn:
        row = conn.execute(select(t.message)).one()
    assert row.status == "handed"
    record = channels_for(service.platform).get_by_key(f"scheduling:message:{row.id}")
    assert record.recipient == ALICE.phone and record.id == row.reference
    assert "rendez-vous confirmé le 08/03/2021 à 09:20" in record.text
