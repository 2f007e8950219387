"""Reading every indexed parameter's values out of a resource, one plan per type.

Indexing a resource evaluates the expression of each searchable parameter of its
type (thirty to fifty), and most of them find nothing: an Observation has values for
about ten of its thirty-four. Most expressions are plain paths (``Observation.code``,
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
example and on synthetic records. One difference, on bodies validation refuses: with
two spellings of one choice element (``valueQuantity`` and ``valueString``) the values
come in the JSON's order, where the engine's order follows a set's.
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

#: Choice spellings present in a resource, by element name: ``value`` -> [``valueQuantity``].
Choices = dict[str, list[str]]
#: The items a part reads from one resource; ``env`` is only used by general parts.
PartReader = Callable[[dict[str, Any], Choices, Env], list[Any]]


def _first_items(resource: dict[str, Any], name: str, choices: Choices) -> list[Any]:
    """The items of the top-level element ``name``, as the member step reads them: its
    own member when it has a value, else each choice spelling's, typed (Quantity...)."""
    value = resource.get(name)
    if value is not None:
        if value.__class__ is list:
            return [v for v in value if v is not None]
        return [value]
    keys = choices.get(name)
    if keys is None:
        return []
    out: list[Any] = []
    for key in keys:
        found = resource[key]
        type_name = CHOICE_SUFFIXES[key[len(name) :]]
        if found.__class__ is list:
            out.extend(Typed(v, type_name) for v in found if v is not None)
        elif found is not None:
            out.append(Typed(found, type_name))
    return out


def _first_items_as(
    resource: dict[str, Any], name: str, choices: Choices, wanted: str
) -> list[Any]:
    """``name as T`` on the resource itself, as the compiler's typed member step."""
    value = resource.get(name)
    if value is not None:
        values = value if value.__class__ is list else [value]
        return [v for v in values if v is not None and shape_matches(v, wanted)]
    keys = choices.get(name)
    if keys is None:
        return []
    out: list[Any] = []
    for key in keys:
        found = resource[key]
        type_name = CHOICE_SUFFIXES[key[len(name) :]]
        if found is None or not is_subtype(type_name, wanted):
            continue
        if found.__class__ is list:
            out.extend(Typed(v, type_name) for v in found if v is not None)
        else:
            out.append(Typed(found, type_name))
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
    keep = (
        compile_where_resolve_is(None, path.resolve_is) if path.resolve_is is not None else None
    )
    if as_type is not None and not rest:
        wanted = as_type

        def read_as(resource: dict[str, Any], choices: Choices, env: Env) -> list[Any]:
            items = _first_items_as(resource, first, choices, wanted)
            if keep is not None and items:
                items = keep(items, env)
            return items

        return read_as
    if not chain and keep is None:
        # The most common part, ``Type.name``: the member step, written out.
        def read_member(resource: dict[str, Any], choices: Choices, env: Env) -> list[Any]:
            value = resource.get(first)
            if value is not None:
                if value.__class__ is list:
                    return [v for v in value if v is not None]
                return [value]
            return _first_items(resource, first, choices)

        return read_member

    def read(resource: dict[str, Any], choices: Choices, env: Env) -> list[Any]:
        items = _first_items(resource, first, choices)
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
    return lambda resource, choices, env: run([resource], env)


#: A row builder of extract.py: (code, values, rows by table, base URL).
Builder = Callable[[str, list[Any], Any, Any], None]


