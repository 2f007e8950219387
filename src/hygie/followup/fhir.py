"""The FHIR side of follow-up: Consent, QuestionnaireResponse, Observation and Flag.

The service's tables decide what happens in a conversation; the store receives the
clinical record of it. A resource is not written to the store inside the answer's
transaction (the store has its own transaction and costs more than the conversation
itself): it is put in ``followup_projection`` in that transaction, and
:func:`flush_projection` writes the pending rows as one batch (``prepare`` +
``put_many``), keeping only the latest body of a resource that changed several times
since the last flush. This is an outbox: nothing is lost by a crash between the two,
and ids are fixed (the session's id for its QuestionnaireResponse, the alert's for its
Flag), so writing twice makes a new version, never a second resource.

- Consent (https://hl7.org/fhir/R4/consent.html): scope ``treatment``, category LOINC
  59284-0, policy rule ``OPTIN``, provision ``permit`` over the follow-up's dates.
- QuestionnaireResponse: ``in-progress`` from the first answer, ``completed`` when the
  last question is answered, ``stopped`` when the session was missed or cancelled.
- Observation: one per measured answer (items with a ``code`` and a unit), coded as the
  Questionnaire item says (SDC observation extraction), ``derivedFrom`` the response.
- Flag: one per alert, ``active`` until resolved.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from hygie.followup import tables as t
from hygie.followup.model import Level, Protocol, Question
from hygie.followup.transactions import insert_rows, writing
from hygie.store.outcomes import FhirError

log = logging.getLogger("hygie.followup")

BASE = "https://hygie.example/fhir"
LEVEL_SYSTEM = f"{BASE}/CodeSystem/followup-alert-level"
KIND_SYSTEM = f"{BASE}/CodeSystem/followup-alert-kind"
ENROLLMENT_SYSTEM = f"{BASE}/sid/followup-enrollment"
UCUM = "http://unitsofmeasure.org"


@lru_cache(maxsize=1024)
def iso(ms: int) -> str:
    """A UTC instant as FHIR writes it (second precision); a batch of answers writes the
    same few instants thousands of times, hence the cache."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def project(conn: Connection, resources: list[dict[str, Any]], now: int) -> None:
    """Queue resources for the store in the caller's transaction."""
    if resources:
        insert_rows(
            conn,
            t.projection,
            [
                {"res_type": r["resourceType"], "res_id": r["id"], "body": r, "created_ms": now}
                for r in resources
            ],
        )


def flush_projection(engine: Engine, repository: Any, limit: int = 500) -> int:
    """Write pending resources to the store; returns how many rows were taken.

    A resource the store refuses (it should not happen: the bodies are built here) is
    logged by type and dropped, so that it cannot hold the queue back.
    """
    with engine.connect() as conn:
        rows = conn.execute(select(t.projection).order_by(t.projection.c.seq).limit(limit)).all()
    if not rows:
        return 0
    latest: dict[tuple[str, str], Any] = {}
    for row in rows:
        latest[(row.res_type, row.res_id)] = row.body
    prepared = []
    for (res_type, res_id), body in latest.items():
        try:
            prepared.append(repository.prepare(body, res_id))
        except FhirError as exc:
            # The type and id only: the store's message may quote the patient's answers.
            log.error(
                "follow-up %s/%s refused by the store (%s)", res_type, res_id, type(exc).__name__
            )
    if prepared:
        repository.put_many(prepared)
    seqs = [row.seq for row in rows]
    with writing(engine) as conn:
        for i in range(0, len(seqs), 500):
            conn.execute(delete(t.projection).where(t.projection.c.seq.in_(seqs[i : i + 500])))
    return len(rows)


def consent_resource(
    consent_id: str,
    patient_id: str,
    start: str,
    end: str,
    method: str,
    now: int,
    organization: str | None,
    active: bool = True,
) -> dict[str, Any]:
    method_text = "Consentement écrit" if method == "written" else "Consentement oral"
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": consent_id,
        "status": "active" if active else "inactive",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "treatment",
                    "display": "Treatment",
                }
            ]
        },
        "category": [
            {"coding": [{"system": "http://loinc.org", "code": "59284-0"}]},
            {"text": f"Suivi à domicile par SMS - {method_text}"},
        ],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": iso(now),
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "verification": [
            {
                "verified": True,
                "verifiedWith": {"reference": f"Patient/{patient_id}"},
                "verificationDate": iso(now),
            }
        ],
        "provision": {"type": "permit", "period": {"start": start, "end": end}},
    }
    if organization:
        resource["organization"] = [{"reference": f"Organization/{organization}"}]
    return resource


def _answer_value(question: Question, value: Any) -> dict[str, Any]:
    if question.kind == "boolean":
        return {"valueBoolean": bool(value)}
    if question.kind == "integer":
        return {"valueInteger": int(value)}
    return {"valueDecimal": float(value)}


def response_resource(
    session_id: str,
    patient_id: str,
    protocol: Protocol,
    answers: dict[str, Any],
    status: str,
    authored_ms: int,
    language: str,
) -> dict[str, Any]:
    """The session's answers as a QuestionnaireResponse (skipped questions left out)."""
    items = []
    for q in protocol.questions:
        if q.link_id not in answers:
            continue
        item: dict[str, Any] = {"linkId": q.link_id, "text": q.wording(language)}
        value = answers[q.link_id]
        if value is not None:
            item["answer"] = [_answer_value(q, value)]
        items.append(item)
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": session_id,
        "questionnaire": f"{protocol.questionnaire_url}|{protocol.version}",
        "status": status,
        "subject": {"reference": f"Patient/{patient_id}"},
        "source": {"reference": f"Patient/{patient_id}"},
        "authored": iso(authored_ms),
    }
    if items:
        resource["item"] = items
    return resource


def observation_resource(
    session_id: str, patient_id: str, question: Question, value: float, at_ms: int
) -> dict[str, Any] | None:
    """The Observation a measured answer becomes, or None for questions without a code."""
    if question.code is None or question.kind == "boolean":
        return None
    system, code, display = question.code
    quantity: dict[str, Any] = {"value": value}
    if question.unit:
        quantity.update(
            {"unit": question.unit_display or question.unit, "system": UCUM, "code": question.unit}
        )
    return {
        "resourceType": "Observation",
        "id": f"{session_id}-{question.link_id}"[:64],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": iso(at_ms),
        "performer": [{"reference": f"Patient/{patient_id}"}],
        "valueQuantity": quantity,
        "method": {"text": "Déclaré par le patient par SMS"},
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{session_id}"}],
    }


def flag_resource(
    alert_id: str,
    patient_id: str,
    kind: str,
    level: Level,
    reasons: list[str],
    raised_ms: int,
    resolved_ms: int | None,
) -> dict[str, Any]:
    period: dict[str, Any] = {"start": iso(raised_ms)}
    if resolved_ms is not None:
        period["end"] = iso(resolved_ms)
    return {
        "resourceType": "Flag",
        "id": alert_id[:64],
        "status": "inactive" if resolved_ms is not None else "active",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "clinical",
                        "display": "Clinical",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {"system": LEVEL_SYSTEM, "code": str(int(level)), "display": level.label},
                {"system": KIND_SYSTEM, "code": kind},
            ],
            "text": f"Suivi à domicile - {level.label} : {'; '.join(reasons)}"[:1000],
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": period,
    }
