"""Principal.require: the refusal is a FHIR forbidden outcome naming the missing scope."""

from __future__ import annotations

import pytest

from hygie.security.model import InsufficientScope, Kind, Principal
from hygie.security.scopes import ScopeSet
from hygie.store.outcomes import FhirError


def principal(kind: Kind, scopes: str) -> Principal:
    return Principal(subject="s", kind=kind, scopes=ScopeSet.parse(scopes))


def test_require_passes_when_a_scope_grants() -> None:
    principal(Kind.SERVICE, "system/Patient.rs").require("Patient", "r")
    principal(Kind.PRACTITIONER, "user/*.cruds").require("Encounter", "d")


@pytest.mark.parametrize(
    ("kind", "scopes", "res_type", "interaction", "needed"),
    [
        (Kind.SERVICE, "system/Patient.rs", "Patient", "u", "system/Patient.u"),
        (Kind.PRACTITIONER, "user/Patient.rs", "Observation", "r", "user/Observation.r"),
        (Kind.ADMIN, "", "AuditEvent", "s", "user/AuditEvent.s"),
        (Kind.PATIENT, "patient/Observation.rs", "Observation", "c", "patient/Observation.c"),
    ],
)
def test_require_names_the_missing_scope(kind: Kind, scopes: str, res_type: str,
                                          interaction: str, needed: str) -> None:
    with pytest.raises(InsufficientScope) as info:
        principal(kind, scopes).require(res_type, interaction)
    error = info.value
    assert isinstance(error, FhirError)
    assert error.status == 403
    assert error.scope == needed
    (issue,) = error.outcome["issue"]
    assert issue["code"] == "forbidden" and needed in issue["diagnostics"]


def test_require_scope_for_service_scopes() -> None:
    p = principal(Kind.SERVICE, "system/*.rs tracing:admin")
    p.require_scope("tracing:admin")
    with pytest.raises(InsufficientScope, match="mobilization:manage") as info:
        p.require_scope("mobilization:manage")
    assert info.value.status == 403


def test_require_refuses_an_unknown_interaction() -> None:
    with pytest.raises(ValueError):
        principal(Kind.SERVICE, "system/*.cruds").require("Patient", "read")
