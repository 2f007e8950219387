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

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import orjson

from hygie.security import audit
from hygie.security.audit import AuditRecord, AuditWriter
from hygie.store.interactions import FhirRequest, FhirResponse
from hygie.store.outcomes import FhirError
from hygie.store.sql_repository import in_transaction

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


def _walk_patients(value: Any, out: set[str], depth: int = 0) -> None:
    if depth > 12:
        return
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            _, _, tail = ref.rpartition("Patient/")
            if tail and ("/" not in tail) and (ref.startswith("Patient/") or "/Patient/" in ref):
                out.add(tail)
        for v in value.values():
            if isinstance(v, dict | list):
                _walk_patients(v, out, depth + 1)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict | list):
                _walk_patients(v, out, depth + 1)


def patients_in(resource: dict[str, Any]) -> set[str]:
    """Ids of the patients a resource is about (itself, or the patients it references)."""
    out: set[str] = set()
    if resource.get("resourceType") == "Patient" and isinstance(resource.get("id"), str):
        out.add(resource["id"])
        return out
    _walk_patients(resource, out)
    return out


def _resources(response: FhirResponse) -> Iterable[dict[str, Any]]:
    """The resources a response carries (a Bundle's entries one by one)."""
    body: Any = response.resource
    if body is None and response.raw:
        try:
            body = orjson.loads(response.raw)
        except orjson.JSONDecodeError:
            return
    if not isinstance(body, dict):
        return
    if body.get("resourceType") != "Bundle":
        yield body
        return
    for entry in body.get("entry") or []:
        inner = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(inner, orjson.Fragment):  # stored bytes, passed through unparsed
            inner = orjson.loads(orjson.dumps(inner))
        if isinstance(inner, dict):
            yield inner
        elif isinstance(entry, dict) and isinstance(entry.get("response"), dict):
            location = entry["response"].get("location")
            if isinstance(location, str):
                yield {"resourceType": "Reference", "location": location}


class FhirAudit:
    """The store's audit sink: one AuditEvent per interaction (see the module docstring)."""

    def __init__(self, writer: AuditWriter,
                 emergency: Callable[[Any, set[str]], bool] | None = None) -> None:
        self.writer = writer
        self.emergency = emergency

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
        entities: list[dict[str, Any]] = []
        patients: set[str] = set()
        if request.path and not request.path[0].startswith(("$", "_")) and len(request.path) > 1 \
                and not request.path[1].startswith(("$", "_")):
            entities.append(audit.entity(f"{request.path[0]}/{request.path[1]}"))
            if request.path[0] == "Patient":
                patients.add(request.path[1])
        elif request.path and request.path[0] == "Patient" and len(request.path) > 1:
            patients.add(request.path[1])
        if request.query and code.startswith(("search", "history", "operation")):
            entities.append(audit.entity(query=urlencode(request.query)))
        if response is not None:
            seen = {e.get("what", {}).get("reference") for e in entities}
            for resource in _resources(response):
                patients |= patients_in(resource)
                if resource.get("resourceType") == "Reference":
                    ref = str(resource["location"]).split("/_history")[0]
                    ref = "/".join(ref.split("/")[-2:])
                elif resource.get("resourceType") in (None, "OperationOutcome", "Bundle"):
                    continue
                else:
                    ref = f"{resource.get('resourceType')}/{resource.get('id')}"
                if ref not in seen and len(entities) < MAX_ENTITIES:
                    seen.add(ref)
                    entities.append(audit.entity(ref))
            if response.headers.get("Location") and code in ("create", "update", "patch"):
                ref = "/".join(response.headers["Location"].split("/_history")[0]
                               .split("/")[-2:])
                if ref not in seen:
                    entities.append(audit.entity(ref))
        if error is None:
            outcome, description = audit.SUCCESS, None
        else:
            outcome = audit.SERIOUS_FAILURE if error.status >= 500 else audit.MINOR_FAILURE
            description = f"{error.status} " + "; ".join(i.diagnostics for i in error.issues)[:500]
        principal = request.principal
        emergency = bool(self.emergency and principal is not None and patients
                         and self.emergency(principal, patients))
        event = audit.build_event(
            type_code=audit.REST, subtype=audit.interaction_subtype(code), action=action,
            outcome=outcome, description=description, principal=principal,
            entities=entities, emergency=emergency)
        record = AuditRecord(event, frozenset(patients), code, outcome,
                             getattr(principal, "subject", None))
        # a write waits for its record, unless it is an entry of a Bundle still inside its
        # transaction: that one holds the write lock the audit writer needs (the Bundle's
        # own record, written once it commits, waits instead)
        durable = error is None and request.method in _WRITES and not in_transaction()
        self.writer.submit(record, wait=durable)


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
