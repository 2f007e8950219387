"""Kinds of hospital stay the generator plays out, and how likely each one is.

A scenario names the unit that receives the patient, the diagnosis, the usual length
of stay, how the illness moves the vital signs (``effects``: respiratory, fever,
tachycardia, hypotension, hypertension, each 0 to 1), which lab tests and drugs go
with it, and who may have it (age, sex, chronic disease). Weights are relative and
shaped after the case mix of a French general hospital; COVID-19 follows the French
epidemic waves of 2020-2022 and influenza the winter seasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Scenario:
    """One kind of encounter, with what it does to the patient's record."""

    key: str
    setting: str  # "inpatient", "emergency" or "consultation"
    units: tuple[str, ...]  # unit kinds that may receive it, the first preferred
    diagnosis: str
    weight: float
    stay: tuple[float, float] = (0.0, 0.0)  # days (inpatient) or hours (others)
    icu_share: float = 0.0
    death_share: float = 0.0  # among ICU courses
    effects: dict[str, float] = field(default_factory=dict)
    labs: tuple[str, ...] = ()
    medications: tuple[str, ...] = ()
    ages: tuple[int, int] = (0, 120)
    sex: str | None = None
    requires: str | None = None  # a chronic condition the patient must have
    via_emergency: float = 0.8
    complication: str | None = None  # extra diagnosis of ICU courses
    pcr: bool = False  # a SARS-CoV-2 RT-PCR is taken on admission


