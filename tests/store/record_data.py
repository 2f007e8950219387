"""A small, hand-written patient population for the record pages' tests.

Every count the tests check is visible here: Marie-Claire DUBOIS has two encounters
(emergency, then intensive care in a bed of the ICU), two conditions, an allergy, two
medication requests, two documents (one inline, one in a Binary), and vital signs
with a known number of readings per chart and known values out of the adult ranges.
Jean DUBOIS shares her family name (two search results), Hugo LEROY is a child with
an empty record, and 23 MARTIN patients make the search results run to a second page.
"""

from __future__ import annotations

import base64
from typing import Any

from hygie.store.synthetic import INS_SYSTEM, IPP_SYSTEM

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"

MARIE = "marie-dubois"
JEAN = "jean-dubois"
HUGO = "hugo-leroy"
MARIE_INS = "252047637512345"
DISCHARGE_TEXT = "Compte rendu d'hospitalisation : patiente sortie en bon état général."

#: Readings per chart for MARIE, and how many of them are out of the adult range.
HEART_RATES = [(f"2020-03-{d:02d}T08:00:00Z", v) for d, v in
               [(18, 96), (19, 118), (20, 104), (22, 88), (25, 80), (29, 72)]]
SPO2 = [(f"2020-03-{d:02d}T08:05:00Z", v) for d, v in
        [(18, 88), (19, 91), (21, 95), (25, 97), (29, 98)]]
RESP_RATES = [(f"2020-03-{d:02d}T08:10:00Z", v) for d, v in [(18, 28), (20, 22), (25, 18),
                                                             (29, 16)]]
TEMPERATURES = [(f"2020-03-{d:02d}T08:15:00Z", v) for d, v in
                [(18, 38.9), (20, 37.6), (25, 37.0), (29, 36.8)]]
PRESSURES = [(f"2020-03-{d:02d}T08:20:00Z", s, di) for d, s, di in
             [(18, 152, 94), (22, 132, 84), (29, 124, 78)]]
WEIGHTS = [("2020-03-18T09:00:00Z", 71.5)]
CHART_POINTS = {"heart-rate": 6, "spo2": 5, "respiratory-rate": 4, "temperature": 4,
                "blood-pressure": 6, "weight": 1}
#: HR 118 and 104 (> 100); SpO2 88 and 91 (< 95); RR 28 and 22 (> 20); T 38.9 (> 37.8);
#: systolic 152 (> 140); diastolic 94 (> 90).
CHART_OUT = {"heart-rate": 2, "spo2": 2, "respiratory-rate": 2, "temperature": 1,
             "blood-pressure": 2, "weight": 0}


def _ref(target: str, display: str | None = None) -> dict[str, str]:
    return {"reference": target, **({"display": display} if display else {})}


def _vital(code: str, text: str, when: str, value: float, unit: str, ucum: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                            "observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code}], "text": text},
        "subject": _ref(f"Patient/{MARIE}"),
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum},
    }


def _patient(pid: str, family: str, given: list[str], gender: str, birth: str,
             ipp: str, ins: str | None = None, **extra: Any) -> dict[str, Any]:
    identifiers = [{"system": IPP_SYSTEM, "value": ipp}]
    if ins:
        identifiers.insert(0, {"system": INS_SYSTEM, "value": ins})
    return {"resourceType": "Patient", "id": pid, "identifier": identifiers,
            "name": [{"use": "official", "family": family, "given": given}],
            "gender": gender, "birthDate": birth, **extra}


def places() -> list[dict[str, Any]]:
    """The hospital, its emergency unit, and an ICU unit with a room and a bed."""
    org = "Organization/ch-test"
    ward = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                        "code": "wa"}]}
    return [
        {"resourceType": "Organization", "id": "ch-test", "name": "CH de Test"},
        {"resourceType": "Location", "id": "ch-test-emergency", "name": "Urgences - CH de Test",
         "physicalType": ward, "managingOrganization": _ref(org)},
        {"resourceType": "Location", "id": "ch-test-icu", "name": "Réanimation - CH de Test",
         "physicalType": ward, "managingOrganization": _ref(org)},
        {"resourceType": "Location", "id": "ch-test-icu-101", "name": "Chambre 101",
         "physicalType": {"coding": [{"code": "ro"}]}, "partOf": _ref("Location/ch-test-icu")},
        {"resourceType": "Location", "id": "ch-test-icu-101-a", "name": "Lit 101-A",
         "physicalType": {"coding": [{"code": "bd"}]}, "partOf": _ref("Location/ch-test-icu-101")},
    ]


