"""The platform's error bodies: OperationOutcome on FHIR paths, else RFC 9457.

Authentication fails before any route runs, so the middleware cannot rely on the
application's exception handlers; it builds its answers here, as every service's
API does for its own errors. FHIR clients get an
OperationOutcome (https://hl7.org/fhir/R4/operationoutcome.html), everything else an
``application/problem+json`` body (RFC 9457 §3: type, title, status, detail).
"""

from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.responses import Response

from hygie.security.model import InsufficientScope
from hygie.store.outcomes import Issue, outcome

#: Path prefix of the FHIR REST API.
FHIR_PREFIX = "/fhir"


def is_fhir_path(path: str) -> bool:
    return path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")


def problem_response(status: int, detail: str | None = None,
                     headers: dict[str, str] | None = None, title: str | None = None,
                     type_: str = "about:blank") -> Response:
    """An RFC 9457 problem+json response, the one every non-FHIR route answers errors with.

    ``type_`` names the kind of problem, a URN per service and kind
    (``urn:hygie:problem:scheduling:slot-unavailable``) that clients can branch on;
    ``about:blank`` where the status says it all, and then the title defaults to the
    status phrase (RFC 9457 §4.2.1).
    """
    body: dict[str, object] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/problem+json")


def scope_problem(exc: InsufficientScope, type_: str = "about:blank") -> Response:
    """403 for a caller whose token lacks a scope, with the challenge that names it
    (RFC 6750 §3.1), so that a client knows which scope to ask for."""
    challenge = f'Bearer error="insufficient_scope", scope="{auth_param(exc.scope)}"'
    return problem_response(403, str(exc), {"WWW-Authenticate": challenge}, title="Forbidden",
                            type_=type_)


def outcome_response(status: int, code: str, detail: str,
                     headers: dict[str, str] | None = None) -> Response:
    """A FHIR OperationOutcome response with one error issue."""
    body = outcome([Issue(code, detail)])
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/fhir+json")


def error_response(path: str, status: int, code: str, detail: str,
                   headers: dict[str, str] | None = None) -> Response:
    """OperationOutcome for FHIR paths, problem+json elsewhere."""
    if is_fhir_path(path):
        return outcome_response(status, code, detail, headers)
    return problem_response(status, detail, headers)


def auth_param(value: str) -> str:
    """A value safe inside a quoted ``WWW-Authenticate`` parameter (RFC 6750 §3)."""
    return "".join(ch for ch in value if 0x20 <= ord(ch) < 0x7F and ch not in '"\\')
