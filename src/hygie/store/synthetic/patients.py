"""Synthetic patients of the territory: identity, history, stays and their records.

Each patient is drawn from a random generator seeded by (seed, patient index), so
patient *i* has the same identity and history whatever ``n`` is, and disjoint index
ranges can be generated apart. A patient gets a French identity, the chronic diseases
of their age, perhaps an allergy, then 1 to 6 encounters in date order. An encounter
plays out a ``Scenario`` (see ``scenarios``): ``stays.plan_stay`` places it; the
Conditions, MedicationRequests, discharge summary and Encounter are written by
``clinical``; vital-sign and lab Observations by ``observations``, on the rhythm of
the unit (``_ROUNDS_PER_DAY``, scaled by ``density``).

Only the bed a stay takes depends on earlier patients of the same call (the
``BedBook`` keeps two stays from sharing a bed at once).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TypeVar

from .clinical import (
    practitioner_ref,
    write_allergy,
    write_chronic_condition,
    write_diagnoses,
    write_discharge_summary,
    write_encounter,
    write_medications,
)
from .datatypes import Json, concept, fhir_instant, paris_to_utc, reference
from .identifiers import INS_SYSTEM, IPP_SYSTEM, ins_number
from .names import STREET_NAMES, STREET_TYPES, SURNAMES, TOWNS, Town, given_names_for
from .observations import (
    Course,
    add_lab_result,
    add_pcr_result,
    add_vital_sign,
    baseline_physiology,
    draw_course,
    lab_value,
    vital_values,
)
from .records import PatientRecord
from .scenarios import SCENARIOS, Scenario, scenario_weight
from .stays import BedBook, Person, Segment, plan_stay, staff_stay
from .terminology import IDENTIFIER_TYPE
from .territory import ascii_slug, mobile_number
from .territory_index import Hospital, TerritoryIndex

_T = TypeVar("_T")

#: Patients' e-mail domain (reserved ``.example`` TLD).
PATIENT_MAIL_DOMAIN = "courriel.example"

#: Age bands of hospital patients: (from, to, weight); older people come more often.
_AGE_BANDS = ((0, 1, 4.0), (1, 15, 6.0), (15, 45, 22.0), (45, 65, 24.0), (65, 80, 25.0),
              (80, 100, 19.0))

#: Chronic diseases: (age from which it appears, prevalence then, added per year, cap).
_CHRONIC_RISK: dict[str, tuple[int, float, float, float]] = {
    "hypertension": (35, 0.08, 0.012, 0.65),
    "diabetes": (35, 0.03, 0.0035, 0.22),
    "obesity": (18, 0.12, 0.001, 0.2),
    "asthma": (3, 0.07, 0.0, 0.07),
    "copd": (45, 0.04, 0.0015, 0.12),
    "ckd": (55, 0.04, 0.003, 0.2),
    "atrial-fibrillation": (60, 0.03, 0.004, 0.2),
    "heart-failure": (60, 0.02, 0.003, 0.15),
}

#: How many encounters a patient has (1 to 6) and how often.
_ENCOUNTER_COUNT_WEIGHTS = (58.0, 20.0, 10.0, 6.0, 3.0, 3.0)

#: Rounds of vital signs per day at density 1, by kind of place. With the case mix of
#: ``scenarios`` this gives about 50 resources per patient.
_ROUNDS_PER_DAY = {"icu": 3.0, "ward": 1.0, "emergency": 6.0}

_VITALS_BY_PLACE = {
    "icu": ("heart-rate", "spo2", "respiratory-rate", "temperature", "blood-pressure"),
    "ward": ("heart-rate", "spo2", "temperature", "blood-pressure"),
    "emergency": ("heart-rate", "spo2", "respiratory-rate", "temperature", "blood-pressure"),
    "consultation": ("heart-rate", "blood-pressure"),
}

#: When SARS-CoV-2 RT-PCR was available, and when inpatients were screened on admission.
_PCR_AVAILABLE = date(2020, 2, 1)
_COVID_SCREENING = (date(2020, 5, 11), date(2022, 12, 31))


def _distance(town: Town, hospital: Hospital) -> float:
    """Distance in degrees of latitude (longitude shrunk by cos 47°, the region's latitude)."""
    return math.hypot(hospital.latitude - town.latitude,
                      (hospital.longitude - town.longitude) * 0.68)


def _weighted(rng: random.Random, items: list[tuple[float, _T]]) -> _T:
    """One of ``items`` (weight, item), drawn in proportion to its weight."""
    total = sum(w for w, _ in items)
    draw = rng.random() * total
    for weight, item in items:
        draw -= weight
        if draw < 0:
            return item
    return items[-1][1]


class PatientGenerator:
    """Writes patients of one territory over one period; keeps the bed book of the call."""

    def __init__(self, territory: Iterable[Json] | TerritoryIndex, *, seed: int, start: date,
                 end: date, density: float) -> None:
        if end <= start:
            raise ValueError(f"end ({end}) must come after start ({start})")
        if not density > 0:
            raise ValueError(f"density must be positive, not {density}")
        self.index = territory if isinstance(territory, TerritoryIndex) else TerritoryIndex(
            territory)
        self.seed = seed
        self.start = start
        self.end = end
        self.end_moment = datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=UTC)
        self.density = density
        self.beds = BedBook()
        self.names = self.index.practitioner_names
        self._town_weights = [(t.weight, t) for t in TOWNS]
        hospitals = list(self.index.hospitals.values())
        self._nearest = {t.name: sorted(hospitals, key=partial(_distance, t)) for t in TOWNS}

    def record(self, index: int, *, as_bundle: bool) -> PatientRecord:
        """Generate patient number ``index`` (deterministic for seed and index)."""
        rng = random.Random(f"hygie-patient:{self.seed}:{index}")
        record = PatientRecord(rng, as_bundle=as_bundle)
        uid, patient = record.new("Patient")
        gender = "female" if rng.random() < 0.52 else "male"
        low, high, _ = _weighted(rng, [(band[2], band) for band in _AGE_BANDS])
        birth = self.start - timedelta(days=int(rng.uniform(low, high) * 365.25))
        town = _weighted(rng, self._town_weights)
        given = rng.choice(given_names_for(birth.year, gender))
        person = Person(rng, record, record.ref("Patient", uid), gender, birth, given,
                        rng.choice(SURNAMES), town, self._nearest[town.name])
        count = _weighted(rng, [(w, n + 1) for n, w in enumerate(_ENCOUNTER_COUNT_WEIGHTS)])
        span = (self.end - self.start).days
        days = sorted(self.start + timedelta(days=rng.randrange(span + 1)) for _ in range(count))
        age = person.age_on(days[0])
        for disease, (from_age, base, per_year, cap) in _CHRONIC_RISK.items():
            if age >= from_age and rng.random() < min(base + per_year * (age - from_age), cap):
                write_chronic_condition(person, disease, days[0], None)
        person.baseline = baseline_physiology(rng, (days[0] - birth).days, gender,
                                              frozenset(person.chronic))
        if rng.random() < 0.12:
            write_allergy(person, days[0])
        free_from: datetime | None = None  # end of the previous stay
        for day in days:
            when = day if free_from is None else max(
                day, (free_from + timedelta(days=rng.randint(2, 40))).date())
            if when > self.end or person.died is not None:
                break
            scenario = self._scenario(person, when)
            if scenario is None:
                continue
            ended = self._encounter(person, scenario, when)
            if ended is None:  # still in hospital at the end of the period
                break
            free_from = ended
        self._fill_patient(person, patient, index)
        return record

    def _fill_patient(self, person: Person, patient: Json, index: int) -> None:
        """The Patient: INS-like and IPP identifiers, name, contact, address."""
        rng = person.rng
        street = f"{rng.randint(1, 140)} {rng.choice(STREET_TYPES)} {rng.choice(STREET_NAMES)}"
        telecom = [{"system": "phone", "value": mobile_number(rng), "use": "mobile"}]
        if rng.random() < 0.6 and person.age_on(self.end) >= 16:
            local = f"{ascii_slug(person.given)}.{ascii_slug(person.family)}{rng.randrange(100)}"
            telecom.append({"system": "email", "value": f"{local}@{PATIENT_MAIL_DOMAIN}",
                            "use": "home"})
        patient["identifier"] = [
            {"use": "official",
             "type": concept(IDENTIFIER_TYPE, "NI", "National unique individual identifier"),
             "system": INS_SYSTEM,
             "value": ins_number(person.gender, person.birth, person.town.department,
                                 index + self.seed * 7919)},
            {"use": "usual", "type": concept(IDENTIFIER_TYPE, "MR", "Medical record number"),
             "system": IPP_SYSTEM, "value": f"{index + 1:010d}"},
        ]
        patient["active"] = True
        patient["name"] = [{"use": "official", "family": person.family, "given": [person.given]}]
        patient["telecom"] = telecom
        patient["gender"] = person.gender
        patient["birthDate"] = person.birth.isoformat()
        if person.died is not None:
            patient["deceasedDateTime"] = fhir_instant(person.died)
        else:
            patient["deceasedBoolean"] = False
        patient["address"] = [{
            "use": "home", "type": "physical", "line": [street], "city": person.town.name,
            "postalCode": person.town.postal_code, "country": "FR",
        }]
        patient["communication"] = [{
            "language": concept("urn:ietf:bcp:47", "fr-FR", "French (France)"),
            "preferred": True,
        }]
        home = person.hospitals[0]
        patient["managingOrganization"] = reference(f"Organization/{home.id}", home.name)

    def _scenario(self, person: Person, day: date) -> Scenario | None:
        age = person.age_on(day)
        chronic = frozenset(person.chronic)
        choices = [(w, s) for s in SCENARIOS
                   if (w := scenario_weight(s, age, person.gender, chronic, day)) > 0]
        return _weighted(person.rng, choices) if choices else None

    def _encounter(self, person: Person, scenario: Scenario, day: date) -> datetime | None:
        """Write one encounter and what goes with it; its end, or None if still open."""
        rng, record = person.rng, person.record
        hospital, segments, planned_end, died = plan_stay(person, scenario, day)
        segments = [s for s in segments if s.start < self.end_moment]
        if not segments:
            return planned_end
        intensive = any(s.place == "icu" for s in segments)
        peak = (rng.uniform(0.75, 1.0) if intensive
                else rng.uniform(0.3, 0.75) if scenario.setting == "inpatient"
                else rng.uniform(0.15, 0.55) if scenario.setting == "emergency" else 0.05)
        course = draw_course(rng, segments[0].start, planned_end, peak=peak, died=died)
        end = planned_end if planned_end <= self.end_moment else None
        if end is None:
            segments[-1].end = None
        staff_stay(segments, self.beds, rng)
        enc_uid, encounter = record.new("Encounter")
        enc_ref = record.ref("Encounter", enc_uid)
        attending = next((s.doctor for s in reversed(segments) if s.doctor), None)
        author = practitioner_ref(self.names, attending) if attending else None
        diagnoses = write_diagnoses(person, scenario, enc_ref, segments, end, author)
        self._observations(person, scenario, enc_ref, segments, course, end)
        medications = write_medications(person, scenario, enc_ref, segments[0].start, end,
                                        author, diagnoses[0][0] if diagnoses else None)
        if died and end is not None:
            person.died = end
        elif scenario.setting == "inpatient" and end is not None and author is not None:
            write_discharge_summary(person, scenario, hospital, enc_ref, segments, end,
                                    dict(author), medications)
        write_encounter(person, encounter, scenario, hospital, segments, end, died, diagnoses,
                        self.names)
        return end

    def _observations(self, person: Person, scenario: Scenario, encounter: Json,
                      segments: list[Segment], course: Course, end: datetime | None) -> None:
        """Vital signs on the unit's rhythm; labs on arrival and in long or intensive stays."""
        rng, record, subject = person.rng, person.record, person.subject
        base = person.baseline
        if base is None:
            raise RuntimeError("baseline physiology is drawn before any encounter")
        chronic = frozenset(person.chronic)
        effects = scenario.effects
        stop_all = end if end is not None else self.end_moment
        first = segments[0].start + timedelta(minutes=rng.uniform(8, 25))
        if segments[-1].place in ("ward", "icu", "consultation"):
            add_vital_sign(record, subject, encounter, None, "weight", fhir_instant(first),
                           round(base.weight * rng.uniform(0.98, 1.02), 1))
        for segment in segments:
            performer = practitioner_ref(self.names, segment.carer) if segment.carer else None
            signs = list(_VITALS_BY_PLACE[segment.place])
            if segment.place == "ward" and effects.get("resp"):
                signs.append("respiratory-rate")
            if segment.place == "consultation" and "copd" in chronic:
                signs.append("spo2")
            stop = min(segment.end or stop_all, stop_all)
            moment = max(segment.start + timedelta(minutes=rng.uniform(8, 25)), first)
            step = 24.0 / (_ROUNDS_PER_DAY.get(segment.place, 1.0) * self.density)
            while moment < stop:
                values = vital_values(rng, base, effects, course.severity(moment),
                                      evening=(moment.hour + 1) % 24 >= 16,
                                      oxygen=segment.place == "icu")
                when = fhir_instant(moment)
                for sign in signs:
                    value = (values["systolic"], values["diastolic"]) \
                        if sign == "blood-pressure" else values[sign]
                    add_vital_sign(record, subject, encounter, performer, sign, when, value)
                if segment.place == "consultation":
                    break
                moment += timedelta(hours=step * rng.uniform(0.85, 1.15))
        labs = scenario.labs if scenario.setting != "emergency" or rng.random() < 0.6 else ()
        sampled = first + timedelta(minutes=rng.uniform(10, 40))
        screened = (scenario.setting == "inpatient" and rng.random() < 0.5
                    and _COVID_SCREENING[0] <= sampled.date() <= _COVID_SCREENING[1])
        if (scenario.pcr or screened) and sampled.date() >= _PCR_AVAILABLE:
            add_pcr_result(record, subject, encounter, sampled,
                           detected=scenario.key == "covid-19")
        for key in labs:
            add_lab_result(record, subject, encounter, key, sampled, lab_value(
                rng, key, course.severity(sampled), effects, scenario.key, chronic,
                person.gender))
        for segment in segments:
            if segment.place not in ("icu", "ward"):
                continue
            every = 2.0 if segment.place == "icu" else 3.0
            follow = [k for k in ("crp", "creatinine", "lactate", "hemoglobin")
                      if k in labs or (segment.place == "icu" and k in ("lactate", "creatinine"))]
            moment = paris_to_utc(segment.start.date(), 6.5) + timedelta(days=every)
            stop = min(segment.end or stop_all, stop_all)
            while moment < stop and follow:
                for key in follow:
                    add_lab_result(record, subject, encounter, key, moment, lab_value(
                        rng, key, course.severity(moment), effects, scenario.key, chronic,
                        person.gender))
                moment += timedelta(days=every)


