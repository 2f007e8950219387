"""The FHIRPath functions the engine knows, each a plain function over collections.

A function receives its input collection, its arguments, and the environment.
The arguments of ``where``/``select``/``exists``/``all``/``iif`` come compiled, so
that the function evaluates them once per item (with that item as focus and
``$this``); those of every other function come evaluated, once, on the focus the
whole expression started from (``name.given.combine(name.family)`` reads
``name.family`` on the resource, not on the given names). Semantics follow
https://hl7.org/fhirpath/N1/#functions; FHIR's own additions (``resolve()``,
``extension(url)``, ``hasValue()``) follow https://hl7.org/fhir/R4/fhirpath.html#functions.

``resolve()`` never reads the database: a search-parameter expression only asks
``resolve() is Patient``, which the reference string answers (``Patient/123``, an
absolute ``.../Patient/123``, a canonical URL of that shape). It yields a stub
``{"resourceType": T, "id": id}``, or the contained resource for ``#id``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from hygie.store.fhirpath.values import (
    Env,
    FhirPathEvaluationError,
    Typed,
    items_equal,
    plain,
    to_boolean,
    unique,
)

#: A compiled sub-expression: focus collection and environment in, collection out.
Compiled = Callable[[list[Any], Env], list[Any]]
#: A function implementation: input collection, arguments, environment. The arguments
#: are compiled for the functions in ``LAMBDA_FUNCTIONS``, evaluated lists for the others.
Impl = Callable[[list[Any], tuple[Any, ...], Env], list[Any]]

#: ``[base/]Type/id[/_history/v]``: how a reference string names its target's type.
_REFERENCE_RE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?/?$"
)


#: Characters of a resource id (datatypes.html#id).
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")


def reference_target(reference: str) -> tuple[str, str] | None:
    """(type, id) named by a reference string, or None (``#x``, ``urn:uuid:``, bare ids)."""
    if len(reference) <= 128:
        # A patient's id is named by each of its records: remember the recent ones.
        return _short_reference_target(reference)
    return _reference_target(reference)


def _reference_target(reference: str) -> tuple[str, str] | None:
    head, slash, tail = reference.partition("/")
    if slash and "/" not in tail and head.isalpha() and head[:1].isupper():
        # The common case, Type/id, without the regular expression.
        if 0 < len(tail) <= 64 and _ID_CHARS.issuperset(tail):
            return head, tail
        return None
    m = _REFERENCE_RE.search(reference.split("|", 1)[0])
    if m is None:
        return None
    return m.group("type"), m.group("id")


_short_reference_target = lru_cache(maxsize=8192)(_reference_target)


def _as_list(value: Any) -> list[Any]:
    """A JSON array as a list; anything else as empty (the body is malformed)."""
    return value if isinstance(value, list) else []


def _each(input_: list[Any], arg: Compiled, env: Env) -> list[tuple[Any, bool | None]]:
    out = []
    for item in input_:
        out.append((item, to_boolean(arg([item], env))))
    return out


def _where(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    crit = args[0]
    return [item for item in input_ if to_boolean(crit([item], env)) is True]


def _select(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    out: list[Any] = []
    for item in input_:
        out.extend(args[0]([item], env))
    return out


def _all(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return [all(ok is True for _, ok in _each(input_, args[0], env))]


def _exists(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    if args:
        return [any(ok is True for _, ok in _each(input_, args[0], env))]
    return [bool(input_)]


def _empty(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return [not input_]


def _not(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    value = to_boolean(input_)
    return [] if value is None else [not value]


def _first(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return input_[:1]


def _last(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return input_[-1:]


def _tail(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return input_[1:]


def _integer_arg(value: list[Any], name: str) -> int:
    if len(value) != 1 or not isinstance(plain(value[0]), int):
        raise FhirPathEvaluationError(f"{name}() takes one integer")
    return int(plain(value[0]))


def _skip(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return input_[max(0, _integer_arg(args[0], "skip")) :]


def _take(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return input_[: max(0, _integer_arg(args[0], "take"))]


def _single(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    if len(input_) > 1:
        raise FhirPathEvaluationError("single() found several items")
    return input_


def _count(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return [len(input_)]


def _distinct(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return unique(input_)


def _is_distinct(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return [len(unique(input_)) == len(input_)]


def _union(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return unique(input_ + args[0])


def _combine(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return input_ + args[0]


def _intersect(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    other = args[0]
    return unique([x for x in input_ if any(items_equal(x, y) for y in other)])


def _exclude(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    other = args[0]
    return [x for x in input_ if not any(items_equal(x, y) for y in other)]


def _iif(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    if to_boolean(args[0](input_, env)) is True:
        return args[1](input_, env)
    return args[2](input_, env) if len(args) > 2 else []


def _trace(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return input_


def _children(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    out: list[Any] = []
    for item in input_:
        value = plain(item)
        if isinstance(value, dict):
            for key, child in value.items():
                if key.startswith("_") or key == "resourceType":
                    continue
                if isinstance(child, list):
                    out.extend(c for c in child if c is not None)
                elif child is not None:
                    out.append(child)
    return out


def _descendants(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    out: list[Any] = []
    level = _children(input_, args, env)
    while level:
        out.extend(level)
        level = _children(level, args, env)
    return out


def _has_value(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    return [len(input_) == 1 and not isinstance(plain(input_[0]), dict)]


def _extension(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    urls = args[0]
    if len(urls) != 1:
        raise FhirPathEvaluationError("extension() takes one url")
    url = plain(urls[0])
    out: list[Any] = []
    for item in input_:
        value = plain(item)
        if isinstance(value, dict):
            out.extend(
                ext
                for ext in _as_list(value.get("extension"))
                if isinstance(ext, dict) and ext.get("url") == url
            )
    return out


def _resolve(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    out: list[Any] = []
    for item in input_:
        value = plain(item)
        if isinstance(value, dict):
            value = value.get("reference")
        if not isinstance(value, str):
            continue
        if value.startswith("#"):
            root = env.resource
            for contained in _as_list(root.get("contained")) if isinstance(root, dict) else ():
                if isinstance(contained, dict) and contained.get("id") == value[1:]:
                    out.append(contained)
            continue
        target = reference_target(value)
        if target is not None:
            out.append({"resourceType": target[0], "id": target[1]})
    return out


def _string_arg(value: list[Any], name: str) -> str | None:
    if not value:
        return None
    if len(value) != 1 or not isinstance(plain(value[0]), str):
        raise FhirPathEvaluationError(f"{name}() takes one string")
    return str(plain(value[0]))


def _string_input(input_: list[Any], name: str) -> str | None:
    if not input_:
        return None
    if len(input_) != 1 or not isinstance(plain(input_[0]), str):
        raise FhirPathEvaluationError(f"{name}() applies to one string")
    return str(plain(input_[0]))


def _string_test(test: Callable[[str, str], bool], name: str) -> Impl:
    def run(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
        text = _string_input(input_, name)
        other = _string_arg(args[0], name)
        if text is None or other is None:
            return []
        return [test(text, other)]

    return run


def _string_map(change: Callable[[str], Any], name: str) -> Impl:
    def run(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
        text = _string_input(input_, name)
        return [] if text is None else [change(text)]

    return run


def _substring(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    text = _string_input(input_, "substring")
    start = _integer_arg(args[0], "substring")
    if text is None or start < 0 or start >= len(text):
        return []
    if len(args) > 1:
        return [text[start : start + max(0, _integer_arg(args[1], "substring"))]]
    return [text[start:]]


def _to_string(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    if len(input_) != 1:
        return []
    value = plain(input_[0])
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int | float | Decimal | str):
        return [str(value)]
    return []


def _bool_aggregate(test: Callable[[list[bool]], bool]) -> Impl:
    def run(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
        values = [plain(x) for x in input_]
        if not all(isinstance(v, bool) for v in values):
            raise FhirPathEvaluationError("a collection of booleans was expected")
        return [test(values)]

    return run


def _type_name(input_: list[Any], args: tuple[Compiled, ...], env: Env) -> list[Any]:
    out: list[Any] = []
    for item in input_:
        if isinstance(item, Typed):
            out.append({"namespace": "FHIR", "name": item.type})
        elif isinstance(item, dict) and isinstance(item.get("resourceType"), str):
            out.append({"namespace": "FHIR", "name": item["resourceType"]})
    return out


#: Functions whose arguments are expressions evaluated per item (or on the input).
LAMBDA_FUNCTIONS = frozenset({"where", "select", "all", "exists", "iif"})

#: name -> (implementation, fewest arguments, most arguments).
FUNCTIONS: dict[str, tuple[Impl, int, int]] = {
    "where": (_where, 1, 1),
    "select": (_select, 1, 1),
    "all": (_all, 1, 1),
    "exists": (_exists, 0, 1),
    "empty": (_empty, 0, 0),
    "not": (_not, 0, 0),
    "first": (_first, 0, 0),
    "last": (_last, 0, 0),
    "tail": (_tail, 0, 0),
    "skip": (_skip, 1, 1),
    "take": (_take, 1, 1),
    "single": (_single, 0, 0),
    "count": (_count, 0, 0),
    "distinct": (_distinct, 0, 0),
    "isDistinct": (_is_distinct, 0, 0),
    "union": (_union, 1, 1),
    "combine": (_combine, 1, 1),
    "intersect": (_intersect, 1, 1),
    "exclude": (_exclude, 1, 1),
    "iif": (_iif, 2, 3),
    "trace": (_trace, 1, 2),
    "children": (_children, 0, 0),
    "descendants": (_descendants, 0, 0),
    "hasValue": (_has_value, 0, 0),
    "extension": (_extension, 1, 1),
    "resolve": (_resolve, 0, 0),
    "startsWith": (_string_test(str.startswith, "startsWith"), 1, 1),
    "endsWith": (_string_test(str.endswith, "endsWith"), 1, 1),
    "contains": (_string_test(lambda a, b: b in a, "contains"), 1, 1),
    "matches": (_string_test(lambda a, b: re.search(b, a) is not None, "matches"), 1, 1),
    "lower": (_string_map(str.lower, "lower"), 0, 0),
    "upper": (_string_map(str.upper, "upper"), 0, 0),
    "length": (_string_map(len, "length"), 0, 0),
    "substring": (_substring, 1, 2),
    "toString": (_to_string, 0, 0),
    "allTrue": (_bool_aggregate(lambda v: all(v)), 0, 0),
    "anyTrue": (_bool_aggregate(lambda v: any(v)), 0, 0),
    "allFalse": (_bool_aggregate(lambda v: not any(v)), 0, 0),
    "anyFalse": (_bool_aggregate(lambda v: not all(v)), 0, 0),
    "type": (_type_name, 0, 0),
}
