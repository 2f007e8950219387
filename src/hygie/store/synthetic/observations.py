"""Vital signs and laboratory results as time series that follow the illness.

Each stay has a ``Course``: a severity between 0 and 1 that rises from admission to a
peak, then falls towards discharge (or keeps rising when the patient dies). Vital signs
are the patient's baseline physiology (by age, sex and chronic disease) moved by the
severity through the scenario's effects, plus measurement noise; lab results likewise.

Vital signs follow the R4 vital-signs profile
(https://hl7.org/fhir/R4/observation-vitalsigns.html): ``status``, category
``vital-signs``, the LOINC code of the specific profile, the subject, an effective
time, and a UCUM ``valueQuantity`` (or, for blood pressure, the 8480-6/8462-4
components and no value). Lab results are category ``laboratory`` with their reference
range and an interpretation (https://hl7.org/fhir/R4/observation.html).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from .datatypes import LOINC, SNOMED, Json, coding, concept, fhir_instant, quantity
from .records import PatientRecord
from .terminology import (
    DETECTED,
    DIASTOLIC,
    INTERPRETATION,
    LAB_TESTS,
    NOT_DETECTED,
    OBSERVATION_CATEGORY,
    SARS_COV_2_PCR,
    SYSTOLIC,
    VITAL_SIGNS,
    VITALSIGNS_PROFILE,
)


@dataclass(frozen=True, slots=True)
class Physiology:
    """A patient's usual vital signs (at rest, in good health) and weight in kg."""

    heart_rate: float
    spo2: float
    respiratory_rate: float
    temperature: float
    systolic: float
    diastolic: float
    weight: float


def baseline_physiology(rng: random.Random, age_days: int, gender: str,
                        chronic: frozenset[str]) -> Physiology:
    """Draw the usual vital signs of a person of this age, sex and chronic diseases."""
    age = age_days / 365.25
    if age < 1:
        hr, rr, sbp, dbp = rng.gauss(130, 8), rng.gauss(38, 4), rng.gauss(82, 5), rng.gauss(50, 4)
        weight = 3.4 + 0.55 * age_days / 30.4
    elif age < 6:
        hr, rr, sbp, dbp = rng.gauss(105, 8), rng.gauss(26, 3), rng.gauss(95, 5), rng.gauss(58, 4)
        weight = 9.5 + 2.1 * age
    elif age < 13:
        hr, rr, sbp, dbp = rng.gauss(88, 8), rng.gauss(20, 2), rng.gauss(104, 6), rng.gauss(64, 5)
        weight = 8 + 3.1 * age
    else:
        hr, rr = rng.gauss(72, 7), rng.gauss(15, 1.5)
        sbp = rng.gauss(117 + 0.45 * max(0.0, age - 30), 9)
        dbp = rng.gauss(74 + 0.1 * max(0.0, age - 30), 6)
        if "hypertension" in chronic:
            sbp, dbp = sbp + 14, dbp + 6
        adult_weight = rng.gauss(80, 11) if gender == "male" else rng.gauss(66, 10)
        if "obesity" in chronic:
            adult_weight += rng.uniform(22, 40)
        weight = adult_weight if age >= 18 else adult_weight * (0.55 + 0.45 * (age - 13) / 5)
    spo2 = rng.gauss(92.5, 1.5) if "copd" in chronic else rng.gauss(97.5, 0.8)
    return Physiology(hr, min(spo2, 99.5), rr, rng.gauss(36.8, 0.15), sbp,
                      min(dbp, sbp - 30), max(weight, 2.5))


@dataclass(frozen=True, slots=True)
class Course:
    """Severity of an illness over a stay: admission level, peak, outcome."""

    start: datetime
    end: datetime
    admission: float
    peak: float
    peak_at: float  # fraction of the stay
    discharge: float
    died: bool

    def severity(self, moment: datetime) -> float:
        """Severity (0 well, 1 critical) at ``moment``."""
        span = (self.end - self.start).total_seconds() or 1.0
        x = min(max((moment - self.start).total_seconds() / span, 0.0), 1.0)
        if self.died:
            return self.admission + (1.0 - self.admission) * x * math.sqrt(x)
        if x <= self.peak_at:
            return self.admission + (self.peak - self.admission) * (x / self.peak_at
                                                                     if self.peak_at else 1.0)
        fall = (x - self.peak_at) / (1.0 - self.peak_at)
        return self.discharge + (self.peak - self.discharge) * math.exp(-3.0 * fall) * (1 - fall)