def generate_patient_bundles(n: int, *, territory: Iterable[Json] | TerritoryIndex,
                             seed: int = 0, start: date = date(2020, 1, 1),
                             end: date = date(2022, 12, 31), density: float = 1.0,
                             first: int = 0) -> Iterator[Json]:
    """``n`` FHIR transaction Bundles, one per patient, referring to ``territory``.

    Entries have ``urn:uuid`` fullUrls and ``POST Type`` requests; references between
    them use those urns, and references to the territory read ``Organization/<id>``,
    ``Location/<id>``, ``Practitioner/<id>``. Encounters fall between ``start`` and
    ``end``; a stay still running at ``end`` is ``in-progress``. ``density`` scales how
    often vital signs are taken (1.0 gives about 50 resources per patient on average).
    Patients are numbered from ``first``. See https://hl7.org/fhir/R4/http.html#transaction.
    """
    generator = PatientGenerator(territory, seed=seed, start=start, end=end, density=density)
    for index in range(first, first + n):
        yield generator.record(index, as_bundle=True).to_bundle()


def generate_patient_resources(n: int, *, territory: Iterable[Json] | TerritoryIndex,
                               seed: int = 0, start: date = date(2020, 1, 1),
                               end: date = date(2022, 12, 31), density: float = 1.0,
                               first: int = 0) -> Iterator[Json]:
    """The same patients as ``generate_patient_bundles``, as plain resources with ids.

    Each resource has a fixed id (the uuid of its bundle entry) and references read
    ``Type/id``, as bulk NDJSON import expects (https://hl7.org/fhir/uv/bulkdata/).
    """
    generator = PatientGenerator(territory, seed=seed, start=start, end=end, density=density)
    for index in range(first, first + n):
        yield from generator.record(index, as_bundle=False).resources()
