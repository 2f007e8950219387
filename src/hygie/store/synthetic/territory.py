"""A fictional GHT of three hospitals, as FHIR R4 resources, and an index over it.

``generate_territory`` builds the GHT (groupement hospitalier de territoire) of
Touraine-Blésois: an Organization for the GHT and one per hospital (``partOf`` the
GHT); for each hospital a Location tree site -> building -> unit -> room -> bed, with
R4 ``location-physical-type`` codes and v2-0116 bed status as ``operationalStatus``
(https://hl7.org/fhir/R4/location.html); about 150 Practitioners with French identities
and RPPS-like numbers, each with a PractitionerRole coded in SNOMED CT (occupation
hierarchy) and, where it applies, the R4 ``practitioner-role`` code, placed in a unit
with telecom and availableTime (https://hl7.org/fhir/R4/practitionerrole.html).

Hospital names are invented; towns, street names and person names are real French
ones combined at random. Resource ids are readable and fixed (``ch-jeanne-sorel``,
``ch-jeanne-sorel-icu-101-a``, ``pract-0001``) so that patient data can refer to them as
``Organization/<id>``, ``Location/<id>``, ``Practitioner/<id>``.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

from .datatypes import SNOMED, Json, coding, concept, reference
from .identifiers import (
    FINESS_SYSTEM,
    GHT_SYSTEM,
    RPPS_SYSTEM,
    UNIT_KIND_SYSTEM,
    finess_number,
    rpps_number,
)
from .names import SURNAMES, TOWNS, Town, given_names_for
from .terminology import (
    BED_STATUS,
    IDENTIFIER_TYPE,
    LOCATION_PHYSICAL_TYPE,
    ORGANIZATION_TYPE,
    PRACTITIONER_ROLE,
    ROLE_CODE,
    STAFF_ROLES,
    UNIT_KINDS,
)

#: The fictional e-mail domain of the GHT's staff (reserved ``.example`` TLD).
STAFF_MAIL_DOMAIN = "ght-touraine-blesois.example"

GHT_ID = "ght-touraine-blesois"
GHT_NAME = "GHT Touraine-Blésois"


class HospitalPlan(NamedTuple):
    """The fixed layout of one hospital: units (kind, beds) in buildings."""

    id: str
    name: str
    alias: str
    town: str
    street: str
    phone: str
    size: int  # 0 large, 1 medium, 2 small: picks the staffing column
    buildings: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]


HOSPITALS: tuple[HospitalPlan, ...] = (
    HospitalPlan(
        "ch-jeanne-sorel", "Centre hospitalier Jeanne-Sorel", "CH Jeanne-Sorel", "Tours",
        "45 boulevard Jean-Jaurès", "+33247400000", 0,
        (
            ("A", (("emergency", 14), ("icu", 16), ("surgery", 24), ("radiology", 0))),
            ("B", (("internal-medicine", 24), ("cardiology", 20), ("pneumology", 20),
                   ("infectious-diseases", 12))),
            ("C", (("paediatrics", 16), ("maternity", 18), ("geriatrics", 20))),
        ),
    ),
    HospitalPlan(
        "ch-deux-rives", "Centre hospitalier des Deux-Rives", "CH des Deux-Rives", "Blois",
        "8 rue de la Levée", "+33254550000", 1,
        (
            ("A", (("emergency", 10), ("icu", 10), ("surgery", 20), ("radiology", 0))),
            ("B", (("internal-medicine", 20), ("cardiology", 16), ("pneumology", 16),
                   ("paediatrics", 10), ("maternity", 12))),
        ),
    ),
    HospitalPlan(
        "ch-val-amasse", "Centre hospitalier du Val d'Amasse", "CH du Val d'Amasse",
        "Amboise", "3 allée des Coteaux", "+33247230000", 2,
        (
            ("A", (("emergency", 6), ("internal-medicine", 16), ("surgery", 12),
                   ("radiology", 0))),
            ("B", (("geriatrics", 20),)),
        ),
    ),
)

#: Staff of a unit kind: (role, head count in a large, medium, small hospital).
STAFFING: dict[str, tuple[tuple[str, int, int, int], ...]] = {
    "icu": (("intensivist", 2, 1, 0), ("anaesthetist", 2, 2, 0), ("icu-nurse", 8, 5, 0),
            ("nursing-assistant", 3, 2, 0)),
    "emergency": (("emergency-physician", 5, 3, 2), ("emergency-nurse", 4, 3, 2),
                  ("nursing-assistant", 2, 1, 1)),
    "internal-medicine": (("internist", 2, 2, 2), ("nurse", 3, 2, 2),
                          ("nursing-assistant", 2, 1, 1)),
    "cardiology": (("cardiologist", 2, 2, 0), ("nurse", 2, 2, 0),
                   ("nursing-assistant", 1, 1, 0)),
    "pneumology": (("pulmonologist", 2, 2, 0), ("nurse", 2, 2, 0),
                   ("nursing-assistant", 1, 1, 0)),
    "infectious-diseases": (("infectiologist", 2, 0, 0), ("nurse", 2, 0, 0),
                            ("nursing-assistant", 1, 0, 0)),
    "surgery": (("surgeon", 3, 2, 1), ("anaesthetist", 2, 1, 1), ("nurse", 3, 2, 1),
                ("nursing-assistant", 1, 1, 1)),
    "paediatrics": (("paediatrician", 2, 1, 0), ("paediatric-nurse", 3, 2, 0)),
    "maternity": (("obstetrician", 2, 1, 0), ("midwife", 3, 2, 0),
                  ("nursing-assistant", 1, 1, 0)),
    "geriatrics": (("geriatrician", 2, 0, 2), ("nurse", 2, 0, 2),
                   ("nursing-assistant", 2, 0, 2)),
    "radiology": (("radiologist", 2, 1, 1), ("radiographer", 3, 2, 1)),
}

#: Share of women by role category, for plausible staff genders.
_FEMALE_SHARE = {"doctor": 0.5, "nurse": 0.86, None: 0.9}

#: Bed status draw (v2-0116): mostly occupied, some free, a few being cleaned or closed.
_BED_STATUSES = (
    ("O", "Occupied", 0.72), ("U", "Unoccupied", 0.18), ("H", "Housekeeping", 0.05),
    ("C", "Closed", 0.03), ("I", "Isolated", 0.02),
)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
_ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Nursing shifts of French hospitals (7.5 h morning/afternoon, 12 h day).
_SHIFTS = (("06:45:00", "14:15:00"), ("13:45:00", "21:15:00"), ("07:00:00", "19:00:00"))


def _town(name: str) -> Town:
    return next(t for t in TOWNS if t.name == name)


def ascii_slug(text: str) -> str:
    """Lower-case ASCII form of a French name, for e-mail addresses."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "-".join(plain.lower().replace("'", " ").split())