def draw_course(rng: random.Random, start: datetime, end: datetime, *, peak: float,
                died: bool) -> Course:
    """A course that peaks at ``peak`` early in the stay, or worsens to death."""
    peak_at = rng.choice((0.0, rng.uniform(0.1, 0.4)))  # improving at once, or worse first
    admission = peak * (rng.uniform(0.55, 0.9) if peak_at else 1.0)
    return Course(start, end, admission, peak, peak_at, rng.uniform(0.0, 0.12), died)


def vital_values(rng: random.Random, base: Physiology, effects: dict[str, float],
                 severity: float, *, evening: bool, oxygen: bool) -> dict[str, float]:
    """One round of measurements for a patient at ``severity``."""
    resp = effects.get("resp", 0.0) * severity
    fever = effects.get("fever", 0.0) * severity
    tachy = effects.get("tachy", 0.0) * severity
    low = effects.get("hypotension", 0.0) * severity
    high = effects.get("hypertension", 0.0) * severity
    spo2 = base.spo2 - 14.0 * resp + rng.gauss(0, 0.9)
    if oxygen:  # oxygen therapy keeps saturation near its target
        spo2 = max(spo2, rng.uniform(88, 94))
    systolic = base.systolic + 28 * high - 42 * low + rng.gauss(0, 6)
    diastolic = min(base.diastolic + 12 * high - 22 * low + rng.gauss(0, 4), systolic - 22)
    return {
        "heart-rate": round(base.heart_rate + 38 * tachy + 14 * fever + rng.gauss(0, 3.5)),
        "spo2": round(min(max(spo2, 62.0), 100.0)),
        "respiratory-rate": round(base.respiratory_rate + 17 * resp + 4 * tachy
                                  + rng.gauss(0, 1.2)),
        "temperature": round(base.temperature + 2.4 * fever + (0.25 if evening else 0.0)
                             + rng.gauss(0, 0.12), 1),
        "systolic": round(max(systolic, 55)),
        "diastolic": round(max(diastolic, 30)),
    }


