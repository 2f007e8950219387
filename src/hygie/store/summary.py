"""Subsets of a resource for ``_summary`` and ``_elements`` (search.html#summary, #elements).

``summarize(resource, mode)`` implements the ``_summary`` modes of R4:

- ``true``: only the elements the base definition marks isSummary. Where such an
  element is a backbone element, its own isSummary children are kept; where it is a
  complex data type, its whole value is kept except ``Attachment.data``, as the R4
  definition of ``ElementDefinition.isSummary`` says ("Other than Attachment.data, all
  data type properties are included in the summary form"). A nested resource kept as a
  summary element (``Bundle.entry.resource``) is itself summarized.
- ``text``: ``text``, ``id``, ``meta`` and the mandatory top-level elements.
- ``data``: everything but ``text``.
- ``false``: the resource as stored.
- ``count`` returns no resource at all, so the search answers it; here it is refused.

Every subset (all modes but ``false``) gets the ``SUBSETTED`` tag in ``meta.tag`` so that
it cannot be mistaken for the full resource and written back (search.html#summary).
``select_elements`` does the same for ``_elements``: the named top-level elements (a
choice name such as ``value`` selects ``valueQuantity``), plus ``resourceType``, ``id``,
``meta`` and the mandatory elements, which a server SHOULD always return.

The isSummary flags come from the structure table (``structure.py``; see
``tools/gen_r4_structure.py`` for where they come from). The input is never modified;
the result may share unchanged nested values with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from hygie.store import outcomes
from hygie.store.structure import COMPLEX, PRIMITIVE, RESOURCE, ElementDef, TypeDef, structure

#: The tag that marks a subsetted resource (v3 ObservationValue SUBSETTED).
SUBSETTED: dict[str, str] = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
SUMMARY_MODES = ("true", "text", "data", "count", "false")
#: Always kept by _summary=text and _elements, whatever the type.
_ALWAYS = ("resourceType", "id", "meta")


def summarize(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """The ``_summary=<mode>`` form of a stored resource (search.html#summary)."""
    if mode == "false":
        return resource
    if mode == "count":
        raise outcomes.invalid(
            "_summary=count applies to a search, which then returns no resources",
            expression="_summary",
        )
    td = _resource_type(resource)
    if mode == "true":
        out = _summary_object(resource, td)
    elif mode == "text":
        keep = {"text", *_ALWAYS, *_mandatory(td)}
        out = _keep(resource, keep)
    elif mode == "data":
        out = {k: v for k, v in resource.items() if k not in ("text", "_text")}
    else:
        raise outcomes.invalid(
            f"_summary must be one of {', '.join(SUMMARY_MODES)}, not {mode[:40]!r}",
            expression="_summary",
        )
    return _tag_subsetted(out)


def select_elements(resource: dict[str, Any], elements: Iterable[str]) -> dict[str, Any]:
    """The ``_elements`` form of a resource: the named top-level elements and the
    mandatory ones (search.html#elements). Unknown names select nothing."""
    td = _resource_type(resource)
    keep = {*_ALWAYS, *_mandatory(td)}
    for raw in elements:
        name = raw.strip()
        if name.startswith(td.name + "."):  # tolerate the type-qualified spelling
            name = name[len(td.name) + 1 :]
        if name in td.elements:
            keep.add(name)
        keep.update(td.choice_names(name))
    return _tag_subsetted(_keep(resource, keep))


# --- internals ------------------------------------------------------------------------


def _resource_type(resource: Any) -> TypeDef:
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    table = structure()
    if not isinstance(rtype, str) or not table.is_resource_type(rtype):
        raise outcomes.invalid("not a FHIR R4 resource", expression="resourceType")
    return table.typedef(rtype)


def _mandatory(td: TypeDef) -> frozenset[str]:
    return _mandatory_names(td.name)


@cache
def _mandatory_names(type_name: str) -> frozenset[str]:
    """JSON names of the elements with min 1, choice groups included (all their names)."""
    td = structure().typedef(type_name)
    names = {el.name for el in td.required}
    for choice in td.required_choices:
        names.update(choice.names)
    return frozenset(names)


def _keep(obj: dict[str, Any], names: set[str] | frozenset[str]) -> dict[str, Any]:
    """The members named (with the ``_name`` extension of a kept primitive)."""
    return {k: v for k, v in obj.items() if k in names or (k[:1] == "_" and k[1:] in names)}


def _tag_subsetted(res: dict[str, Any]) -> dict[str, Any]:
    meta = dict(res.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(
        isinstance(t, dict) and t.get("system") == SUBSETTED["system"]
        and t.get("code") == SUBSETTED["code"]
        for t in tags
    ):
        tags.append(dict(SUBSETTED))
    meta["tag"] = tags
    out = {"resourceType": res["resourceType"]}
    if "id" in res:
        out["id"] = res["id"]
    out["meta"] = meta
    out.update((k, v) for k, v in res.items() if k not in out)
    return out


def _summary_object(obj: dict[str, Any], td: TypeDef) -> dict[str, Any]:
    """Keep the isSummary members of a resource or backbone element, recursively."""
    elements = td.elements
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "resourceType":
            out[key] = value
            continue
        el = elements.get(key[1:] if key[:1] == "_" else key)
        if el is None or not el.summary:
            continue
        out[key] = value if key[:1] == "_" else _summary_value(value, el)
    return out


def _summary_value(value: Any, el: ElementDef) -> Any:
    if el.kind == PRIMITIVE:
        return value
    if isinstance(value, list):
        return [_summary_item(item, el) for item in value]
    return _summary_item(value, el)


def _summary_item(item: Any, el: ElementDef) -> Any:
    if not isinstance(item, dict):
        return item
    if el.kind == RESOURCE:
        rtype = item.get("resourceType")
        table = structure()
        if isinstance(rtype, str) and table.is_resource_type(rtype):
            return _summary_object(item, table.typedef(rtype))
        return item
    td = structure().typedef(el.type)
    if td.kind == "backbone":
        return _summary_object(item, td)
    return _without_attachment_data(item, td)


@cache
def _attachment_holders() -> frozenset[str]:
    """Data types that are, or contain at any depth, an Attachment (a fixed point, as
    types refer to each other in cycles: Identifier.assigner is a Reference...)."""
    types = structure().types
    holders = {"Attachment"}
    changed = True
    while changed:
        changed = False
        for name, td in types.items():
            if name in holders or name == "Extension" or td.kind == "resource":
                continue  # extensions are kept whole, as any data type property
            if any(
                el.kind == COMPLEX and el.type in holders and el.type != "Extension"
                for el in td.elements.values()
            ):
                holders.add(name)
                changed = True
    return frozenset(holders)


def _holds_attachment(type_name: str) -> bool:
    return type_name in _attachment_holders()


def _without_attachment_data(item: dict[str, Any], td: TypeDef) -> dict[str, Any]:
    """A complex data type value, whole, except Attachment.data at any depth."""
    if not _holds_attachment(td.name):
        return item
    if td.name == "Attachment":
        return {k: v for k, v in item.items() if k not in ("data", "_data")}
    out = dict(item)
    for key, value in item.items():
        el = td.elements.get(key)
        if el is None or el.kind != COMPLEX or not _holds_attachment(el.type):
            continue
        sub = structure().typedef(el.type)
        if isinstance(value, list):
            out[key] = [
                _without_attachment_data(v, sub) if isinstance(v, dict) else v for v in value
            ]
        elif isinstance(value, dict):
            out[key] = _without_attachment_data(value, sub)
    return out


__all__ = ["SUBSETTED", "SUMMARY_MODES", "select_elements", "summarize"]
