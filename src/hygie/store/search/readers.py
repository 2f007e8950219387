"""Reading every indexed parameter's values out of a resource, one plan per type.

Indexing a resource evaluates the expression of each searchable parameter of its
type (thirty to fifty), and most of them find nothing: an Observation has about ten
of its thirty-four. Most of the others are plain paths (``Observation.code``,
``(Observation.value as Quantity)``, ``Observation.subject.where(resolve() is
Patient)``), and several parameters share a path (``code`` and ``combo-code``).
So a ``TypeReader`` splits each parameter's expression into its union parts once,
and for each resource:

- walks the resource's top-level keys once, noting which element names are present
  (``valueQuantity`` is the element ``value``, of type Quantity), so that only the
  parameters whose parts start from a present element are read at all;
- reads each distinct part once per resource, however many parameters use it;
- reads a plain path (member steps, an optional ``as T`` on its last step, an
  optional ``where(resolve() is T)``) straight from the JSON, and hands the other
  parts to the compiled FHIRPath of ``hygie.store.fhirpath``.

The values are the ones the parameter's whole expression gives, in the same order:
the member, ``as`` and ``where(resolve() is T)`` steps are the engine's own, and a
union keeps the first of equal values as ``|`` does. ``tests/store/
test_search_extract.py`` checks this against the whole expression on every official
example and on synthetic records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from hygie.store.fhirpath import Env, FhirPathEvaluationError, Typed, parse
from hygie.store.fhirpath.compiler import (
    compile_node,
    compile_where_resolve_is,
    is_resolve_test,
    member_step,
    typed_member_step,
)
from hygie.store.fhirpath.fhirtypes import (
    CHOICE_SUFFIXES,
    is_subtype,
    shape_matches,
)
from hygie.store.fhirpath.nodes import Call, Identifier, Member, Node, TypeOp
from hygie.store.fhirpath.values import unique
from hygie.store.search.params import SearchParam, leading_key, registry, union_parts

#: The items a part reads from one resource; ``env`` is built only when a part needs it.
PartReader = Callable[[dict[str, Any], dict[str, list[tuple[Any, str | None]]], Env], list[Any]]


def _listed(value: Any) -> list[Any]:
    """A member's value as items, as a member step gives them (nulls dropped)."""
    if value.__class__ is list:
        return [v for v in value if v is not None]
    return [value]


def _first_items(entries: list[tuple[Any, str | None]]) -> list[Any]:
    """The items of a top-level element from its JSON members (``found`` entries).

    As the member step: the member of the element's own name when it has a value,
    else every choice spelling (``valueQuantity``...), each item typed.
    """
    for value, type_name in entries:
        if type_name is None and value is not None:
            return _listed(value)
    out: list[Any] = []
    for value, type_name in entries:
        if type_name is None or value is None:
            continue
        if value.__class__ is list:
            out.extend(Typed(v, type_name) for v in value if v is not None)
        else:
            out.append(Typed(value, type_name))
    return out


def _first_items_as(entries: list[tuple[Any, str | None]], wanted: str) -> list[Any]:
    """``name as T`` on the resource itself: the typed member step of the compiler."""
    for value, type_name in entries:
        if type_name is None and value is not None:
            values = value if value.__class__ is list else [value]
            return [v for v in values if v is not None and shape_matches(v, wanted)]
    out: list[Any] = []
    for value, type_name in entries:
        if type_name is None or value is None or not is_subtype(type_name, wanted):
            continue
        if value.__class__ is list:
            out.extend(Typed(v, type_name) for v in value if v is not None)
        else:
            out.append(Typed(value, type_name))
    return out


@dataclass(frozen=True, slots=True)
class _PlainPath:
    """``Type.n1.n2...nk``, optionally ``as T`` on nk and ``where(resolve() is R)`` after."""

    names: tuple[str, ...]
    as_type: str | None
    resolve_is: str | None


def _plain_path(node: Node, res_type: str) -> _PlainPath | None:
    """The plain-path reading of a part, or None when it is anything else."""
    resolve_is = None
    if (
        isinstance(node, Call)
        and node.name == "where"
        and node.target is not None
        and len(node.args) == 1
    ):
        resolve_is = is_resolve_test(node.args[0])
        if resolve_is is None:
            return None
        node = node.target
    as_type = None
    if isinstance(node, TypeOp) and node.op == "as" and isinstance(node.operand, Member):
        as_type = node.type_name
        node = node.operand
    names: list[str] = []
    while isinstance(node, Member):
        names.append(node.name)
        node = node.target
    if not names or not isinstance(node, Identifier):
        return None
    head = node.name
    # The head must be a type the resource always is (the registry kept only those).
    if head != res_type and head not in ("Resource", "DomainResource"):
        return None
    return _PlainPath(tuple(reversed(names)), as_type, resolve_is)


