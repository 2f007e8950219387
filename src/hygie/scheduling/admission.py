"""The FHIR resources of a pre-admission: the form, the answers, and what validation writes.

- ``QUESTIONNAIRE``: the pre-admission form as a FHIR Questionnaire
  (https://hl7.org/fhir/R4/questionnaire.html), stored once under its canonical URL.
- ``questionnaire_response``: the submitted answers, linked to that form.
- ``admission_resources``: on validation, in one store transaction, the ``Patient``
  (created, or updated when the booking or the INS already names one) with the INS as
  identifier and the contact person, one ``Coverage`` per insurance (compulsory AMO,
  complementary AMC), one ``Consent`` per consent question (permit or deny: a refusal
  is recorded too), one ``DocumentReference`` per uploaded document, and the planned
  ``Encounter`` of the stay.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from hygie.scheduling.ins import INS_NIR_SYSTEM
from hygie.scheduling.model import utc_iso
from hygie.scheduling.preadmission import CONSENTS, DOCUMENT_KINDS, RELATIONSHIPS

QUESTIONNAIRE_URL = "https://hygie.example/fhir/Questionnaire/preadmission"
QUESTIONNAIRE_VERSION = "1"
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _item(link: str, text: str, kind: str, required: bool = False,
          **more: Any) -> dict[str, Any]:
    out = {"linkId": link, "text": text, "type": kind, **more}
    if required:
        out["required"] = True
    return out


QUESTIONNAIRE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": QUESTIONNAIRE_URL,
    "version": QUESTIONNAIRE_VERSION,
    "name": "PreAdmission",
    "title": "Pré-admission en ligne",
    "status": "active",
    "subjectType": ["Patient"],
    "item": [
        _item("identity", "Identité", "group", True, item=[
            _item("identity.family", "Nom de naissance", "string", True),
            _item("identity.given", "Prénom", "string", True),
            _item("identity.birth_date", "Date de naissance", "date", True),
            _item("identity.gender", "Sexe", "choice", True, answerOption=[
                {"valueCoding": {"system": "http://hl7.org/fhir/administrative-gender",
                                 "code": g}} for g in ("female", "male", "other", "unknown")]),
            _item("identity.ins", "Matricule INS (numéro de sécurité sociale)", "string"),
            _item("identity.birth_place", "Lieu de naissance", "string"),
            _item("identity.address_line", "Adresse", "string"),
            _item("identity.postal_code", "Code postal", "string"),
            _item("identity.city", "Commune", "string"),
            _item("identity.email", "E-mail", "string"),
            _item("identity.phone", "Téléphone", "string"),
        ]),
        _item("insurance", "Couverture sociale", "group", item=[
            _item("insurance.amo_nir", "Numéro d'assuré (AMO)", "string"),
            _item("insurance.amo_fund", "Caisse d'assurance maladie", "string"),
            _item("insurance.amc_name", "Complémentaire santé (mutuelle)", "string"),
            _item("insurance.amc_member", "Numéro d'adhérent", "string"),
        ]),
        _item("contact", "Personne à prévenir", "group", item=[
            _item("contact.family", "Nom", "string"),
            _item("contact.given", "Prénom", "string"),
            _item("contact.relationship", "Lien", "choice", answerOption=[
                {"valueCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                                 "code": c, "display": d}} for c, d in RELATIONSHIPS.items()]),
            _item("contact.phone", "Téléphone", "string"),
        ]),
        _item("consents", "Consentements", "group", item=[
            _item(f"consents.{k}", text, "boolean") for k, text in CONSENTS.items()]),
        _item("documents", "Documents", "group", item=[
            _item(f"documents.{k}", label, "attachment", repeats=True)
            for k, label in DOCUMENT_KINDS.items()]),
    ],
}


def questionnaire_response(file_id: str, answers: dict[str, Any], now: int,
                           subject: str | None, uploads: list[Any]) -> dict[str, Any]:
    """The answers as a QuestionnaireResponse (documents listed by title and hash)."""
    groups = []
    for group in ("identity", "insurance", "contact"):
        items = []
        for key, value in answers[group].items():
            if not value:
                continue
            kind = "valueDate" if key == "birth_date" else "valueString"
            if key in ("gender", "relationship"):
                system = ("http://hl7.org/fhir/administrative-gender" if key == "gender"
                          else "http://terminology.hl7.org/CodeSystem/v2-0131")
                items.append({"linkId": f"{group}.{key}",
                              "answer": [{"valueCoding": {"system": system, "code": value}}]})
                continue
            items.append({"linkId": f"{group}.{key}", "answer": [{kind: value}]})
        if items:
            groups.append({"linkId": group, "item": items})
    groups.append({"linkId": "consents", "item": [
        {"linkId": f"consents.{k}", "answer": [{"valueBoolean": v}]}
        for k, v in answers["consents"].items()]})
    docs = [{"linkId": f"documents.{u.kind}", "answer": [{"valueAttachment": {
        "contentType": u.content_type, "title": u.title, "size": u.size}}]} for u in uploads]
    if docs:
        groups.append({"linkId": "documents", "item": docs})
    out: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "identifier": {"system": "https://hygie.example/fhir/sid/preadmission",
                       "value": file_id},
        "questionnaire": f"{QUESTIONNAIRE_URL}|{QUESTIONNAIRE_VERSION}",
        "status": "completed",
        "authored": utc_iso(now),
        "item": groups,
    }
    if subject:
        out["subject"] = {"reference": subject}
    return out


def patient_resource(answers: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
    """The Patient with the answers applied (over the existing one, when there is one)."""
    ident, contact = answers["identity"], answers["contact"]
    patient: dict[str, Any] = dict(existing or {"resourceType": "Patient", "active": True})
    identifiers = [i for i in patient.get("identifier", []) if i.get("system") != INS_NIR_SYSTEM]
    if ident["ins"]:
        identifiers.append({"use": "official", "system": INS_NIR_SYSTEM, "value": ident["ins"],
                            "type": {"text": "INS-NIR déclaré (à qualifier par INSi)"}})
    if identifiers:
        patient["identifier"] = identifiers
    names = [n for n in patient.get("name", []) if n.get("use") != "official"]
    patient["name"] = [{"use": "official", "family": ident["family"],
                        "given": [ident["given"]]}, *names]
    patient["gender"] = ident["gender"]
    patient["birthDate"] = ident["birth_date"]
    telecom = [c for c in patient.get("telecom", [])
               if c.get("value") not in (ident["phone"], ident["email"])]
    if ident["phone"]:
        telecom.insert(0, {"system": "phone", "value": ident["phone"], "use": "mobile"})
    if ident["email"]:
        telecom.append({"system": "email", "value": ident["email"], "use": "home"})
    if telecom:
        patient["telecom"] = telecom
    if ident["address_line"] or ident["city"]:
        address = {"use": "home", "country": "FR"}
        if ident["address_line"]:
            address["line"] = [ident["address_line"]]
        if ident["postal_code"]:
            address["postalCode"] = ident["postal_code"]
        if ident["city"]:
            address["city"] = ident["city"]
        patient["address"] = [address]
    if contact["family"]:
        relation = contact["relationship"] or "C"
        patient["contact"] = [{
            "relationship": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": relation,
                "display": RELATIONSHIPS[relation]}]}],
            "name": {"family": contact["family"],
                     **({"given": [contact["given"]]} if contact["given"] else {})},
            "telecom": [{"system": "phone", "value": contact["phone"]}],
        }]
    patient.pop("meta", None)
    return patient


def coverage_resources(answers: dict[str, Any], patient_ref: str) -> list[dict[str, Any]]:
    ins = answers["insurance"]
    out = []
    if ins["amo_nir"]:
        out.append({
            "resourceType": "Coverage", "status": "active",
            "type": {"coding": [{"system": V3_ACT, "code": "PUBLICPOL",
                                 "display": "public healthcare"}],
                     "text": "Assurance maladie obligatoire"},
            "subscriberId": ins["amo_nir"],
            "beneficiary": {"reference": patient_ref},
            "relationship": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                "code": "self"}]},
            "payor": [{"display": ins["amo_fund"] or "Assurance maladie"}],
        })
    if ins["amc_name"]:
        out.append({
            "resourceType": "Coverage", "status": "active",
            "type": {"coding": [{"system": V3_ACT, "code": "EHCPOL",
                                 "display": "extended healthcare"}],
                     "text": "Complémentaire santé"},
            "subscriberId": ins["amc_member"],
            "beneficiary": {"reference": patient_ref},
            "payor": [{"display": ins["amc_name"]}],
        })
    return out


def consent_resources(answers: dict[str, Any], patient_ref: str, now: int,
                      organization_ref: str) -> list[dict[str, Any]]:
    scopes = {"care": "treatment", "data_sharing": "patient-privacy",
              "trusted_person": "patient-privacy"}
    out = []
    for key, given in answers["consents"].items():
        out.append({
            "resourceType": "Consent", "status": "active",
            "scope": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                "code": scopes[key]}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0",
                                      "display": "Patient Consent"}], "text": CONSENTS[key]}],
            "patient": {"reference": patient_ref},
            "dateTime": utc_iso(now),
            "organization": [{"reference": organization_ref}],
            "policyRule": {"coding": [{"system": V3_ACT, "code": "OPTIN" if given else "OPTOUT"}],
                           "text": CONSENTS[key]},
            "provision": {"type": "permit" if given else "deny"},
        })
    return out


def document_resource(upload: Any, data: bytes, patient_ref: str, now: int) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference", "status": "current", "docStatus": "final",
        "type": {"text": DOCUMENT_KINDS.get(upload.kind, upload.kind)},
        "subject": {"reference": patient_ref},
        "date": utc_iso(now),
        "description": upload.title,
        "content": [{"attachment": {
            "contentType": upload.content_type, "title": upload.title, "size": len(data),
            "data": base64.b64encode(data).decode(),
            # Attachment.hash is the base64 SHA-1 of the data (R4 datatypes.html#Attachment).
            "hash": base64.b64encode(hashlib.sha1(data).digest()).decode()}}],
    }


def encounter_resource(patient_ref: str, site_id: str, planned_start_utc: int,
                       booking_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Encounter", "status": "planned",
        "class": {"system": V3_ACT, "code": "IMP", "display": "inpatient encounter"},
        "type": [{"text": "Hospitalisation programmée"}],
        "subject": {"reference": patient_ref},
        "period": {"start": utc_iso(planned_start_utc)},
        "serviceProvider": {"reference": f"Organization/{site_id}"},
    }
    if booking_id:
        out["appointment"] = [{"reference": f"Appointment/{booking_id}"}]
    return out
