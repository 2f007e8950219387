"""SMART v2 scope grammar, v1 equivalence, and the access question."""

from __future__ import annotations

import pytest

from hygie.security.scopes import (
    R4_RESOURCE_TYPES,
    ResourceScope,
    ScopeError,
    ScopeSet,
    parse_scope,
)


@pytest.mark.parametrize(
    ("word", "context", "res_type", "perms"),
    [
        ("patient/Observation.rs", "patient", "Observation", "rs"),
        ("user/*.cruds", "user", "*", "cruds"),
        ("system/Patient.c", "system", "Patient", "c"),
        ("system/Patient.d", "system", "Patient", "d"),
        ("user/Encounter.cud", "user", "Encounter", "cud"),
        ("patient/MedicationRequest.crs", "patient", "MedicationRequest", "crs"),
    ],
)
def test_v2_scopes_parse(word: str, context: str, res_type: str, perms: str) -> None:
    scope = parse_scope(word)
    assert scope == ResourceScope(context, res_type, perms)
    assert str(scope) == word


@pytest.mark.parametrize(
    ("v1", "v2"),
    [
        ("patient/Observation.read", "patient/Observation.rs"),
        ("user/Patient.write", "user/Patient.cud"),
        ("system/*.*", "system/*.cruds"),
        ("user/*.read", "user/*.rs"),
    ],
)
def test_v1_scopes_map_to_v2(v1: str, v2: str) -> None:
    assert parse_scope(v1) == parse_scope(v2)
    assert str(parse_scope(v1)) == v2


def test_query_restriction_is_parsed_and_kept() -> None:
    word = ("patient/Observation.rs?category="
            "http://terminology.hl7.org/CodeSystem/observation-category|laboratory")
    scope = parse_scope(word)
    assert isinstance(scope, ResourceScope)
    assert scope.restrictions == (
        ("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),)
    assert str(scope) == word
    scopes = ScopeSet.parse(word)
    assert scopes.allows("Observation", "r")
    assert scopes.restrictions("Observation", "s") == (scope.restrictions,)


def test_unrestricted_grant_makes_restrictions_moot() -> None:
    scopes = ScopeSet.parse("patient/Observation.rs?category=vital-signs patient/*.r")
    assert scopes.restrictions("Observation", "r") is None
    assert scopes.restrictions("Observation", "s") == ((("category", "vital-signs"),),)
    assert scopes.restrictions("Observation", "c") == ()


@pytest.mark.parametrize("word", ["openid", "fhirUser", "launch", "launch/patient",
                                  "offline_access", "online_access", "profile",
                                  "mobilization:manage", "tracing:health-authority"])
def test_non_resource_scopes_are_recognised(word: str) -> None:
    assert parse_scope(word) == word
    assert ScopeSet.parse(word).has(word)


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ("patient/Observation", "missing '.permissions'"),
        ("doctor/Observation.rs", "unknown context 'doctor'"),
        ("patient/observation.rs", "'observation' is not a resource type name"),
        ("patient/Observaton.rs", "'Observaton' is not a FHIR R4 resource type"),
        ("patient/Observation.sr", "in the order c r u d s"),
        ("patient/Observation.rr", "in the order c r u d s"),
        ("patient/Observation.rsx", "unknown permission 'x'"),
        ("patient/Observation.", "empty permissions"),
        ("patient/Observation.read?code=1", "needs v2 permissions"),
        ("patient/Observation.rs?", "is not param=value"),
        ("patient/Observation.rs?category", "is not param=value"),
        ("launch/location", "unknown launch context"),
        ("Observation.rs", "not a SMART scope"),
        ("admin", "not a SMART scope"),
        ("", "empty scope"),
    ],
)
def test_invalid_scopes_get_a_precise_error(word: str, reason: str) -> None:
    with pytest.raises(ScopeError) as info:
        parse_scope(word)
    assert reason in str(info.value)
    assert info.value.scope == word


def test_invalid_word_in_a_set_is_named() -> None:
    with pytest.raises(ScopeError, match=r"'patient/Foo\.rs'"):
        ScopeSet.parse("openid patient/Foo.rs user/*.rs")


@pytest.mark.parametrize(
    ("scopes", "res_type", "interaction", "allowed"),
    [
        ("patient/Observation.rs", "Observation", "r", True),
        ("patient/Observation.rs", "Observation", "s", True),
        ("patient/Observation.rs", "Observation", "c", False),
        ("patient/Observation.rs", "Patient", "r", False),
        ("user/*.cruds", "Encounter", "d", True),
        ("user/*.rs", "Encounter", "u", False),
        ("system/Patient.read", "Patient", "s", True),
        ("system/Patient.write", "Patient", "r", False),
        ("system/Patient.write", "Patient", "u", True),
        ("openid fhirUser", "Patient", "r", False),
        ("", "Patient", "r", False),
    ],
)
def test_allows(scopes: str, res_type: str, interaction: str, allowed: bool) -> None:
    assert ScopeSet.parse(scopes).allows(res_type, interaction) is allowed


def test_allows_refuses_an_unknown_interaction() -> None:
    with pytest.raises(ValueError, match="c, r, u, d, s"):
        ScopeSet.parse("user/*.cruds").allows("Patient", "x")
    with pytest.raises(ValueError):
        ScopeSet.parse("user/*.cruds").allows("Patient", "rs")


@pytest.mark.parametrize(
    ("requested", "allowed", "missing"),
    [
        ("system/Patient.rs", "system/*.cruds", []),
        ("system/Patient.r system/Observation.s", "system/*.rs", []),
        ("system/Patient.rs", "system/Patient.read", []),
        ("system/Patient.c", "system/Patient.rs", ["system/Patient.c"]),
        ("user/Patient.rs", "system/*.cruds", ["user/Patient.rs"]),
        ("system/Observation.rs?category=laboratory", "system/Observation.rs", []),
        ("system/Observation.rs", "system/Observation.rs?category=laboratory",
         ["system/Observation.rs"]),
        ("openid tracing:admin", "openid system/*.rs", ["tracing:admin"]),
    ],
)
def test_requested_scopes_within_allowed(requested: str, allowed: str,
                                         missing: list[str]) -> None:
    req, allow = ScopeSet.parse(requested), ScopeSet.parse(allowed)
    assert req.missing_from(allow) == missing
    assert req.issubset(allow) is (not missing)


def test_scope_set_prints_back_in_v2_and_compares() -> None:
    scopes = ScopeSet.parse("patient/*.read openid patient/*.read")
    assert str(scopes) == "patient/*.rs openid"
    assert len(scopes) == 2
    assert scopes == ScopeSet.parse("openid patient/*.rs")
    assert scopes != ScopeSet.parse("openid patient/*.r")
    assert not ScopeSet.parse("")


def test_r4_resource_types_are_complete() -> None:
    assert len(R4_RESOURCE_TYPES) == 146
    assert {"Patient", "Observation", "Binary", "Parameters", "AuditEvent"} <= R4_RESOURCE_TYPES
    assert not {"Resource", "DomainResource"} & R4_RESOURCE_TYPES