_RESP = {"resp": 1.0, "fever": 0.8, "tachy": 0.5}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("covid-19", "inpatient", ("pneumology", "infectious-diseases",
                                       "internal-medicine", "geriatrics"),
             "covid-19", 0.0, (4, 16), icu_share=0.15, death_share=0.22, effects=_RESP,
             labs=("crp", "leukocytes", "platelets", "creatinine", "sodium", "potassium"),
             medications=("dexamethasone", "enoxaparin", "paracetamol"), ages=(18, 120),
             complication="ards", pcr=True),
    Scenario("influenza", "inpatient", ("pneumology", "internal-medicine", "geriatrics"),
             "influenza", 0.0, (3, 8), icu_share=0.06, death_share=0.1,
             effects={"resp": 0.6, "fever": 1.0, "tachy": 0.4},
             labs=("crp", "leukocytes", "creatinine"), medications=("paracetamol",),
             ages=(15, 120), pcr=True),
    Scenario("pneumonia", "inpatient", ("internal-medicine", "pneumology", "geriatrics"),
             "pneumonia", 5.0, (4, 10), icu_share=0.05, death_share=0.1,
             effects={"resp": 0.7, "fever": 0.9, "tachy": 0.4},
             labs=("crp", "leukocytes", "creatinine", "sodium"),
             medications=("amoxicillin-clavulanate", "paracetamol"), ages=(15, 120)),
    Scenario("copd-exacerbation", "inpatient", ("pneumology", "internal-medicine"), "copd",
             6.0, (4, 12), icu_share=0.08, death_share=0.08,
             effects={"resp": 0.9, "fever": 0.2, "tachy": 0.4},
             labs=("crp", "leukocytes", "potassium"),
             medications=("salbutamol", "amoxicillin-clavulanate"), requires="copd"),
    Scenario("heart-failure", "inpatient", ("cardiology", "geriatrics", "internal-medicine"),
             "heart-failure", 5.0, (4, 11), icu_share=0.04, death_share=0.1,
             effects={"resp": 0.4, "tachy": 0.5, "hypertension": 0.3},
             labs=("nt-probnp", "creatinine", "sodium", "potassium", "hemoglobin"),
             medications=("furosemide", "bisoprolol", "enoxaparin"), ages=(45, 120)),
    Scenario("myocardial-infarction", "inpatient", ("cardiology",), "myocardial-infarction",
             3.0, (3, 7), icu_share=0.1, death_share=0.08,
             effects={"tachy": 0.4, "hypertension": 0.2},
             labs=("creatinine", "potassium", "hemoglobin", "glucose"),
             medications=("aspirin", "atorvastatin", "bisoprolol", "ramipril"),
             ages=(40, 120)),
    Scenario("stroke", "inpatient", ("internal-medicine", "geriatrics"), "stroke", 3.0,
             (5, 14), icu_share=0.05, death_share=0.15, effects={"hypertension": 0.6},
             labs=("glucose", "creatinine", "hemoglobin"),
             medications=("aspirin", "atorvastatin"), ages=(50, 120)),
    Scenario("pulmonary-embolism", "inpatient", ("pneumology", "internal-medicine"),
             "pulmonary-embolism", 2.0, (4, 8), icu_share=0.05, death_share=0.1,
             effects={"resp": 0.6, "tachy": 0.7}, labs=("creatinine", "hemoglobin"),
             medications=("enoxaparin",), ages=(25, 120)),
    Scenario("sepsis", "inpatient", ("internal-medicine", "infectious-diseases",
                                     "geriatrics"),
             "sepsis", 2.5, (5, 14), icu_share=0.3, death_share=0.2,
             effects={"fever": 1.0, "tachy": 0.9, "hypotension": 0.9, "resp": 0.4},
             labs=("crp", "leukocytes", "lactate", "creatinine", "platelets"),
             medications=("ceftriaxone", "paracetamol"), ages=(15, 120)),
    Scenario("urinary-infection", "inpatient", ("geriatrics", "internal-medicine"),
             "urinary-infection", 3.0, (3, 7), effects={"fever": 0.8, "tachy": 0.3},
             labs=("crp", "leukocytes", "creatinine"), medications=("ceftriaxone",),
             ages=(65, 120)),
    Scenario("hip-fracture", "inpatient", ("surgery",), "hip-fracture", 3.5, (6, 12),
             effects={"tachy": 0.2}, labs=("hemoglobin", "creatinine", "potassium"),
             medications=("paracetamol", "enoxaparin"), ages=(70, 120), via_emergency=1.0),
    Scenario("appendicitis", "inpatient", ("surgery",), "appendicitis", 3.0, (2, 4),
             effects={"fever": 0.4, "tachy": 0.3}, labs=("crp", "leukocytes"),
             medications=("amoxicillin-clavulanate", "paracetamol"), ages=(8, 45)),
    Scenario("delivery", "inpatient", ("maternity",), "delivery", 9.0, (3, 5),
             effects={"tachy": 0.1}, labs=("hemoglobin",), medications=("paracetamol",),
             ages=(18, 42), sex="female", via_emergency=0.0),
    Scenario("bronchiolitis", "inpatient", ("paediatrics",), "bronchiolitis", 25.0, (2, 5),
             effects={"resp": 0.6, "fever": 0.3, "tachy": 0.3}, ages=(0, 1)),
    Scenario("child-gastroenteritis", "inpatient", ("paediatrics",), "gastroenteritis",
             10.0, (1, 3), effects={"fever": 0.4, "tachy": 0.4}, labs=("sodium", "potassium"),
             ages=(0, 14)),
    Scenario("er-chest-pain", "emergency", ("emergency",), "chest-pain", 14.0, (2, 7),
             effects={"tachy": 0.3}, labs=("hemoglobin", "creatinine", "potassium"),
             ages=(30, 120)),
    Scenario("er-syncope", "emergency", ("emergency",), "syncope", 10.0, (2, 6),
             labs=("glucose", "sodium", "potassium"), ages=(15, 120)),
    Scenario("er-asthma", "emergency", ("emergency",), "asthma", 5.0, (2, 6),
             effects={"resp": 0.5, "tachy": 0.3}, medications=("salbutamol",),
             requires="asthma"),
    Scenario("er-abdominal-pain", "emergency", ("emergency",), "abdominal-pain", 13.0,
             (2, 7), labs=("crp", "leukocytes", "creatinine"), ages=(10, 120)),
    Scenario("er-wrist-fracture", "emergency", ("emergency",), "wrist-fracture", 10.0,
             (2, 5), effects={"tachy": 0.1}, ages=(5, 120)),
    Scenario("er-gastroenteritis", "emergency", ("emergency",), "gastroenteritis", 7.0,
             (2, 5), effects={"fever": 0.4, "tachy": 0.3}),
    Scenario("er-dehydration", "emergency", ("emergency",), "dehydration", 5.0, (3, 8),
             effects={"tachy": 0.4, "hypotension": 0.3}, labs=("sodium", "creatinine"),
             ages=(70, 120)),
    Scenario("er-child-bronchiolitis", "emergency", ("emergency",), "bronchiolitis", 20.0,
             (2, 5), effects={"resp": 0.4, "fever": 0.3}, ages=(0, 1)),
    Scenario("follow-up-hypertension", "consultation", ("cardiology", "internal-medicine"),
             "hypertension", 14.0, (0.3, 0.5), medications=("ramipril",),
             requires="hypertension", via_emergency=0.0),
    Scenario("follow-up-diabetes", "consultation", ("internal-medicine",), "diabetes", 14.0,
             (0.3, 0.5), labs=("glucose", "creatinine"), medications=("metformin",),
             requires="diabetes", via_emergency=0.0),
    Scenario("follow-up-copd", "consultation", ("pneumology", "internal-medicine"), "copd",
             14.0, (0.3, 0.5), medications=("salbutamol",), requires="copd",
             via_emergency=0.0),
    Scenario("follow-up-heart-failure", "consultation", ("cardiology", "internal-medicine"),
             "heart-failure", 14.0, (0.3, 0.5), labs=("nt-probnp", "creatinine"),
             medications=("furosemide", "bisoprolol"), requires="heart-failure",
             via_emergency=0.0),
)