def _address(line: str, town: Town, use: str = "work") -> Json:
    return {
        "use": use,
        "type": "both",
        "line": [line],
        "city": town.name,
        "postalCode": town.postal_code,
        "country": "FR",
    }


def _physical_type(code: str, display: str) -> Json:
    return concept(LOCATION_PHYSICAL_TYPE, code, display)


def _organizations(rng: random.Random) -> list[Json]:
    ght: Json = {
        "resourceType": "Organization",
        "id": GHT_ID,
        "identifier": [{"system": GHT_SYSTEM, "value": "GHT-37-41"}],
        "active": True,
        "type": [concept(ORGANIZATION_TYPE, "prov", "Healthcare Provider",
                         "Groupement hospitalier de territoire")],
        "name": GHT_NAME,
        "telecom": [{"system": "url", "value": f"https://www.{STAFF_MAIL_DOMAIN}/"}],
    }
    result = [ght]
    for plan in HOSPITALS:
        town = _town(plan.town)
        result.append({
            "resourceType": "Organization",
            "id": plan.id,
            "identifier": [{
                "use": "official",
                "system": FINESS_SYSTEM,
                "value": finess_number(rng, town.department),
            }],
            "active": True,
            "type": [concept(ORGANIZATION_TYPE, "prov", "Healthcare Provider",
                             "Centre hospitalier")],
            "name": plan.name,
            "alias": [plan.alias],
            "telecom": [
                {"system": "phone", "value": plan.phone, "use": "work"},
                {"system": "email", "value": f"contact.{plan.id}@{STAFF_MAIL_DOMAIN}",
                 "use": "work"},
            ],
            "address": [_address(plan.street, town)],
            "partOf": reference(f"Organization/{GHT_ID}", GHT_NAME),
        })
    return result


