"""Where and when a patient stays: hospital, units, beds, and the people there.

A stay is a list of ``Segment`` (emergency department, intensive care, ward, or a
consultation room), each in one unit of one hospital, with a bed taken from the
``BedBook`` and the physician and nurse who looked after the patient there.
``plan_stay`` decides them from the scenario: the nearest hospital that has the unit,
arrival through the emergency department or planned admission (daytime), an
intensive care course for some, and whether the patient dies.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from .datatypes import Json, paris_to_utc
from .names import Town
from .observations import Physiology
from .records import PatientRecord
from .scenarios import Scenario
from .territory_index import Hospital, Unit


@dataclass
class Segment:
    """A part of a stay in one unit: the unit, its bed, who cared, and when."""

    unit: Unit
    place: str  # "emergency", "icu", "ward" or "consultation"
    start: datetime
    end: datetime | None  # None: still there at the end of the period
    bed: str | None = None
    doctor: str | None = None
    carer: str | None = None


@dataclass
class Person:
    """What the generator knows of one patient while writing their record."""

    rng: random.Random
    record: PatientRecord
    subject: Json
    gender: str
    birth: date
    given: str
    family: str
    town: Town
    hospitals: list[Hospital]  # nearest first
    chronic: dict[str, str] = field(default_factory=dict)  # disease -> Condition uid
    allergies: set[str] = field(default_factory=set)
    baseline: Physiology | None = None
    died: datetime | None = None

    def age_on(self, day: date) -> int:
        """Age in whole years on ``day``."""
        before_birthday = (day.month, day.day) < (self.birth.month, self.birth.day)
        return day.year - self.birth.year - before_birthday


class BedBook:
    """Which beds are taken when, so that two stays do not share a bed at once."""

    def __init__(self) -> None:
        self._starts: dict[str, list[float]] = {}
        self._ends: dict[str, list[float]] = {}

    def take(self, unit: Unit, start: datetime, end: datetime | None,
             rng: random.Random) -> str | None:
        """A free bed of ``unit`` for the period, else any bed (an extra bed in a full unit)."""
        if not unit.beds:
            return None
        begin = start.timestamp()
        finish = end.timestamp() if end is not None else math.inf
        count = len(unit.beds)
        offset = rng.randrange(count)
        for step in range(count):
            bed = unit.beds[(offset + step) % count]
            starts = self._starts.setdefault(bed, [])
            ends = self._ends.setdefault(bed, [])
            at = bisect.bisect_left(starts, begin)
            if (at == 0 or ends[at - 1] <= begin) and (at == len(starts) or starts[at] >= finish):
                starts.insert(at, begin)
                ends.insert(at, finish)
                return bed
        return unit.beds[offset]


def choose_place(person: Person, scenario: Scenario, icu: bool) -> tuple[Hospital, str]:
    """The hospital (the nearest that fits, sometimes another) and the unit kind."""
    rng = person.rng
    fitting = [h for h in person.hospitals
               if any(k in h.units for k in scenario.units) and (not icu or "icu" in h.units)]
    if not fitting:
        fitting = [h for h in person.hospitals if h.units]
    hospital = fitting[0] if rng.random() < 0.85 or len(fitting) == 1 else rng.choice(fitting[1:])
    kinds = [k for k in scenario.units if k in hospital.units] or list(hospital.units)
    kind = kinds[0] if rng.random() < 0.75 else rng.choice(kinds)
    return hospital, kind


def plan_stay(person: Person, scenario: Scenario, day: date,
              ) -> tuple[Hospital, list[Segment], datetime, bool]:
    """Where and when the patient stays, the planned end, and whether they die."""
    rng = person.rng
    age = person.age_on(day)
    frail = age >= 75 or len(person.chronic) >= 3
    # The very old are less often taken to intensive care, and die more often.
    icu = scenario.setting == "inpatient" and rng.random() < scenario.icu_share * (
        0.5 if age >= 80 else 1.0)
    hospital, kind = choose_place(person, scenario, icu)
    icu = icu and "icu" in hospital.units
    units = hospital.units
    if scenario.setting == "consultation":
        start = paris_to_utc(day, rng.uniform(8.5, 17.0))
        end = start + timedelta(hours=rng.uniform(*scenario.stay))
        return hospital, [Segment(units[kind], "consultation", start, end)], end, False
    emergency = units.get("emergency") or (units[kind] if scenario.setting == "emergency"
                                           else None)
    via_emergency = emergency is not None and (
        scenario.setting == "emergency" or rng.random() < scenario.via_emergency)
    if via_emergency or kind == "maternity":  # arrivals round the clock, more by day
        hour = rng.triangular(0.0, 24.0, 14.0)
    else:  # planned admissions in the morning
        hour = rng.uniform(7.5, 14.0)
    moment = paris_to_utc(day, hour)
    segments: list[Segment] = []
    if via_emergency and emergency is not None:
        hours = rng.uniform(*scenario.stay) if scenario.setting == "emergency" else \
            rng.uniform(2.0, 7.0)
        segments.append(Segment(emergency, "emergency", moment, moment + timedelta(hours=hours)))
        moment += timedelta(hours=hours)
    if scenario.setting == "emergency":
        return hospital, segments, moment, False
    if icu:
        died = rng.random() < scenario.death_share * (1.5 if frail else 0.7)
        days = rng.uniform(2.5, 12.0) * (1.2 if scenario.key == "covid-19" else 1.0)
        segments.append(Segment(units["icu"], "icu", moment, moment + timedelta(days=days)))
        moment += timedelta(days=days)
    else:
        died = age >= 75 and rng.random() < scenario.death_share * 0.3
    if not (icu and died):
        days = rng.uniform(*scenario.stay) * rng.lognormvariate(0.0, 0.2) * (0.6 if icu else 1.0)
        segments.append(Segment(units[kind], "ward", moment, moment + timedelta(days=days)))
        moment += timedelta(days=days)
    return hospital, segments, moment, died


def staff_stay(segments: list[Segment], beds: BedBook, rng: random.Random) -> None:
    """Give each segment a bed, a physician and a nurse of its unit."""
    for segment in segments:
        segment.bed = beds.take(segment.unit, segment.start, segment.end, rng)
        doctors, carers = segment.unit.doctors(), segment.unit.carers()
        segment.doctor = rng.choice(doctors) if doctors else None
        segment.carer = rng.choice(carers) if carers else None
