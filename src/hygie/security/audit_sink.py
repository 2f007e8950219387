"""What the audit trail says about each FHIR interaction and each sign-in.

``FhirAudit`` is the store's ``AuditSink`` (``hygie.store.access``): for every
interaction it builds one AuditEvent (https://hl7.org/fhir/R4/auditevent.html) of type
``rest`` with the interaction as subtype (http://hl7.org/fhir/R4/codesystem-restful-interaction.html),
the action (C R U D E), the outcome (0 success, 4 refused or bad request, 8 server
failure), the caller and their address, the resources touched, and the search query
when there is one. It also finds the patients whose records were touched, which feeds
the "who looked at my record" page, and flags accesses that needed an emergency grant.

Writes wait until their event is committed; reads and searches do not.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import orjson

from hygie.security import audit
from hygie.security.audit import CLIENT_ADDRESS, AuditRecord, AuditWriter
from hygie.store.interactions import FhirRequest, FhirResponse
from hygie.store.outcomes import FhirError
from hygie.store.sql_repository import current_connection

#: Most resources named one by one in the event of a search or a bundle.
MAX_ENTITIES = 200

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}

log = logging.getLogger("hygie.security.audit")


def interaction_of(req: FhirRequest) -> tuple[str, str]:
    """(restful-interaction code, AuditEvent.action) for a request."""
    path, method = req.path, req.method
    n = len(path)
    if n == 0:
        return ("search-system", "R") if method == "GET" else ("transaction", "E")
    if path[0] == "metadata":
        return "capabilities", "R"
    if any(p.startswith("$") for p in path):
        op = next(p for p in path if p.startswith("$"))
        return f"operation {op}", "E" if op in ("$export", "$import") else "R"
    if path[0] == "_history":
        return "history-system", "R"
    if n == 1:
        return {"GET": ("search-type", "R"), "POST": ("create", "C"),
                "PUT": ("update", "U"), "DELETE": ("delete", "D")}.get(method, (method, "E"))
    if path[1] == "_search":
        return "search-type", "R"
    if path[1] == "_history":
        return "history-type", "R"
    if n == 2:
        return {"GET": ("read", "R"), "HEAD": ("read", "R"), "PUT": ("update", "U"),
                "PATCH": ("patch", "U"), "DELETE": ("delete", "D")}.get(method, (method, "E"))
    if n == 3:
        return "history-instance", "R"
    return "vread", "R"


#: ``"reference": ".../Patient/<id>"`` anywhere in a body: the patients it is about.
_PATIENT_REFERENCE = re.compile(
    rb'"reference"\s*:\s*"(?:[^"]*/)?Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^"]*)?"')
#: The resources of a Bundle, by their full URL (``.../Type/id``).
_FULL_URL = re.compile(rb'"fullUrl"\s*:\s*"[^"]*?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})"')
#: Where a Bundle entry's response says a write went.
_LOCATION = re.compile(rb'"location"\s*:\s*"(?:[^"]*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})')


_REST_TYPE = orjson.Fragment(orjson.dumps({"system": audit.REST[0], "code": audit.REST[1],
                                           "display": audit.REST[2]}))
_SOURCE = orjson.Fragment(orjson.dumps(
    audit.build_event(type_code=audit.REST, subtype=None, action="R", outcome="0",
                      description=None, principal=None, address="")["source"]))
_EMERGENCY = orjson.Fragment(orjson.dumps(
    audit.build_event(type_code=audit.REST, subtype=None, action="R", outcome="0",
                      description=None, principal=None, address="",
                      emergency=True)["purposeOfEvent"]))


@functools.lru_cache(maxsize=256)
def _subtype(code: str) -> orjson.Fragment:
    system, value, display = audit.interaction_subtype(code)
    return orjson.Fragment(orjson.dumps([{"system": system, "code": value,
                                          "display": display}]))


def patients_in(resource: dict[str, Any]) -> set[str]:
    """Ids of the patients a resource is about (itself, or the patients it references)."""
    if resource.get("resourceType") == "Patient" and isinstance(resource.get("id"), str):
        return {resource["id"]}
    return {m.decode() for m in _PATIENT_REFERENCE.findall(orjson.dumps(resource))}


def _body_bytes(response: FhirResponse) -> bytes:
    if response.raw is not None:
        return response.raw
    if response.resource is None:
        return b""
    return orjson.dumps(response.resource)  # a searchset's entries are stored bytes as is


class FhirAudit:
    """The store's audit sink: one AuditEvent per interaction (see the module docstring)."""

    def __init__(self, writer: AuditWriter,
                 emergency: Callable[[Any, set[str]], bool] | None = None) -> None:
        self.writer = writer
        self.emergency = emergency
        self._agents: dict[tuple[Any, str | None], orjson.Fragment] = {}

    def record(self, request: FhirRequest, response: FhirResponse | None,
               error: FhirError | None) -> None:
        try:
            self._record(request, response, error)
        except Exception as exc:  # an unexpected body must not turn an answer into a 500
            log.error("audit event not built for a %s interaction: %s",
                      interaction_of(request)[0], type(exc).__name__)

    def _record(self, request: FhirRequest, response: FhirResponse | None,
                error: FhirError | None) -> None:
        code, action = interaction_of(request)
        if code == "capabilities":
            return  # the public CapabilityStatement is nobody's data
        if error is None:
            outcome = audit.SUCCESS
        else:
            outcome = audit.SERIOUS_FAILURE if error.status >= 500 else audit.MINOR_FAILURE
        recorded, address = time.time_ns() // 1000, CLIENT_ADDRESS.get()
        principal = request.principal

        def build() -> tuple[dict[str, Any], frozenset[str]]:
            return self._event(request, response, error, code, action, outcome, recorded,
                               address)

        record = AuditRecord(None, action=code, outcome=outcome,
                             agent=getattr(principal, "subject", None), build=build)
        if error is None and request.method in _WRITES:
            # inside the write's transaction: the record commits or rolls back with it
            # (and the audit writer could not get the write lock meanwhile anyway)
            conn = current_connection(self.writer.chain.engine)
            if conn is not None:
                self.writer.chain.append_within(conn, [record])
                return
            self.writer.submit(record, wait=True)  # durable before the answer goes
            return
        self.writer.submit(record)

    def _event(self, request: FhirRequest, response: FhirResponse | None,
               error: FhirError | None, code: str, action: str, outcome: str, recorded: int,
               address: str | None) -> tuple[dict[str, Any], frozenset[str]]:
        """The AuditEvent of one interaction, built in the writer thread."""
        path = request.path
        entities: list[dict[str, Any]] = []
        seen: set[str] = set()
        patients: set[str] = set()

        def name(reference: str) -> None:
            if reference not in seen and len(entities) < MAX_ENTITIES:
                seen.add(reference)
                entities.append(audit.entity(reference))

        if len(path) > 1 and not path[0].startswith(("$", "_")) \
                and not path[1].startswith(("$", "_")):
            name(f"{path[0]}/{path[1]}")
        if path and path[0] == "Patient" and len(path) > 1 and not path[1].startswith("_"):
            patients.add(path[1])
        if request.query and code.startswith(("search", "history", "operation")):
            entities.append(audit.entity(query=urlencode(request.query)))
        if response is not None:
            body = _body_bytes(response)
            patients |= {m.decode() for m in _PATIENT_REFERENCE.findall(body)}
            for pattern in (_FULL_URL, _LOCATION):
                for res_type, res_id in pattern.findall(body):
                    reference = f"{res_type.decode()}/{res_id.decode()}"
                    name(reference)
                    if res_type == b"Patient":
                        patients.add(res_id.decode())
            location = response.headers.get("Location")
            if location and code in ("create", "update", "patch"):
                written = "/".join(location.split("/_history")[0].split("/")[-2:])
                name(written)
                if written.startswith("Patient/"):
                    patients.add(written.removeprefix("Patient/"))
        description = None
        if error is not None:
            description = f"{error.status} " + \
                "; ".join(i.diagnostics for i in error.issues)[:500]
        principal = request.principal
        emergency = bool(self.emergency and principal is not None and patients
                         and self.emergency(principal, patients))
        # the same AuditEvent as audit.build_event makes, from pieces serialised once
        event: dict[str, Any] = {
            "resourceType": "AuditEvent", "type": _REST_TYPE, "subtype": _subtype(code),
            "action": action, "recorded": audit.instant(recorded), "outcome": outcome,
            "agent": self._agent(principal, address), "source": _SOURCE,
        }
        if description:
            event["outcomeDesc"] = description[:1000]
        if emergency:
            event["purposeOfEvent"] = _EMERGENCY
        if entities:
            event["entity"] = entities
        return event, frozenset(patients)

    def _agent(self, principal: Any, address: str | None) -> orjson.Fragment:
        key = (principal, address)
        try:
            return self._agents[key]
        except (KeyError, TypeError):
            pass
        fragment = orjson.Fragment(orjson.dumps([audit.agent_json(principal, address)]))
        if len(self._agents) > 10_000:
            self._agents.clear()
        with contextlib.suppress(TypeError):  # an unhashable principal is serialised each time
            self._agents[key] = fragment
        return fragment


