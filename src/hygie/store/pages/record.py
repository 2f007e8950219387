"""The patient record as a page shows it, computed from FHIR resources.

Plain functions turn the Patient and the resources of its compartment into small view
records: the identity header, encounters for the timeline, conditions, allergies,
medication requests and documents. They do no I/O: names of referenced resources
(units, practitioners, organizations) come in ``names``, resolved beforehand by the
route, so that these functions are tested on bare dictionaries.

Resources marked ``entered-in-error`` are left out everywhere: FHIR says they were
never valid (https://hl7.org/fhir/R4/lifecycle.html). French labels for the codes come
from the R4 value sets named next to each table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hygie.store.pages.display import (
    GENDERS,
    IdentifierView,
    Json,
    address_text,
    age_text,
    age_years,
    codes_in,
    concept_text,
    concepts_text,
    duration_text,
    format_when,
    human_name,
    identifiers_view,
    iso_when,
    other_names,
    parse_when,
    reference_display,
    sort_key,
    telecom_view,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10"

#: From this age on, the adult normal ranges of vital signs apply (paediatric ranges,
#: which vary with age, are taken only from the data's own ``referenceRange``).
ADULT_AGE = 16

#: http://hl7.org/fhir/R4/valueset-encounter-status.html
ENCOUNTER_STATUS = {"planned": "prévu", "arrived": "arrivé", "triaged": "trié",
                    "in-progress": "en cours", "onleave": "en permission",
                    "finished": "terminé", "cancelled": "annulé", "unknown": "inconnu"}
#: http://terminology.hl7.org/ValueSet/v3-ActEncounterCode
ENCOUNTER_CLASS = {"IMP": "Hospitalisation", "ACUTE": "Hospitalisation", "NONAC": "Hospitalisation",
                   "EMER": "Urgences", "AMB": "Consultation", "SS": "Hospitalisation de jour",
                   "HH": "Soins à domicile", "VR": "Téléconsultation", "OBSENC": "Observation",
                   "PRENC": "Pré-admission", "FLD": "Intervention extérieure"}
#: http://terminology.hl7.org/CodeSystem/discharge-disposition (its displays are English)
DISCHARGE_SYSTEM = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
DISCHARGE_DISPOSITION = {
    "home": "Domicile", "alt-home": "Autre domicile",
    "other-hcf": "Autre établissement de santé", "hosp": "Soins palliatifs",
    "long": "Soins de longue durée", "aadvice": "Sortie contre avis médical",
    "exp": "Décès", "psy": "Établissement psychiatrique",
    "rehab": "Soins de suite et de réadaptation", "snf": "Établissement de soins infirmiers",
    "oth": "Autre"}
#: http://hl7.org/fhir/R4/valueset-condition-clinical.html
CONDITION_STATUS = {"active": "active", "recurrence": "récidive", "relapse": "rechute",
                    "inactive": "inactive", "remission": "rémission", "resolved": "résolue"}
#: http://hl7.org/fhir/R4/valueset-condition-ver-status.html
CONDITION_VERIFICATION = {"unconfirmed": "non confirmée", "provisional": "provisoire",
                          "differential": "diagnostic différentiel", "confirmed": "",
                          "refuted": "infirmée"}
CONDITION_CATEGORY = {"problem-list-item": "Problème de santé",
                      "encounter-diagnosis": "Diagnostic de séjour"}
#: http://hl7.org/fhir/R4/valueset-allergy-intolerance-category.html and -criticality
ALLERGY_CATEGORY = {"food": "alimentaire", "medication": "médicamenteuse",
                    "environment": "environnementale", "biologic": "biologique"}
ALLERGY_CRITICALITY = {"low": "faible", "high": "élevée", "unable-to-assess": "non évaluable"}
ALLERGY_STATUS = {"active": "active", "inactive": "inactive", "resolved": "résolue"}
#: http://hl7.org/fhir/R4/valueset-medicationrequest-status.html
MEDICATION_STATUS = {"active": "en cours", "on-hold": "suspendue", "cancelled": "annulée",
                     "completed": "terminée", "stopped": "arrêtée", "draft": "brouillon",
                     "unknown": "inconnu"}
#: http://hl7.org/fhir/R4/valueset-document-reference-status.html
DOCUMENT_STATUS = {"current": "", "superseded": "remplacé"}

_MEDIA_LABELS = {"application/pdf": "PDF", "text/plain": "Texte", "text/html": "Page HTML",
                 "application/xml": "XML", "text/xml": "XML", "application/dicom": "DICOM"}
_BINARY_REF = re.compile(r"(?:^|/)Binary/([A-Za-z0-9\-.]{1,64})$")
_ERROR = "entered-in-error"


def _status_code(concept: Any) -> str:
    codes = codes_in(concept)
    return codes[0] if codes else ""


def _current(resources: Iterable[Json]) -> list[Json]:
    return [r for r in resources if isinstance(r, dict) and r.get("status") != _ERROR]


# --- header --------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactView:
    relationship: str
    name: str
    telecoms: list[tuple[str, str, str]]


@dataclass(frozen=True)
class PatientHeader:
    """Who the record is about, as the header of the page shows it."""

    id: str
    name: str
    other_names: list[str]
    gender: str
    birth_date: str
    age: str
    deceased: str
    identifiers: list[IdentifierView]
    telecoms: list[tuple[str, str, str]]
    addresses: list[str]
    contacts: list[ContactView]
    practitioners: list[str]
    active: bool
    adult: bool


def patient_header(patient: Json, names: dict[str, str] | None = None) -> PatientHeader:
    """The identity header of a Patient (https://hl7.org/fhir/R4/patient.html)."""
    name = human_name(patient.get("name")) or "Patient sans nom"
    deceased = ""
    death = parse_when(patient.get("deceasedDateTime"))
    at = death[0].date() if death else None
    if death:
        deceased = f"Décès le {format_when(patient.get('deceasedDateTime'))}"
    elif patient.get("deceasedBoolean") is True:
        deceased = "Décédé(e)"
    age = age_text(patient.get("birthDate"), at)
    years = age_years(patient.get("birthDate"), at)
    contacts = []
    for contact in patient.get("contact") or []:
        if not isinstance(contact, dict):
            continue
        contacts.append(ContactView(
            ", ".join(concepts_text(contact.get("relationship"))) or "Contact",
            human_name([contact["name"]]) if isinstance(contact.get("name"), dict) else "",
            telecom_view(contact.get("telecom")),
        ))
    practitioners = [reference_display(r, names) for r in patient.get("generalPractitioner") or []]
    return PatientHeader(
        id=str(patient.get("id") or ""),
        name=name,
        other_names=other_names(patient.get("name"), name),
        gender=GENDERS.get(str(patient.get("gender")), "Non renseigné"),
        birth_date=format_when(patient.get("birthDate")),
        age=age,
        deceased=deceased,
        identifiers=identifiers_view(patient.get("identifier")),
        telecoms=telecom_view(patient.get("telecom")),
        addresses=[a for a in (address_text(x) for x in patient.get("address") or []) if a],
        contacts=contacts,
        practitioners=[p for p in practitioners if p],
        active=patient.get("active") is not False,
        adult=years is None or years >= ADULT_AGE,
    )


# --- encounters ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceView:
    name: str
    period: str


@dataclass(frozen=True)
class EncounterView:
    """One entry of the timeline."""

    id: str
    title: str
    kind: str
    status: str
    ongoing: bool
    start: str
    start_iso: str
    end: str
    duration: str
    places: list[PlaceView]
    provider: str
    reasons: list[str]
    staff: list[str]
    discharge: str


def _period_text(period: Any) -> tuple[str, str]:
    if not isinstance(period, dict):
        return "", ""
    return format_when(period.get("start")), format_when(period.get("end"))


def _discharge_text(concept: Any) -> str:
    """Where a stay ended: the text its author wrote, else the French name of a
    standard disposition code, else whatever display or code it has."""
    if isinstance(concept, dict) and not (isinstance(concept.get("text"), str)
                                          and concept["text"].strip()):
        for code in codes_in(concept, DISCHARGE_SYSTEM):
            if code in DISCHARGE_DISPOSITION:
                return DISCHARGE_DISPOSITION[code]
    return concept_text(concept)


def encounter_view(encounter: Json, names: dict[str, str]) -> EncounterView:
    """A timeline entry for an Encounter (https://hl7.org/fhir/R4/encounter.html)."""
    klass = encounter.get("class") if isinstance(encounter.get("class"), dict) else {}
    kind = ENCOUNTER_CLASS.get(str(klass.get("code")), str(klass.get("display") or ""))
    types = concepts_text(encounter.get("type"))
    title = types[0] if types else kind or "Séjour"
    period = encounter.get("period") if isinstance(encounter.get("period"), dict) else {}
    start, end = _period_text(period)
    begun, ended = parse_when(period.get("start")), parse_when(period.get("end"))
    duration = duration_text(begun[0], ended[0]) if begun and ended else ""
    places = []
    for loc in encounter.get("location") or []:
        if not isinstance(loc, dict):
            continue
        place = reference_display(loc.get("location"), names)
        if not place:
            continue
        p_start, p_end = _period_text(loc.get("period"))
        span = f"{p_start} → {p_end}" if p_start and p_end else (
            f"depuis le {p_start}" if p_start else "")
        places.append(PlaceView(place, span))
    # A unit listed next to one of its beds for the same period says nothing more.
    places = [p for p in places if not any(
        o.period == p.period and o.name.startswith(p.name + " · ") for o in places)]
    staff = [reference_display(p.get("individual"), names)
             for p in encounter.get("participant") or [] if isinstance(p, dict)]
    status = str(encounter.get("status") or "unknown")
    hospitalization = encounter.get("hospitalization")
    discharge = _discharge_text(hospitalization.get("dischargeDisposition")) \
        if isinstance(hospitalization, dict) else ""
    return EncounterView(
        id=str(encounter.get("id") or ""),
        title=title,
        kind=kind if kind != title else "",
        status=ENCOUNTER_STATUS.get(status, status),
        ongoing=status in ("in-progress", "arrived", "triaged", "onleave")
        or (bool(start) and not end and status not in ("finished", "cancelled", "planned")),
        start=start,
        start_iso=iso_when(period.get("start")),
        end=end,
        duration=duration,
        places=places,
        provider=reference_display(encounter.get("serviceProvider"), names),
        reasons=concepts_text(encounter.get("reasonCode")),
        staff=[s for s in staff if s],
        discharge=discharge,
    )


def timeline(encounters: Iterable[Json], names: dict[str, str]) -> list[EncounterView]:
    """Encounters newest first (by start of their period)."""
    current = sorted(_current(encounters),
                     key=lambda e: sort_key((e.get("period") or {}).get("start")), reverse=True)
    return [encounter_view(e, names) for e in current]


# --- conditions, allergies, medications ------------------------------------------------


@dataclass(frozen=True)
class ConditionView:
    title: str
    code: str
    status: str
    active: bool
    verification: str
    category: str
    onset: str
    onset_iso: str
    abatement: str

    @property
    def details(self) -> list[str]:
        """What follows the status on the condition's line."""
        facts = [self.verification, self.category]
        if self.onset.count("/") == 2:  # a day: "depuis le 15/03/2020"
            facts.append(f"depuis le {self.onset}")
        elif self.onset[:1].isdigit():  # a month or a year: "depuis 2009"
            facts.append(f"depuis {self.onset}")
        else:
            facts.append(self.onset)
        facts.append(f"jusqu'au {self.abatement}" if self.abatement else "")
        return [f for f in facts if f]


def conditions_view(conditions: Iterable[Json]) -> list[ConditionView]:
    """Conditions, active ones first, then most recent onset first."""
    out = []
    for cond in conditions:
        if not isinstance(cond, dict):
            continue
        verification = _status_code(cond.get("verificationStatus"))
        if verification == _ERROR:
            continue
        clinical = _status_code(cond.get("clinicalStatus"))
        onset_raw = cond.get("onsetDateTime") or (cond.get("onsetPeriod") or {}).get("start") \
            or cond.get("recordedDate")
        onset = format_when(onset_raw) or str(cond.get("onsetString") or "")
        categories = [c for cat in cond.get("category") or [] for c in codes_in(cat)]
        icd = codes_in(cond.get("code"), ICD10)
        out.append((
            (clinical in ("active", "recurrence", "relapse"), sort_key(onset_raw)),
            ConditionView(
                title=concept_text(cond.get("code"), "Problème non codé"),
                code=f"CIM-10 {icd[0]}" if icd else "",
                status=CONDITION_STATUS.get(clinical, clinical),
                active=clinical in ("active", "recurrence", "relapse"),
                verification=CONDITION_VERIFICATION.get(verification, verification),
                category=next((CONDITION_CATEGORY[c] for c in categories
                               if c in CONDITION_CATEGORY), ""),
                onset=onset,
                onset_iso=iso_when(onset_raw),
                abatement=format_when(cond.get("abatementDateTime")),
            )))
    return [view for _, view in sorted(out, key=lambda kv: kv[0], reverse=True)]


@dataclass(frozen=True)
class AllergyView:
    title: str
    category: str
    criticality: str
    high: bool
    status: str
    reactions: list[str]
    recorded: str

    @property
    def details(self) -> list[str]:
        reactions = f"réaction : {', '.join(self.reactions)}" if self.reactions else ""
        return [f for f in (self.category, reactions, self.status) if f]


def allergies_view(allergies: Iterable[Json]) -> list[AllergyView]:
    """Allergies and intolerances, highest criticality first."""
    out = []
    for allergy in allergies:
        if not isinstance(allergy, dict) \
                or _status_code(allergy.get("verificationStatus")) == _ERROR:
            continue
        reactions = []
        for reaction in allergy.get("reaction") or []:
            if isinstance(reaction, dict):
                text = ", ".join(concepts_text(reaction.get("manifestation")))
                severity = {"mild": "légère", "moderate": "modérée", "severe": "sévère"}.get(
                    str(reaction.get("severity")), "")
                reactions.append(f"{text} ({severity})" if severity and text else text)
        criticality = str(allergy.get("criticality") or "")
        categories = [ALLERGY_CATEGORY.get(str(c), str(c)) for c in allergy.get("category") or []]
        clinical = _status_code(allergy.get("clinicalStatus"))
        out.append(AllergyView(
            title=concept_text(allergy.get("code"), "Allergie non précisée"),
            category=", ".join(categories),
            criticality=ALLERGY_CRITICALITY.get(criticality, ""),
            high=criticality == "high",
            status=ALLERGY_STATUS.get(clinical, clinical),
            reactions=[r for r in reactions if r],
            recorded=format_when(allergy.get("recordedDate")),
        ))
    return sorted(out, key=lambda a: not a.high)


@dataclass(frozen=True)
class MedicationView:
    title: str
    dosage: str
    status: str
    active: bool
    authored: str
    authored_iso: str
    requester: str


def medications_view(requests: Iterable[Json], names: dict[str, str]) -> list[MedicationView]:
    """Medication requests, active ones first, then most recent first."""
    out = []
    for req in _current(requests):
        title = concept_text(req.get("medicationCodeableConcept")) or reference_display(
            req.get("medicationReference"), names, "Médicament non précisé")
        dosage = " ; ".join(str(d["text"]) for d in req.get("dosageInstruction") or []
                            if isinstance(d, dict) and d.get("text"))
        status = str(req.get("status") or "unknown")
        out.append(((status == "active", sort_key(req.get("authoredOn"))), MedicationView(
            title=title,
            dosage=dosage,
            status=MEDICATION_STATUS.get(status, status),
            active=status == "active",
            authored=format_when(req.get("authoredOn")),
            authored_iso=iso_when(req.get("authoredOn")),
            requester=reference_display(req.get("requester"), names),
        )))
    return [view for _, view in sorted(out, key=lambda kv: kv[0], reverse=True)]


# --- documents -----------------------------------------------------------------------


@dataclass(frozen=True)
class AttachmentLink:
    label: str
    href: str
    external: bool


@dataclass(frozen=True)
class DocumentView:
    id: str
    title: str
    kind: str
    date: str
    date_iso: str
    author: str
    status: str
    links: list[AttachmentLink]


def binary_id(url: Any, fhir_base: str) -> str | None:
    """The id of a Binary of this store that an attachment URL points to, else None.

    Accepts ``Binary/<id>`` (relative to the FHIR base, as references are) and the
    absolute URL under this server's base.
    """
    if not isinstance(url, str):
        return None
    text = url.strip()
    if text.startswith(fhir_base.rstrip("/") + "/"):
        text = text[len(fhir_base.rstrip("/")) + 1:]
    elif text.startswith("/fhir/"):
        text = text[len("/fhir/"):]
    elif "://" in text:
        return None
    match = _BINARY_REF.search(text)
    return match.group(1) if match and text.count("/") == 1 else None


def _size_text(size: Any) -> str:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        return ""
    if size < 1024:
        return f"{size} o"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} Ko"
    return f"{size / 1024 / 1024:.1f} Mo".replace(".", ",")


