"""The R4 structure table: its facts, its lookups, and the generator's merging logic."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hygie.store.structure import COMPLEX, PRIMITIVE, RESOURCE, parse_structure, structure

ROOT = Path(__file__).resolve().parents[2]


def test_type_lists() -> None:
    table = structure()
    assert table.fhir_version == "4.0.1"
    assert len(table.resource_types) == 146
    assert {"Patient", "Observation", "Bundle", "Parameters", "Binary"} <= table.resource_types
    assert not {"Resource", "DomainResource"} & table.resource_types
    assert {"Resource", "DomainResource", "Element", "BackboneElement"} <= table.abstract_types
    assert len(table.primitive_types) == 20
    assert {"xhtml", "positiveInt", "canonical"} <= table.primitive_types
    assert {"HumanName", "Quantity", "Extension", "Reference"} <= table.data_types
    assert table.is_resource_type("Patient") and not table.is_resource_type("HumanName")


def test_every_element_type_is_defined() -> None:
    table = structure()
    for td in table.types.values():
        for el in td.elements.values():
            assert el.type in table.types or el.type in table.primitive_types, (td.name, el.name)


def test_patient_elements() -> None:
    patient = structure().typedef("Patient")
    assert patient.kind == "resource" and patient.base == "DomainResource"
    name = patient.elements["name"]
    assert (name.type, name.kind, name.array, name.min, name.max) == (
        "HumanName", COMPLEX, True, 0, "*"
    )
    assert patient.elements["gender"].codes == frozenset({"male", "female", "other", "unknown"})
    assert patient.elements["birthDate"].kind == PRIMITIVE
    assert patient.elements["contained"].kind == RESOURCE
    # Inherited elements are copied in: no base chain to walk.
    assert {"id", "meta", "text", "extension", "modifierExtension"} <= set(patient.elements)
    assert patient.elements["managingOrganization"].targets == frozenset({"Organization"})


def test_backbone_elements_are_named_by_path() -> None:
    table = structure()
    assert table.typedef("Patient").elements["contact"].type == "Patient.contact"
    contact = table.typedef("Patient.contact")
    assert contact.kind == "backbone"
    assert contact.elements["name"].type == "HumanName"
    # A contentReference reuses the type it points to.
    assert table.typedef("Questionnaire.item").elements["item"].type == "Questionnaire.item"


def test_choice_elements() -> None:
    obs = structure().typedef("Observation")
    assert obs.elements["valueQuantity"].choice == "value"
    assert obs.elements["valueQuantity"].type == "Quantity"
    assert "valueQuantity" in obs.choice_names("value")
    assert "valueSampledData" in obs.choice_names("value")
    assert obs.choice_names("nope") == ()
    med = structure().typedef("MedicationRequest")
    assert [c.name for c in med.required_choices] == ["medication"]


def test_required_elements() -> None:
    obs = structure().typedef("Observation")
    assert {el.name for el in obs.required} == {"status", "code"}
    assert structure().element("Extension", "url") is not None
    assert structure().typedef("Extension").elements["url"].min == 1


def test_hierarchical_code_lists_are_complete() -> None:
    status = structure().typedef("Observation").elements["status"]
    assert status.codes is not None and {"cancelled", "entered-in-error"} <= status.codes
    assert "+" not in status.codes


def test_attributes_take_no_primitive_extension() -> None:
    table = structure()
    assert not table.typedef("Extension").elements["url"].extensible
    assert not table.typedef("HumanName").elements["id"].extensible
    assert table.typedef("Patient").elements["id"].extensible
    assert not table.typedef("Narrative").elements["div"].extensible
    assert not table.typedef("Patient").elements["name"].extensible


def test_summary_flags_from_r4b() -> None:
    patient = structure().typedef("Patient")
    assert patient.elements["name"].summary
    assert patient.elements["deceasedBoolean"].summary
    assert not patient.elements["contact"].summary
    assert not patient.elements["text"].summary
    assert not patient.elements["photo"].summary
    obs = structure().typedef("Observation")
    assert obs.choices["value"].summary and obs.elements["component"].summary
    component = structure().typedef("Observation.component")
    assert component.elements["code"].summary and not component.elements["interpretation"].summary


def test_summary_fallback_where_r4b_has_no_such_type() -> None:
    # MedicinalProduct is R4 only: mandatory elements, id, meta, implicitRules.
    product = structure().typedef("MedicinalProduct")
    flagged = {n for n, el in product.elements.items() if el.summary}
    assert {"id", "meta", "implicitRules", "modifierExtension", "name"} <= flagged
    assert not product.elements["text"].summary


def test_unknown_lookups() -> None:
    table = structure()
    with pytest.raises(KeyError):
        table.typedef("Patientx")
    assert table.element("Patient", "nope") is None
    assert table.element("Nope", "id") is None


def test_table_is_loaded_once() -> None:
    assert structure() is structure()


# --- the generator --------------------------------------------------------------------


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_r4_structure", ROOT / "tools" / "gen_r4_structure.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _field(name: str, tp: str, **extra: Any) -> dict[str, Any]:
    base = {
        "name": name, "type": tp, "array": False, "required": False, "choice": None,
        "choiceRequired": False, "codes": None, "targets": None, "extensible": True,
    }
    base.update(extra)
    return base


def _introspection() -> dict[str, Any]:
    return {
        "primitives": ["string", "boolean", "code"],
        "classes": {
            "Element": {"kind": "abstract-datatype", "base": None,
                        "fields": [_field("id", "string")]},
            "Resource": {"kind": "abstract-resource", "base": None,
                         "fields": [_field("id", "string")]},
            "Thing": {"kind": "resource", "base": "Resource", "fields": [
                _field("id", "string"),
                _field("status", "code", required=True, codes=["a", "b"]),
                _field("part", "ThingPart", array=True),
                _field("valueString", "string", choice="value", choiceRequired=True),
                _field("valueBoolean", "boolean", choice="value", choiceRequired=True),
            ]},
            "ThingPart": {"kind": "nested", "base": "Element", "fields": [
                _field("id", "string"), _field("part", "ThingPart", array=True),
                _field("label", "string"),
            ]},
        },
    }


def test_generator_builds_paths_choices_and_summary_fallback() -> None:
    gen = _generator()
    table = gen.build_table(_introspection(), {"Thing": {"status": True, "[x]value": True}})
    thing = table["types"]["Thing"]
    assert thing["elements"]["part"] == {"type": ["Thing.part"], "max": "*"}
    assert table["types"]["Thing.part"]["elements"]["part"]["type"] == ["Thing.part"]
    assert thing["choices"]["value"] == {
        "names": {"valueString": "string", "valueBoolean": "boolean"},
        "min": 1, "summary": True,
    }
    assert thing["elements"]["status"] == {
        "type": ["code"], "min": 1, "codes": ["a", "b"], "summary": True,
    }
    # ThingPart has no R4B flags: id is summary, label is not.
    part = table["types"]["Thing.part"]["elements"]
    assert part["id"].get("summary") and "summary" not in part["label"]
    assert part["id"]["noExt"] is True and "noExt" not in thing["elements"]["id"]
    assert table["resourceTypes"] == ["Thing"]
    assert table["abstractTypes"] == ["Element", "Resource"]
    parse_structure(table)  # the runtime reads what the generator writes


def test_generator_output_is_deterministic(tmp_path: Path) -> None:
    gen = _generator()
    table = gen.build_table(_introspection(), {})
    gen.write_table(table, tmp_path / "a.json.gz")
    gen.write_table(json.loads(json.dumps(table)), tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert json.loads(gzip.decompress((tmp_path / "a.json.gz").read_bytes())) == table


def test_committed_table_has_the_generator_layout() -> None:
    raw = ROOT / "src" / "hygie" / "store" / "definitions" / "r4-structure.json.gz"
    table = json.loads(gzip.decompress(raw.read_bytes()))
    assert set(table) == {
        "fhirVersion", "source", "primitiveTypes", "resourceTypes", "abstractTypes",
        "dataTypes", "types",
    }
    assert table["types"]["Observation"]["elements"]["status"]["min"] == 1
