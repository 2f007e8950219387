"""_summary and _elements projections (search.html#summary, search.html#elements)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hygie.store.outcomes import FhirError
from hygie.store.summary import SUBSETTED, select_elements, summarize
from hygie.store.validation import validate_resource
from tests.conftest import shared_data

DIV = '<div xmlns="http://www.w3.org/1999/xhtml">Claire Martin</div>'


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "3", "tag": [{"system": "http://x.org/t", "code": "demo"}]},
        "text": {"status": "generated", "div": DIV},
        "extension": [{"url": "http://x.org/e", "valueString": "x"}],
        "modifierExtension": [{"url": "http://x.org/m", "valueBoolean": True}],
        "identifier": [{"system": "urn:oid:1.2.3", "value": "7",
                        "assigner": {"display": "GHT 94"}}],
        "name": [{"family": "Martin", "given": ["Claire"], "_given": [{"id": "g"}]}],
        "gender": "female",
        "birthDate": "1984-07-12",
        "_birthDate": {"extension": [{"url": "http://x.org/t", "valueTime": "10:00:00"}]},
        "maritalStatus": {"text": "married"},
        "photo": [{"contentType": "image/png", "data": "aGVsbG8="}],
        "contact": [{"name": {"family": "Martin"}}],
        "communication": [{"language": {"text": "fr"}}],
        "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}],
    }


def tags(res: dict[str, Any]) -> list[dict[str, Any]]:
    return list(res["meta"]["tag"])


def test_summary_true_keeps_summary_elements() -> None:
    out = summarize(patient(), "true")
    assert list(out) == [
        "resourceType", "id", "meta", "identifier", "name", "gender", "birthDate",
        "_birthDate", "link",
    ]
    # A complex data type is kept whole, its nested elements included.
    assert out["identifier"][0]["assigner"] == {"display": "GHT 94"}
    assert out["name"][0]["_given"] == [{"id": "g"}]
    assert out["meta"]["versionId"] == "3"
    assert tags(out) == [{"system": "http://x.org/t", "code": "demo"}, SUBSETTED]
    assert not [i for i in validate_resource(out) if i.severity == "error"]


def test_summary_true_recurses_into_backbone_elements() -> None:
    obs = {
        "resourceType": "Observation", "status": "final", "code": {"text": "bp"},
        "note": [{"text": "resting"}],
        "component": [{
            "code": {"text": "systolic"},
            "valueQuantity": {"value": 120},
            "interpretation": [{"text": "normal"}],
        }],
    }
    out = summarize(obs, "true")
    assert "note" not in out
    assert out["component"] == [{"code": {"text": "systolic"}, "valueQuantity": {"value": 120}}]


def test_summary_true_drops_attachment_data_only() -> None:
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "content": [{"attachment": {
            "contentType": "text/plain", "data": "aGVsbG8=", "url": "Binary/1", "title": "CR",
        }}],
    }
    out = summarize(doc, "true")
    assert out["content"] == [
        {"attachment": {"contentType": "text/plain", "url": "Binary/1", "title": "CR"}}
    ]
    # Attachment.data inside another data type (RelatedArtifact.document) goes too.
    params: dict[str, Any] = {
        "resourceType": "Parameters",
        "parameter": [{"name": "doc", "valueRelatedArtifact": {
            "type": "documentation", "document": {"data": "aGVsbG8=", "title": "doc"}}}],
    }
    assert summarize(params, "true")["parameter"][0]["valueRelatedArtifact"] == {
        "type": "documentation", "document": {"title": "doc"}
    }
    assert doc["content"][0]["attachment"]["data"] == "aGVsbG8="  # input untouched


def test_summary_true_summarizes_bundle_entries() -> None:
    bundle = {
        "resourceType": "Bundle", "type": "searchset",
        "entry": [{"fullUrl": "http://x.org/Patient/p1", "resource": patient()}],
    }
    out = summarize(bundle, "true")
    entry = out["entry"][0]["resource"]
    assert "text" not in entry and "contact" not in entry and entry["name"]


def test_summary_text() -> None:
    out = summarize(patient(), "text")
    assert list(out) == ["resourceType", "id", "meta", "text"]
    assert out["text"]["div"] == DIV and SUBSETTED in tags(out)


def test_summary_text_keeps_mandatory_top_level_elements() -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "hr"},
           "valueQuantity": {"value": 1}, "note": [{"text": "n"}]}
    out = summarize(obs, "text")
    assert set(out) == {"resourceType", "meta", "status", "code"}


def test_summary_data_removes_text() -> None:
    res = patient()
    out = summarize(res, "data")
    assert "text" not in out
    assert set(out) == set(res) - {"text"}
    assert SUBSETTED in tags(out)


def test_summary_false_is_the_resource() -> None:
    res = patient()
    assert summarize(res, "false") == patient()


def test_summary_count_and_unknown_modes_are_refused() -> None:
    with pytest.raises(FhirError) as caught:
        summarize(patient(), "count")
    assert caught.value.issues[0].expression == "_summary"
    with pytest.raises(FhirError):
        summarize(patient(), "short")


def test_summary_of_something_that_is_not_a_resource() -> None:
    with pytest.raises(FhirError):
        summarize({"resourceType": "HumanName"}, "true")


def test_summary_leaves_the_input_alone_and_tags_once() -> None:
    res = patient()
    before = copy.deepcopy(res)
    once = summarize(res, "true")
    twice = summarize(once, "true")
    assert res == before
    assert tags(twice).count(SUBSETTED) == 1


def test_summary_of_every_patient_example_stays_valid() -> None:
    folder = shared_data() / "fhir-r4" / "examples"
    for path in sorted(folder.glob("Patient-*.json")):
        res = json.loads(path.read_bytes())
        for mode in ("true", "text", "data"):
            out = summarize(res, mode)
            assert not [i for i in validate_resource(out) if i.severity == "error"], path.name


# --- _elements -----------------------------------------------------------------------


def test_elements_keeps_the_named_and_the_mandatory() -> None:
    obs = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "hr"},
           "subject": {"reference": "Patient/1"}, "valueQuantity": {"value": 1},
           "note": [{"text": "n"}]}
    out = select_elements(obs, ["value", "note"])
    assert list(out) == ["resourceType", "id", "meta", "status", "code", "valueQuantity", "note"]
    assert tags(out) == [SUBSETTED]


def test_elements_keeps_primitive_extensions_and_ignores_unknown_names() -> None:
    out = select_elements(patient(), [" birthDate", "nope", "Patient.gender", "value"])
    assert list(out) == ["resourceType", "id", "meta", "gender", "birthDate", "_birthDate"]
    assert out["meta"]["versionId"] == "3"


def test_elements_with_no_names() -> None:
    out = select_elements(patient(), [])
    assert list(out) == ["resourceType", "id", "meta"]
