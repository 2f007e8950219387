"""The FHIR side of scheduling: Schedules and Appointments in the store.

The service's tables decide who holds which slot; the store receives the clinical
record of it. Each agenda is a ``Schedule`` (https://hl7.org/fhir/R4/schedule.html)
whose id is the agenda's. Each booking is an ``Appointment``
(https://hl7.org/fhir/R4/appointment.html) whose id is the booking's, with the patient
and the practitioner (or service location) as participants. Bookings carry a revision;
``project_pending`` writes every booking whose revision the store has not seen yet, as
a batch (``prepare`` + ``put_many``), then records the revision written. This is an
outbox: a booking is durable (and acknowledged) once its row commits, and the store
catches up right after, on the next pass after a crash at the latest. Writes use the
booking's id, so writing the same revision twice is harmless.

Free slots are not copied into the store: there are hundreds of thousands of them and
they change with every rule; the service serves them as FHIR ``Slot`` resources
(``slot_resource``) at ``/scheduling/api/slots``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import Engine, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.model import Agenda, AppointmentType, Patient, SlotView, utc_iso
from hygie.scheduling.transactions import writing
from hygie.store.repository import Repository

log = logging.getLogger("hygie.scheduling")

#: Local code systems of the service (appointment types and services).
BASE = "https://hygie.example/fhir"
TYPE_SYSTEM = f"{BASE}/CodeSystem/appointment-type"
SERVICE_SYSTEM = f"{BASE}/CodeSystem/service"
BOOKING_SYSTEM = f"{BASE}/sid/booking"


def _service(code: str, label: str) -> dict[str, Any]:
    return {"coding": [{"system": SERVICE_SYSTEM, "code": code, "display": label}],
            "text": label}


def _type(code: str, label: str) -> dict[str, Any]:
    return {"coding": [{"system": TYPE_SYSTEM, "code": code, "display": label}], "text": label}


def schedule_resource(agenda: Agenda) -> dict[str, Any]:
    """The agenda as a FHIR Schedule."""
    return {
        "resourceType": "Schedule",
        "id": agenda.id,
        "active": agenda.active,
        "serviceType": [_service(agenda.service_code, agenda.service_label)],
        "actor": [{"reference": agenda.actor_ref, "display": agenda.display}],
        "comment": f"{agenda.display} - {agenda.service_label} - {agenda.site_name}",
    }


def slot_resource(slot: SlotView, type_label: str) -> dict[str, Any]:
    """A slot as a FHIR Slot (https://hl7.org/fhir/R4/slot.html)."""
    status = {"free": "free", "booked": "busy", "held": "busy-tentative"}.get(
        slot.status, "busy-unavailable")
    return {
        "resourceType": "Slot",
        "id": str(slot.id),
        "schedule": {"reference": f"Schedule/{slot.agenda_id}", "display": slot.agenda_display},
        "serviceType": [_service(slot.service_code, slot.service_label)],
        "appointmentType": _type(slot.type_code, type_label),
        "status": status,
        "start": utc_iso(slot.start_utc),
        "end": utc_iso(slot.end_utc),
        "comment": slot.site_name,
    }


def appointment_resource(row: Any, agenda: Agenda, kind: AppointmentType | None,
                         patient_ref: str) -> dict[str, Any]:
    """A booking row as a FHIR Appointment."""
    label = kind.label if kind else row.type_code
    return {
        "resourceType": "Appointment",
        "id": row.id,
        "identifier": [{"system": BOOKING_SYSTEM, "value": row.id}],
        "status": "booked" if row.status == "booked" else "cancelled",
        "serviceType": [_service(agenda.service_code, agenda.service_label)],
        "appointmentType": _type(row.type_code, label),
        "description": f"{label} - {agenda.display} - {agenda.site_name}",
        "start": utc_iso(row.start_utc),
        "end": utc_iso(row.end_utc),
        "minutesDuration": max(1, (row.end_utc - row.start_utc) // 60),
        "created": utc_iso(row.created_utc)[:10],
        "participant": [
            {"actor": {"reference": patient_ref,
                       "display": f"{row.given} {row.family}"},
             "required": "required", "status": "accepted"},
            {"actor": {"reference": agenda.actor_ref, "display": agenda.display},
             "required": "required", "status": "accepted"},
        ],
    }


def _same_person(resource: dict[str, Any], patient: Patient) -> bool:
    names = resource.get("name") or [{}]
    family = {str(n.get("family", "")).casefold() for n in names}
    given = {str(g).casefold() for n in names for g in n.get("given", [])}
    return (resource.get("birthDate") == patient.birth_date
            and patient.family.casefold() in family
            and (bool(patient.phone) or patient.given.casefold() in given))


def find_patient(repository: Repository, patient: Patient) -> str | None:
    """The store's Patient for this person: same mobile number (or, without one, same
    given name), family name and birth date. One index probe, then a check here."""
    if patient.phone:
        query = [("phone", patient.phone)]
    else:
        query = [("family:exact", patient.family), ("birthdate", patient.birth_date)]
    page = repository.search("Patient", [*query, ("_count", "50")], strict=True)
    for match in page.matches:
        if _same_person(match.resource, patient):
            return f"Patient/{match.res_id}"
    return None


def new_patient(patient: Patient) -> dict[str, Any]:
    """A Patient resource for a person the store does not know yet."""
    resource: dict[str, Any] = {
        "resourceType": "Patient", "active": True,
        "name": [{"use": "official", "family": patient.family, "given": [patient.given]}],
        "birthDate": patient.birth_date,
    }
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone, "use": "mobile"})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email, "use": "home"})
    if telecom:
        resource["telecom"] = telecom
    return resource


