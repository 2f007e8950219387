"""Search parsing: a query string's pairs become a frozen ``SearchRequest``, no SQL.

Each pair is read against the registry: its name gives the parameter (with a
modifier, a chain ``subject:Patient.name``, or a reverse chain ``_has:...``), its
value gives typed values (date ranges, numbers with their precision, tokens as
system|code...) joined by OR; repeated parameters are joined by AND. Control
parameters (``_sort``, ``_count``, ``_include``...) are read into their own fields.

Errors name the parameter at fault (``FhirError`` with the parameter as
expression): a bad value, an unknown prefix, a modifier the type does not take,
an unsupported modifier. An unknown parameter, or one the store cannot search
(composite, special, ``_text``...), is an error under ``Prefer: handling=strict``
and a warning under lenient handling, where it is ignored.
See https://hl7.org/fhir/R4/search.html.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from hygie.store import outcomes
from hygie.store.search.extract import date_range, normalize_string, reference_row
from hygie.store.search.params import (
    UNSUPPORTED_MODIFIERS,
    SearchParam,
    is_resource_type,
    registry,
)

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")

#: Every modifier R4 defines (a resource type name is one too, for references).
KNOWN_MODIFIERS = frozenset(
    {"missing", "exact", "contains", "text", "in", "not-in", "below", "above", "not",
     "of-type", "identifier", "type"}
)

#: Parameters R4 defines for every type that the store does not implement.
UNSUPPORTED_PARAMS = frozenset(
    {"_text", "_content", "_query", "_filter", "_list", "_contained", "_containedType"}
)

#: HTTP-level parameters the caller handles (format, pretty printing).
TRANSPORT_PARAMS = frozenset({"_format", "_pretty"})

SUMMARY_VALUES = frozenset({"true", "false", "text", "data", "count"})
TOTAL_VALUES = frozenset({"none", "estimate", "accurate"})

#: Deepest chain (``a.b.c``) or ``_has`` nesting accepted: each level is one more join.
MAX_CHAIN_DEPTH = 3


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string to match: normalised for a plain search, as written for ``:exact``."""

    text: str


@dataclass(frozen=True, slots=True)
class TokenValue:
    """``[system|]code``; ``system`` None and ``any_system`` False is ``|code`` (no system)."""

    system: str | None
    code: str | None
    any_system: bool = True


@dataclass(frozen=True, slots=True)
class DateValue:
    """A prefix and the inclusive range of epoch microseconds the value covers."""

    prefix: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class NumberValue:
    """A prefix, the number, and the range its precision implies (``100`` is 99.5-100.5)."""

    prefix: str
    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class QuantityValue:
    """A number with its prefix and precision, and an optional system and code (or unit)."""

    prefix: str
    value: float
    low: float
    high: float
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A local target (type may be None: any target type) or an external/canonical URL."""

    res_type: str | None
    res_id: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class UriValue:
    value: str


Value = StringValue | TokenValue | DateValue | NumberValue | QuantityValue | ReferenceValue | (
    UriValue
)


# --- filters --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """``code[:modifier]=v1,v2``: a resource matches when one value matches (OR)."""

    code: str
    type: str
    modifier: str | None
    values: tuple[Value, ...]
    #: ``:missing=true/false`` (values is then empty).
    missing: bool | None = None
    #: Target types a reference value may point to (from ``:Type`` or the definition).
    target_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chain:
    """``code[:Type].<filter>``: the reference ``code`` points to a resource matching it."""

    code: str
    target_types: tuple[str, ...]
    condition: Filter


@dataclass(frozen=True, slots=True)
class Has:
    """``_has:Type:ref:<filter>``: some ``Type`` matching the filter refers here by ``ref``."""

    res_type: str
    reference: str
    condition: Filter


Filter = Condition | Chain | Has


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` key: a parameter (or ``_id``/``_lastUpdated``) and its direction."""

    code: str
    type: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Include:
    """``_include``/``_revinclude`` ``Source:param[:Target]``; code None means every reference."""

    source_type: str
    code: str | None
    target_type: str | None = None
    iterate: bool = False
    reverse: bool = False


