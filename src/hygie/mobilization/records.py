"""The campaign's records in the health-data store: an AuditEvent for every launch and
every close (http://hl7.org/fhir/R4/auditevent.html).

Messages are recorded by the channels package (each one mirrored as a
CommunicationRequest and a Communication to the Practitioner). Launches and closes are
recorded here: who did it, which plan and level, real alert or exercise (in
``purposeOfEvent`` and in the text, so that an exercise can never be read as a real
alert). Each record has a fixed id (``mobilization-<campaign>-launch``) and is written
with an update, so writing it again after a crash leaves one record; the campaign row
says which records are still to write, and the worker writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from hygie.mobilization import tables as t
from hygie.mobilization.transactions import writing

CAMPAIGN_SYSTEM = "urn:hygie:mobilization:campaign"
EVENT_SYSTEM = "urn:hygie:mobilization:event"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def _instant(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def audit_event(row: Any, what: str) -> dict[str, Any]:
    """The AuditEvent of a campaign's launch (``what="launch"``) or close."""
    mode = "EXERCICE" if row.exercise else "ALERTE REELLE"
    when = row.launched_ms if what == "launch" else row.closed_ms
    who = row.launched_by if what == "launch" else row.closed_by
    verb = "Déclenchement" if what == "launch" else "Clôture"
    agent: dict[str, Any] = {"who": {"display": (who or "inconnu")[:200]}, "requestor": True}
    if what == "launch" and row.launched_by_ref:
        agent["who"]["reference"] = row.launched_by_ref
    return {
        "resourceType": "AuditEvent",
        "id": f"mobilization-{row.id}-{what}",
        "type": {"system": DCM, "code": "110100", "display": "Application Activity"},
        "subtype": [
            {"system": EVENT_SYSTEM, "code": what, "display": f"{verb} d'une mobilisation"}
        ],
        "action": "E",
        "recorded": _instant(when or row.updated_ms),
        "outcome": "0",
        "outcomeDesc": f"[{mode}] {verb} : {row.plan_name}, niveau {row.level} ({row.level_name})",
        "purposeOfEvent": [{"text": mode}],
        "agent": [agent],
        "source": {"observer": {"display": "Hygie mobilisation"}},
        "entity": [
            {
                "what": {"identifier": {"system": CAMPAIGN_SYSTEM, "value": row.id}},
                "name": row.plan_name[:200],
                "description": f"{mode} ; plan {row.plan_id} v{row.plan_version}, "
                f"niveau {row.level}",
            }
        ],
    }


def write_pending(engine: Engine, repository: Any, limit: int = 50) -> int:
    """Write the AuditEvents still missing; return how many were written."""
    k = t.campaign.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.campaign)
            .where(
                k.launch_audited.is_(False) | ((k.status == "closed") & k.close_audited.is_(False))
            )
            .limit(limit)
        ).all()
    written = 0
    for row in rows:
        for what, flag in (("launch", "launch_audited"), ("close", "close_audited")):
            if getattr(row, flag) or (what == "close" and row.status != "closed"):
                continue
            event = audit_event(row, what)
            repository.update("AuditEvent", event["id"], event)
            with writing(engine) as conn:
                conn.execute(update(t.campaign).where(k.id == row.id).values({flag: True}))
            written += 1
    return written
