"""OperationOutcome builders, the one store exception, and the status table.

Deep code raises ``FhirError(outcome)`` built by one of the named builders below;
only the HTTP edge turns it into a status code, with ``status_for``. That keeps the
meaning (not found, gone, conflict...) separate from its HTTP spelling, and lets
the Python API raise exactly what the REST API answers.

Exception tree::

    FhirError                    any failure the store reports as an OperationOutcome
     +-- ResourceNotFound        the type/id was never written (404)
     +-- ResourceGone            it was deleted (410)
     +-- VersionConflict         If-Match or a concurrent write lost the race (409/412)
     +-- InvalidResource         validation or bad input (400/422)

See https://hl7.org/fhir/R4/operationoutcome.html and http.html#2.21.0.2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: HTTP status for each OperationOutcome issue code we raise.
_STATUS_BY_CODE: dict[str, int] = {
    "not-found": 404,
    "deleted": 410,
    "conflict": 409,
    "duplicate": 409,
    "multiple-matches": 412,
    "processing": 422,
    "invalid": 400,
    "structure": 400,
    "required": 400,
    "value": 400,
    "invariant": 400,
    "code-invalid": 400,
    "not-supported": 400,
    "too-costly": 413,
    "too-long": 413,
    "security": 403,
    "forbidden": 403,
    "login": 401,
    "unknown": 401,
    "expired": 401,
    "throttled": 429,
    "exception": 500,
    "transient": 503,
    "timeout": 504,
    "informational": 200,
}


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue: severity, code, human text and FHIRPath location."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = [self.expression]
        return out


def outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """Build an OperationOutcome resource from issues."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def ok(diagnostics: str = "All OK") -> dict[str, Any]:
    return outcome([Issue("informational", diagnostics, severity="information")])


class FhirError(Exception):
    """An error the store reports as an OperationOutcome; ``status`` is its HTTP code."""

    def __init__(self, issues: Iterable[Issue] | Issue, status: int | None = None) -> None:
        self.issues: tuple[Issue, ...] = (issues,) if isinstance(issues, Issue) else tuple(issues)
        if not self.issues:
            self.issues = (Issue("exception", "unspecified error"),)
        self._status = status
        super().__init__("; ".join(self._describe(i) for i in self.issues))

    @staticmethod
    def _describe(issue: Issue) -> str:
        return (
            f"{issue.diagnostics} (at {issue.expression})"
            if issue.expression
            else issue.diagnostics
        )

    @property
    def status(self) -> int:
        return self._status or status_for(self.issues)

    @property
    def outcome(self) -> dict[str, Any]:
        return outcome(self.issues)


class ResourceNotFound(FhirError):
    """Raised when a type/id (or a version of it) was never written."""


class ResourceGone(FhirError):
    """Raised when reading a resource whose current version is a deletion."""


class VersionConflict(FhirError):
    """Raised when If-Match names a stale version, or a concurrent write won."""


class InvalidResource(FhirError):
    """Raised when a body, an id or a parameter breaks the R4 rules; names where."""


def status_for(issues: Iterable[Issue]) -> int:
    """Pick the HTTP status for issues: the first error issue decides."""
    for issue in issues:
        if issue.severity in ("error", "fatal"):
            return _STATUS_BY_CODE.get(issue.code, 400)
    return 200


# --- named builders ----------------------------------------------------------


def not_found(res_type: str, res_id: str, version: str | None = None) -> ResourceNotFound:
    what = f"{res_type}/{res_id}" + (f"/_history/{version}" if version else "")
    return ResourceNotFound(Issue("not-found", f"{what} is not known"))


def gone(res_type: str, res_id: str) -> ResourceGone:
    return ResourceGone(Issue("deleted", f"{res_type}/{res_id} has been deleted"))


def conflict(diagnostics: str) -> VersionConflict:
    return VersionConflict(Issue("conflict", diagnostics))


def precondition_failed(diagnostics: str) -> VersionConflict:
    return VersionConflict(Issue("conflict", diagnostics), status=412)


def multiple_matches(diagnostics: str) -> FhirError:
    return FhirError(Issue("multiple-matches", diagnostics), status=412)


def invalid(
    diagnostics: str, expression: str | None = None, code: str = "invalid"
) -> InvalidResource:
    return InvalidResource(Issue(code, diagnostics, expression=expression))


def unprocessable(issues: Iterable[Issue]) -> InvalidResource:
    """Validation failures of a well-formed body: 422 as http.html#create says."""
    return InvalidResource(issues, status=422)


def not_supported(diagnostics: str, expression: str | None = None) -> FhirError:
    return FhirError(Issue("not-supported", diagnostics, expression=expression))


def too_costly(diagnostics: str) -> FhirError:
    return FhirError(Issue("too-costly", diagnostics))


def forbidden(diagnostics: str) -> FhirError:
    return FhirError(Issue("forbidden", diagnostics))


def unauthorized(diagnostics: str) -> FhirError:
    return FhirError(Issue("login", diagnostics), status=401)
