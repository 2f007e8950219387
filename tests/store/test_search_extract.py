"""Index extraction: the rows each parameter type writes, normalised as search compares them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from hygie.store.schema import INDEX_STRING_LENGTH, INDEX_TABLES
from hygie.store.search.extract import (
    DATE_MAX,
    DATE_MIN,
    TABLE_KINDS,
    date_range,
    extract_index,
    extract_index_by_expression,
    normalize_string,
)
from hygie.store.search.params import registry
from hygie.store.synthetic import generate_patient_resources, generate_territory
from tests.conftest import shared_data

US = 1_000_000


def us(*args: int) -> int:
    """Epoch microseconds of a UTC datetime."""
    return int(datetime(*args, tzinfo=UTC).timestamp()) * US  # type: ignore[misc]


def rows_of(resource: dict[str, Any], kind: str, param: str,
            base_url: str | None = None) -> list[tuple[Any, ...]]:
    return [r[1:] for r in extract_index(resource, base_url)[kind] if r[0] == param]


# --- normalisation -------------------------------------------------------------------------------


def test_strings_lose_case_accents_and_extra_spaces() -> None:
    assert normalize_string("  Élodie   DE\tla  Tour ") == "elodie de la tour"
    assert normalize_string("Œuvre ﬁne") == "œuvre fine"
    assert normalize_string("MÜLLER") == "muller"
    assert normalize_string("") == ""


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("1980", us(1980, 1, 1), us(1981, 1, 1) - 1),
        ("1980-02", us(1980, 2, 1), us(1980, 3, 1) - 1),
        ("1980-12", us(1980, 12, 1), us(1981, 1, 1) - 1),
        ("1980-02-29", us(1980, 2, 29), us(1980, 3, 1) - 1),
        ("2021-06-01T10:20", us(2021, 6, 1, 10, 20), us(2021, 6, 1, 10, 21) - 1),
        ("2021-06-01T10:20:30", us(2021, 6, 1, 10, 20, 30), us(2021, 6, 1, 10, 20, 31) - 1),
        ("2021-06-01T10:20:30Z", us(2021, 6, 1, 10, 20, 30), us(2021, 6, 1, 10, 20, 31) - 1),
        ("2021-06-01T10:20:30.5+02:00", us(2021, 6, 1, 8, 20, 30) + 500_000,
         us(2021, 6, 1, 8, 20, 30) + 599_999),
        ("2021-06-01T10:20:30.123456-05:30", us(2021, 6, 1, 15, 50, 30) + 123_456,
         us(2021, 6, 1, 15, 50, 30) + 123_456),
        ("9999", us(9999, 1, 1), DATE_MAX),
    ],
)
def test_dates_cover_their_precision(text: str, low: int, high: int) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize("text", ["", "80", "1980-13", "1980-02-30", "2021-06-01T25:00",
                                  "2021-06-01T10:61", "yesterday", "2021-06-01T10"])
def test_non_dates_are_refused(text: str) -> None:
    assert date_range(text) is None


# --- per parameter type ----------------------------------------------------------------------


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"lastUpdated": "2024-01-01T00:00:00Z",
             "tag": [{"system": "http://example.org/tags", "code": "vip"}],
             "profile": ["http://example.org/StructureDefinition/p|1.0"]},
    "active": True,
    "gender": "female",
    "birthDate": "1980",
    "name": [{"use": "official", "family": "Lefèvre", "given": ["Anne-Sophie", "Marie"],
              "prefix": ["Mme"], "text": "Mme Anne-Sophie LEFÈVRE"}],
    "address": [{"line": ["12 rue des Halles"], "city": "Tours", "postalCode": "37000",
                 "country": "FR"}],
    "telecom": [{"system": "phone", "value": "+33 6 01 02 03 04"},
                {"system": "email", "value": "anne@example.org"}],
    "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "280017512345678",
                    "type": {"text": "INS"}}],
    "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-"
                                  "MaritalStatus", "code": "M", "display": "Married"}],
                      "text": "Mariée"},
    "generalPractitioner": [
        {"reference": "Practitioner/d1"},
        {"reference": "https://fhir.example.org/r4/Practitioner/d2/_history/3"},
        {"reference": "https://elsewhere.example/fhir/Practitioner/d3"},
        {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "10003456789"}},
        {"reference": "#contained"},
    ],
    "deceasedBoolean": False,
}


def test_string_rows_keep_exact_and_normalised_forms() -> None:
    family = rows_of(PATIENT, "string", "family")
    assert family == [("lefevre", "Lefèvre")]
    name = rows_of(PATIENT, "string", "name")
    assert ("mme anne-sophie lefevre", "Mme Anne-Sophie LEFÈVRE") in name
    assert {r[0] for r in name} >= {"lefevre", "anne-sophie", "marie", "mme"}
    address = rows_of(PATIENT, "string", "address")
    assert {r[0] for r in address} == {"12 rue des halles", "tours", "37000", "fr"}
    assert rows_of(PATIENT, "string", "address-city") == [("tours", "Tours")]


def test_long_strings_are_cut_to_the_column() -> None:
    long = {"resourceType": "Patient", "name": [{"family": "x" * 400}]}
    (row,) = rows_of(long, "string", "family")
    assert len(row[0]) == len(row[1]) == INDEX_STRING_LENGTH


def test_token_rows() -> None:
    assert rows_of(PATIENT, "token", "gender") == [(None, "female", None)]
    assert rows_of(PATIENT, "token", "active") == [(None, "true", None)]
    assert rows_of(PATIENT, "token", "deceased") == [(None, "false", None)]
    assert rows_of(PATIENT, "token", "identifier") == [
        ("urn:oid:1.2.250.1.213.1.4.8", "280017512345678", "ins")
    ]
    assert rows_of(PATIENT, "token", "phone") == [("phone", "+33 6 01 02 03 04", None)]
    assert rows_of(PATIENT, "token", "email") == [("email", "anne@example.org", None)]
    assert sorted(rows_of(PATIENT, "token", "telecom")) == [
        ("email", "anne@example.org", None), ("phone", "+33 6 01 02 03 04", None)
    ]
    assert rows_of(PATIENT, "token", "_tag") == [("http://example.org/tags", "vip", None)]


def test_codeable_concept_gives_each_coding_and_its_text() -> None:
    condition = {"resourceType": "Condition", "code": {
        "coding": [{"system": "http://snomed.info/sct", "code": "840539006",
                    "display": "COVID-19"},
                   {"system": "http://hl7.org/fhir/sid/icd-10", "code": "U07.1"}],
        "text": "Covid long",
    }}
    assert rows_of(condition, "token", "code") == [
        ("http://snomed.info/sct", "840539006", "covid-19"),
        ("http://hl7.org/fhir/sid/icd-10", "U07.1", "covid long"),
        (None, None, "covid long"),
    ]


def test_date_rows() -> None:
    assert rows_of(PATIENT, "date", "birthdate") == [(us(1980, 1, 1), us(1981, 1, 1) - 1)]
    encounter = {"resourceType": "Encounter", "period": {"start": "2021-03-04T08:00:00+01:00"}}
    assert rows_of(encounter, "date", "date") == [(us(2021, 3, 4, 7), DATE_MAX)]
    closed = {"resourceType": "Encounter", "period": {"end": "2021-03-05"}}
    assert rows_of(closed, "date", "date") == [(DATE_MIN, us(2021, 3, 6) - 1)]
    empty = {"resourceType": "Encounter", "period": {}}
    assert rows_of(empty, "date", "date") == []


def test_timing_gives_events_and_bounds() -> None:
    request = {
        "resourceType": "ServiceRequest",
        "occurrenceTiming": {
            "event": ["2021-05-01", "2021-05-08T09:00:00Z"],
            "repeat": {"boundsPeriod": {"start": "2021-05-01", "end": "2021-06-30"},
                       "frequency": 1, "period": 1, "periodUnit": "wk"},
        },
    }
    assert rows_of(request, "date", "occurrence") == [
        (us(2021, 5, 1), us(2021, 5, 2) - 1),
        (us(2021, 5, 8, 9), us(2021, 5, 8, 9, 0, 1) - 1),
        (us(2021, 5, 1), us(2021, 7, 1) - 1),
    ]


def test_number_rows() -> None:
    assessment = {"resourceType": "RiskAssessment", "prediction": [
        {"probabilityDecimal": 0.25},
        {"probabilityRange": {"low": {"value": 0.1}, "high": {"value": 0.4}}},
        {"probabilityRange": {"high": {"value": 0.9}}},
    ]}
    assert rows_of(assessment, "number", "probability") == [
        (0.25, 0.25), (0.1, 0.4), (float("-inf"), 0.9)
    ]


def test_quantity_rows() -> None:
    obs = {"resourceType": "Observation", "valueQuantity": {
        "value": 38.5, "unit": "°C", "system": "http://unitsofmeasure.org", "code": "Cel"}}
    assert rows_of(obs, "quantity", "value-quantity") == [
        (38.5, 38.5, "http://unitsofmeasure.org", "Cel"), (38.5, 38.5, None, "°C")
    ]
    below = {"resourceType": "Observation", "valueQuantity": {
        "value": 5, "comparator": "<", "unit": "mg/L"}}
    assert rows_of(below, "quantity", "value-quantity") == [(float("-inf"), 5.0, None, "mg/L")]
    above = {"resourceType": "Observation", "valueQuantity": {"value": 5, "comparator": ">="}}
    assert rows_of(above, "quantity", "value-quantity") == [(5.0, float("inf"), None, None)]
    age = {"resourceType": "Condition", "onsetRange": {
        "low": {"value": 40, "system": "http://unitsofmeasure.org", "code": "a"},
        "high": {"value": 50, "system": "http://unitsofmeasure.org", "code": "a"}}}
    assert rows_of(age, "quantity", "onset-age") == [
        (40.0, 50.0, "http://unitsofmeasure.org", "a")
    ]
    claim = {"resourceType": "ChargeItem", "priceOverride": {"value": 12.5, "currency": "EUR"}}
    assert rows_of(claim, "quantity", "price-override") == [
        (12.5, 12.5, "urn:iso:std:iso:4217", "EUR")
    ]


def test_reference_rows() -> None:
    rows = rows_of(PATIENT, "reference", "general-practitioner",
                   base_url="https://fhir.example.org/r4")
    assert rows == [
        ("Practitioner", "d1", None),
        ("Practitioner", "d2", None),
        (None, None, "https://elsewhere.example/fhir/Practitioner/d3"),
    ]
    # Without this server's base, the absolute URL stays an external one.
    assert rows_of(PATIENT, "reference", "general-practitioner")[1] == (
        None, None, "https://fhir.example.org/r4/Practitioner/d2/_history/3"
    )
    # Reference.identifier is a token row of the same parameter (for :identifier).
    assert rows_of(PATIENT, "token", "general-practitioner") == [
        ("urn:oid:1.2.250.1.71.4.2.1", "10003456789", None)
    ]


def test_canonical_and_uri_rows() -> None:
    plan = {"resourceType": "CarePlan", "instantiatesCanonical": [
        "http://example.org/PlanDefinition/p1|2.0"], "instantiatesUri": ["http://example.org/x"]}
    assert rows_of(plan, "reference", "instantiates-canonical") == [
        (None, None, "http://example.org/PlanDefinition/p1")
    ]
    assert rows_of(plan, "uri", "instantiates-uri") == [("http://example.org/x",)]
    assert rows_of(PATIENT, "uri", "_profile") == [
        ("http://example.org/StructureDefinition/p|1.0",)
    ]


def test_typed_choice_references() -> None:
    request = {"resourceType": "MedicationRequest",
               "medicationReference": {"reference": "Medication/m1"},
               "subject": {"reference": "Patient/p1"}}
    assert rows_of(request, "reference", "medication") == [("Medication", "m1", None)]
    assert rows_of(request, "reference", "patient") == [("Patient", "p1", None)]
    assert rows_of(request, "token", "code") == []
    group_subject = {"resourceType": "MedicationRequest", "subject": {"reference": "Group/g"}}
    assert rows_of(group_subject, "reference", "patient") == []
    assert rows_of(group_subject, "reference", "subject") == [("Group", "g", None)]


def test_rows_are_unique_and_id_last_updated_are_not_indexed() -> None:
    twice = {"resourceType": "Patient", "name": [{"family": "Roux"}, {"family": "ROUX"}]}
    assert rows_of(twice, "string", "family") == [("roux", "Roux"), ("roux", "ROUX")]
    same = {"resourceType": "Patient", "name": [{"family": "Roux"}, {"family": "Roux"}]}
    assert rows_of(same, "string", "family") == [("roux", "Roux")]
    rows = extract_index(PATIENT)
    assert not any(r[0] in ("_id", "_lastUpdated") for kind in rows.values() for r in kind)
    assert set(rows) == set(TABLE_KINDS)


def test_what_is_not_a_resource_gives_no_rows() -> None:
    assert extract_index({"id": "x"}) == {kind: [] for kind in TABLE_KINDS}


@pytest.mark.parametrize("kind", TABLE_KINDS)
def test_rows_fit_their_table(kind: str) -> None:
    columns = [c.name for c in INDEX_TABLES[kind].columns][2:]
    for row in extract_index(PATIENT)[kind]:
        assert len(row) == len(columns)


def test_every_example_extracts() -> None:
    """Each official example indexes without error, and rows name real parameters."""
    folder = shared_data() / "fhir-r4" / "examples"
    total = 0
    for path in sorted(folder.glob("*.json")):
        resource = json.loads(path.read_text())
        if "resourceType" not in resource:
            continue
        params = registry().params(resource["resourceType"])
        for kind, rows in extract_index(resource, "http://hl7.org/fhir").items():
            for row in rows:
                assert params[row[0]].type == kind or (
                    kind == "token" and params[row[0]].type == "reference"
                ), (path.name, kind, row)
                if kind == "date":
                    assert DATE_MIN <= row[1] <= row[2] <= DATE_MAX
                if kind in ("number", "quantity"):
                    assert row[1] <= row[2]
                total += 1
    assert total > 5000


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Observation", "code": {"coding": 5}, "subject": {"reference": 7}},
        {"resourceType": "Observation", "code": [{"coding": [None, 1, "x"]}],
         "valueQuantity": {"value": "high"}, "effectiveTiming": {"event": "2021"}},
        {"resourceType": "Patient", "deceasedBoolean": [True, False], "name": "Anne",
         "birthDate": 1980, "telecom": [{"system": "email"}], "contained": 3},
        {"resourceType": "Encounter", "period": {"start": 5, "end": "never"},
         "extension": "x", "subject": "Patient/1"},
        {"resourceType": "Patient", "name": [{"family": "a\x00b"}]},
        {"resourceType": "RiskAssessment", "prediction": [
            {"probabilityDecimal": float("nan")}, {"probabilityDecimal": 10**400}]},
    ],
)
def test_malformed_bodies_index_what_they_can(body: dict[str, Any]) -> None:
    rows = extract_index(body)
    assert set(rows) == set(TABLE_KINDS)
    for kind in rows.values():
        for row in kind:
            assert not any(isinstance(v, str) and "\x00" in v for v in row)
    assert rows["number"] == []


# --- the reading plans against the whole expressions ----------------------------------------------


def _corpus() -> list[dict[str, Any]]:
    folder = shared_data() / "fhir-r4" / "examples"
    examples = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    territory = generate_territory(1)
    return [*examples, *territory,
            *generate_patient_resources(20, territory=territory, seed=5)]


def test_reading_plans_give_the_rows_of_the_whole_expressions() -> None:
    """Every row, in order, as evaluating each parameter's expression gives it, on every
    official example and on synthetic records, with and without a server base."""
    compared = 0
    for resource in _corpus():
        for base_url in (None, "http://hl7.org/fhir"):
            expected = extract_index_by_expression(resource, base_url)
            assert extract_index(resource, base_url) == expected, (
                resource.get("resourceType"), resource.get("id"))
            compared += sum(len(rows) for rows in expected.values())
    assert compared > 20_000


@pytest.mark.parametrize(
    "body",
    [
        # The element of a path's own name wins over its choice spellings.
        {"resourceType": "Observation", "effective": "2020", "effectiveDateTime": "2021",
         "value": {"value": 3, "unit": "mg"}, "valueQuantity": {"value": 4, "unit": "g"}},
        # A null member, then its choice spelling; nulls inside arrays.
        {"resourceType": "Observation", "value": None, "valueQuantity": {"value": 4},
         "category": [None, {"text": "a"}], "performer": [None]},
        # Equal values of two parts of a union are indexed once.
        {"resourceType": "Observation", "code": {"text": "hb"},
         "component": [{"code": {"text": "hb"}}, {"code": {"text": "hb"}}]},
        # where(resolve() is Patient): contained, typed and absolute references.
        {"resourceType": "Observation", "contained": [{"resourceType": "Patient", "id": "p"}],
         "subject": {"reference": "#p", "identifier": {"value": "1"}},
         "focus": [{"reference": "#q"}]},
        {"resourceType": "Observation", "subject": {"reference": "Group/1"}},
        {"resourceType": "Observation", "subject": {"reference": "http://x.org/fhir/Patient/1"}},
        # Two values where the definition expects one: that parameter only is left out.
        {"resourceType": "Patient", "name": [{"family": "A"}], "deceasedBoolean": [True, False],
         "link": [{"other": {"reference": "Patient/2"}}]},
        # A type this release does not know: only the Resource-level parameters.
        {"resourceType": "Unknown",
         "meta": {"profile": ["http://x.org/p"], "tag": [{"code": "t"}]}},
    ],
)
def test_reading_plans_agree_on_odd_bodies(body: dict[str, Any]) -> None:
    expected = extract_index_by_expression(body)
    assert any(expected.values())
    assert extract_index(body) == expected
