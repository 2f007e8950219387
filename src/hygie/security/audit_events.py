"""What an audit record says: the R4 AuditEvent (https://hl7.org/fhir/R4/auditevent.html)
of an access, and the facts a FHIR interaction's record keeps instead of its JSON.

``build_event`` makes a whole AuditEvent (sign-ins, security alerts, exports);
``interaction_facts`` turns what a FHIR interaction's request captured into the values
of ``FACTS``, the columns of its record; ``event_of`` makes the AuditEvent back from a
record, the same every time. ``hygie.security.audit`` keeps and chains the records.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

#: The network address of the request being served (set by the authentication middleware).
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("hygie_client_address", default=None)

_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

#: AuditEvent.outcome codes (http://hl7.org/fhir/R4/valueset-audit-event-outcome.html).
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"

#: The columns of an interaction's record that its AuditEvent is built from, in the
#: order the hash encodes them (see the module docstring).
FACTS = ("recorded", "action", "verb", "outcome", "agent", "who", "client", "roles",
         "address", "entity", "query", "patient", "detail", "purpose")
#: AuditEvent.purposeOfEvent of an access that needed an emergency grant.
BREAK_THE_GLASS = "BTG"


def agent_facts(principal: Any) -> tuple[str, str, str, str]:
    """(account, FHIR reference, client, roles) of a caller, as ``audit_log`` keeps them:
    "" for what is absent (everything, for an anonymous caller)."""
    if principal is None:
        return "", "", "", ""
    subject = str(principal.subject)[:128]
    fhir_user = getattr(principal, "fhir_user", None)
    client_id = getattr(principal, "client_id", None)
    roles = " ".join(sorted(getattr(principal, "roles", ()) or ()))
    return (subject, fhir_user[:200] if fhir_user else "",
            client_id[:64] if client_id and client_id != principal.subject else "",
            roles[:200])


def agent_of(subject: str | None, who: str | None, client: str | None, roles: str | None,
             address: str | None) -> dict[str, Any]:
    """AuditEvent.agent for the caller: who (FHIR reference or account), and from where;
    no ``subject``: an anonymous caller."""
    anonymous = not subject
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": _PARTICIPATION, "code": "IRCP" if anonymous else "AUT",
                             "display": "recipient" if anonymous else "author"}]},
        "requestor": True,
    }
    if anonymous:
        agent["who"] = {"display": "anonymous"}
    else:
        reference: dict[str, Any] = {"identifier": {"system": "urn:hygie:account",
                                                    "value": subject}}
        if who:
            reference["reference"] = who
        agent["who"] = reference
        agent["altId"] = subject
        if client:
            agent["name"] = f"client {client}"
        if roles:
            agent["role"] = [{"text": r} for r in roles.split(" ")]
    if address:
        agent["network"] = {"address": address, "type": "2"}
    return agent


def agent_json(principal: Any, address: str | None) -> dict[str, Any]:
    """AuditEvent.agent for a principal (None: anonymous) calling from ``address``."""
    return agent_of(*agent_facts(principal), address)


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def instant(us: int) -> str:
    """A FHIR instant (UTC, milliseconds) for epoch microseconds, formatting each second
    once: the audit dates thousands of events a second."""
    return f"{_second(us // 1_000_000)}.{us // 1000 % 1000:03d}Z"


def build_event(*, type_code: tuple[str, str, str], subtype: tuple[str, str, str] | None,
                action: str, outcome: str, description: str | None, principal: Any,
                entities: Iterable[dict[str, Any]] = (), emergency: bool = False,
                address: str | None = None, recorded_us: int | None = None) -> dict[str, Any]:
    """An R4 AuditEvent; ``type_code`` and ``subtype`` are (system, code, display)."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": type_code[0], "code": type_code[1], "display": type_code[2]},
        "action": action,
        "recorded": instant(recorded_us or time.time_ns() // 1000),
        "outcome": outcome,
        "agent": [agent_json(principal, address if address is not None
                             else CLIENT_ADDRESS.get())],
        "source": _source(),
    }
    if subtype is not None:
        event["subtype"] = [{"system": subtype[0], "code": subtype[1], "display": subtype[2]}]
    if description:
        event["outcomeDesc"] = description[:1000]
    if emergency:
        event["purposeOfEvent"] = _purpose()
    listed = list(entities)
    if listed:
        event["entity"] = listed
    return event