_VITAL_CATEGORY = (OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
_LAB_CATEGORY = (OBSERVATION_CATEGORY, "laboratory", "Laboratory")


def add_vital_sign(record: PatientRecord, subject: Json, encounter: Json, performer: Json | None,
                   key: str, when: str, value: float | tuple[float, float]) -> None:
    """Write one vital-sign Observation taken at ``when`` (an R4 instant).

    ``value`` is (systolic, diastolic) for blood pressure.
    """
    sign = VITAL_SIGNS[key]
    _, obs = record.new("Observation")
    obs["meta"] = {"profile": [VITALSIGNS_PROFILE, sign.profile]}
    obs["status"] = "final"
    obs["category"] = [concept(*_VITAL_CATEGORY)]
    obs["code"] = {"coding": [coding(LOINC, c, d) for c, d in sign.loinc], "text": sign.text}
    obs["subject"] = dict(subject)
    obs["encounter"] = dict(encounter)
    obs["effectiveDateTime"] = when
    obs["issued"] = when
    if performer is not None:
        obs["performer"] = [dict(performer)]
    if isinstance(value, tuple):
        obs["component"] = [
            {"code": concept(LOINC, *SYSTOLIC), "valueQuantity": quantity(value[0], sign.unit,
                                                                          sign.ucum)},
            {"code": concept(LOINC, *DIASTOLIC), "valueQuantity": quantity(value[1], sign.unit,
                                                                           sign.ucum)},
        ]
    else:
        obs["valueQuantity"] = quantity(value, sign.unit, sign.ucum)


def lab_value(rng: random.Random, key: str, severity: float, effects: dict[str, float],
              scenario: str, chronic: frozenset[str], gender: str) -> float:
    """A plausible result of lab test ``key`` for this patient and illness severity."""
    inflammation = max(effects.get("fever", 0.0), 0.6 * effects.get("resp", 0.0)) * severity
    shock = effects.get("hypotension", 0.0) * severity
    if key == "crp":
        value = rng.lognormvariate(math.log(2.5), 0.5) + 210 * inflammation * rng.uniform(0.6, 1.2)
    elif key == "leukocytes":
        bacterial = scenario in ("sepsis", "appendicitis", "pneumonia", "urinary-infection")
        value = rng.gauss(7, 1.4) + (9 * severity if bacterial else 0) - (
            2.5 * severity if scenario == "covid-19" else 0)
    elif key == "platelets":
        value = rng.gauss(255, 50) - (110 * severity if scenario in ("sepsis", "covid-19") else 0)
    elif key == "creatinine":
        value = rng.gauss(82 if gender == "male" else 64, 9) + (95 if "ckd" in chronic else 0) \
            + 120 * shock
    elif key == "sodium":
        value = rng.gauss(140, 1.8) - (7 * severity if scenario == "heart-failure" else 0) \
            + (8 * severity if scenario == "er-dehydration" else 0)
    elif key == "potassium":
        value = rng.gauss(4.2, 0.3) + (0.7 if "ckd" in chronic else 0)
    elif key == "glucose":
        value = rng.gauss(5.2, 0.5) + (4.0 if "diabetes" in chronic else 0) + 1.5 * severity
    elif key == "lactate":
        value = rng.gauss(1.1, 0.25) + 5.5 * shock
    elif key == "nt-probnp":
        failing = "heart-failure" in chronic or scenario == "heart-failure"
        value = rng.lognormvariate(math.log(60), 0.6) + (
            rng.uniform(600, 2500) + 9000 * severity if failing else 0)
    elif key == "hemoglobin":
        bleeding = scenario in ("hip-fracture", "delivery")
        value = rng.gauss(14.6 if gender == "male" else 13.2, 0.9) - (
            3.2 * severity + 1.0 if bleeding else 0) - (1.2 if "ckd" in chronic else 0)
    else:
        test = LAB_TESTS[key]
        value = rng.uniform(test.low, test.high)
    decimals = LAB_TESTS[key].decimals
    return round(max(value, 0.1), decimals) if decimals else round(max(value, 1.0))


def _interpretation(value: float, low: float, high: float) -> Json:
    if value > high:
        return concept(INTERPRETATION, "H", "High")
    if value < low:
        return concept(INTERPRETATION, "L", "Low")
    return concept(INTERPRETATION, "N", "Normal")


def add_lab_result(record: PatientRecord, subject: Json, encounter: Json, key: str,
                   moment: datetime, value: float) -> None:
    """Write one laboratory Observation with its reference range and interpretation."""
    test = LAB_TESTS[key]
    _, obs = record.new("Observation")
    obs["status"] = "final"
    obs["category"] = [concept(*_LAB_CATEGORY)]
    obs["code"] = {"coding": [coding(LOINC, test.loinc, test.display)], "text": test.text}
    obs["subject"] = dict(subject)
    obs["encounter"] = dict(encounter)
    obs["effectiveDateTime"] = fhir_instant(moment)
    obs["issued"] = fhir_instant(moment + timedelta(minutes=75))
    obs["valueQuantity"] = quantity(value, test.unit, test.ucum)
    obs["interpretation"] = [_interpretation(value, test.low, test.high)]
    low = test.low if test.low > 0 else None
    reference_range: Json = {"high": quantity(test.high, test.unit, test.ucum)}
    if low is not None:
        reference_range = {"low": quantity(low, test.unit, test.ucum), **reference_range}
    obs["referenceRange"] = [reference_range]


def add_pcr_result(record: PatientRecord, subject: Json, encounter: Json, moment: datetime,
                   detected: bool) -> None:
    """Write a SARS-CoV-2 RT-PCR result (coded answer, SNOMED CT)."""
    _, obs = record.new("Observation")
    answer = DETECTED if detected else NOT_DETECTED
    obs["status"] = "final"
    obs["category"] = [concept(*_LAB_CATEGORY)]
    obs["code"] = {"coding": [coding(LOINC, *SARS_COV_2_PCR)], "text": "RT-PCR SARS-CoV-2"}
    obs["subject"] = dict(subject)
    obs["encounter"] = dict(encounter)
    obs["effectiveDateTime"] = fhir_instant(moment)
    obs["issued"] = fhir_instant(moment + timedelta(hours=5))
    obs["valueCodeableConcept"] = concept(SNOMED, *answer, "Positif" if detected else "Négatif")
    obs["interpretation"] = [concept(INTERPRETATION, "DET", "Detected") if detected
                             else concept(INTERPRETATION, "ND", "Not detected")]