class TypeReader:
    """The reading plan of one resource type: its indexed parameters and their parts."""

    __slots__ = ("_by_key", "_keyless", "_params", "_shared")

    def __init__(self, params: list[SearchParam], res_type: str) -> None:
        part_index: dict[str, int] = {}
        readers: list[PartReader] = []
        leading_names: list[str | None] = []
        #: The type a part's first step keeps (``(Observation.value as Quantity)``).
        first_as: list[str | None] = []
        users_of_part: list[int] = []
        param_parts: list[list[int]] = []
        for param in params:
            assert param.expression is not None
            indices = []
            for node in union_parts(parse(param.expression)):
                text = param.expression[node.start : node.end].strip()
                index = part_index.get(text)
                if index is None:
                    index = part_index[text] = len(readers)
                    plain_path = _plain_path(node, res_type)
                    if plain_path is not None:
                        readers.append(_plain_reader(plain_path))
                        leading_names.append(plain_path.names[0])
                        first_as.append(
                            plain_path.as_type if len(plain_path.names) == 1 else None
                        )
                    else:
                        readers.append(_general_reader(node))
                        leading_names.append(leading_key(node))
                        first_as.append(None)
                    users_of_part.append(0)
                users_of_part[index] += 1
                indices.append(index)
            param_parts.append(indices)
        #: Parts read by several parameters, remembered for the resource being read.
        self._shared = sum(1 for n in users_of_part if n > 1)
        #: Per parameter: it, and its parts as (reader, slot of the shared ones or -1).
        slots: dict[int, int] = {}
        self._params: list[tuple[SearchParam, tuple[tuple[PartReader, int], ...]]] = []
        for param, indices in zip(params, param_parts, strict=True):
            parts = []
            for index in indices:
                slot = -1
                if users_of_part[index] > 1:
                    slot = slots.setdefault(index, len(slots))
                parts.append((readers[index], slot))
            self._params.append((param, tuple(parts)))
        #: JSON key -> (the parameters it may give values to, the element names whose
        #: choice spelling it is): ``valueQuantity`` is the element ``value``, of type
        #: Quantity, and gives values to ``(Observation.value as Quantity)`` but not to
        #: ``(Observation.value as CodeableConcept)``. Parameters with a part that may
        #: give values with no element present (``leading_key`` None) are always read.
        by_key: dict[str, tuple[set[int], list[str]]] = {}
        keyless: list[int] = []
        for position, indices in enumerate(param_parts):
            if any(leading_names[i] is None for i in indices):
                keyless.append(position)
                continue
            for i in indices:
                name = leading_names[i]
                assert name is not None
                wanted = first_as[i]
                by_key.setdefault(name, (set(), []))[0].add(position)
                for suffix, type_name in CHOICE_SUFFIXES.items():
                    spot = by_key.setdefault(name + suffix, (set(), []))
                    if name not in spot[1]:
                        spot[1].append(name)
                    if wanted is None or is_subtype(type_name, wanted):
                        spot[0].add(position)
        self._keyless = frozenset(keyless)
        self._by_key = {
            key: (frozenset(positions), tuple(names)) for key, (positions, names) in by_key.items()
        }

    def read(
        self, resource: dict[str, Any], builders: dict[str, Builder], rows: Any, base_url: Any
    ) -> None:
        """Hand each parameter that has values in ``resource``, in plan order, to the
        builder of its type: ``builders[type](code, values, rows, base_url)``; the rows
        it adds to ``rows`` (lists by table kind) are kept without duplicates.

        A parameter whose expression cannot be evaluated on this body (two values where
        the definition expects one) is left out, as the whole expression would fail.
        """
        by_key = self._by_key
        active = set(self._keyless)
        choices: Choices = {}
        for key in resource:
            spot = by_key.get(key)
            if spot is not None:
                active |= spot[0]
                for name in spot[1]:
                    found = choices.get(name)
                    if found is None:
                        choices[name] = [key]
                    else:
                        found.append(key)
        if not active:
            return
        env = Env(resource)
        shared: list[Any] = [None] * self._shared if self._shared else []
        params = self._params
        for position in sorted(active):
            param, parts = params[position]
            try:
                if len(parts) == 1:
                    reader, slot = parts[0]
                    if slot < 0:
                        items = reader(resource, choices, env)
                    else:
                        items = _shared_part(reader, slot, shared, resource, choices, env)
                else:
                    items = []
                    for reader, slot in parts:
                        if slot < 0:
                            items += reader(resource, choices, env)
                        else:
                            items += _shared_part(reader, slot, shared, resource, choices, env)
                    if len(items) > 1:
                        items = unique(items)
            except FhirPathEvaluationError:
                continue
            if not items:
                continue
            # Rows of different parameters never repeat each other (each starts with
            # its code), so duplicates are looked for only among one parameter's rows.
            kind = param.type
            table = rows[kind]
            before = len(table)
            if kind == "reference":
                tokens = rows["token"]
                before_tokens = len(tokens)
                builders[kind](param.code, items, rows, base_url)
                _drop_repeats(table, before)
                _drop_repeats(tokens, before_tokens)
            else:
                builders[kind](param.code, items, rows, base_url)
                _drop_repeats(table, before)


def _drop_repeats(table: list[Any], start: int) -> None:
    """Keep the first of equal rows among those added from ``start``."""
    if len(table) - start > 1:
        added = table[start:]
        unique_rows = dict.fromkeys(added)
        if len(unique_rows) != len(added):
            del table[start:]
            table.extend(unique_rows)


class _Failed:
    """Marks a shared part that failed on the resource being read."""


_FAILED = _Failed()


def _shared_part(
    reader: PartReader,
    slot: int,
    shared: list[Any],
    resource: dict[str, Any],
    choices: Choices,
    env: Env,
) -> list[Any]:
    """A part several parameters read, read once per resource (a failure, too)."""
    items = shared[slot]
    if items is None:
        try:
            items = reader(resource, choices, env)
        except FhirPathEvaluationError:
            shared[slot] = _FAILED
            raise
        shared[slot] = items
    elif items is _FAILED:
        raise FhirPathEvaluationError("this part cannot be evaluated on the resource")
    return items  # type: ignore[no-any-return]


@cache
def type_reader(res_type: str) -> TypeReader:
    """The reading plan of ``res_type`` (built on first use, then kept)."""
    params = registry().params(res_type)
    return TypeReader([p for p in params.values() if p.indexed], res_type)
