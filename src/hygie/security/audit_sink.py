"""What the audit trail says about each FHIR interaction and each sign-in.

``FhirAudit`` is the store's ``AuditSink`` (``hygie.store.access``): for every
interaction it records the facts of one AuditEvent (https://hl7.org/fhir/R4/auditevent.html) of type
``rest`` with the interaction as subtype (http://hl7.org/fhir/R4/codesystem-restful-interaction.html),
the action (C R U D E), the outcome (0 success, 4 refused or bad request, 8 server
failure), the caller and their address, the resources touched, and the search query
when there is one. It also finds the patients whose records were touched, which feeds
the "who looked at my record" page, and flags accesses that needed an emergency grant.
The trail keeps those facts as columns and makes the AuditEvent JSON from them when it
is read (``hygie.security.audit.event_of``).

Writes wait until their event is committed; reads and searches do not.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import orjson

from hygie.security import audit
from hygie.security.audit import CLIENT_ADDRESS, AuditRecord, AuditWriter, Facts
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
    for op in path:
        if op[:1] == "$":
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


_ANONYMOUS = audit.agent_facts(None)
#: Interactions whose query is part of what was accessed.
_QUERIED = ("search", "history", "operation")
#: Interactions that name the resource they wrote in their Location header.
_LOCATED = frozenset({"create", "update", "patch"})
#: First characters of a path segment that is not a resource type or id.
_NOT_A_TYPE = ("$", "_")
#: Interactions whose response body, if any, is the one resource they are about.
_INSTANCE = frozenset({"read", "vread", "create", "update", "patch", "delete"})


class FhirAudit:
    """The store's audit sink: one AuditEvent per interaction (see the module docstring).

    The request only captures its facts, as a tuple of plain values (``Facts``): the
    response body as bytes, the Location, the failure, the caller. Finding the patients
    and resources in the body, the emergency check and the columns are done by
    ``finish`` when the record is appended with its batch (or in the write's
    transaction, for a write). A queued access thus keeps none of its request's objects
    alive, which would otherwise survive into the garbage collector's older generations
    by the thousand.
    """

    def __init__(self, writer: AuditWriter,
                 emergency: Callable[[Any, set[str]], bool] | None = None) -> None:
        self.writer = writer
        self.emergency = emergency
        #: (principal, its agent_facts) by the principal's identity (tokens are cached,
        #: so a caller's principal is one object); the principal is kept, so its id
        #: cannot be reused while it is here.
        self._agents: dict[int, tuple[Any, tuple[str, str, str, str]]] = {}
        self._finish = self.finish

    def record(self, request: FhirRequest, response: FhirResponse | None,
               error: FhirError | None) -> None:
        try:
            self._record(request, response, error)
        except Exception as exc:  # an unexpected body must not turn an answer into a 500
            log.error("audit event not built for a %s interaction: %s",
                      interaction_of(request)[0], type(exc).__name__)

    def _record(self, request: FhirRequest, response: FhirResponse | None,
                error: FhirError | None) -> None:
        code, verb = interaction_of(request)
        if code == "capabilities":
            return  # the public CapabilityStatement is nobody's data
        body = location = detail = None
        if error is None:
            outcome = audit.SUCCESS
        else:
            outcome = audit.SERIOUS_FAILURE if error.status >= 500 else audit.MINOR_FAILURE
            detail = f"{error.status} " + "; ".join(i.diagnostics for i in error.issues)[:500]
        if response is not None:
            body = response.raw
            if body is None and response.resource is not None:
                body = orjson.dumps(response.resource)  # a searchset's entries as stored
            if code in _LOCATED:
                location = response.headers.get("Location")
        query = urlencode(request.query) if request.query and code.startswith(_QUERIED) \
            else None
        facts = (self._finish, time.time_ns() // 1000, code, verb, outcome, request.principal,
                 CLIENT_ADDRESS.get(), request.path, query, body, location, detail)
        if error is None and request.method in _WRITES:
            # inside the write's transaction: the record commits or rolls back with it
            # (and the audit writer could not get the write lock meanwhile anyway)
            conn = current_connection(self.writer.chain.engine)
            if conn is not None:
                self.writer.chain.append_within(conn, [facts])
                return
            # durable before the answer goes
            self.writer.submit(AuditRecord(None, facts=facts), wait=True)
            return
        self.writer.submit(facts)

    def finish(self, facts: Facts) -> tuple[tuple[Any, ...], frozenset[str]]:
        """The ``audit.FACTS`` columns of one interaction, from what its request captured."""
        (_finish, recorded, code, verb, outcome, principal, address, path, query, body,
         location, detail) = facts
        references: dict[str, None] = {}  # in order, each once
        patients: set[str] = set()
        if len(path) > 1 and path[0][:1] not in _NOT_A_TYPE and path[1][:1] not in _NOT_A_TYPE:
            references[f"{path[0]}/{path[1]}"] = None
            if path[0] == "Patient":
                patients.add(path[1])
        if body:
            patients.update(map(bytes.decode, _PATIENT_REFERENCE.findall(body)))
            # a Bundle's entries: the body of an instance interaction is one resource, of
            # the URL's type (searches, histories, batches and operations answer Bundles)
            if code not in _INSTANCE or path[0] == "Bundle":
                for pattern in (_FULL_URL, _LOCATION):
                    for res_type, res_id in pattern.findall(body):
                        if len(references) < MAX_ENTITIES:
                            references[f"{res_type.decode()}/{res_id.decode()}"] = None
                        if res_type == b"Patient":
                            patients.add(res_id.decode())
        if location:
            written = "/".join(location.split("/_history")[0].split("/")[-2:])
            if len(references) < MAX_ENTITIES:
                references[written] = None
            if written.startswith("Patient/"):
                patients.add(written.removeprefix("Patient/"))
        emergency = bool(patients and self.emergency and principal is not None
                         and self.emergency(principal, patients))
        return audit.interaction_facts(recorded, code, verb, outcome, self._agent(principal),
                                       address, references, query, patients, detail,
                                       emergency)

    def _agent(self, principal: Any) -> tuple[str, str, str, str]:
        if principal is None:
            return _ANONYMOUS
        known = self._agents.get(id(principal))
        if known is not None and known[0] is principal:
            return known[1]
        agent = audit.agent_facts(principal)
        if len(self._agents) > 10_000:
            self._agents.clear()
        self._agents[id(principal)] = (principal, agent)
        return agent


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
