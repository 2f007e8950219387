"""What the engine knows of FHIR R4 types without reading StructureDefinitions.

A choice element (``value[x]``) is written in JSON under its name plus the type
name with an upper-case first letter (``valueQuantity``, ``onsetDateTime``); that
suffix is the one place where JSON says the type of a value, so this module maps
every R4 suffix back to its type name. It also holds the few subtype relations
that ``is``/``as``/``ofType`` must honour (an Age is a Quantity, a code is a
string), and judges the type of a value that carries no suffix from its shape.
See https://hl7.org/fhir/R4/formats.html#choice and datatypes.html.
"""

from __future__ import annotations

from typing import Any

#: R4 primitive types, as FHIRPath names them in the FHIR namespace.
PRIMITIVE_TYPES = (
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
    "instant", "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
    "uri", "url", "uuid",
)

#: R4 complex data types that may appear as the type of a choice element.
COMPLEX_TYPES = (
    "Address", "Age", "Annotation", "Attachment", "CodeableConcept", "Coding", "ContactDetail",
    "ContactPoint", "Contributor", "Count", "DataRequirement", "Distance", "Dosage", "Duration",
    "Expression", "HumanName", "Identifier", "Meta", "Money", "ParameterDefinition", "Period",
    "Quantity", "Range", "Ratio", "Reference", "RelatedArtifact", "SampledData", "Signature",
    "Timing", "TriggerDefinition", "UsageContext",
)

#: JSON suffix of a choice element -> FHIR type name (``DateTime`` -> ``dateTime``).
CHOICE_SUFFIXES: dict[str, str] = {
    **{t[0].upper() + t[1:]: t for t in PRIMITIVE_TYPES},
    **{t: t for t in COMPLEX_TYPES},
}

#: Resource types that are not DomainResources (no text, contained, extension).
NOT_DOMAIN_RESOURCES = frozenset({"Binary", "Bundle", "Parameters"})

#: Direct parent of each type that has one besides Element (datatypes.html, profiles).
_PARENT: dict[str, str] = {
    "Age": "Quantity", "Count": "Quantity", "Distance": "Quantity", "Duration": "Quantity",
    "MoneyQuantity": "Quantity", "SimpleQuantity": "Quantity",
    "code": "string", "id": "string", "markdown": "string",
    "canonical": "uri", "oid": "uri", "url": "uri", "uuid": "uri",
    "positiveInt": "integer", "unsignedInt": "integer",
}

#: FHIRPath system types and the FHIR types whose values they hold (N1 #types).
_SYSTEM_TYPES: dict[str, frozenset[str]] = {
    "String": frozenset({"string", "code", "id", "markdown", "uri", "url", "canonical", "oid",
                         "uuid", "base64Binary"}),
    "Boolean": frozenset({"boolean"}),
    "Integer": frozenset({"integer", "positiveInt", "unsignedInt"}),
    "Decimal": frozenset({"decimal"}),
    "Date": frozenset({"date"}),
    "DateTime": frozenset({"dateTime", "instant"}),
    "Time": frozenset({"time"}),
}


def is_subtype(type_name: str, wanted: str) -> bool:
    """Whether a value of ``type_name`` is also a ``wanted`` (namespaces allowed)."""
    namespace, _, bare = wanted.rpartition(".")
    if namespace == "System":
        return type_name in _SYSTEM_TYPES.get(bare, frozenset()) or type_name == bare
    current: str | None = type_name
    while current is not None:
        if current == bare:
            return True
        current = _PARENT.get(current)
    return False


def is_resource_of(resource_type: str, wanted: str) -> bool:
    """Whether a resource of ``resource_type`` is a ``wanted`` (its type or an abstract base)."""
    bare = wanted.rpartition(".")[2]
    if bare == "Resource":
        return True
    if bare == "DomainResource":
        return resource_type not in NOT_DOMAIN_RESOURCES
    return resource_type == bare


def shape_matches(value: Any, wanted: str) -> bool:
    """Judge ``value is wanted`` for a value whose type no JSON key told.

    A resource says its type (``resourceType``); for the rest only the JSON kind is
    known, so a string is taken for any string-like primitive, a number for integer
    or decimal, and a complex value for nothing: without the element definitions
    its type cannot be told apart from its siblings'.
    """
    bare = wanted.rpartition(".")[2]
    if isinstance(value, dict):
        rtype = value.get("resourceType")
        return isinstance(rtype, str) and is_resource_of(rtype, bare)
    if isinstance(value, bool):
        return bare in ("boolean", "Boolean")
    if isinstance(value, int):
        return bare in ("integer", "Integer", "decimal", "Decimal", "positiveInt", "unsignedInt")
    if isinstance(value, float):
        return bare in ("decimal", "Decimal")
    if isinstance(value, str):
        return bare in _SYSTEM_TYPES["String"] or bare in (
            "String", "date", "dateTime", "instant", "time", "Date", "DateTime", "Time",
        )
    return False