def _plain_reader(path: _PlainPath) -> PartReader:
    first = path.names[0]
    rest = path.names[1:]
    steps = [member_step(n) for n in rest]
    as_type = path.as_type
    if as_type is not None and rest:
        steps[-1] = typed_member_step(rest[-1], as_type)
    chain = tuple(steps)
    first_as = as_type if not rest else None
    keep = (
        compile_where_resolve_is(None, path.resolve_is) if path.resolve_is is not None else None
    )

    def read(
        resource: dict[str, Any], found: dict[str, list[tuple[Any, str | None]]], env: Env
    ) -> list[Any]:
        entries = found.get(first)
        if entries is None:
            return []
        items = _first_items(entries) if first_as is None else _first_items_as(entries, first_as)
        for step in chain:
            if not items:
                return items
            items = step(items)
        if keep is not None and items:
            items = keep(items, env)
        return items

    return read


def _general_reader(node: Node) -> PartReader:
    run = compile_node(node)
    return lambda resource, found, env: run([resource], env)


@dataclass(frozen=True, slots=True)
class _ParamReading:
    """One indexed parameter: the parts of its expression, as indices into the parts."""

    param: SearchParam
    parts: tuple[int, ...]


class TypeReader:
    """The reading plan of one resource type: its indexed parameters and their parts."""

    __slots__ = ("_by_key", "_keyless", "_params", "_parts", "_users")

    def __init__(self, params: list[SearchParam], res_type: str) -> None:
        part_index: dict[str, int] = {}
        self._parts: list[PartReader] = []
        leading_names: list[str | None] = []
        self._params: list[_ParamReading] = []
        for param in params:
            assert param.expression is not None
            indices = []
            for node in union_parts(parse(param.expression)):
                text = param.expression[node.start : node.end].strip()
                index = part_index.get(text)
                if index is None:
                    index = part_index[text] = len(self._parts)
                    plain_path = _plain_path(node, res_type)
                    if plain_path is not None:
                        self._parts.append(_plain_reader(plain_path))
                        leading_names.append(plain_path.names[0])
                    else:
                        self._parts.append(_general_reader(node))
                        leading_names.append(leading_key(node))
                indices.append(index)
            self._params.append(_ParamReading(param, tuple(indices)))
        #: Element name -> the parameters (positions) that read from it.
        users: dict[str, set[int]] = {}
        keyless: list[int] = []
        for position, reading in enumerate(self._params):
            names = [leading_names[i] for i in reading.parts]
            if None in names:
                keyless.append(position)
                continue
            for name in names:
                assert name is not None
                users.setdefault(name, set()).add(position)
        self._users = {name: frozenset(found) for name, found in users.items()}
        self._keyless = frozenset(keyless)
        #: JSON key -> (element name, type told by a choice suffix or None).
        self._by_key: dict[str, list[tuple[str, str | None]]] = {}
        for name in users:
            self._by_key.setdefault(name, []).append((name, None))
            for suffix, type_name in CHOICE_SUFFIXES.items():
                self._by_key.setdefault(name + suffix, []).append((name, type_name))

    def read(self, resource: dict[str, Any]) -> list[tuple[SearchParam, list[Any]]]:
        """Each parameter that has values in ``resource``, with its values, in plan order.

        A parameter whose expression cannot be evaluated on this body (two values where
        the definition expects one) is left out, as the whole expression would fail.
        """
        found: dict[str, list[tuple[Any, str | None]]] = {}
        by_key = self._by_key
        for key, value in resource.items():
            spots = by_key.get(key)
            if spots is not None:
                for name, type_name in spots:
                    entries = found.get(name)
                    if entries is None:
                        found[name] = [(value, type_name)]
                    else:
                        entries.append((value, type_name))
        active = set(self._keyless)
        users = self._users
        for name in found:
            active.update(users[name])
        if not active:
            return []
        env = Env(resource)
        parts = self._parts
        cached: dict[int, list[Any] | None] = {}
        out: list[tuple[SearchParam, list[Any]]] = []
        for position in sorted(active):
            reading = self._params[position]
            indices = reading.parts
            try:
                if len(indices) == 1:
                    items = _part(indices[0], parts, cached, resource, found, env)
                else:
                    items = []
                    for index in indices:
                        items += _part(index, parts, cached, resource, found, env)
                    if len(items) > 1:
                        items = unique(items)
            except FhirPathEvaluationError:
                continue
            if items:
                out.append((reading.param, items))
        return out


def _part(
    index: int,
    parts: list[PartReader],
    cached: dict[int, list[Any] | None],
    resource: dict[str, Any],
    found: dict[str, list[tuple[Any, str | None]]],
    env: Env,
) -> list[Any]:
    """A part's items, read once per resource; a failure is remembered and raised again."""
    if index in cached:
        items = cached[index]
        if items is None:
            raise FhirPathEvaluationError("the part failed on this resource")
        return items
    try:
        items = parts[index](resource, found, env)
    except FhirPathEvaluationError:
        cached[index] = None
        raise
    cached[index] = items
    return items


@cache
def type_reader(res_type: str) -> TypeReader:
    """The reading plan of ``res_type`` (built on first use, then kept)."""
    params = registry().params(res_type)
    return TypeReader([p for p in params.values() if p.indexed], res_type)