def _source() -> dict[str, Any]:
    return {"site": "hygie", "observer": {"display": "Hygie"},
            "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}]}


def _purpose() -> list[dict[str, Any]]:
    return [{"coding": [{"system": _ACT_REASON, "code": BREAK_THE_GLASS,
                         "display": "break the glass"}]}]


def entity(reference: str | None = None, *, query: str | None = None,
           description: str | None = None) -> dict[str, Any]:
    """An AuditEvent.entity: a resource by reference, or a search query."""
    out: dict[str, Any] = {}
    if reference:
        out["what"] = {"reference": reference}
        out["type"] = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
    if query is not None:
        out["query"] = base64.b64encode(query.encode()).decode()
        out["type"] = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
    if description:
        out["description"] = description
    return out


REST = (_EVENT_TYPE, "rest", "RESTful Operation")
LOGIN = (_DCM, "110114", "User Authentication")
SECURITY_ALERT = (_DCM, "110113", "Security Alert")
EXPORT = (_DCM, "110106", "Export")
EMERGENCY = (_DCM, "110113", "Security Alert")


def interaction_subtype(code: str) -> tuple[str, str, str]:
    return (_INTERACTION, code, code)


def login_subtype(code: str) -> tuple[str, str, str]:
    return (_DCM, {"login": "110122", "logout": "110123"}[code], code.capitalize())


def interaction_facts(recorded: int, action: str, verb: str, outcome: str,
                      agent: tuple[str, str, str, str], address: str | None,
                      references: Iterable[str], query: str | None,
                      patients: set[str] | frozenset[str], detail: str | None,
                      emergency: bool) -> tuple[tuple[int | str, ...], frozenset[str]]:
    """The ``FACTS`` values of a FHIR interaction's record, and the patients it is about.

    ``action`` is the restful-interaction code (read, search-type...), ``verb`` the
    AuditEvent.action (C R U D E), ``agent`` what ``agent_facts`` gives. What is absent
    is "" (stored as NULL; ``facts_of`` reads it back as ""), so that the values are
    only integers and strings, which the database drivers bind the fastest.
    """
    patient = next(iter(patients))[:64] if len(patients) == 1 else ""
    return ((recorded, action[:32], verb, outcome, *agent, address[:64] if address else "",
             " ".join(references), query or "", patient, detail or "",
             BREAK_THE_GLASS if emergency else ""),
            frozenset(patients))


def facts_of(row: Any) -> tuple[int | str, ...]:
    """The ``FACTS`` values of a stored interaction's record, as they were hashed."""
    return tuple("" if value is None else value
                 for value in (getattr(row, name) for name in FACTS))


def event_of(row: Any) -> dict[str, Any]:
    """The AuditEvent a record of ``audit_log`` stands for (``row`` has its columns)."""
    if row.event is not None:
        event: dict[str, Any] = orjson.loads(row.event)
        return event
    event = {
        "resourceType": "AuditEvent", "id": str(row.seq),
        "type": {"system": REST[0], "code": REST[1], "display": REST[2]},
        "subtype": [{"system": _INTERACTION, "code": row.action, "display": row.action}],
        "action": row.verb, "recorded": instant(row.recorded), "outcome": row.outcome,
        "agent": [agent_of(row.agent, row.who, row.client, row.roles, row.address)],
        "source": _source(),
    }
    if row.detail:
        event["outcomeDesc"] = row.detail
    if row.purpose == BREAK_THE_GLASS:
        event["purposeOfEvent"] = _purpose()
    entities = [entity(query=row.query)] if row.query else []
    if row.entity:
        entities += [entity(reference) for reference in row.entity.split(" ")]
    if entities:
        event["entity"] = entities
    return event
