"""Every official R4 (4.0.1) example validates with no error (warnings are allowed).

Two files of the example package are not examples: ``package.json`` is the NPM
manifest of the package (not a FHIR resource), and ``ig-r4.json`` is the package's own
ImplementationGuide index, which leaves out ``name`` and ``status`` (both 1..1 in R4,
an error for the R4 reference validator too). The rules stay strict: the test pins the
exact errors of that file, so that a change in either direction shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hygie.store.validation import validate_resource
from tests.conftest import shared_data

NOT_A_RESOURCE = {"package.json"}
KNOWN_ERRORS = {
    "ig-r4.json": {
        ("required", "ImplementationGuide.name"),
        ("required", "ImplementationGuide.status"),
    },
}


def _example_files() -> list[Path]:
    folder = shared_data() / "fhir-r4" / "examples"
    return sorted(folder.glob("*.json"))


def test_corpus_is_complete() -> None:
    assert len(_example_files()) == 708


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    body = json.loads(path.read_bytes())
    if path.name in NOT_A_RESOURCE:
        assert "resourceType" not in body and body["name"] == "hl7.fhir.r4.examples"
        return
    issues = validate_resource(body, expected_type=body["resourceType"])
    errors = {(i.code, i.expression) for i in issues if i.severity != "warning"}
    assert errors == KNOWN_ERRORS.get(path.name, set()), [
        i for i in issues if i.severity != "warning"
    ]
