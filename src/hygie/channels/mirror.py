"""The outbox mirrored as FHIR R4 resources, through the store's Python API.

Each message becomes a ``CommunicationRequest`` (what a service asked for) and, once a
transport took it, a ``Communication`` (what was sent); an answer becomes a second
``Communication`` ``inResponseTo`` the first. Resource ids are the outbox id
(``CommunicationRequest/<id>``, ``Communication/<id>``, ``Communication/<id>-r``), and
writes are FHIR updates (update-as-create), so writing again after a crash makes a new
version and never a duplicate.

The mirror runs behind the outbox (a pass of the dispatcher), in batches, so that
sending never waits for the store. Status mapping (R4 value sets):

=========== ======================= ===================
outbox      CommunicationRequest    Communication
=========== ======================= ===================
queued      active                  (none yet)
submitted   active                  in-progress
delivered   completed               completed
answered    completed               completed (+ reply)
failed      revoked                 not-done
=========== ======================= ===================
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, or_, select, update

from hygie.channels import tables as t
from hygie.channels.model import Channel, Status

log = logging.getLogger("hygie.channels.mirror")

IDENTIFIER_SYSTEM = "urn:hygie:channels:message"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
_MEDIUM = {
    Channel.SMS: ("WRITTEN", "written", "SMS"),
    Channel.EMAIL: ("EMAILWRIT", "email", "Courriel"),
    Channel.VOICE: ("PHONE", "telephone", "Appel vocal"),
}
_REQUEST_STATUS = {Status.QUEUED: "active", Status.SUBMITTED: "active",
                   Status.DELIVERED: "completed", Status.ANSWERED: "completed",
                   Status.FAILED: "revoked"}
_COMMUNICATION_STATUS = {Status.SUBMITTED: "in-progress", Status.DELIVERED: "completed",
                         Status.ANSWERED: "completed", Status.FAILED: "not-done"}
_SUBJECT_TYPES = ("Patient/", "Group/")
_RECIPIENT_TYPES = ("Patient/", "Practitioner/", "PractitionerRole/", "RelatedPerson/",
                    "Organization/", "Group/", "CareTeam/", "Device/", "HealthcareService/")


def _instant(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _common(row: Any) -> dict[str, Any]:
    code, display, text = _MEDIUM[Channel(row.channel)]
    out: dict[str, Any] = {
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": row.id}],
        "medium": [{"coding": [{"system": _PARTICIPATION, "code": code, "display": display}],
                    "text": text}],
        "payload": [{"contentString": row.body}],
    }
    if row.about and row.about.startswith(_SUBJECT_TYPES):
        out["subject"] = {"reference": row.about}
    if row.recipient_ref and row.recipient_ref.startswith(_RECIPIENT_TYPES):
        out["recipient"] = [{"reference": row.recipient_ref}]
    return out


def communication_request(row: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "CommunicationRequest", "id": row.id,
                                "status": _REQUEST_STATUS[Status(row.status)],
                                **_common(row), "authoredOn": _instant(row.created_ms)}
    if row.status == Status.FAILED and row.error:
        resource["statusReason"] = {"text": row.error[:200]}
    return resource


def communication(row: Any, events: dict[str, int]) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Communication", "id": row.id,
                                "basedOn": [{"reference": f"CommunicationRequest/{row.id}"}],
                                "status": _COMMUNICATION_STATUS[Status(row.status)],
                                **_common(row)}
    if row.status == Status.FAILED:
        resource["statusReason"] = {"text": (row.error or "not sent")[:200]}
    if Status.SUBMITTED in events:
        resource["sent"] = _instant(events[Status.SUBMITTED])
    if Status.DELIVERED in events:
        resource["received"] = _instant(events[Status.DELIVERED])
    return resource


def reply(row: Any, answered_ms: int) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Communication", "id": f"{row.id}-r", "status": "completed",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"{row.id}-r"}],
        "inResponseTo": [{"reference": f"Communication/{row.id}"}],
        "received": _instant(answered_ms),
        "payload": [{"contentString": row.answer or ""}],
    }
    common = _common(row)
    resource["medium"] = common["medium"]
    if "subject" in common:
        resource["subject"] = common["subject"]
    if "recipient" in common:
        resource["sender"] = common["recipient"][0]
    return resource


def mirror_pass(engine: Engine, repository: Any, limit: int = 200) -> int:
    """Write the FHIR resources of messages whose status changed; return how many."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.message).where(
            t.message.c.status != Status.SENDING,
            or_(t.message.c.fhir_status.is_(None), t.message.c.fhir_status != t.message.c.status))
            .order_by(t.message.c.updated_ms).limit(limit)).all()
        if not rows:
            return 0
        events: dict[str, dict[str, int]] = {}
        for mid, status, at in conn.execute(select(t.event.c.message_id, t.event.c.status,
                                                   t.event.c.at_ms).where(
                t.event.c.message_id.in_([r.id for r in rows])).order_by(t.event.c.id)):
            events.setdefault(mid, {}).setdefault(status, at)
    done = []
    for row in rows:
        ev = events.get(row.id, {})
        try:
            with repository.transaction():
                repository.update("CommunicationRequest", row.id, communication_request(row))
                if row.status in _COMMUNICATION_STATUS and (
                        row.status != Status.FAILED or Status.SUBMITTED in ev):
                    repository.update("Communication", row.id, communication(row, ev))
                if row.status == Status.ANSWERED:
                    repository.update("Communication", f"{row.id}-r",
                                      reply(row, ev.get(Status.ANSWERED, row.updated_ms)))
        except Exception as exc:  # a bad reference must not stop the mirror of others
            log.warning("FHIR mirror of a message failed: %s", type(exc).__name__)
            done.append({"b_id": row.id, "b_status": row.status, "b_req": None,
                         "b_com": None})
            continue
        done.append({"b_id": row.id, "b_status": row.status, "b_req": row.id,
                     "b_com": row.id if row.status in _COMMUNICATION_STATUS else None})
    done.sort(key=lambda d: d["b_id"])  # one row at a time, in the lock order of writers
    with engine.begin() as conn:
        conn.execute(update(t.message).where(t.message.c.id == bindparam("b_id"))
                     .values(fhir_status=bindparam("b_status"),
                             fhir_request_id=bindparam("b_req"),
                             fhir_communication_id=bindparam("b_com")), done)
    return len(done)