def marie_record() -> list[dict[str, Any]]:
    """Marie-Claire DUBOIS and everything in her record."""
    subject = _ref(f"Patient/{MARIE}")
    resources: list[dict[str, Any]] = [_patient(
        MARIE, "Dubois", ["Marie-Claire"], "female", "1952-04-17", "4000012345", MARIE_INS,
        telecom=[{"system": "phone", "value": "+33612345678", "use": "mobile"}],
        address=[{"line": ["12 rue Colbert"], "postalCode": "37000", "city": "Tours"}],
        contact=[{"relationship": [{"text": "Fille"}],
                  "name": {"family": "Dubois", "given": ["Anne"]},
                  "telecom": [{"system": "phone", "value": "+33698765432"}]}],
    )]
    resources += [
        {"resourceType": "Encounter", "id": "enc-er", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
         "type": [{"text": "Passage aux urgences"}], "subject": subject,
         "period": {"start": "2020-03-18T06:40:00Z", "end": "2020-03-18T11:00:00Z"},
         "location": [{"location": _ref("Location/ch-test-emergency")}],
         "serviceProvider": _ref("Organization/ch-test")},
        {"resourceType": "Encounter", "id": "enc-icu", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
         "type": [{"text": "Admission en réanimation"}], "subject": subject,
         "period": {"start": "2020-03-18T11:00:00Z", "end": "2020-03-30T10:00:00Z"},
         "reasonCode": [{"text": "Détresse respiratoire"}],
         "location": [{"location": _ref("Location/ch-test-icu-101-a"),
                       "period": {"start": "2020-03-18T11:00:00Z",
                                  "end": "2020-03-30T10:00:00Z"}}],
         "serviceProvider": _ref("Organization/ch-test")},
        {"resourceType": "Condition", "id": "cond-covid", "subject": subject,
         "clinicalStatus": {"coding": [{"code": "resolved"}]},
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "U07.1"}],
                  "text": "COVID-19"},
         "onsetDateTime": "2020-03-15"},
        {"resourceType": "Condition", "id": "cond-hta", "subject": subject,
         "clinicalStatus": {"coding": [{"code": "active"}]},
         "code": {"text": "Hypertension artérielle"}, "onsetDateTime": "2009"},
        {"resourceType": "AllergyIntolerance", "id": "allergy-penicillin", "patient": subject,
         "criticality": "high", "category": ["medication"],
         "code": {"text": "Allergie à la pénicilline"},
         "reaction": [{"manifestation": [{"text": "Éruption cutanée"}], "severity": "moderate"}]},
        {"resourceType": "MedicationRequest", "id": "med-dexa", "status": "completed",
         "intent": "order", "subject": subject,
         "medicationCodeableConcept": {"text": "Dexaméthasone 6 mg"},
         "authoredOn": "2020-03-18T12:00:00Z",
         "dosageInstruction": [{"text": "6 mg par jour pendant 10 jours"}]},
        {"resourceType": "MedicationRequest", "id": "med-ramipril", "status": "active",
         "intent": "order", "subject": subject,
         "medicationCodeableConcept": {"text": "Ramipril 5 mg"},
         "authoredOn": "2020-03-30T09:00:00Z", "dosageInstruction": [{"text": "5 mg le matin"}]},
        {"resourceType": "Binary", "id": "bin-letter", "contentType": "text/plain",
         "data": base64.b64encode(b"Lettre de liaison.").decode()},
        {"resourceType": "DocumentReference", "id": "doc-summary", "status": "current",
         "type": {"text": "Compte rendu d'hospitalisation"}, "subject": subject,
         "date": "2020-03-30T10:00:00Z",
         "content": [{"attachment": {
             "contentType": "text/plain", "title": "Compte rendu de réanimation",
             "data": base64.b64encode(DISCHARGE_TEXT.encode()).decode()}}]},
        {"resourceType": "DocumentReference", "id": "doc-letter", "status": "current",
         "type": {"text": "Lettre de liaison"}, "subject": subject,
         "date": "2020-03-30T11:00:00Z",
         "content": [{"attachment": {"contentType": "text/plain", "title": "Lettre",
                                     "url": "Binary/bin-letter"}}]},
    ]
    resources += [_vital("8867-4", "Fréquence cardiaque", w, v, "beats/minute", "/min")
                  for w, v in HEART_RATES]
    resources += [_vital("59408-5", "SpO2", w, v, "%", "%") for w, v in SPO2]
    resources += [_vital("9279-1", "Fréquence respiratoire", w, v, "breaths/minute", "/min")
                  for w, v in RESP_RATES]
    resources += [_vital("8310-5", "Température", w, v, "°C", "Cel") for w, v in TEMPERATURES]
    resources += [_vital("29463-7", "Poids", w, v, "kg", "kg") for w, v in WEIGHTS]
    for when, systolic, diastolic in PRESSURES:
        panel = _vital("85354-9", "Pression artérielle", when, 0, "mmHg", "mm[Hg]")
        del panel["valueQuantity"]
        panel["component"] = [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
             "valueQuantity": {"value": systolic, "unit": "mmHg", "system": UCUM,
                               "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
             "valueQuantity": {"value": diastolic, "unit": "mmHg", "system": UCUM,
                               "code": "mm[Hg]"}},
        ]
        resources.append(panel)
    for serial, resource in enumerate(resources):
        resource.setdefault("id", f"obs-{serial:03d}")
    return resources


def population() -> list[dict[str, Any]]:
    """Everything the tests load, in an order where references resolve."""
    resources = [*places(), *marie_record()]
    resources.append(_patient(JEAN, "Dubois", ["Jean"], "male", "1948-11-02", "4000012346"))
    resources.append(_patient(HUGO, "Leroy", ["Hugo"], "male", "2019-06-01", "4000012347"))
    for i in range(23):
        resources.append(_patient(f"martin-{i:02d}", "Martin", [f"Paul{chr(65 + i)}"], "male",
                                  f"19{60 + i}-01-15", f"41000000{i:02d}"))
    return resources