@dataclass(frozen=True)
class SearchRequest:
    """A parsed search: what to match, how to order and page it, what to add."""

    res_type: str | None
    #: The types searched: (res_type,), the ``_type`` list of a system search, or ()
    #: for every type.
    types: tuple[str, ...]
    filters: tuple[Filter, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 20
    total: str | None = None
    summary: str | None = None
    elements: tuple[str, ...] = ()
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    #: Where the page starts (``_cursor`` of a next link), opaque.
    cursor: str | None = None
    #: Why parameters were ignored (lenient handling), for an OperationOutcome.
    warnings: tuple[str, ...] = ()
    #: The pairs that were applied, in order, to write self and next links.
    query: tuple[tuple[str, str], ...] = field(default=())

    def link_query(self, cursor: str | None = None) -> list[tuple[str, str]]:
        """The query pairs of a link to this search (the next page when ``cursor`` is set)."""
        pairs = [(k, v) for k, v in self.query if k != "_count"]
        pairs.append(("_count", str(self.count)))
        if cursor is not None:
            pairs.append(("_cursor", cursor))
        return pairs


# --- parsing helpers ------------------------------------------------------------------


def split_unescaped(value: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped by a backslash (search.html#escaping)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            current.append(value[i : i + 2])
            i += 2
            continue
        if ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    """Remove the escaping backslashes of ``\\,`` ``\\|`` ``\\$`` ``\\\\``."""
    return re.sub(r"\\([\\,|$])", r"\1", value)


def _bad(diagnostics: str, name: str) -> outcomes.InvalidResource:
    return outcomes.invalid(diagnostics, expression=name)


def _split_prefix(raw: str) -> tuple[str, str]:
    if len(raw) > 2 and raw[:2] in PREFIXES and (raw[2].isdigit() or raw[2] in "-+."):
        return raw[:2], raw[2:]
    return "eq", raw


def parse_date_value(raw: str, name: str) -> DateValue:
    """``[prefix]date``: an error names the parameter when either part is wrong."""
    if raw[:2].isalpha():
        if raw[:2] not in PREFIXES:
            raise _bad(f"unknown prefix {raw[:2]!r} in {raw!r}", name)
        prefix, text = raw[:2], raw[2:]
    else:
        prefix, text = "eq", raw
    # A '+' of a zone offset arrives as a space when the client did not encode it.
    found = date_range(text.replace(" ", "+"))
    if found is None:
        raise _bad(f"{text!r} is not a date, dateTime or instant", name)
    return DateValue(prefix, found[0], found[1])


def _parse_number(raw: str, name: str) -> tuple[str, float, float, float]:
    if raw[:2].isalpha():
        if raw[:2] not in PREFIXES:
            raise _bad(f"unknown prefix {raw[:2]!r} in {raw!r}", name)
        prefix, text = raw[:2], raw[2:]
    else:
        prefix, text = "eq", raw
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _bad(f"{text!r} is not a number", name) from None
    if not number.is_finite():
        raise _bad(f"{text!r} is not a number", name)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return prefix, float(number), float(number - half), float(number + half)


def parse_number_value(raw: str, name: str) -> NumberValue:
    """``[prefix]number``; the range is half a unit of the last digit written either side."""
    return NumberValue(*_parse_number(raw, name))


def parse_quantity_value(raw: str, name: str) -> QuantityValue:
    """``[prefix]number[|system|code]`` (search.html#quantity); ``||mg`` matches a unit too."""
    parts = split_unescaped(raw, "|")
    if len(parts) not in (1, 3):
        raise _bad(f"{raw!r} is not number|system|code", name)
    prefix, value, low, high = _parse_number(parts[0], name)
    system = unescape(parts[1]) or None if len(parts) == 3 else None
    code = unescape(parts[2]) or None if len(parts) == 3 else None
    return QuantityValue(prefix, value, low, high, system, code)


def parse_token_value(raw: str) -> TokenValue:
    """``code``, ``system|code``, ``|code`` or ``system|``."""
    parts = split_unescaped(raw, "|")
    if len(parts) == 1:
        return TokenValue(None, unescape(parts[0]))
    system, code = unescape(parts[0]), unescape("|".join(parts[1:]))
    return TokenValue(system or None, code or None, any_system=False)


def parse_reference_value(raw: str, base_url: str | None) -> ReferenceValue:
    """``id``, ``Type/id``, ``Type/id/_history/v``, or an absolute / canonical URL."""
    text = unescape(raw)
    if "/" not in text and ":" not in text:
        return ReferenceValue(None, text, None)
    row = reference_row("", text, base_url)
    if row is not None and row[1] is not None:
        return ReferenceValue(row[1], row[2], None)
    return ReferenceValue(None, None, text.split("|", 1)[0])


# --- the parser -----------------------------------------------------------------------


class _Parser:
    def __init__(self, res_type: str | None, types: tuple[str, ...], strict: bool,
                 base_url: str | None) -> None:
        self.res_type = res_type
        self.types = types
        self.strict = strict
        self.base_url = base_url
        self.warnings: list[str] = []

    def skip(self, name: str, why: str, *, unsupported: bool) -> None:
        """Report a parameter the store will not apply: an error if strict, else a warning."""
        if self.strict:
            if unsupported:
                raise outcomes.not_supported(why, expression=name)
            raise outcomes.invalid(why, expression=name)
        self.warnings.append(f"{why}: parameter {name!r} ignored")

    def lookup(self, types: tuple[str, ...], code: str) -> SearchParam | None:
        """The parameter ``code`` shared by every type searched (same parameter type)."""
        reg = registry()
        if not types:
            return reg.common_params().get(code)
        found: SearchParam | None = None
        for res_type in types:
            param = reg.param(res_type, code)
            if param is None:
                return None
            if found is not None and found.type != param.type:
                return None
            found = found or param
        return found

    def filter(self, types: tuple[str, ...], name: str, raw: str, full: str,
               depth: int = 0) -> Filter | None:
        """Read one parameter (chained, reversed or plain) on ``types``; None if ignored."""
        if depth > MAX_CHAIN_DEPTH:
            raise _bad(f"chains deeper than {MAX_CHAIN_DEPTH} are not supported", full)
        if name.startswith("_has:"):
            return self.has(types, name, raw, full, depth)
        head, dot, rest = name.partition(".")
        code, _, modifier = head.partition(":")
        if code in UNSUPPORTED_PARAMS:
            self.skip(full, f"search parameter {code} is not supported", unsupported=True)
            return None
        param = self.lookup(types, code)
        if param is None:
            where = "/".join(types) if types else "every resource type"
            self.skip(full, f"unknown search parameter {code!r} for {where}", unsupported=False)
            return None
        if not param.searchable:
            self.skip(full, f"{param.type} search parameter {code!r} is not supported",
                      unsupported=True)
            return None
        if dot:
            return self.chain(param, modifier or None, rest, raw, full, depth)
        return self.condition(param, modifier or None, raw, full)

    def chain(self, param: SearchParam, modifier: str | None, rest: str, raw: str, full: str,
              depth: int) -> Filter | None:
        if param.type != "reference":
            raise _bad(f"{param.code!r} is a {param.type} parameter: it cannot be chained", full)
        if modifier is not None:
            if not is_resource_type(modifier):
                raise _bad(f"{modifier!r} is not a resource type", full)
            if param.targets and "Resource" not in param.targets and (
                modifier not in param.targets
            ):
                raise _bad(f"{param.code!r} cannot refer to a {modifier}", full)
            candidates: tuple[str, ...] = (modifier,)
        else:
            candidates = tuple(t for t in param.targets if t != "Resource") or tuple(
                sorted(registry().resource_types)
            )
        code = rest.partition(".")[0].partition(":")[0]
        reg = registry()
        usable = tuple(t for t in candidates if reg.param(t, code) is not None)
        if rest.startswith("_has:"):
            usable = candidates
        if not usable:
            raise _bad(f"no target of {param.code!r} has a search parameter {code!r}", full)
        kinds = {p.type for t in usable if (p := reg.param(t, code)) is not None}
        if len(kinds) > 1:
            raise _bad(f"{code!r} differs between the targets of {param.code!r}: name one "
                       f"with {param.code}:Type", full)
        inner = self.filter(usable, rest, raw, full, depth + 1)
        if inner is None:
            return None
        return Chain(param.code, usable, inner)

    def has(self, types: tuple[str, ...], name: str, raw: str, full: str,
            depth: int) -> Filter | None:
        parts = name.split(":", 3)
        if len(parts) < 4 or not all(parts[1:]):
            raise _bad("_has takes the form _has:Type:reference:parameter", full)
        _, source, ref_code, rest = parts
        if not is_resource_type(source):
            raise _bad(f"{source!r} is not a resource type", full)
        ref = registry().param(source, ref_code)
        if ref is None or ref.type != "reference":
            raise _bad(f"{ref_code!r} is not a reference parameter of {source}", full)
        if types and ref.targets and "Resource" not in ref.targets and not set(types) & set(
            ref.targets
        ):
            raise _bad(f"{source}.{ref_code} never refers to {'/'.join(types)}", full)
        inner = self.filter((source,), rest, raw, full, depth + 1)
        if inner is None:
            return None
        return Has(source, ref_code, inner)

    def condition(self, param: SearchParam, modifier: str | None, raw: str,
                  full: str) -> Condition:
        target_types = tuple(t for t in param.targets if t != "Resource")
        if modifier is not None:
            if param.type == "reference" and is_resource_type(modifier):
                if param.targets and "Resource" not in param.targets and (
                    modifier not in param.targets
                ):
                    raise _bad(f"{param.code!r} cannot refer to a {modifier}", full)
                target_types = (modifier,)
                modifier = "type"
            elif modifier not in KNOWN_MODIFIERS or modifier == "type":
                raise _bad(f"unknown modifier :{modifier}", full)
            elif modifier in UNSUPPORTED_MODIFIERS.get(param.type, frozenset()):
                raise outcomes.not_supported(
                    f"modifier :{modifier} is not supported on {param.type} parameters",
                    expression=full,
                )
            elif modifier not in param.modifiers:
                raise _bad(f"modifier :{modifier} does not apply to {param.type} parameter "
                           f"{param.code!r}", full)
        if modifier == "missing":
            if raw not in ("true", "false"):
                raise _bad(":missing takes true or false", full)
            return Condition(param.code, param.type, modifier, (), missing=raw == "true",
                             target_types=target_types)
        pieces = split_unescaped(raw, ",")
        if len(pieces) > 1 and not param.multiple_or:
            raise _bad(f"{param.code!r} takes a single value", full)
        values = tuple(self.value(param, modifier, piece, full) for piece in pieces)
        return Condition(param.code, param.type, modifier, values, target_types=target_types)

    def value(self, param: SearchParam, modifier: str | None, raw: str, full: str) -> Value:
        if raw == "":
            raise _bad("empty value in a list of values", full)
        kind = param.type
        if kind == "string":
            text = unescape(raw)
            return StringValue(text if modifier == "exact" else normalize_string(text))
        if kind == "token":
            if modifier == "text":
                return StringValue(normalize_string(unescape(raw)))
            return parse_token_value(raw)
        if kind == "date":
            value = parse_date_value(raw, full)
            self.check_prefix(param, value.prefix, full)
            return value
        if kind == "number":
            number = parse_number_value(raw, full)
            self.check_prefix(param, number.prefix, full)
            return number
        if kind == "quantity":
            quantity = parse_quantity_value(raw, full)
            self.check_prefix(param, quantity.prefix, full)
            return quantity
        if kind == "reference":
            if modifier == "identifier":
                return parse_token_value(raw)
            return parse_reference_value(raw, self.base_url)
        return UriValue(unescape(raw))

    @staticmethod
    def check_prefix(param: SearchParam, prefix: str, full: str) -> None:
        if param.comparators and prefix not in param.comparators and prefix != "eq":
            raise _bad(f"prefix {prefix!r} does not apply to {param.code!r}", full)


def _parse_count(raw: str, max_count: int) -> int:
    try:
        count = int(raw)
    except ValueError:
        raise _bad(f"_count must be a whole number, not {raw!r}", "_count") from None
    if count < 0:
        raise _bad("_count must not be negative", "_count")
    return min(count, max_count)


def _parse_sort(parser: _Parser, raw: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        descending = item.startswith("-")
        code = item.lstrip("-")
        if code == "_id":
            keys.append(SortKey("_id", "token", descending))
            continue
        if code == "_lastUpdated":
            keys.append(SortKey("_lastUpdated", "date", descending))
            continue
        param = parser.lookup(parser.types, code)
        if param is None or not param.searchable:
            raise _bad(f"cannot sort on {code!r}", "_sort")
        keys.append(SortKey(code, param.type, descending))
    return tuple(keys)


def _parse_include(parser: _Parser, raw: str, *, reverse: bool, iterate: bool,
                   name: str) -> Include:
    if raw == "*":
        if reverse:
            raise _bad("_revinclude=* is not supported: name Source:parameter", name)
        if not parser.types:
            raise _bad("_include=* needs a resource type", name)
        return Include(parser.types[0], None, None, iterate=iterate)
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise _bad(f"{raw!r} is not Source:parameter[:Target]", name)
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not is_resource_type(source):
        raise _bad(f"{source!r} is not a resource type", name)
    if target is not None and not is_resource_type(target):
        raise _bad(f"{target!r} is not a resource type", name)
    if not reverse and not iterate and parser.types and source not in parser.types:
        raise _bad(f"{source} is not a type being searched (use :iterate)", name)
    if code == "*":
        return Include(source, None, target, iterate=iterate, reverse=reverse)
    param = registry().param(source, code)
    if param is None or param.type != "reference":
        raise _bad(f"{code!r} is not a reference parameter of {source}", name)
    return Include(source, code, target, iterate=iterate, reverse=reverse)


def parse_search(
    res_type: str | None,
    query: Iterable[tuple[str, str]],
    *,
    strict: bool,
    max_count: int = 1000,
    default_count: int = 20,
    base_url: str | None = None,
) -> SearchRequest:
    """Read the pairs of a search query into a ``SearchRequest``.

    ``res_type`` None is a search across types (``GET [base]?...``), restricted by
    ``_type`` when given. ``strict`` is ``Prefer: handling=strict``. ``_count`` is
    clamped to ``max_count``. ``base_url`` lets a reference value written as an
    absolute URL on this server match local references.
    See https://hl7.org/fhir/R4/search.html and http.html#search.
    """
    pairs = list(query)
    if res_type is not None and not is_resource_type(res_type):
        raise outcomes.invalid(f"{res_type!r} is not a resource type")
    types: tuple[str, ...] = (res_type,) if res_type is not None else ()
    if res_type is None:
        for key, raw in pairs:
            if key == "_type":
                listed = tuple(t.strip() for t in raw.split(",") if t.strip())
                for t in listed:
                    if not is_resource_type(t):
                        raise _bad(f"{t!r} is not a resource type", "_type")
                types = tuple(dict.fromkeys(types + listed))
    parser = _Parser(res_type, types, strict, base_url)
    filters: list[Filter] = []
    applied: list[tuple[str, str]] = []
    sort: tuple[SortKey, ...] = ()
    count = min(default_count, max_count)
    total = summary = cursor = None
    elements: tuple[str, ...] = ()
    includes: list[Include] = []
    revincludes: list[Include] = []
    for key, raw in pairs:
        name = key.strip()
        if "\x00" in key or "\x00" in raw:
            raise _bad("a search parameter may not contain a NUL character", name)
        try:
            key.encode("utf-8")
            raw.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad("a search parameter must be valid UTF-8", name) from None
        if name in TRANSPORT_PARAMS:
            continue
        if name == "_type":
            if res_type is not None:
                parser.skip(name, "_type applies to a search across types", unsupported=False)
                continue
            applied.append((key, raw))
            continue
        if name == "_cursor":
            cursor = raw
            continue
        if name == "_count":
            count = _parse_count(raw, max_count)
        elif name == "_sort":
            sort = _parse_sort(parser, raw)
        elif name == "_total":
            if raw not in TOTAL_VALUES:
                raise _bad(f"_total takes none, estimate or accurate, not {raw!r}", "_total")
            total = raw
        elif name == "_summary":
            if raw not in SUMMARY_VALUES:
                raise _bad(f"_summary takes true, text, data, count or false, not {raw!r}",
                           "_summary")
            summary = raw
        elif name == "_elements":
            elements = tuple(e.strip() for e in raw.split(",") if e.strip())
        elif name.partition(":")[0] in ("_include", "_revinclude"):
            base, _, mod = name.partition(":")
            if mod not in ("", "iterate", "recurse"):
                raise _bad(f"unknown modifier :{mod}", name)
            include = _parse_include(parser, raw, reverse=base == "_revinclude",
                                     iterate=bool(mod), name=name)
            (revincludes if include.reverse else includes).append(include)
        else:
            if raw == "":
                parser.warnings.append(f"parameter {name!r} has no value: ignored")
                continue
            found = parser.filter(types, name, raw, name)
            if found is None:
                continue
            filters.append(found)
        applied.append((key, raw))
    return SearchRequest(
        res_type=res_type,
        types=types,
        filters=tuple(filters),
        sort=sort,
        count=count,
        total=total,
        summary=summary,
        elements=elements,
        includes=tuple(includes),
        revincludes=tuple(revincludes),
        cursor=cursor,
        warnings=tuple(parser.warnings),
        query=tuple(applied),
    )