def attachment_links(document: Json, patient_id: str, fhir_base: str) -> list[AttachmentLink]:
    """Links to each attachment: ours for inline data and our Binaries, else its URL."""
    links = []
    for index, content in enumerate(document.get("content") or []):
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict):
            continue
        media = str(attachment.get("contentType") or "").split(";")[0].strip().lower()
        label = _MEDIA_LABELS.get(media) or ("Image" if media.startswith("image/") else "Fichier")
        if attachment.get("title") and len(document.get("content") or []) > 1:
            label = f"{attachment['title']} ({label})"
        size = _size_text(attachment.get("size"))
        label = f"{label}, {size}" if size else label
        url = attachment.get("url")
        if attachment.get("data") or binary_id(url, fhir_base):
            href = f"/record/patient/{patient_id}/documents/{document.get('id')}/{index}"
            links.append(AttachmentLink(label, href, external=False))
        elif isinstance(url, str) and url.startswith(("https://", "http://")):
            links.append(AttachmentLink(label, url, external=True))
    return links


def documents_view(documents: Iterable[Json], patient_id: str, fhir_base: str,
                   names: dict[str, str]) -> list[DocumentView]:
    """DocumentReferences, newest first (https://hl7.org/fhir/R4/documentreference.html)."""
    out = []
    for doc in _current(documents):
        first = next((c.get("attachment") for c in doc.get("content") or []
                      if isinstance(c, dict) and isinstance(c.get("attachment"), dict)), {})
        context = doc.get("context") if isinstance(doc.get("context"), dict) else {}
        when = doc.get("date") or (context.get("period") or {}).get("start") \
            or first.get("creation")
        title = str(doc.get("description") or first.get("title") or "") \
            or concept_text(doc.get("type"), "Document")
        authors = [reference_display(a, names) for a in doc.get("author") or []]
        status = str(doc.get("status") or "")
        out.append((sort_key(when), DocumentView(
            id=str(doc.get("id") or ""),
            title=title,
            kind=concept_text(doc.get("type")) or ", ".join(concepts_text(doc.get("category"))),
            date=format_when(when),
            date_iso=iso_when(when),
            author=", ".join(a for a in authors if a),
            status=DOCUMENT_STATUS.get(status, status),
            links=attachment_links(doc, patient_id, fhir_base),
        )))
    return [view for _, view in sorted(out, key=lambda kv: kv[0], reverse=True)]


