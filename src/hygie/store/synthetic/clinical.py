"""The clinical resources of a stay: Encounter, Condition, AllergyIntolerance,
MedicationRequest and the discharge summary (DocumentReference).

Each writer adds one resource to the patient's ``PatientRecord`` and fills it the way
R4 defines it: Encounter class, type, location history, participants, diagnosis with
its role and rank, hospitalization (https://hl7.org/fhir/R4/encounter.html); Condition
with clinical and verification status and category (condition.html, where an abated
condition is ``resolved``); a MedicationRequest coded in ATC with a structured dosage
(medicationrequest.html, dosage.html); a discharge summary as LOINC 18842-5 with a short
French letter inlined as a base64 text attachment (documentreference.html).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import date, datetime, timedelta

from .datatypes import (
    ATC,
    ICD10,
    LOINC,
    PARIS,
    SNOMED,
    UCUM,
    Json,
    coding,
    concept,
    fhir_instant,
    quantity,
    reference,
)
from .scenarios import Scenario
from .stays import Person, Segment
from .terminology import (
    ACT_CODE,
    ADMIT_SOURCE,
    ALLERGIES,
    ALLERGY_CLINICAL,
    ALLERGY_VERIFICATION,
    CHRONIC_DIAGNOSES,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    DIAGNOSES,
    DIAGNOSIS_ROLE,
    DISCHARGE_DISPOSITION,
    ENCOUNTER_CLASSES,
    ENCOUNTER_TYPES,
    LOCATION_PHYSICAL_TYPE,
    MEDICATIONS,
    PARTICIPATION_TYPE,
    UNIT_KINDS,
    Diagnosis,
)
from .territory_index import Hospital

#: Encounter.diagnosis.use codes (diagnosis-role).
_USES = {
    "AD": ("AD", "Admission diagnosis"),
    "DD": ("DD", "Discharge diagnosis"),
    "CM": ("CM", "Comorbidity diagnosis"),
}


def diagnosis_concept(diagnosis: Diagnosis) -> Json:
    """The ICD-10 (and SNOMED CT where known) coding of a diagnosis, with French text."""
    codings = [coding(ICD10, diagnosis.icd10, diagnosis.icd10_display)]
    if diagnosis.snomed is not None:
        codings.append(coding(SNOMED, diagnosis.snomed, diagnosis.snomed_display))
    return {"coding": codings, "text": diagnosis.text}


def practitioner_ref(names: dict[str, str], practitioner: str) -> Json:
    """A Reference to a territory Practitioner, with the name shown."""
    return reference(f"Practitioner/{practitioner}", names.get(practitioner))


def write_chronic_condition(person: Person, disease: str, recorded: date,
                            onset: datetime | None) -> str:
    """A problem-list Condition (active); with no ``onset``, it began years before."""
    rng = person.rng
    uid, condition = person.record.new("Condition")
    if onset is None:
        years_ago = rng.randint(0, max(0, min(25, person.age_on(recorded) - 3)))
        onset_text = str(max(recorded.year - years_ago, person.birth.year))
        recorded_text = recorded.isoformat()
    else:
        onset_text = recorded_text = fhir_instant(onset)
    condition["clinicalStatus"] = concept(CONDITION_CLINICAL, "active", "Active")
    condition["verificationStatus"] = concept(CONDITION_VERIFICATION, "confirmed", "Confirmed")
    condition["category"] = [concept(CONDITION_CATEGORY, "problem-list-item",
                                     "Problem List Item")]
    condition["code"] = diagnosis_concept(DIAGNOSES[disease])
    condition["subject"] = dict(person.subject)
    condition["onsetDateTime"] = onset_text
    condition["recordedDate"] = recorded_text
    person.chronic[disease] = uid
    return uid


def write_acute_condition(person: Person, key: str, encounter: Json, start: datetime,
                          end: datetime | None, recorder: Json | None) -> str:
    """An encounter diagnosis: active while the stay runs, resolved at its end."""
    uid, condition = person.record.new("Condition")
    condition["clinicalStatus"] = concept(CONDITION_CLINICAL, *(
        ("resolved", "Resolved") if end is not None else ("active", "Active")))
    condition["verificationStatus"] = concept(CONDITION_VERIFICATION, "confirmed", "Confirmed")
    condition["category"] = [concept(CONDITION_CATEGORY, "encounter-diagnosis",
                                     "Encounter Diagnosis")]
    condition["code"] = diagnosis_concept(DIAGNOSES[key])
    condition["subject"] = dict(person.subject)
    condition["encounter"] = dict(encounter)
    condition["onsetDateTime"] = fhir_instant(start - timedelta(hours=person.rng.uniform(2, 96)))
    if end is not None:
        condition["abatementDateTime"] = fhir_instant(end)
    condition["recordedDate"] = fhir_instant(start + timedelta(minutes=50))
    if recorder is not None:
        condition["recorder"] = recorder
    return uid


def write_diagnoses(person: Person, scenario: Scenario, encounter: Json,
                    segments: list[Segment], end: datetime | None,
                    recorder: Json | None) -> list[tuple[Json, str]]:
    """The encounter's Conditions as (reference, use): principal, complication, comorbid."""
    record = person.record
    start = segments[0].start
    principal = scenario.diagnosis
    result: list[tuple[Json, str]] = []
    if principal in CHRONIC_DIAGNOSES:
        uid = person.chronic.get(principal) or write_chronic_condition(
            person, principal, start.date(), start)
        result.append((record.ref("Condition", uid), "DD"))
    else:
        uid = write_acute_condition(person, principal, encounter, start, end, recorder)
        result.append((record.ref("Condition", uid),
                       "AD" if scenario.setting == "emergency" else "DD"))
    icu = next((s for s in segments if s.place == "icu"), None)
    if scenario.complication and icu is not None:
        uid = write_acute_condition(person, scenario.complication, encounter, icu.start, end,
                                    dict(recorder) if recorder else None)
        result.append((record.ref("Condition", uid), "DD"))
    if scenario.setting == "inpatient":
        for disease, uid in list(person.chronic.items())[:3]:
            if disease != principal:
                result.append((record.ref("Condition", uid), "CM"))
    return result


