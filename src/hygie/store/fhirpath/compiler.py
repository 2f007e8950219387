"""Turn a FHIRPath syntax tree into nested Python closures, once per expression.

Each node becomes a function ``(focus, env) -> collection``; evaluating an
expression is then a few calls and list loops, with no tree walk, no dispatch on
node kinds and no wrapper objects around JSON values. A path such as
``Patient.name.given`` becomes one closure that applies its member steps in turn
and stops at the first empty step.

Choice elements are resolved from the JSON name (``value`` finds ``valueQuantity``
and marks the item as a Quantity). ``as`` and ``ofType`` filter each item, which is
what the R4 search-parameter expressions need (``Observation.component.value as
Quantity`` is applied to collections, although N1 asks ``as`` for a singleton).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hygie.store.fhirpath.fhirtypes import (
    CHOICE_SUFFIXES,
    is_resource_of,
    is_subtype,
    shape_matches,
)
from hygie.store.fhirpath.functions import (
    FUNCTIONS,
    LAMBDA_FUNCTIONS,
    Compiled,
    reference_target,
)
from hygie.store.fhirpath.nodes import (
    Binary,
    Call,
    Identifier,
    Indexer,
    Literal,
    Member,
    Node,
    TypeOp,
    Unary,
    Variable,
)
from hygie.store.fhirpath.values import (
    Env,
    FhirPathEvaluationError,
    Typed,
    compare_items,
    items_equal,
    items_equivalent,
    plain,
    to_boolean,
    unique,
)

#: A member step: a collection in, the named children of its items out.
Step = Callable[[list[Any]], list[Any]]


class FhirPathCompileError(ValueError):
    """Raised when an expression uses a function or construct the engine lacks."""


def member_step(name: str) -> Step:
    """The children called ``name`` of each item, choice elements included."""
    # value[x] is written valueQuantity, valueString...: every spelling and its type.
    choices = {name + suffix: type_name for suffix, type_name in CHOICE_SUFFIXES.items()}

    def step(items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if item.__class__ is Typed:
                item = item.value
            if item.__class__ is not dict:
                continue
            value = item.get(name)
            if value is None:
                for key in choices.keys() & item.keys():
                    found = item[key]
                    type_name = choices[key]
                    if found.__class__ is list:
                        out.extend(Typed(v, type_name) for v in found if v is not None)
                    elif found is not None:
                        out.append(Typed(found, type_name))
                continue
            if value.__class__ is list:
                out.extend(v for v in value if v is not None)
            else:
                out.append(value)
        return out

    return step


def type_filter_step(type_name: str) -> Step:
    """A type name at the head of a path keeps the resources of that type."""

    def step(items: list[Any]) -> list[Any]:
        if len(items) == 1:
            item = items[0]
            if item.__class__ is dict and (
                item.get("resourceType") == type_name
                or (type_name == "Resource" and "resourceType" in item)
            ):
                return items
        return [
            item
            for item in items
            if item.__class__ is dict
            and isinstance(item.get("resourceType"), str)
            and is_resource_of(item["resourceType"], type_name)
        ]

    return step


def item_is(item: Any, type_name: str) -> bool:
    """Whether one item is of ``type_name`` (its known type, else its shape)."""
    if item.__class__ is Typed:
        return is_subtype(item.type, type_name)
    return shape_matches(item, type_name)


def _compile_path(node: Node) -> Compiled | None:
    """A chain of member steps from a head identifier, as one closure; else None."""
    names: list[str] = []
    current = node
    while isinstance(current, Member):
        names.append(current.name)
        current = current.target
    if not isinstance(current, Identifier):
        return None
    head = current.name
    steps: list[Step] = [type_filter_step(head) if head[:1].isupper() else member_step(head)]
    steps.extend(member_step(n) for n in reversed(names))
    if len(steps) == 1:
        only = steps[0]
        return lambda focus, env: only(focus)
    chain = tuple(steps)

    def run(focus: list[Any], env: Env) -> list[Any]:
        for step in chain:
            focus = step(focus)
            if not focus:
                break
        return focus

    return run


def compile_node(node: Node) -> Compiled:
    """Compile one node (and its children) into a closure."""
    path = _compile_path(node)
    if path is not None:
        return path
    if isinstance(node, Literal):
        constant = [] if node.value is None else [node.value]
        return lambda focus, env: constant
    if isinstance(node, Variable):
        return _compile_variable(node)
    if isinstance(node, Member):
        target = compile_node(node.target)
        step = member_step(node.name)
        return lambda focus, env: step(target(focus, env))
    if isinstance(node, Indexer):
        return _compile_indexer(node)
    if isinstance(node, Call):
        return _compile_call(node)
    if isinstance(node, TypeOp):
        return _compile_type_op(node)
    if isinstance(node, Unary):
        return _compile_unary(node)
    if isinstance(node, Binary):
        return _compile_binary(node)
    raise FhirPathCompileError(f"cannot compile {type(node).__name__}")


def _compile_variable(node: Variable) -> Compiled:
    if node.name == "$this":
        return lambda focus, env: focus
    if node.name in ("$index", "$total"):
        raise FhirPathCompileError(f"{node.name} is not supported")
    name = node.name
    return lambda focus, env: env.variable(name)


def _compile_indexer(node: Indexer) -> Compiled:
    target = compile_node(node.target)
    index = compile_node(node.index)

    def run(focus: list[Any], env: Env) -> list[Any]:
        position = index(focus, env)
        if len(position) != 1 or not isinstance(plain(position[0]), int):
            raise FhirPathEvaluationError("an index must be one integer")
        items = target(focus, env)
        i = int(plain(position[0]))
        return items[i : i + 1] if i >= 0 else []

    return run


def is_resolve_test(node: Node) -> str | None:
    """T when ``node`` is ``resolve() is T`` (the search definitions' type test)."""
    if (
        isinstance(node, TypeOp)
        and node.op == "is"
        and isinstance(node.operand, Call)
        and node.operand.target is None
        and node.operand.name == "resolve"
        and not node.operand.args
    ):
        return node.type_name
    return None


def compile_where_resolve_is(target: Compiled | None, type_name: str) -> Compiled:
    """``where(resolve() is T)`` judged from each reference string, with no stub resource.

    Same result as the general path (``resolve()`` then ``is``), which still serves
    contained references (``#id``).
    """
    resolve = FUNCTIONS["resolve"][0]

    def run(focus: list[Any], env: Env) -> list[Any]:
        items = target(focus, env) if target is not None else focus
        out: list[Any] = []
        for item in items:
            value = plain(item)
            ref = value.get("reference") if value.__class__ is dict else value
            if ref.__class__ is not str:
                continue
            if ref.startswith("#"):
                found = resolve([item], (), env)
                if found and all(item_is(f, type_name) for f in found):
                    out.append(item)
                continue
            named = reference_target(ref)
            if named is not None and is_resource_of(named[0], type_name):
                out.append(item)
        return out

    return run


def _compile_call(node: Call) -> Compiled:
    if node.name == "where" and len(node.args) == 1:
        resolved_type = is_resolve_test(node.args[0])
        if resolved_type is not None:
            target = compile_node(node.target) if node.target is not None else None
            return compile_where_resolve_is(target, resolved_type)
    if node.name == "ofType":
        if len(node.args) != 1 or not isinstance(node.args[0], Identifier | Member):
            raise FhirPathCompileError("ofType() takes one type name")
        arg = node.args[0]
        type_name = arg.name if isinstance(arg, Identifier) else _dotted(arg)
        target = compile_node(node.target) if node.target is not None else None

        def of_type(focus: list[Any], env: Env) -> list[Any]:
            items = target(focus, env) if target is not None else focus
            return [item for item in items if item_is(item, type_name)]

        return of_type
    entry = FUNCTIONS.get(node.name)
    if entry is None:
        raise FhirPathCompileError(f"function {node.name}() is not supported")
    impl, fewest, most = entry
    if not fewest <= len(node.args) <= most:
        raise FhirPathCompileError(f"{node.name}() takes {fewest} to {most} arguments")
    args = tuple(compile_node(a) for a in node.args)
    target = compile_node(node.target) if node.target is not None else None
    if node.name in LAMBDA_FUNCTIONS:
        if target is None:
            return lambda focus, env: impl(focus, args, env)
        return lambda focus, env: impl(target(focus, env), args, env)

    def call(focus: list[Any], env: Env) -> list[Any]:
        # Other arguments are read on the focus the invocation chain started from.
        evaluated = tuple(arg(focus, env) for arg in args)
        return impl(target(focus, env) if target is not None else focus, evaluated, env)

    return call


def _dotted(node: Node) -> str:
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Member):
        return f"{_dotted(node.target)}.{node.name}"
    raise FhirPathCompileError("expected a type name")


