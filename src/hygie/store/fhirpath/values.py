"""Items of a FHIRPath collection, the evaluation environment, and value rules.

A collection is a plain Python list. Its items are the JSON values themselves
(dict, str, bool, int, float, Decimal for literals) so that navigation copies
nothing; an item whose FHIR type a choice suffix told (``valueQuantity``) is
wrapped in ``Typed`` so that the type survives to ``as``/``is`` and to the caller.
Equality, equivalence, ordering and the singleton-to-boolean rule follow
https://hl7.org/fhirpath/N1/#equality, #comparison and #singleton-evaluation-of-collections.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class FhirPathEvaluationError(ValueError):
    """Raised when an expression cannot be evaluated on its input (wrong arity...)."""


class Typed:
    """A value with the FHIR type its JSON name told (``valueQuantity`` -> Quantity)."""

    __slots__ = ("type", "value")

    def __init__(self, value: Any, type_name: str) -> None:
        self.value = value
        self.type = type_name

    def __repr__(self) -> str:
        return f"Typed({self.value!r}, {self.type!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Typed):
            return self.value == other.value and self.type == other.type
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.type)


class Env:
    """What an evaluation knows besides its focus: the root resource and variables."""

    __slots__ = ("resource", "variables")

    def __init__(self, resource: Any, variables: dict[str, Any] | None = None) -> None:
        self.resource = resource
        self.variables = variables or {}

    def variable(self, name: str) -> list[Any]:
        if name in ("%resource", "%context", "%rootResource"):
            return [] if self.resource is None else [self.resource]
        if name == "%ucum":
            return ["http://unitsofmeasure.org"]
        if name == "%sct":
            return ["http://snomed.info/sct"]
        if name == "%loinc":
            return ["http://loinc.org"]
        key = name[1:]
        if key in self.variables:
            value = self.variables[key]
            return list(value) if isinstance(value, list) else [value]
        raise FhirPathEvaluationError(f"unknown variable {name}")


def plain(item: Any) -> Any:
    """The JSON value of an item, without its type wrapper."""
    return item.value if item.__class__ is Typed else item


def type_of(item: Any) -> str | None:
    """The FHIR type of an item when known: from a choice suffix, or a resource's type."""
    if item.__class__ is Typed:
        return item.type  # type: ignore[no-any-return]
    if item.__class__ is dict:
        rtype = item.get("resourceType")
        return rtype if isinstance(rtype, str) else None
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _number(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def items_equal(a: Any, b: Any) -> bool | None:
    """FHIRPath ``=`` on two items; None when the answer is empty (dates of other precision)."""
    a, b = plain(a), plain(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return _number(a) == _number(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a == b
    return False


def items_equivalent(a: Any, b: Any) -> bool:
    """FHIRPath ``~``: strings compared ignoring case and white-space runs; decimals rounded."""
    a, b = plain(a), plain(b)
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.lower().split()) == " ".join(b.lower().split())
    return bool(items_equal(a, b))


def compare_items(a: Any, b: Any) -> int | None:
    """Order two items for ``<``/``>``: -1, 0, 1, or None when they do not compare."""
    a, b = plain(a), plain(b)
    if _is_number(a) and _is_number(b):
        x, y = _number(a), _number(b)
    elif isinstance(a, str) and isinstance(b, str) and not isinstance(a, bool):
        x, y = a, b  # type: ignore[assignment]
    else:
        return None
    return (x > y) - (x < y)


def to_boolean(collection: list[Any]) -> bool | None:
    """Singleton evaluation: empty -> None, one boolean -> it, one other item -> True."""
    if not collection:
        return None
    if len(collection) > 1:
        raise FhirPathEvaluationError("a boolean was expected, found several items")
    value = plain(collection[0])
    return value if isinstance(value, bool) else True


def unique(items: list[Any]) -> list[Any]:
    """Keep the first of equal items, in order (``|``, ``distinct()``)."""
    out: list[Any] = []
    for item in items:
        if not any(items_equal(item, seen) for seen in out):
            out.append(item)
    return out
