"""The search-parameter registry: for each resource type, its parameters by code.

It reads the trimmed R4 definitions shipped in ``store/definitions`` (written by
``tools/trim_search_parameters.py``), so every standard parameter of every type
is known, not a chosen few. A definition often serves many types with one union
expression (``patient`` is ``Account.subject.where(resolve() is Patient) |
AllergyIntolerance.patient | ...``); for a type, the registry keeps only the parts
whose root is that type (or ``Resource``/``DomainResource``), compiles them once,
and notes which top-level JSON names they start from, so that indexing skips a
parameter at once when the resource has none of them.

The "plan" stage of search lives here too: which modifiers a parameter type takes
(search.html#modifiers), and whether it is searchable at all (composite and
special parameters are not). See https://hl7.org/fhir/R4/searchparameter.html.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hygie.store.fhirpath import Expression, parse
from hygie.store.fhirpath.fhirtypes import NOT_DOMAIN_RESOURCES
from hygie.store.fhirpath.nodes import Binary, Call, Identifier, Indexer, Member, Node, TypeOp

DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions" / "search-parameters.json"

#: Parameter types whose values have an index table.
INDEXED_TYPES = frozenset({"string", "token", "date", "number", "quantity", "reference", "uri"})

#: Modifiers each type takes and the store implements (search.html#modifiers).
SUPPORTED_MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"text", "not", "missing"}),
    "reference": frozenset({"identifier", "missing"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "uri": frozenset({"above", "below", "missing"}),
    "composite": frozenset(),
    "special": frozenset(),
}

#: Modifiers R4 defines for a type but the store cannot honour (they need terminology
#: services or canonical resolution): rejected with not-supported, never ignored.
UNSUPPORTED_MODIFIERS: dict[str, frozenset[str]] = {
    "token": frozenset({"above", "below", "in", "not-in", "of-type"}),
    "reference": frozenset({"above", "below"}),
    "string": frozenset({"text"}),
}

#: Functions through which an absent first element still gives an empty result.
_EMPTY_PRESERVING = frozenset(
    {"where", "first", "last", "tail", "skip", "take", "ofType", "resolve", "extension",
     "select", "distinct", "single"}
)

#: Parameters answered from the ``resource`` table's own columns, never indexed.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter as it applies to one resource type."""

    code: str
    type: str
    #: The resource type it was resolved for, or Resource for the common ones.
    base: str
    url: str
    #: The parts of the official expression that apply to ``base`` (None: no expression).
    expression: str | None
    targets: tuple[str, ...] = ()
    #: Modifiers accepted (reference parameters also take their target types).
    modifiers: frozenset[str] = frozenset()
    #: Prefixes (eq, ne, gt...) accepted: the definition's comparators.
    comparators: frozenset[str] = frozenset()
    multiple_or: bool = True
    multiple_and: bool = True
    #: Top-level JSON names the expression starts from; None when it may yield
    #: values even if none is present (``exists()``...).
    leading_keys: frozenset[str] | None = None
    compiled: Expression | None = field(default=None, compare=False, repr=False)

    @property
    def searchable(self) -> bool:
        """Whether the store can search on it (has an index table or a column)."""
        return self.type in INDEXED_TYPES and (
            self.compiled is not None or self.code in COLUMN_PARAMS
        )

    @property
    def supported(self) -> bool:
        """Same as ``searchable``: what a CapabilityStatement lists."""
        return self.searchable

    @property
    def indexed(self) -> bool:
        """Whether indexing a resource must extract values for it."""
        return self.searchable and self.code not in COLUMN_PARAMS


def union_parts(node: Node) -> list[Node]:
    """Split a top-level union ``a | b | c`` into its parts, in order."""
    if isinstance(node, Binary) and node.op == "|":
        return union_parts(node.left) + union_parts(node.right)
    return [node]


def root_name(node: Node) -> str | None:
    """The identifier a part starts from (``Observation`` in ``(Observation.value as X)``)."""
    current: Node | None = node
    while current is not None and not isinstance(current, Identifier):
        if isinstance(current, Member | Indexer):
            current = current.target
        elif isinstance(current, TypeOp):
            current = current.operand
        elif isinstance(current, Call):
            current = current.target
        elif isinstance(current, Binary):
            current = current.left
        else:
            return None
    return current.name if current is not None else None