def typed_member_step(name: str, type_name: str) -> Step:
    """``name as T`` in one step: only the choice spellings whose type is a T are read.

    Same result as the member step followed by the ``as`` filter, without building
    and filtering the items of the other types (``Observation.value as Quantity``
    reads ``valueQuantity``, ``valueAge``..., never ``valueString``).
    """
    wanted = tuple(
        (name + suffix, choice_type)
        for suffix, choice_type in CHOICE_SUFFIXES.items()
        if is_subtype(choice_type, type_name)
    )

    def step(items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if item.__class__ is Typed:
                item = item.value
            if item.__class__ is not dict:
                continue
            value = item.get(name)
            if value is not None:
                values = value if value.__class__ is list else [value]
                out.extend(v for v in values if v is not None and shape_matches(v, type_name))
                continue
            for key, choice_type in wanted:
                found = item.get(key)
                if found is None:
                    continue
                if found.__class__ is list:
                    out.extend(Typed(v, choice_type) for v in found if v is not None)
                else:
                    out.append(Typed(found, choice_type))
        return out

    return step


def _compile_type_op(node: TypeOp) -> Compiled:
    type_name = node.type_name
    if node.op == "as" and isinstance(node.operand, Member):
        parent = compile_node(node.operand.target)
        typed_step = typed_member_step(node.operand.name, type_name)
        return lambda focus, env: typed_step(parent(focus, env))
    operand = compile_node(node.operand)
    if node.op == "as":
        return lambda focus, env: [i for i in operand(focus, env) if item_is(i, type_name)]

    def is_(focus: list[Any], env: Env) -> list[Any]:
        items = operand(focus, env)
        if not items:
            return []
        return [all(item_is(i, type_name) for i in items)]

    return is_


def _compile_unary(node: Unary) -> Compiled:
    operand = compile_node(node.operand)
    if node.op == "+":
        return operand

    def negate(focus: list[Any], env: Env) -> list[Any]:
        items = operand(focus, env)
        if not items:
            return []
        value = plain(items[0])
        numeric = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        if len(items) != 1 or not numeric:
            raise FhirPathEvaluationError("unary minus takes one number")
        return [-value]

    return negate


def _singleton_pair(left: list[Any], right: list[Any]) -> tuple[Any, Any] | None:
    if not left or not right:
        return None
    if len(left) != 1 or len(right) != 1:
        raise FhirPathEvaluationError("an operator was given several items")
    return plain(left[0]), plain(right[0])


def _equality(op: str, left: list[Any], right: list[Any]) -> list[Any]:
    if op in ("=", "!="):
        if not left or not right:
            return []
        if len(left) != len(right):
            result: bool | None = False
        else:
            result = True
            for a, b in zip(left, right, strict=True):
                same = items_equal(a, b)
                if same is None:
                    return []
                if not same:
                    result = False
                    break
        return [result if op == "=" else not result]
    if not left and not right:
        same_all = True
    elif len(left) != len(right):
        same_all = False
    else:
        same_all = all(items_equivalent(a, b) for a, b in zip(left, right, strict=True))
    return [same_all if op == "~" else not same_all]


_ORDER: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0, ">": lambda c: c > 0, "<=": lambda c: c <= 0, ">=": lambda c: c >= 0,
}