#: Peaks of hospital admissions for COVID-19 in France: (day, spread in days, height).
_COVID_WAVES = (
    (date(2020, 4, 1), 16, 1.0), (date(2020, 11, 10), 20, 0.85),
    (date(2021, 4, 5), 25, 0.7), (date(2021, 8, 15), 18, 0.3),
    (date(2022, 1, 25), 25, 0.75), (date(2022, 7, 15), 20, 0.3),
)


def covid_pressure(day: date) -> float:
    """Relative COVID-19 admission rate on ``day`` (0 before the epidemic reached France)."""
    if day < date(2020, 2, 20):
        return 0.0
    level = 0.05  # endemic floor between waves
    for peak, spread, height in _COVID_WAVES:
        gap = (day - peak).days / spread
        if abs(gap) < 5:
            level += height * math.exp(-0.5 * gap * gap)
    return level


def influenza_pressure(day: date) -> float:
    """Relative influenza admission rate: winter epidemics, none in 2020-2021 (lockdowns)."""
    if date(2020, 4, 1) <= day < date(2021, 12, 1):
        return 0.0
    month = day.month
    return {12: 0.6, 1: 1.0, 2: 0.8, 3: 0.3}.get(month, 0.02)


def scenario_weight(scenario: Scenario, age: int, gender: str, chronic: frozenset[str],
                    day: date) -> float:
    """How likely ``scenario`` is for this patient on ``day`` (0 when it cannot happen)."""
    if not scenario.ages[0] <= age <= scenario.ages[1]:
        return 0.0
    if scenario.sex is not None and scenario.sex != gender:
        return 0.0
    if scenario.requires is not None and scenario.requires not in chronic:
        return 0.0
    weight = scenario.weight
    if scenario.key == "covid-19":
        weight = 15.0 * covid_pressure(day) * (1.0 + age / 60.0)
    elif scenario.key == "influenza":
        weight = 8.0 * influenza_pressure(day) * (1.0 + age / 60.0)
    elif scenario.setting == "inpatient" and age >= 65:
        weight *= 1.6  # older patients are admitted more often
    return weight