def _locations(rng: random.Random) -> list[Json]:
    result: list[Json] = []
    for plan in HOSPITALS:
        town = _town(plan.town)
        org = reference(f"Organization/{plan.id}", plan.name)
        site_id = f"{plan.id}-site"
        result.append({
            "resourceType": "Location",
            "id": site_id,
            "identifier": [{"system": FINESS_SYSTEM,
                            "value": finess_number(rng, town.department)}],
            "status": "active",
            "name": f"{plan.alias} - site principal",
            "mode": "instance",
            "type": [concept(ROLE_CODE, "HOSP", "Hospital")],
            "telecom": [{"system": "phone", "value": plan.phone, "use": "work"}],
            "address": _address(plan.street, town),
            "physicalType": _physical_type("si", "Site"),
            "position": {
                "longitude": round(town.longitude + rng.uniform(-0.02, 0.02), 6),
                "latitude": round(town.latitude + rng.uniform(-0.015, 0.015), 6),
            },
            "managingOrganization": org,
            "hoursOfOperation": [{"daysOfWeek": list(_ALL_DAYS), "allDay": True}],
        })
        for letter, units in plan.buildings:
            building_id = f"{plan.id}-bat-{letter.lower()}"
            result.append({
                "resourceType": "Location",
                "id": building_id,
                "status": "active",
                "name": f"{plan.alias} - bâtiment {letter}",
                "mode": "instance",
                "physicalType": _physical_type("bu", "Building"),
                "managingOrganization": reference(f"Organization/{plan.id}"),
                "partOf": reference(f"Location/{site_id}"),
            })
            for floor, (kind_code, beds) in enumerate(units):
                result.extend(_unit(rng, plan, building_id, floor, kind_code, beds))
    return result