def record_login(writer: AuditWriter, *, username: str, outcome: str, description: str,
                 principal: Any = None, subtype: str = "login") -> None:
    """Record a sign-in, a failed one, or a sign-out; waits until it is committed."""
    event = audit.build_event(type_code=audit.LOGIN, subtype=audit.login_subtype(subtype),
                              action="E", outcome=outcome, description=description,
                              principal=principal)
    if principal is None:
        event["agent"][0]["who"] = {"identifier": {"system": "urn:hygie:account",
                                                   "value": username[:128]}}
    writer.submit(AuditRecord(event, frozenset(), subtype, outcome, username[:128]), wait=True)


def record_security_event(writer: AuditWriter, *, what: str, outcome: str, description: str,
                          principal: Any = None, patients: Iterable[str] = (),
                          emergency: bool = False, wait: bool = True,
                          entities: Iterable[dict[str, Any]] = ()) -> None:
    """Record an event that is not a FHIR interaction (emergency access, denial at the
    door, export, key rotation...)."""
    event = audit.build_event(type_code=audit.SECURITY_ALERT if what != "export"
                              else audit.EXPORT, subtype=None, action="E", outcome=outcome,
                              description=description, principal=principal,
                              entities=entities, emergency=emergency)
    writer.submit(AuditRecord(event, frozenset(patients), what, outcome,
                              getattr(principal, "subject", None)), wait=wait)
