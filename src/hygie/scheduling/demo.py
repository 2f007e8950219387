"""A published calendar for the demo territory: consultations with its doctors.

Reads the doctors' ``PractitionerRole`` resources from the store (``hygie demo`` put
them there) and gives each an agenda at its hospital, in its specialty, with opening
rules drawn from the role's ``availableTime`` days (mornings for consultations,
afternoons for anaesthesia consultations and pre-operative visits). Slots are then
generated over the horizon asked for.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from typing import Any

from hygie.platform import Platform
from hygie.scheduling.engine import SchedulingService
from hygie.scheduling.model import Agenda, AppointmentType, OpeningRule

TYPES = [
    AppointmentType("consultation", "Consultation", 20),
    AppointmentType("suivi", "Consultation de suivi", 15),
    AppointmentType("anesthesie", "Consultation d'anesthésie", 30, preadmission=True),
    AppointmentType("teleconsultation", "Téléconsultation", 15),
]
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
#: Services whose doctors take appointments (emergency and intensive care do not).
_BOOKABLE = {"Cardiologie", "Pneumologie", "Gériatrie", "Médecine interne", "Chirurgie",
             "Pédiatrie", "Maternité", "Maladies infectieuses", "Imagerie médicale"}


def slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def agendas_from_roles(roles: list[dict[str, Any]]) -> list[tuple[Agenda, list[int], bool]]:
    """(agenda, weekdays, is anaesthesia) for each doctor role of a bookable service."""
    out = []
    for role in roles:
        codes = {c.get("code") for cc in role.get("code", []) for c in cc.get("coding", [])}
        specialty = (role.get("specialty") or [{}])[0].get("text", "")
        anaesthesia = "88189002" in codes
        if "doctor" not in codes or (specialty not in _BOOKABLE and not anaesthesia):
            continue
        label = "Anesthésie" if anaesthesia else specialty
        org = role["organization"]
        days = sorted({_DAYS[d] for t in role.get("availableTime", [])
                       for d in t.get("daysOfWeek", []) if d in _DAYS} - {6, 7}) or [1, 2, 4]
        agenda = Agenda(
            id=f"ag-{role['id']}", kind="practitioner",
            actor_ref=f"PractitionerRole/{role['id']}",
            display=f"Dr {role['practitioner'].get('display', role['id'])}",
            site_id=org["reference"].split("/", 1)[1],
            site_name=org.get("display", org["reference"]),
            service_code=slug(label), service_label=label)
        out.append((agenda, days, anaesthesia))
    return out


def seed(service: SchedulingService, roles: list[dict[str, Any]], first: date,
         days: int) -> tuple[int, int]:
    """Publish the demo calendar; returns (agendas, slots created)."""
    for kind in TYPES:
        service.put_appointment_type(kind)
    known = {a.id for a in service.agendas()}
    count = 0
    for agenda, weekdays, anaesthesia in agendas_from_roles(roles):
        count += 1
        if agenda.id in known:
            continue
        service.put_agenda(agenda)
        if anaesthesia:
            service.add_rule(OpeningRule(agenda.id, tuple(weekdays), "13:30", "17:30",
                                         "anesthesie", first))
        else:
            service.add_rule(OpeningRule(agenda.id, tuple(weekdays), "08:30", "12:30",
                                         "consultation", first))
            service.add_rule(OpeningRule(agenda.id, tuple(weekdays[:1]), "14:00", "16:00",
                                         "suivi", first))
    created = service.generate(first, first + timedelta(days=days))
    return count, created


def seed_demo(platform: Platform, days: int = 90) -> str:
    """Publish the demo calendar on ``platform`` (idempotent); says what it did.

    ``hygie demo`` calls it after seeding the store, so that the booking pages have
    consultations to offer from the first start.
    """
    from hygie.scheduling.engine import Options
    from hygie.store.server import open_store

    open_store(platform)
    service = SchedulingService(platform, Options(worker=False))
    page = service.repository.search("PractitionerRole", [("_count", "1000")], strict=True)
    roles = [m.resource for m in page.matches]
    if not roles:
        raise ValueError("no PractitionerRole in the store: seed the demo territory first")
    agendas, created = seed(service, roles, date.today(), days)
    return f"{agendas} agendas, {created} new slots over {days} days"