def write_allergy(person: Person, day: date) -> None:
    """An AllergyIntolerance recorded on ``day``, known for years."""
    rng = person.rng
    allergy = rng.choice(ALLERGIES)
    person.allergies.add(allergy.key)
    severe = allergy.reaction[0] == "39579001"  # anaphylaxis
    _, resource = person.record.new("AllergyIntolerance")
    resource["clinicalStatus"] = concept(ALLERGY_CLINICAL, "active", "Active")
    resource["verificationStatus"] = concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed")
    resource["type"] = "allergy"
    resource["category"] = [allergy.category]
    resource["criticality"] = "high" if severe else "low"
    resource["code"] = concept(SNOMED, allergy.snomed, allergy.display, allergy.text)
    resource["patient"] = dict(person.subject)
    resource["onsetDateTime"] = str(max(day.year - rng.randint(1, 30), person.birth.year))
    resource["recordedDate"] = day.isoformat()
    resource["reaction"] = [{
        "manifestation": [concept(SNOMED, *allergy.reaction)],
        "severity": "severe" if severe else "mild",
    }]


def write_medications(person: Person, scenario: Scenario, encounter: Json, start: datetime,
                      end: datetime | None, requester: Json | None,
                      reason: Json | None) -> list[str]:
    """MedicationRequests of the stay (most of the scenario's drugs); their French names."""
    rng, record = person.rng, person.record
    prescribed = []
    for key in scenario.medications:
        if key == "amoxicillin-clavulanate" and "penicillin" in person.allergies:
            continue
        if scenario.setting != "consultation" and rng.random() > 0.75:
            continue
        medication = MEDICATIONS[key]
        _, request = record.new("MedicationRequest")
        ongoing = end is None or scenario.setting == "consultation"
        request["status"] = "active" if ongoing else "completed"
        request["intent"] = "order"
        request["medicationCodeableConcept"] = concept(ATC, medication.atc, medication.display,
                                                       medication.text)
        request["subject"] = dict(person.subject)
        request["encounter"] = dict(encounter)
        request["authoredOn"] = fhir_instant(start + timedelta(minutes=rng.uniform(20, 180)))
        if requester is not None:
            request["requester"] = dict(requester)
        if reason is not None:
            request["reasonReference"] = [dict(reason)]
        request["dosageInstruction"] = [{
            "text": medication.directions,
            "timing": {"repeat": {"frequency": medication.per_day, "period": 1,
                                  "periodUnit": "d"}},
            "route": concept(SNOMED, *medication.route),
            "doseAndRate": [{"doseQuantity": quantity(medication.dose, medication.unit,
                                                      medication.ucum)}],
        }]
        prescribed.append(medication.text)
    return prescribed