def _known_here(conn: Any, patient: Patient) -> str | None:
    """The Patient an earlier booking of the same person was written with, if any."""
    if not patient.phone:
        return None
    rows = conn.execute(select(t.booking.c.patient_ref, t.booking.c.family,
                               t.booking.c.given).where(
        t.booking.c.phone == patient.phone, t.booking.c.birth_date == patient.birth_date,
        t.booking.c.patient_ref.is_not(None)).limit(20))
    for ref, family, _given in rows:
        if family.casefold() == patient.family.casefold():
            return str(ref)
    return None


def project_pending(engine: Engine, repository: Repository, agendas: dict[str, Agenda],
                    kinds: dict[str, AppointmentType], limit: int = 100) -> int:
    """Write the bookings the store has not seen yet as Appointments; returns how many."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.booking).where(
            t.booking.c.projected_revision < t.booking.c.revision)
            .order_by(t.booking.c.updated_utc).limit(limit)).all()
    if not rows:
        return 0
    refs: dict[str, str] = {}
    met: dict[tuple[str, ...], str] = {}
    prepared = []
    with engine.connect() as conn:
        for row in rows:
            person = Patient(row.family, row.given, row.birth_date, row.phone, row.email)
            key = (row.phone or "", row.family.casefold(), row.birth_date,
                   "" if row.phone else row.given.casefold())
            ref = row.patient_ref or met.get(key) or _known_here(conn, person)
            if ref is None:
                ref = find_patient(repository, person)
            if ref is None:  # written in the same batch as its Appointment
                patient_id = uuid.uuid4().hex
                prepared.append(repository.prepare(  # type: ignore[attr-defined]
                    new_patient(person), patient_id))
                ref = f"Patient/{patient_id}"
            met[key] = refs[row.id] = ref
            prepared.append(repository.prepare(  # type: ignore[attr-defined]
                appointment_resource(row, agendas[row.agenda_id], kinds.get(row.type_code),
                                     ref), row.id))
    repository.put_many(prepared)  # type: ignore[attr-defined]
    with writing(engine) as conn:
        for row in rows:
            conn.execute(update(t.booking).where(t.booking.c.id == row.id).values(
                projected_revision=row.revision, patient_ref=refs[row.id]))
    return len(rows)