def leading_key(node: Node) -> str | None:
    """The first element name a part reads, when its absence empties the result."""
    current = node
    while True:
        if isinstance(current, Member):
            if isinstance(current.target, Identifier) and current.target.name[:1].isupper():
                return current.name
            current = current.target
        elif isinstance(current, Identifier) and not current.name[:1].isupper():
            return current.name
        elif isinstance(current, Indexer):
            current = current.target
        elif isinstance(current, TypeOp) and current.op == "as":
            current = current.operand
        elif isinstance(current, Call) and current.target is not None and (
            current.name in _EMPTY_PRESERVING
        ):
            current = current.target
        else:
            return None


def _applies(root: str | None, res_type: str) -> bool:
    if root is None or not root[:1].isupper():
        # A path from the context itself (InsurancePlan-name is ``name | alias``).
        return True
    if root == res_type or root == "Resource":
        return True
    return root == "DomainResource" and res_type not in NOT_DOMAIN_RESOURCES


def _resolve(definition: dict[str, Any], res_type: str) -> SearchParam:
    text = definition.get("expression")
    kind = definition["type"]
    reduced: str | None = None
    compiled: Expression | None = None
    leading: frozenset[str] | None = None
    if text:
        tree = parse(text)
        parts = [p for p in union_parts(tree) if _applies(root_name(p), res_type)]
        if parts:
            reduced = " | ".join(text[p.start : p.end].strip() for p in parts)
            compiled = Expression(reduced)
            keys = [leading_key(p) for p in parts]
            leading = None if None in keys else frozenset(k for k in keys if k is not None)
    base = definition["base"]
    return SearchParam(
        code=definition["code"],
        type=kind,
        base=res_type if res_type in base else base[0],
        url=definition["url"],
        expression=reduced,
        targets=tuple(definition.get("target", ())),
        modifiers=SUPPORTED_MODIFIERS.get(kind, frozenset()),
        comparators=frozenset(definition.get("comparator", ())),
        multiple_or=definition.get("multipleOr", True),
        multiple_and=definition.get("multipleAnd", True),
        leading_keys=leading,
        compiled=compiled,
    )


class Registry:
    """Search parameters by resource type and code, resolved and compiled on first use."""

    def __init__(self, definitions: list[dict[str, Any]]) -> None:
        self._by_base: dict[str, list[dict[str, Any]]] = {}
        types: set[str] = set()
        for definition in definitions:
            for base in definition["base"]:
                self._by_base.setdefault(base, []).append(definition)
                types.add(base)
            types.update(definition.get("target", ()))
        self.resource_types: frozenset[str] = frozenset(types - {"Resource", "DomainResource"})
        self._cache: dict[str, Mapping[str, SearchParam]] = {}

    def params(self, res_type: str) -> Mapping[str, SearchParam]:
        """Every parameter of ``res_type`` by code, the Resource-level ones included."""
        found = self._cache.get(res_type)
        if found is None:
            bases = ["Resource"]
            if res_type not in NOT_DOMAIN_RESOURCES:
                bases.append("DomainResource")
            bases.append(res_type)
            out: dict[str, SearchParam] = {}
            for base in bases:
                for definition in self._by_base.get(base, ()):
                    out[definition["code"]] = _resolve(definition, res_type)
            found = MappingProxyType(out)
            self._cache[res_type] = found
        return found

    def for_type(self, res_type: str) -> Mapping[str, SearchParam]:
        """Same as ``params``."""
        return self.params(res_type)

    def param(self, res_type: str, code: str) -> SearchParam | None:
        """One parameter of ``res_type``, or None when it has no such code."""
        return self.params(res_type).get(code)

    def common_params(self) -> Mapping[str, SearchParam]:
        """The parameters every type has (Resource level): what a system search takes."""
        found = self._cache.get("Resource")
        if found is None:
            found = MappingProxyType(
                {d["code"]: _resolve(d, "Resource") for d in self._by_base.get("Resource", ())}
            )
            self._cache["Resource"] = found
        return found


@cache
def registry() -> Registry:
    """The registry of the R4 definitions shipped with the store (loaded once)."""
    document = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    return Registry(document["parameters"])


def is_resource_type(name: str) -> bool:
    """Whether ``name`` is an R4 resource type the registry knows."""
    return name in registry().resource_types