def write_discharge_summary(person: Person, scenario: Scenario, hospital: Hospital,
                            encounter: Json, segments: list[Segment], end: datetime,
                            author: Json, medications: list[str]) -> None:
    """A DocumentReference holding the discharge letter as a base64 text attachment."""
    text = summary_text(person, scenario, hospital, segments, end, author.get("display", ""),
                        medications)
    data = text.encode("utf-8")
    written = fhir_instant(end + timedelta(hours=person.rng.uniform(1, 48)))
    _, document = person.record.new("DocumentReference")
    document["status"] = "current"
    document["docStatus"] = "final"
    document["type"] = concept(LOINC, "18842-5", "Discharge summary",
                               "Compte rendu d'hospitalisation")
    document["subject"] = dict(person.subject)
    document["date"] = written
    document["author"] = [author]
    document["custodian"] = reference(f"Organization/{hospital.id}", hospital.name)
    document["description"] = f"Compte rendu d'hospitalisation - {_unit_label(segments[-1])}"
    document["content"] = [{"attachment": {
        "contentType": "text/plain; charset=utf-8",
        "language": "fr-FR",
        "data": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
        "title": "Compte rendu d'hospitalisation",
        "creation": written,
    }}]
    document["context"] = {
        "encounter": [dict(encounter)],
        "period": {"start": fhir_instant(segments[0].start), "end": fhir_instant(end)},
    }


def _unit_label(segment: Segment) -> str:
    """The unit's name without the hospital's (``Pneumologie``)."""
    kind = UNIT_KINDS.get(segment.unit.kind)
    return kind.name if kind is not None else segment.unit.name