# --- references to name ----------------------------------------------------------------

#: Types whose names the record shows when a reference carries no ``display``.
NAMED_TYPES = ("Location", "Organization", "Practitioner", "PractitionerRole", "Medication")


def references_to_name(resources: Iterable[Json]) -> set[str]:
    """``Type/id`` references without a display that the page would show."""
    wanted: set[str] = set()

    def add(ref: Any) -> None:
        if isinstance(ref, dict) and not ref.get("display"):
            target = ref.get("reference")
            if isinstance(target, str) and target.split("/")[0] in NAMED_TYPES \
                    and target.count("/") == 1:
                wanted.add(target)

    for res in resources:
        kind = res.get("resourceType")
        if kind == "Encounter":
            for loc in res.get("location") or []:
                add(loc.get("location") if isinstance(loc, dict) else None)
            add(res.get("serviceProvider"))
            for part in res.get("participant") or []:
                add(part.get("individual") if isinstance(part, dict) else None)
        elif kind == "DocumentReference":
            for author in res.get("author") or []:
                add(author)
        elif kind == "MedicationRequest":
            add(res.get("requester"))
            add(res.get("medicationReference"))
        elif kind == "Patient":
            for gp in res.get("generalPractitioner") or []:
                add(gp)
    return wanted


def resource_name(resource: Json) -> str:
    """How a referenced resource is named on the page."""
    kind = resource.get("resourceType")
    if kind == "Practitioner":
        name = human_name(resource.get("name"))
        return f"Dr {name}" if name and _is_doctor(resource) else name
    if kind == "PractitionerRole":
        return reference_display(resource.get("practitioner")) or concept_text(
            (resource.get("code") or [None])[0])
    if kind == "Medication":
        return concept_text(resource.get("code"))
    return str(resource.get("name") or "")


def _is_doctor(practitioner: Json) -> bool:
    prefixes = [p for n in practitioner.get("name") or [] if isinstance(n, dict)
                for p in n.get("prefix") or []]
    return any(str(p).lower().startswith("dr") for p in prefixes)
