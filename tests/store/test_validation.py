"""Validation against the R4 structure: one test per rule, each naming where and why."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hygie.store.outcomes import InvalidResource
from hygie.store.validation import check_resource, validate_resource

UUID = "urn:uuid:9d2c7a3e-4b8f-4b8e-9a57-0c9e3c1b2d4f"


def patient(**members: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", **members}


def observation(**members: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
    }
    base.update(members)
    return base


def found(resource: Any, **kwargs: Any) -> list[tuple[str, str, str | None]]:
    """(severity, code, expression) of every issue."""
    return [
        (i.severity, i.code, i.expression) for i in validate_resource(resource, **kwargs)
    ]


def errors(resource: Any, **kwargs: Any) -> list[tuple[str, str | None]]:
    return [(c, e) for s, c, e in found(resource, **kwargs) if s == "error"]


# --- valid resources -------------------------------------------------------------


def test_a_typical_patient_is_valid() -> None:
    res = patient(
        meta={"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.123+01:00"},
        identifier=[{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "1840375"}],
        active=True,
        name=[{"family": "Martin", "given": ["Claire", "Anne"]}],
        gender="female",
        birthDate="1984-07-12",
        deceasedBoolean=False,
        multipleBirthInteger=2,
        telecom=[{"system": "phone", "value": "+33 6 12 34 56 78", "rank": 1}],
        photo=[{"contentType": "image/png", "data": "aGVs bG8=", "size": 0}],
        text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        managingOrganization={"reference": "Organization/ght-94"},
        generalPractitioner=[{"reference": "Practitioner/1/_history/2"}],
    )
    assert found(res) == []


def test_a_typical_observation_is_valid() -> None:
    res = observation(
        subject={"reference": "http://example.org/fhir/Patient/1"},
        effectiveDateTime="2024-03-01T09:45:00+01:00",
        issued="2024-03-01T09:46:00Z",
        valueQuantity={"value": 72.5, "unit": "/min", "system": "http://unitsofmeasure.org"},
        component=[{"code": {"text": "x"}, "valueInteger": -3}],
    )
    assert found(res) == []


@pytest.mark.parametrize(
    "reference",
    ["Patient/1", "Patient/a.b-c/_history/7", "https://x.example/fhir/Patient/1", UUID,
     "urn:oid:1.2.3.4", "Patient?identifier=urn:oid:1.2|7"],
)
def test_reference_forms_are_accepted(reference: str) -> None:
    assert found(observation(subject={"reference": reference})) == []


def test_a_primitive_may_have_only_its_extension() -> None:
    res = observation(
        status=None,
        _status={"extension": [{"url": "http://x.org/why", "valueString": "unknown"}]},
    )
    del res["status"]
    assert found(res) == []


def test_null_in_a_primitive_array_paired_with_an_extension() -> None:
    res = patient(
        name=[{"given": [None, "Anne"], "_given": [{"id": "g1", "extension": [
            {"url": "http://x.org/e", "valueCode": "x"}]}, None]}]
    )
    assert found(res) == []


def test_local_reference_to_a_contained_resource() -> None:
    res = observation(
        contained=[{"resourceType": "Patient", "id": "pat"}],
        subject={"reference": "#pat"},
    )
    assert found(res) == []


# --- resourceType ----------------------------------------------------------------


def test_resource_type_missing() -> None:
    assert errors({"id": "x"}) == [("required", "resourceType")]


@pytest.mark.parametrize("rtype", ["Patientx", "DomainResource", "Resource", "HumanName", 3])
def test_resource_type_unknown_or_abstract(rtype: Any) -> None:
    assert errors({"resourceType": rtype}) == [("structure", "resourceType")]


def test_resource_type_must_match_expected() -> None:
    assert errors(patient(), expected_type="Observation") == [("invalid", "resourceType")]


def test_resource_must_be_an_object() -> None:
    assert errors([patient()]) == [("structure", "")]


# --- element names and shapes ----------------------------------------------------


def test_unknown_element() -> None:
    assert errors(patient(foo=1)) == [("structure", "Patient.foo")]


def test_unknown_element_nested() -> None:
    res = patient(name=[{"family": "M"}, {"family": "N", "firstName": "x"}])
    assert errors(res) == [("structure", "Patient.name[1].firstName")]


def test_array_where_max_is_star() -> None:
    assert errors(patient(name={"family": "M"})) == [("structure", "Patient.name")]


def test_single_value_where_max_is_one() -> None:
    assert errors(patient(gender=["male"])) == [("structure", "Patient.gender")]


def test_empty_array() -> None:
    assert errors(patient(name=[])) == [("structure", "Patient.name")]


def test_empty_object() -> None:
    assert errors(patient(maritalStatus={})) == [("structure", "Patient.maritalStatus")]


def test_object_with_only_an_id_has_no_content() -> None:
    assert errors(patient(maritalStatus={"id": "m"})) == [
        ("structure", "Patient.maritalStatus")
    ]


def test_null_single_value() -> None:
    assert errors(patient(gender=None)) == [("structure", "Patient.gender")]


def test_null_complex_value() -> None:
    assert errors(patient(maritalStatus=None)) == [("structure", "Patient.maritalStatus")]


def test_null_in_array_without_extension() -> None:
    res = patient(name=[{"given": ["A", None]}])
    assert errors(res) == [("structure", "Patient.name[0].given[1]")]


def test_complex_value_must_be_an_object() -> None:
    assert errors(patient(maritalStatus="M")) == [("structure", "Patient.maritalStatus")]


# --- primitives --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "where"),
    [
        ({"active": "true"}, "Patient.active"),
        ({"active": 1}, "Patient.active"),
        ({"multipleBirthInteger": 1.5}, "Patient.multipleBirthInteger"),
        ({"multipleBirthInteger": 2.0}, "Patient.multipleBirthInteger"),
        ({"multipleBirthInteger": True}, "Patient.multipleBirthInteger"),
        ({"multipleBirthInteger": 2**31}, "Patient.multipleBirthInteger"),
        ({"multipleBirthInteger": "2"}, "Patient.multipleBirthInteger"),
        ({"telecom": [{"value": "1", "rank": 0}]}, "Patient.telecom[0].rank"),
        ({"photo": [{"url": "http://x.org/p", "size": -1}]}, "Patient.photo[0].size"),
        ({"name": [{"given": ["A", ""]}]}, "Patient.name[0].given[1]"),
        ({"name": [{"family": 7}]}, "Patient.name[0].family"),
        ({"id": "bad id"}, "Patient.id"),
        ({"id": "x" * 65}, "Patient.id"),
        ({"birthDate": "2020-13-01"}, "Patient.birthDate"),
        ({"birthDate": "2019-02-29"}, "Patient.birthDate"),
        ({"birthDate": "20-01-01"}, "Patient.birthDate"),
        ({"deceasedDateTime": "2020-01-01T10:00:00"}, "Patient.deceasedDateTime"),
        ({"deceasedDateTime": "2020-01-01T10:00Z"}, "Patient.deceasedDateTime"),
        ({"identifier": [{"system": "urn:oid:1.2 3"}]}, "Patient.identifier[0].system"),
        ({"photo": [{"data": "abc"}]}, "Patient.photo[0].data"),
        ({"photo": [{"data": "ab!c"}]}, "Patient.photo[0].data"),
        ({"maritalStatus": {"coding": [{"code": "M "}]}}, "Patient.maritalStatus.coding[0].code"),
        ({"maritalStatus": {"coding": [{"code": "a  b"}]}},
         "Patient.maritalStatus.coding[0].code"),
        ({"text": {"status": "generated", "div": "<p>x</p>"}}, "Patient.text.div"),
        ({"text": {"status": "generated", "div": "<div>x</div>"}}, "Patient.text.div"),
        ({"extension": [{"url": "http://x.org/e", "valueOid": "1.2.3"}]},
         "Patient.extension[0].valueOid"),
        ({"extension": [{"url": "http://x.org/e", "valueUuid": UUID.upper()}]},
         "Patient.extension[0].valueUuid"),
        ({"extension": [{"url": "http://x.org/e", "valueTime": "24:00:00"}]},
         "Patient.extension[0].valueTime"),
        ({"extension": [{"url": "http://x.org/e", "valueDecimal": "1.0"}]},
         "Patient.extension[0].valueDecimal"),
        ({"extension": [{"url": "http://x.org/e", "valueInstant": "2020-01-01T10:00:00"}]},
         "Patient.extension[0].valueInstant"),
        ({"extension": [{"url": "http://x.org/e", "valueCanonical": "http://x.org/a b"}]},
         "Patient.extension[0].valueCanonical"),
    ],
    ids=lambda v: v if isinstance(v, str) else next(iter(v)),
)
def test_primitive_value_rules(members: dict[str, Any], where: str) -> None:
    assert errors(patient(**members)) == [("value", where)]


XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


@pytest.mark.parametrize(
    "div",
    [
        f"<div {XHTML}><script>alert(1)</script>x</div>",
        f"<div {XHTML}><p onclick=\"alert(1)\">x</p></div>",
        f"<div {XHTML}><a href=\" JavaScript:alert(1)\">x</a></div>",
        f"<div {XHTML}><iframe src=\"http://x.org\"/>x</div>",
        f"<div {XHTML}><svg xmlns=\"http://www.w3.org/2000/svg\"/>x</div>",
        f"<div {XHTML}>a&nbsp;b</div>",
        f"<div {XHTML}><p>x</div>",
        f"<div {XHTML}>x</div><div {XHTML}>y</div>",
    ],
    ids=["script", "event", "js-url", "iframe", "namespace", "entity", "unclosed", "two"],
)
def test_narrative_rules(div: str) -> None:
    res = patient(text={"status": "generated", "div": div})
    assert errors(res) == [("value", "Patient.text.div")]


def test_narrative_allowed_markup() -> None:
    div = (
        f'<div {XHTML} xml:lang="fr"><h1 class="t">Compte rendu</h1><table border="1"><tr>'
        '<td colspan="2" style="color: red">72 &amp; <b>bpm</b></td></tr></table>'
        '<img src="#photo" alt="photo"/><a href="Patient/1">dossier</a></div>'
    )
    assert found(patient(text={"status": "generated", "div": div})) == []


def test_narrative_without_content_is_a_warning() -> None:
    res = patient(text={"status": "generated", "div": f"<div {XHTML}>\n  </div>"})
    assert found(res) == [("warning", "value", "Patient.text.div")]


def test_decimal_must_be_a_number() -> None:
    res = observation(valueQuantity={"value": "72"})
    assert errors(res) == [("value", "Observation.valueQuantity.value")]


def test_decimal_must_be_finite() -> None:
    res = observation(valueQuantity={"value": float("nan")})
    assert errors(res) == [("value", "Observation.valueQuantity.value")]


def test_integer_range_boundaries_are_valid() -> None:
    assert errors(patient(multipleBirthInteger=-(2**31))) == []
    assert errors(patient(multipleBirthInteger=2**31 - 1)) == []


def test_string_longer_than_one_megabyte() -> None:
    res = patient(name=[{"family": "x" * (1024 * 1024 + 1)}])
    assert errors(res) == [("value", "Patient.name[0].family")]


def test_whitespace_only_string_is_a_warning() -> None:
    assert found(patient(name=[{"family": "   "}])) == [
        ("warning", "value", "Patient.name[0].family")
    ]


# --- cardinality and choice -------------------------------------------------------


def test_required_element_missing() -> None:
    res = observation()
    del res["status"]
    assert errors(res) == [("required", "Observation.status")]


def test_required_element_missing_in_backbone() -> None:
    res = patient(link=[{"type": "seealso"}])
    assert errors(res) == [("required", "Patient.link[0].other")]


def test_required_choice_missing() -> None:
    res = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
    }
    assert errors(res) == [("required", "MedicationRequest.medication")]


def test_at_most_one_type_of_a_choice() -> None:
    res = observation(valueQuantity={"value": 1}, valueString="one")
    assert errors(res) == [("structure", "Observation.valueString")]


def test_at_most_one_type_of_a_choice_counting_primitive_extensions() -> None:
    ext = {"extension": [{"url": "http://x.org/why", "valueCode": "masked"}]}
    res = observation(valueQuantity={"value": 1}, _valueString=ext)
    assert errors(res) == [("structure", "Observation.valueString")]
    assert errors(observation(valueString="a", _valueString={"id": "s"})) == []


# --- required bindings ---------------------------------------------------------------


def test_required_binding() -> None:
    assert errors(patient(gender="F")) == [("code-invalid", "Patient.gender")]


def test_required_binding_in_a_data_type() -> None:
    res = patient(telecom=[{"system": "fax", "value": "1"}, {"system": "pager2", "value": "2"}])
    assert errors(res) == [("code-invalid", "Patient.telecom[1].system")]


def test_required_binding_with_hierarchical_codes() -> None:
    # ObservationStatus has codes below "amended" (corrected, cancelled...).
    assert errors(observation(status="cancelled")) == []
    assert errors(observation(status="done")) == [("code-invalid", "Observation.status")]


# --- references --------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference", ["Patient/", "patient/1", "Patient 1", "Patient/1/_history/", "/Patient/1"]
)
def test_reference_format(reference: str) -> None:
    res = observation(subject={"reference": reference})
    assert errors(res) == [("value", "Observation.subject.reference")]


def test_reference_to_an_unknown_type() -> None:
    res = observation(subject={"reference": "Pateint/1"})
    assert errors(res) == [("value", "Observation.subject.reference")]


def test_relative_reference_to_a_type_not_allowed_is_a_warning() -> None:
    res = observation(subject={"reference": "Medication/1"})
    assert found(res) == [("warning", "value", "Observation.subject.reference")]
    check_resource(res)  # a warning does not refuse the resource


def test_contained_reference_to_a_type_not_allowed() -> None:
    res = observation(
        contained=[{"resourceType": "Medication", "id": "m"}],
        subject={"reference": "#m"},
    )
    assert errors(res) == [("value", "Observation.subject.reference")]


def test_local_reference_must_resolve() -> None:
    res = observation(subject={"reference": "#nope"})
    assert errors(res) == [("invariant", "Observation.subject.reference")]


def test_bundled_reference_to_a_type_not_allowed() -> None:
    res = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": UUID, "resource": {"resourceType": "Medication"},
             "request": {"method": "POST", "url": "Medication"}},
            {"resource": observation(subject={"reference": UUID}),
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    assert errors(res) == [("value", "Bundle.entry[1].resource.subject.reference")]


def test_reference_id_longer_than_64_is_a_warning() -> None:
    res = observation(subject={"reference": "Patient/" + "x" * 65})
    assert found(res) == [("warning", "value", "Observation.subject.reference")]


# --- primitive extensions and extensions ------------------------------------------------


def test_primitive_extension_unknown_member() -> None:
    res = patient(birthDate="2000", _birthDate={"value": "x"})
    assert errors(res) == [("structure", "Patient.birthDate.value")]


def test_primitive_extension_must_be_an_object() -> None:
    assert errors(patient(_birthDate=[{"id": "x"}])) == [("structure", "Patient.birthDate")]


def test_primitive_extension_on_a_complex_element() -> None:
    assert errors(patient(_address={"id": "x"})) == [("structure", "Patient._address")]


def test_primitive_extension_on_an_attribute() -> None:
    res = patient(extension=[{"url": "http://x.org/e", "valueCode": "a", "_url": {"id": "u"}}])
    assert errors(res) == [("structure", "Patient.extension[0]._url")]


def test_primitive_extension_array_length() -> None:
    res = patient(name=[{"given": ["A", "B"], "_given": [{"id": "g"}]}])
    assert errors(res) == [("structure", "Patient.name[0].given")]


def test_primitive_extension_array_double_null() -> None:
    res = patient(name=[{"given": [None, "B"], "_given": [None, {"id": "g"}]}])
    assert ("structure", "Patient.name[0].given[0]") in errors(res)


def test_primitive_extension_with_only_an_id_and_no_value() -> None:
    assert errors(patient(birthDate="2000", _birthDate={"id": "b"})) == []
    assert errors(patient(_birthDate={"id": "b"})) == [("structure", "Patient.birthDate")]


def test_primitive_extension_content_is_validated() -> None:
    res = patient(birthDate="2000", _birthDate={"extension": [{"valueCode": "x"}]})
    assert errors(res) == [("required", "Patient.birthDate.extension[0].url")]


def test_extension_needs_a_url() -> None:
    res = patient(extension=[{"valueString": "x"}])
    assert errors(res) == [("required", "Patient.extension[0].url")]


def test_extension_with_value_and_extensions() -> None:
    res = patient(extension=[{
        "url": "http://x.org/e", "valueString": "x",
        "extension": [{"url": "a", "valueString": "y"}],
    }])
    assert errors(res) == [("invariant", "Patient.extension[0]")]


def test_extension_with_neither_value_nor_extensions() -> None:
    res = patient(extension=[{"url": "http://x.org/e", "id": "e1"}])
    assert errors(res) == [("invariant", "Patient.extension[0]")]


def test_modifier_extension_rules() -> None:
    res = patient(modifierExtension=[{"url": "http://x.org/e"}])
    assert errors(res) == [("invariant", "Patient.modifierExtension[0]")]


def test_nested_extension_value_type() -> None:
    res = patient(extension=[{"url": "http://x.org/e", "extension": [
        {"url": "a", "valueBoolean": "yes"}]}])
    assert errors(res) == [("value", "Patient.extension[0].extension[0].valueBoolean")]


# --- nested resources -------------------------------------------------------------


def test_contained_resource_is_validated() -> None:
    res = observation(contained=[{"resourceType": "Patient", "id": "p", "gender": "F"}])
    assert errors(res) == [("code-invalid", "Observation.contained[0].gender")]


def test_contained_resource_type_unknown() -> None:
    res = observation(contained=[{"resourceType": "Nope", "id": "p"}])
    assert errors(res) == [("structure", "Observation.contained[0].resourceType")]


def test_no_nested_contained() -> None:
    res = observation(contained=[{
        "resourceType": "Patient", "id": "p",
        "contained": [{"resourceType": "Organization", "id": "o"}],
    }])
    assert errors(res) == [("invariant", "Observation.contained[0].contained")]


def test_contained_resource_has_no_version_of_its_own() -> None:
    res = observation(contained=[{
        "resourceType": "Patient", "id": "p",
        "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"},
    }])
    assert errors(res) == [
        ("invariant", "Observation.contained[0].meta.versionId"),
        ("invariant", "Observation.contained[0].meta.lastUpdated"),
    ]


def test_contained_resource_has_no_security_label() -> None:
    res = observation(contained=[{
        "resourceType": "Patient", "id": "p", "meta": {"security": [{"code": "R"}]},
    }])
    assert errors(res) == [("invariant", "Observation.contained[0].meta.security")]


def test_bundle_entry_resource_is_validated() -> None:
    entries = [{"resource": patient(id=f"p{i}")} for i in range(3)]
    bad = observation(status="wrong")
    entries.append({"resource": bad})
    res = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    assert errors(res) == [("code-invalid", "Bundle.entry[3].resource.status")]


def test_parameters_resource_is_validated() -> None:
    res = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": patient(foo="bar")}],
    }
    assert errors(res) == [("structure", "Parameters.parameter[0].resource.foo")]


def test_nested_bundles_resolve_against_their_own_entries() -> None:
    inner = {
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": observation(subject={"reference": "#x"})}],
    }
    res = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}
    where = "Bundle.entry[0].resource.entry[0].resource.subject.reference"
    assert errors(res) == [("invariant", where)]


# --- limits ------------------------------------------------------------------------


def _deep_extension(levels: int) -> dict[str, Any]:
    ext: dict[str, Any] = {"url": "http://x.org/leaf", "valueString": "x"}
    for _ in range(levels):
        ext = {"url": "http://x.org/node", "extension": [ext]}
    return ext


def test_depth_limit() -> None:
    res = patient(extension=[_deep_extension(100)])
    issues = errors(res)
    assert len(issues) == 1 and issues[0][0] == "too-costly"
    assert issues[0][1] is not None and issues[0][1].count("extension[0]") == 65


def test_depth_limit_is_an_argument() -> None:
    res = patient(extension=[_deep_extension(5)])
    assert errors(res) == []
    assert [c for c, _ in errors(res, max_depth=3)] == ["too-costly"]
    with pytest.raises(InvalidResource):
        check_resource(res, max_depth=3)


# --- documented leniencies and the raising form --------------------------------------------


def test_display_item_without_link_id_is_a_warning() -> None:
    res = {
        "resourceType": "Questionnaire", "status": "active",
        "item": [
            {"linkId": "1", "type": "group", "item": [{"type": "display", "text": "help"}]},
            {"type": "string", "text": "name?"},
        ],
    }
    assert found(res) == [
        ("warning", "required", "Questionnaire.item[0].item[0].linkId"),
        ("error", "required", "Questionnaire.item[1].linkId"),
    ]


def test_check_resource_raises_422_with_every_issue() -> None:
    res = patient(gender="F", foo=1)
    with pytest.raises(InvalidResource) as caught:
        check_resource(res)
    assert caught.value.status == 422
    assert {i.expression for i in caught.value.issues} == {"Patient.gender", "Patient.foo"}
    outcome = caught.value.outcome
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Patient.gender"]


def test_check_resource_checks_the_expected_type() -> None:
    with pytest.raises(InvalidResource):
        check_resource(patient(), expected_type="Observation")
    check_resource(patient(), expected_type="Patient")


def test_validation_does_not_modify_the_resource() -> None:
    res = patient(name=[{"given": [None], "_given": [{"id": "x"}]}], foo=1)
    before = copy.deepcopy(res)
    validate_resource(res)
    assert res == before


def test_remembered_valid_strings_still_meet_each_element_s_rules() -> None:
    """A string once valid is remembered by type, not by element: the value set of a
    coded element and the rules of other types still apply to it."""
    first = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    }
    assert validate_resource(first) == []
    again = copy.deepcopy(first)
    again["status"] = "vital-signs"  # a valid code, remembered, but not an ObservationStatus
    again["id"] = "http://loinc.org"  # a valid uri, remembered, but not an id
    assert sorted(errors(again)) == [("code-invalid", "Observation.status"),
                                     ("value", "Observation.id")]
    for _ in range(2):  # the same verdicts once every string is remembered
        assert validate_resource(copy.deepcopy(first)) == []
        assert sorted(errors(again)) == [("code-invalid", "Observation.status"),
                                         ("value", "Observation.id")]