def _local_day(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%d/%m/%Y")


def summary_text(person: Person, scenario: Scenario, hospital: Hospital,
                 segments: list[Segment], end: datetime, doctor: str,
                 medications: list[str]) -> str:
    """A short discharge letter in French; dates in Europe/Paris time."""
    woman = person.gender == "female"
    days = max(1, round((end - segments[0].start).total_seconds() / 86400))
    history = ", ".join(DIAGNOSES[d].text.lower() for d in person.chronic) or \
        "pas d'antécédent notable"
    course = ("passage en réanimation puis amélioration progressive"
              if any(s.place == "icu" for s in segments)
              else "évolution favorable sous traitement")
    lines = [
        "COMPTE RENDU D'HOSPITALISATION",
        f"{hospital.name} - {_unit_label(segments[-1])}",
        "",
        f"Patient{'e' if woman else ''} : {person.given} {person.family.upper()}, "
        f"{'née' if woman else 'né'} le {person.birth.strftime('%d/%m/%Y')}",
        f"Séjour du {_local_day(segments[0].start)} au {_local_day(end)} ({days} jours)",
        f"Motif : {DIAGNOSES[scenario.diagnosis].text}",
        f"Antécédents : {history}",
        f"Évolution : {course}.",
        "Traitement de sortie : " + (", ".join(medications) if medications else "aucun"),
        "",
        doctor,
    ]
    return "\n".join(lines) + "\n"


def _disposition(scenario: Scenario, died: bool, age: int) -> tuple[str, str]:
    if died:
        return "exp", "Expired"
    if scenario.key in ("hip-fracture", "stroke") and age >= 70:
        return "rehab", "Rehabilitation"
    return "home", "Home"


def write_encounter(person: Person, encounter: Json, scenario: Scenario, hospital: Hospital,
                    segments: list[Segment], end: datetime | None, died: bool,
                    diagnoses: list[tuple[Json, str]], names: dict[str, str]) -> None:
    """Fill the Encounter: class, type, participants and locations by segment, diagnoses."""
    setting = scenario.setting
    start = segments[0].start
    types = [ENCOUNTER_TYPES[setting]]
    if any(s.place == "icu" for s in segments):
        types.append(ENCOUNTER_TYPES["icu"])
    participants: list[Json] = []
    locations: list[Json] = []
    for segment in segments:
        period: Json = {"start": fhir_instant(segment.start)}
        if segment.end is not None:
            period["end"] = fhir_instant(segment.end)
        status = "completed" if segment.end is not None else "active"
        if segment.doctor is not None:
            admitter = segment.place == "emergency" and setting == "inpatient"
            participants.append({
                "type": [concept(PARTICIPATION_TYPE, *(("ADM", "admitter") if admitter
                                                       else ("ATND", "attender")))],
                "period": dict(period),
                "individual": practitioner_ref(names, segment.doctor),
            })
        if segment.carer is not None:
            participants.append({
                "type": [concept(PARTICIPATION_TYPE, "PART", "Participation")],
                "period": dict(period),
                "individual": practitioner_ref(names, segment.carer),
            })
        locations.append({
            "location": reference(f"Location/{segment.unit.id}", segment.unit.name),
            "status": status,
            "physicalType": concept(LOCATION_PHYSICAL_TYPE, "wa", "Ward"),
            "period": dict(period),
        })
        if segment.bed is not None:
            locations.append({
                "location": reference(f"Location/{segment.bed}"),
                "status": status,
                "physicalType": concept(LOCATION_PHYSICAL_TYPE, "bd", "Bed"),
                "period": period,
            })
    if scenario.key == "hip-fracture":  # operated on: the anaesthetist takes part
        surgery = hospital.units.get("surgery")
        anaesthetists = surgery.people("anaesthetist") if surgery else []
        if anaesthetists:
            participants.append({
                "type": [concept(PARTICIPATION_TYPE, "SPRF", "secondary performer")],
                "individual": practitioner_ref(names, person.rng.choice(anaesthetists)),
            })
    encounter["status"] = "finished" if end is not None else "in-progress"
    encounter["class"] = coding(ACT_CODE, *ENCOUNTER_CLASSES[setting])
    encounter["type"] = [concept(SNOMED, code, display, text) for code, display, text in types]
    encounter["subject"] = dict(person.subject)
    if participants:
        encounter["participant"] = participants
    encounter["period"] = {"start": fhir_instant(start)}
    if end is not None:
        encounter["period"]["end"] = fhir_instant(end)
        if setting == "inpatient":
            days = round((end - start).total_seconds() / 86400, 1)
            encounter["length"] = {"value": days, "unit": "days", "system": UCUM, "code": "d"}
    if diagnoses:
        encounter["diagnosis"] = [
            {"condition": ref, "use": concept(DIAGNOSIS_ROLE, *_USES[use]), "rank": rank}
            for rank, (ref, use) in enumerate(diagnoses, start=1)
        ]
    hospitalization: Json = {}
    if setting == "inpatient":
        hospitalization["admitSource"] = concept(ADMIT_SOURCE, *(
            ("emd", "From accident/emergency department") if segments[0].place == "emergency"
            else ("mp", "Medical Practitioner/physician referral")))
    if end is not None and setting != "consultation":
        hospitalization["dischargeDisposition"] = concept(
            DISCHARGE_DISPOSITION, *_disposition(scenario, died, person.age_on(end.date())))
    if hospitalization:
        encounter["hospitalization"] = hospitalization
    encounter["location"] = locations
    encounter["serviceProvider"] = reference(f"Organization/{hospital.id}", hospital.name)
