"""The FHIR R4 (4.0.1) structure table: every resource, data type and backbone element.

The table is generated once by ``tools/gen_r4_structure.py`` (from the facts that the
``fhir.resources`` packages carry, see that script) and shipped gzip-compressed in
``definitions/r4-structure.json.gz``. This module loads it into frozen per-type lookups
once per process, so that validation (``validation.py``) and ``_summary`` projection
(``summary.py``) are plain dict look-ups: no base-chain walks, no string parsing.

Types are named as in the R4 StructureDefinitions: ``Patient``, ``HumanName``, and
backbone elements by their path, ``Patient.contact`` (elements reached through a
``contentReference`` reuse the type of the element they point to, e.g.
``Questionnaire.item.item`` is of type ``Questionnaire.item``). Choice elements
(``value[x]``) appear once per concrete JSON name (``valueQuantity``) and once as a
group (``value``). See https://hl7.org/fhir/R4/elementdefinition.html and
https://hl7.org/fhir/R4/formats.html#choice.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

#: Where an element's value comes from, precomputed so validators branch on an int.
PRIMITIVE, COMPLEX, RESOURCE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ElementDef:
    """One element of a type, under one JSON name."""

    name: str
    type: str
    kind: int
    min: int
    array: bool
    codes: frozenset[str] | None
    targets: frozenset[str] | None
    summary: bool
    choice: str | None
    extensible: bool

    @property
    def max(self) -> str:
        return "*" if self.array else "1"


@dataclass(frozen=True, slots=True)
class ChoiceDef:
    """A choice group (``value[x]``): its concrete JSON names and their types."""

    name: str
    names: dict[str, str]
    min: int
    summary: bool


@dataclass(frozen=True, slots=True)
class TypeDef:
    """A resource, complex data type or backbone element, with inherited elements."""

    name: str
    kind: str
    base: str | None
    elements: dict[str, ElementDef]
    choices: dict[str, ChoiceDef]
    #: Non-choice elements with min 1.
    required: tuple[ElementDef, ...]
    #: Choice groups with min 1.
    required_choices: tuple[ChoiceDef, ...]

    def choice_names(self, group: str) -> tuple[str, ...]:
        """The concrete JSON names of a choice group, e.g. ``value`` -> ``valueQuantity``..."""
        choice = self.choices.get(group)
        return tuple(choice.names) if choice else ()


@dataclass(frozen=True, slots=True)
class Structure:
    """The whole R4 table."""

    fhir_version: str
    types: dict[str, TypeDef]
    resource_types: frozenset[str]
    abstract_types: frozenset[str]
    primitive_types: frozenset[str]
    data_types: frozenset[str]

    def typedef(self, name: str) -> TypeDef:
        """The definition of a type; raises KeyError for a name R4 does not have."""
        return self.types[name]

    def element(self, type_name: str, json_name: str) -> ElementDef | None:
        """The element ``json_name`` of ``type_name``, or None when the type has none."""
        typedef = self.types.get(type_name)
        return typedef.elements.get(json_name) if typedef else None

    def is_resource_type(self, name: str) -> bool:
        """True for a concrete R4 resource type (not Resource or DomainResource)."""
        return name in self.resource_types


def _element(name: str, raw: dict[str, Any], primitives: frozenset[str]) -> ElementDef:
    (type_code,) = raw["type"]
    if type_code in primitives:
        kind = PRIMITIVE
    elif type_code == "Resource":
        kind = RESOURCE
    else:
        kind = COMPLEX
    codes = raw.get("codes")
    targets = raw.get("targets")
    return ElementDef(
        name=name,
        type=type_code,
        kind=kind,
        min=int(raw.get("min", 0)),
        array=raw.get("max", "1") == "*",
        codes=frozenset(codes) if codes else None,
        targets=frozenset(targets) if targets else None,
        summary=bool(raw.get("summary", False)),
        choice=raw.get("choice"),
        extensible=kind == PRIMITIVE and type_code != "xhtml" and not raw.get("noExt", False),
    )


def _type(name: str, raw: dict[str, Any], primitives: frozenset[str]) -> TypeDef:
    elements = {n: _element(n, e, primitives) for n, e in raw["elements"].items()}
    choices = {
        g: ChoiceDef(
            name=g,
            names=dict(c["names"]),
            min=int(c.get("min", 0)),
            summary=bool(c.get("summary", False)),
        )
        for g, c in raw.get("choices", {}).items()
    }
    return TypeDef(
        name=name,
        kind=raw["kind"],
        base=raw.get("base"),
        elements=elements,
        choices=choices,
        required=tuple(e for e in elements.values() if e.min and not e.choice),
        required_choices=tuple(c for c in choices.values() if c.min),
    )


def parse_structure(raw: dict[str, Any]) -> Structure:
    """Build the lookups from the decoded JSON table."""
    primitives = frozenset(raw["primitiveTypes"])
    return Structure(
        fhir_version=raw["fhirVersion"],
        types={n: _type(n, t, primitives) for n, t in raw["types"].items()},
        resource_types=frozenset(raw["resourceTypes"]),
        abstract_types=frozenset(raw["abstractTypes"]),
        primitive_types=primitives,
        data_types=frozenset(raw["dataTypes"]),
    )


@cache
def structure() -> Structure:
    """The R4 table, loaded once per process from the package data."""
    blob = resources.files("hygie.store.definitions").joinpath("r4-structure.json.gz")
    return parse_structure(json.loads(gzip.decompress(blob.read_bytes())))
