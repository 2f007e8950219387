"""Search parsing: typed values, modifiers, chains, control parameters, precise errors."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from hygie.store.outcomes import FhirError
from hygie.store.search.extract import date_range
from hygie.store.search.parse import (
    Chain,
    Condition,
    DateValue,
    Has,
    Include,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    SearchRequest,
    SortKey,
    StringValue,
    TokenValue,
    UriValue,
    parse_search,
    split_unescaped,
)


def parse(res_type: str | None, query: str, *, strict: bool = True, **kw: object) -> SearchRequest:
    return parse_search(res_type, parse_qsl(query, keep_blank_values=True), strict=strict,
                        **kw)  # type: ignore[arg-type]


def only(res_type: str | None, query: str, **kw: object) -> Condition:
    (item,) = parse(res_type, query, **kw).filters
    assert isinstance(item, Condition)
    return item


def error_of(res_type: str | None, query: str, strict: bool = True) -> FhirError:
    with pytest.raises(FhirError) as caught:
        parse(res_type, query, strict=strict)
    return caught.value


# --- values ----------------------------------------------------------------------------------


def test_string_values_are_normalised_unless_exact() -> None:
    assert only("Patient", "name=Élo%20%20DIE").values == (StringValue("elo die"),)
    exact = only("Patient", "family:exact=Lefèvre")
    assert exact.modifier == "exact" and exact.values == (StringValue("Lefèvre"),)
    assert only("Patient", "family:contains=fev").modifier == "contains"


def test_or_values_and_escaping() -> None:
    cond = only("Patient", r"family=a\,b,c")
    assert cond.values == (StringValue("a,b"), StringValue("c"))
    assert split_unescaped(r"a\|b|c", "|") == [r"a\|b", "c"]
    token = only("Observation", r"code=http://x.org/a\|b|c")
    assert token.values == (TokenValue("http://x.org/a|b", "c", any_system=False),)


def test_token_forms() -> None:
    values = only("Observation", "code=1234-5,http://loinc.org|8867-4,|local,http://loinc.org|")
    assert values.values == (
        TokenValue(None, "1234-5"),
        TokenValue("http://loinc.org", "8867-4", any_system=False),
        TokenValue(None, "local", any_system=False),
        TokenValue("http://loinc.org", None, any_system=False),
    )
    text = only("Observation", "code:text=Heart%20Rate")
    assert text.modifier == "text" and text.values == (StringValue("heart rate"),)
    assert only("Patient", "gender:not=male").modifier == "not"


def test_dates_with_prefixes() -> None:
    cond = only("Patient", "birthdate=ge1980-05")
    low, high = date_range("1980-05") or (0, 0)
    assert cond.values == (DateValue("ge", low, high),)
    for prefix in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"):
        (value,) = only("Observation", f"date={prefix}2021").values
        assert isinstance(value, DateValue) and value.prefix == prefix
    # An unencoded '+' of a zone offset arrives as a space.
    spaced = only("Observation", "date=2021-01-01T10:00:00+01:00").values[0]
    assert isinstance(spaced, DateValue)
    assert spaced.low == (date_range("2021-01-01T09:00:00Z") or (0, 0))[0]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("birthdate=xx1980", "unknown prefix"),
        ("birthdate=1980-13", "not a date"),
        ("birthdate=ge", "not a date"),
    ],
)
def test_bad_dates_name_the_parameter(query: str, message: str) -> None:
    err = error_of("Patient", query)
    assert err.status == 400
    assert err.issues[0].expression == "birthdate"
    assert message in err.issues[0].diagnostics


def test_numbers_carry_their_precision() -> None:
    (value,) = only("RiskAssessment", "probability=100").values
    assert value == NumberValue("eq", 100.0, 99.5, 100.5)
    (value,) = only("RiskAssessment", "probability=gt0.80").values
    assert value == NumberValue("gt", 0.8, 0.795, 0.805)
    (value,) = only("RiskAssessment", "probability=1e2").values
    assert isinstance(value, NumberValue) and (value.low, value.high) == (50.0, 150.0)
    assert error_of("RiskAssessment", "probability=abc").issues[0].expression == "probability"
    assert error_of("RiskAssessment", "probability=NaN").status == 400


def test_quantities() -> None:
    (value,) = only("Observation", "value-quantity=le5.4|http://unitsofmeasure.org|mg").values
    assert value == QuantityValue("le", 5.4, 5.35, 5.45, "http://unitsofmeasure.org", "mg")
    (value,) = only("Observation", "value-quantity=5.4||mg").values
    assert isinstance(value, QuantityValue) and (value.system, value.code) == (None, "mg")
    (value,) = only("Observation", "value-quantity=5").values
    assert isinstance(value, QuantityValue) and value.code is None
    assert error_of("Observation", "value-quantity=5|mg").issues[0].expression == "value-quantity"


def test_references() -> None:
    cond = only("Observation", "subject=Patient/123,456,Patient/7/_history/2")
    assert cond.values == (
        ReferenceValue("Patient", "123", None),
        ReferenceValue(None, "456", None),
        ReferenceValue("Patient", "7", None),
    )
    typed = only("Observation", "subject:Patient=123")
    assert typed.modifier == "type" and typed.target_types == ("Patient",)
    absolute = only("Observation", "subject=https://fhir.example.org/r4/Patient/9",
                    base_url="https://fhir.example.org/r4")
    assert absolute.values == (ReferenceValue("Patient", "9", None),)
    external = only("Observation", "subject=https://other.example/Patient/9")
    assert external.values == (ReferenceValue(None, None, "https://other.example/Patient/9"),)
    canonical = only("CarePlan", "instantiates-canonical=http://x.org/PlanDefinition/p|2")
    assert canonical.values == (ReferenceValue(None, None, "http://x.org/PlanDefinition/p"),)
    ident = only("Observation", "subject:identifier=urn:oid:1.2|42")
    assert ident.modifier == "identifier"
    assert ident.values == (TokenValue("urn:oid:1.2", "42", any_system=False),)
    assert "cannot refer" in error_of("Observation", "subject:Medication=1").issues[0].diagnostics


def test_uri_and_missing() -> None:
    below = only("ValueSet", "url:below=http://x.org/fhir")
    assert below.modifier == "below" and below.values == (UriValue("http://x.org/fhir"),)
    missing = only("Patient", "birthdate:missing=true")
    assert missing.missing is True and missing.values == ()
    assert only("Patient", "name:missing=false").missing is False
    assert "true or false" in error_of("Patient", "name:missing=yes").issues[0].diagnostics


# --- modifiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("res_type", "query", "code", "status"),
    [
        ("Patient", "name:below=x", "invalid", 400),
        ("Patient", "birthdate:exact=1980", "invalid", 400),
        ("Patient", "gender:nonsense=x", "invalid", 400),
        ("Observation", "code:in=http://x.org/vs", "not-supported", 400),
        ("Observation", "code:below=http://snomed.info/sct|123", "not-supported", 400),
        ("Patient", "identifier:of-type=a|b|c", "not-supported", 400),
    ],
)
def test_modifiers_are_checked(res_type: str, query: str, code: str, status: int) -> None:
    err = error_of(res_type, query)
    assert err.issues[0].code == code
    assert err.issues[0].expression == query.split("=")[0]
    assert err.status == status
    # A modifier is never ignored, even under lenient handling.
    assert error_of(res_type, query, strict=False).issues[0].code == code


# --- unknown and unsupported parameters ---------------------------------------------------------


def test_unknown_parameters_fail_when_strict_and_warn_when_lenient() -> None:
    err = error_of("Patient", "colour=blue")
    assert err.issues[0].code == "invalid" and err.issues[0].expression == "colour"
    lenient = parse("Patient", "colour=blue&gender=male", strict=False)
    assert len(lenient.filters) == 1
    assert len(lenient.warnings) == 1 and "colour" in lenient.warnings[0]
    assert lenient.query == (("gender", "male"),)


@pytest.mark.parametrize(
    "query",
    ["code-value-quantity=http://loinc.org|8480-6$gt100", "_text=fever", "_content=x",
     "_filter=name eq x", "_list=42", "_query=custom"],
)
def test_unsupported_parameters_say_so(query: str) -> None:
    res_type = "Observation"
    err = error_of(res_type, query)
    assert err.issues[0].code == "not-supported"
    lenient = parse(res_type, query, strict=False)
    assert lenient.filters == () and len(lenient.warnings) == 1


def test_special_near_is_not_supported() -> None:
    assert error_of("Location", "near=42|-83|10|km").issues[0].code == "not-supported"


def test_empty_values_are_ignored_with_a_warning() -> None:
    request = parse("Patient", "name=&gender=female")
    assert len(request.filters) == 1 and "no value" in request.warnings[0]
    assert "empty value" in error_of("Patient", "name=a,,b").issues[0].diagnostics


# --- chains and reverse chains ------------------------------------------------------------


def test_chains() -> None:
    (chain,) = parse("Observation", "subject:Patient.name=peter").filters
    assert isinstance(chain, Chain)
    assert chain.code == "subject" and chain.target_types == ("Patient",)
    assert isinstance(chain.condition, Condition) and chain.condition.code == "name"
    (untyped,) = parse("Observation", "patient.birthdate=1980").filters
    assert isinstance(untyped, Chain) and untyped.target_types == ("Patient",)
    (several,) = parse("Observation", "subject.name=x").filters
    assert isinstance(several, Chain) and "Patient" in several.target_types
    (deep,) = parse("Observation", "subject:Patient.organization.name=clinic").filters
    assert isinstance(deep, Chain) and isinstance(deep.condition, Chain)
    assert "cannot be chained" in error_of("Patient", "gender.x=1").issues[0].diagnostics
    assert "no target" in error_of("Observation", "subject:Patient.code=1").issues[0].diagnostics
    assert error_of("Observation", "subject:Nope.name=x").issues[0].expression == (
        "subject:Nope.name"
    )
    wrong_type = error_of("Observation", "subject:Medication.code=x")
    assert "cannot refer" in wrong_type.issues[0].diagnostics
    too_deep = "subject:Patient.organization.partof.partof.partof.name=x"
    assert "deeper" in error_of("Observation", too_deep).issues[0].diagnostics


def test_reverse_chains() -> None:
    (has,) = parse("Patient", "_has:Observation:patient:code=1234-5").filters
    assert isinstance(has, Has)
    assert (has.res_type, has.reference) == ("Observation", "patient")
    assert isinstance(has.condition, Condition) and has.condition.code == "code"
    (nested,) = parse("Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=x").filters
    assert isinstance(nested, Has) and isinstance(nested.condition, Has)
    (modified,) = parse("Patient", "_has:Observation:subject:code:text=heart").filters
    assert isinstance(modified, Has) and isinstance(modified.condition, Condition)
    assert modified.condition.modifier == "text"
    for bad, message in [
        ("_has:Observation:patient=1", "form"),
        ("_has:Nope:patient:code=1", "not a resource type"),
        ("_has:Observation:code:code=1", "not a reference"),
        ("_has:Observation:performer:code=1", "never refers"),
    ]:
        assert message in error_of("Medication", bad).issues[0].diagnostics, bad


# --- control parameters ------------------------------------------------------------------------


def test_count_is_clamped() -> None:
    assert parse("Patient", "").count == 20
    assert parse("Patient", "_count=5").count == 5
    assert parse("Patient", "_count=5000", max_count=100).count == 100
    assert parse("Patient", "", default_count=50, max_count=10).count == 10
    assert parse("Patient", "_count=0").count == 0
    assert error_of("Patient", "_count=-1").issues[0].expression == "_count"
    assert error_of("Patient", "_count=ten").issues[0].expression == "_count"


def test_sort_total_summary_elements() -> None:
    request = parse("Patient", "_sort=-birthdate,name,_id&_total=accurate&_summary=count"
                               "&_elements=name,gender")
    assert request.sort == (
        SortKey("birthdate", "date", True), SortKey("name", "string"), SortKey("_id", "token")
    )
    assert request.total == "accurate" and request.summary == "count"
    assert request.elements == ("name", "gender")
    assert error_of("Patient", "_sort=colour").issues[0].expression == "_sort"
    assert error_of("Patient", "_total=all").issues[0].expression == "_total"
    assert error_of("Patient", "_summary=short").issues[0].expression == "_summary"


def test_includes() -> None:
    request = parse("Observation", "_include=Observation:subject:Patient"
                                   "&_include:iterate=Patient:general-practitioner"
                                   "&_revinclude=Provenance:target&_include=*")
    assert request.includes == (
        Include("Observation", "subject", "Patient"),
        Include("Patient", "general-practitioner", None, iterate=True),
        Include("Observation", None),
    )
    assert request.revincludes == (Include("Provenance", "target", None, reverse=True),)
    for bad in ["_include=Patient:organization", "_include=Observation:code",
                "_include=Observation", "_revinclude=*", "_include:deep=Observation:subject",
                "_include=Observation:subject:Nope"]:
        err = error_of("Observation", bad)
        assert err.issues[0].expression == bad.split("=")[0], bad


def test_system_search() -> None:
    request = parse(None, "_type=Patient,Practitioner&name=smith&_lastUpdated=gt2020")
    assert request.types == ("Patient", "Practitioner") and request.res_type is None
    assert [f.code for f in request.filters if isinstance(f, Condition)] == [
        "name", "_lastUpdated"
    ]
    every = parse(None, "_id=a,b")
    assert every.types == ()
    assert error_of(None, "name=smith").issues[0].expression == "name"
    assert error_of(None, "_type=Nope").issues[0].expression == "_type"
    # _type on a type-level search is an error when strict.
    assert error_of("Patient", "_type=Patient").issues[0].expression == "_type"


def test_unknown_resource_type() -> None:
    with pytest.raises(FhirError):
        parse("Nope", "")


def test_cursor_and_links() -> None:
    request = parse("Patient", "gender=female&_count=10&_cursor=abc&_format=json")
    assert request.cursor == "abc"
    assert request.link_query() == [("gender", "female"), ("_count", "10")]
    assert request.link_query("xyz") == [("gender", "female"), ("_count", "10"),
                                         ("_cursor", "xyz")]


@pytest.mark.parametrize("query", ["name=a%00b", "na%00me=x", "_sort=%00"])
def test_nul_characters_are_refused(query: str) -> None:
    assert "NUL" in error_of("Patient", query, strict=False).issues[0].diagnostics


def test_values_must_be_unicode_text() -> None:
    with pytest.raises(FhirError) as caught:
        parse_search("Patient", [("name", "a\udc80")], strict=False)
    assert caught.value.issues[0].expression == "name"