def _unit(rng: random.Random, plan: HospitalPlan, building_id: str, floor: int,
          kind_code: str, beds: int) -> list[Json]:
    kind = UNIT_KINDS[kind_code]
    unit_id = f"{plan.id}-{kind_code}"
    org = reference(f"Organization/{plan.id}")
    unit: Json = {
        "resourceType": "Location",
        "id": unit_id,
        "status": "active",
        "name": f"{kind.name} - {plan.alias}",
        "alias": [kind.name],
        "mode": "instance",
        "type": [
            concept(ROLE_CODE, kind.role_code, kind.role_display),
            concept(UNIT_KIND_SYSTEM, kind_code, kind.name, kind.name),
        ],
        "telecom": [{"system": "phone", "use": "work",
                     "value": f"{plan.phone[:-3]}{floor + 1}{rng.randrange(10, 99)}"}],
        "physicalType": _physical_type("wa", "Ward"),
        "managingOrganization": org,
        "partOf": reference(f"Location/{building_id}"),
    }
    result = [unit]
    if kind.beds_per_room == 0:  # imaging: rooms without beds
        for place, room_name in ((1, "Salle de scanner"), (2, "Salle de radiologie"),
                                 (3, "Salle d'IRM")):
            result.append(_room(unit_id, org, f"{floor}0{place}", room_name))
        return result
    room_word = "Box" if kind_code == "emergency" else "Chambre"
    for index in range(beds // kind.beds_per_room):
        number = f"{floor}{index + 1:02d}"
        room = _room(unit_id, org, number, f"{room_word} {number}")
        result.append(room)
        for bed in range(kind.beds_per_room):
            letter = "ab"[bed]
            code, display = _draw_bed_status(rng)
            result.append({
                "resourceType": "Location",
                "id": f"{room['id']}-{letter}",
                "status": "active",
                "operationalStatus": coding(BED_STATUS, code, display),
                "name": f"Lit {number}-{letter.upper()}",
                "mode": "instance",
                "physicalType": _physical_type("bd", "Bed"),
                "managingOrganization": reference(f"Organization/{plan.id}"),
                "partOf": reference(f"Location/{room['id']}"),
            })
    return result


def _room(unit_id: str, org: Json, number: str, name: str) -> Json:
    return {
        "resourceType": "Location",
        "id": f"{unit_id}-{number}",
        "status": "active",
        "name": name,
        "mode": "instance",
        "physicalType": _physical_type("ro", "Room"),
        "managingOrganization": dict(org),
        "partOf": reference(f"Location/{unit_id}"),
    }


def _draw_bed_status(rng: random.Random) -> tuple[str, str]:
    draw = rng.random()
    for code, display, share in _BED_STATUSES:
        draw -= share
        if draw < 0:
            return code, display
    return _BED_STATUSES[0][0], _BED_STATUSES[0][1]


def mobile_number(rng: random.Random) -> str:
    """A French mobile number in E.164 form: +33 6 or +33 7, then 8 digits."""
    return f"+33{rng.choice('67')}{rng.randrange(100_000_000):08d}"


def _staff(rng: random.Random) -> list[Json]:
    practitioners: list[Json] = []
    roles: list[Json] = []
    posts: list[tuple[Json, str, HospitalPlan, str]] = []
    emails: set[str] = set()
    for plan in HOSPITALS:
        for _, units in plan.buildings:
            for kind_code, _beds in units:
                for role_key, *counts in STAFFING[kind_code]:
                    for _ in range(counts[plan.size]):
                        practitioner = _practitioner(
                            rng, len(practitioners) + 1, role_key, emails)
                        practitioners.append(practitioner)
                        posts.append((practitioner, role_key, plan, kind_code))
    for serial, (practitioner, role_key, plan, kind_code) in enumerate(posts, start=1):
        roles.append(_practitioner_role(
            rng, f"role-{serial:04d}", practitioner, role_key, plan, kind_code))
        # Physicians shared between hospitals of the GHT hold a second role elsewhere.
        if STAFF_ROLES[role_key].category != "doctor" or rng.random() >= 0.12:
            continue
        elsewhere = [p for p in HOSPITALS if p.id != plan.id
                     and any(k == kind_code for _, us in p.buildings for k, _b in us)]
        if elsewhere:
            roles.append(_practitioner_role(
                rng, f"role-{serial:04d}-2", practitioner, role_key, rng.choice(elsewhere),
                kind_code))
    return practitioners + roles


def _practitioner(rng: random.Random, serial: int, role_key: str, emails: set[str]) -> Json:
    role = STAFF_ROLES[role_key]
    gender = "female" if rng.random() < _FEMALE_SHARE[role.category] else "male"
    birth = date(rng.randint(1960, 1997), rng.randint(1, 12), rng.randint(1, 28))
    given = rng.choice(given_names_for(birth.year, gender))
    family = rng.choice(SURNAMES)
    local = f"{ascii_slug(given)}.{ascii_slug(family)}"
    email, suffix = f"{local}@{STAFF_MAIL_DOMAIN}", 1
    while email in emails:
        suffix += 1
        email = f"{local}{suffix}@{STAFF_MAIL_DOMAIN}"
    emails.add(email)
    name: Json = {"use": "official", "family": family, "given": [given]}
    if role.category == "doctor":
        name["prefix"] = ["Dr"]
    first_year = birth.year + (27 if role.category == "doctor" else 22)
    qualifications = []
    for number, diploma in enumerate(role.diplomas):
        qualifications.append({
            "code": concept(diploma.system, diploma.code, diploma.display, diploma.text),
            "period": {"start": f"{first_year + number * 2}-{rng.randint(6, 10):02d}-01"},
        })
    return {
        "resourceType": "Practitioner",
        "id": f"pract-{serial:04d}",
        "identifier": [{
            "use": "official",
            "type": concept(IDENTIFIER_TYPE, "PRN", "Provider number"),
            "system": RPPS_SYSTEM,
            "value": rpps_number(rng),
        }],
        "active": True,
        "name": [name],
        "telecom": [
            {"system": "phone", "value": mobile_number(rng), "use": "mobile"},
            {"system": "email", "value": email, "use": "work"},
        ],
        "gender": gender,
        "birthDate": birth.isoformat(),
        "qualification": qualifications,
        "communication": [concept("urn:ietf:bcp:47", "fr-FR", "French (France)")],
    }


def _practitioner_role(rng: random.Random, role_id: str, practitioner: Json, role_key: str,
                       plan: HospitalPlan, kind_code: str) -> Json:
    role = STAFF_ROLES[role_key]
    codings = [coding(SNOMED, role.snomed, role.display)]
    code: Json = {"coding": codings, "text": role.label}
    role_codes = [code]
    if role.category is not None:
        role_codes.append(concept(PRACTITIONER_ROLE, role.category, role.category.title()))
    unit_name = UNIT_KINDS[kind_code].name
    mobile = next(t["value"] for t in practitioner["telecom"] if t["use"] == "mobile")
    email = next(t["value"] for t in practitioner["telecom"] if t["system"] == "email")
    return {
        "resourceType": "PractitionerRole",
        "id": role_id,
        "active": True,
        "period": {"start": f"{rng.randint(2005, 2019)}-{rng.randint(1, 12):02d}-01"},
        "practitioner": reference(
            f"Practitioner/{practitioner['id']}",
            f"{practitioner['name'][0]['given'][0]} {practitioner['name'][0]['family']}"),
        "organization": reference(f"Organization/{plan.id}", plan.name),
        "code": role_codes,
        "specialty": [{"text": unit_name}],
        "location": [reference(f"Location/{plan.id}-{kind_code}", f"{unit_name} - {plan.alias}")],
        "telecom": [
            {"system": "phone", "value": f"{plan.phone[:-4]}{rng.randrange(1000, 9999)}",
             "use": "work"},
            {"system": "phone", "value": mobile, "use": "mobile"},
            {"system": "email", "value": email, "use": "work"},
        ],
        "availableTime": _available_time(rng, role.category),
    }


def _available_time(rng: random.Random, category: str | None) -> list[Json]:
    if category == "doctor":
        days = list(_WEEKDAYS)
        rng.shuffle(days)
        worked = sorted(days[:4], key=_WEEKDAYS.index)
        return [{"daysOfWeek": worked, "availableStartTime": "08:30:00",
                 "availableEndTime": "18:30:00"}]
    start, end = rng.choice(_SHIFTS)
    days = list(_ALL_DAYS)
    rng.shuffle(days)
    worked = sorted(days[: 3 if end == "19:00:00" else 5], key=_ALL_DAYS.index)
    return [{"daysOfWeek": worked, "availableStartTime": start, "availableEndTime": end}]


def generate_territory(seed: int = 0) -> list[Json]:
    """The fictional GHT as a list of FHIR R4 resources with fixed ids.

    Organizations first, then Locations (each after its ``partOf``), Practitioners and
    PractitionerRoles, so that loading them in order never meets a dangling reference.
    The layout is fixed; ``seed`` draws identifiers, bed statuses and staff identities.
    """
    rng = random.Random(f"hygie-territory:{seed}")
    return _organizations(rng) + _locations(rng) + _staff(rng)


def territory_transaction(territory: Iterable[Json]) -> Json:
    """A transaction Bundle that creates or updates every territory resource by id.

    Uses ``PUT Type/id`` (update as create, https://hl7.org/fhir/R4/http.html#upsert) so
    that loading it twice leaves one copy of each resource. Entries carry no fullUrl:
    it would have to be absolute (``[base]/Type/id``) and the base is the server's.
    """
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in territory
        ],
    }