def _logic(op: str, a: bool | None, b: bool | None) -> bool | None:
    if op == "and":
        if a is False or b is False:
            return False
        return None if a is None or b is None else True
    if op == "or":
        if a is True or b is True:
            return True
        return None if a is None or b is None else False
    if op == "xor":
        return None if a is None or b is None else a != b
    # implies
    if a is False:
        return True
    if a is True:
        return b
    return True if b is True else None


def _arithmetic(op: str, left: list[Any], right: list[Any]) -> list[Any]:
    if op == "&":
        a = plain(left[0]) if left else ""
        b = plain(right[0]) if right else ""
        return [f"{a}{b}"]
    pair = _singleton_pair(left, right)
    if pair is None:
        return []
    a, b = pair
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return [a + b]
    numeric = (int, float, Decimal)
    if isinstance(a, bool) or isinstance(b, bool) or not (
        isinstance(a, numeric) and isinstance(b, numeric)
    ):
        raise FhirPathEvaluationError(f"{op} takes two numbers")
    if isinstance(a, Decimal) or isinstance(b, Decimal) or isinstance(a, float) or isinstance(
        b, float
    ):
        a, b = Decimal(str(a)), Decimal(str(b))
    if op in ("/", "div", "mod") and b == 0:
        return []
    if op == "/":
        return [Decimal(a) / Decimal(b)]
    if op == "div":
        return [int(a // b)]
    functions: dict[str, Callable[[Any, Any], Any]] = {
        "+": operator.add, "-": operator.sub, "*": operator.mul, "mod": operator.mod,
    }
    return [functions[op](a, b)]


def _compile_binary(node: Binary) -> Compiled:
    left = compile_node(node.left)
    right = compile_node(node.right)
    op = node.op
    if op == "|":
        return lambda focus, env: unique(left(focus, env) + right(focus, env))
    if op in ("=", "!=", "~", "!~"):
        return lambda focus, env: _equality(op, left(focus, env), right(focus, env))
    if op in _ORDER:
        test = _ORDER[op]

        def compare(focus: list[Any], env: Env) -> list[Any]:
            pair = _singleton_pair(left(focus, env), right(focus, env))
            if pair is None:
                return []
            order = compare_items(*pair)
            if order is None:
                raise FhirPathEvaluationError(f"{op} cannot compare {pair[0]!r} and {pair[1]!r}")
            return [test(order)]

        return compare
    if op in ("and", "or", "xor", "implies"):

        def logic(focus: list[Any], env: Env) -> list[Any]:
            a = to_boolean(left(focus, env))
            if op == "and" and a is False:
                return [False]
            if op == "or" and a is True:
                return [True]
            result = _logic(op, a, to_boolean(right(focus, env)))
            return [] if result is None else [result]

        return logic
    if op in ("in", "contains"):

        def membership(focus: list[Any], env: Env) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            one, many = (a, b) if op == "in" else (b, a)
            if not one:
                return []
            if len(one) != 1:
                raise FhirPathEvaluationError(f"{op} takes one item")
            return [any(items_equal(one[0], x) for x in many)]

        return membership
    return lambda focus, env: _arithmetic(op, left(focus, env), right(focus, env))
