"""Index extraction: from a resource, the rows of every search-index table.

``extract_index`` evaluates, for the resource's type, each searchable parameter's
expression (compiled once by the registry) and turns each value into the row of
its parameter type's table, normalised the way search compares it
(https://hl7.org/fhir/R4/search.html#ptypes):

- string: lower case, accents removed (NFKD), white space collapsed; HumanName
  and Address give each part and their text;
- token: (system, code, text) for Coding, each coding of a CodeableConcept plus
  its text, Identifier and ContactPoint (system|value), boolean ``true``/``false``
  and plain codes (no system);
- date: an inclusive range of epoch microseconds, as wide as the precision of the
  value (a birthDate ``1980`` is the whole year; no zone means UTC); Period, Timing
  events and bounds;
- number and quantity: a low/high range (a single value, a Range, or a Quantity
  with a comparator); quantity keeps system and code (the unit when no code);
- reference: type and id for a relative reference (or an absolute one on this
  server's base), the URL for others and for canonicals (``|version`` cut); a
  Reference.identifier is also written as a token row of the same parameter, which
  is what ``:identifier`` searches;
- uri: the value.

The value normalisation (``normalize_string``, ``date_range``) is also what the
query parser applies to search values, so both sides always agree.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from datetime import date
from functools import cache, lru_cache
from typing import Any

from hygie.store.fhirpath import (
    Env,
    FhirPathEvaluationError,
    Typed,
    plain,
    reference_target,
    type_of,
)
from hygie.store.fhirpath.fhirtypes import CHOICE_SUFFIXES
from hygie.store.schema import INDEX_STRING_LENGTH
from hygie.store.search.params import SearchParam, is_resource_type, registry
from hygie.store.search.readers import type_reader

#: Table kind -> rows, each in the table's column order after ``res_pk, res_type``.
IndexRows = dict[str, list[tuple[Any, ...]]]

TABLE_KINDS = ("string", "token", "date", "number", "quantity", "reference", "uri")

#: Bounds of an open date range (0001-01-01 and the end of 9999), epoch microseconds.
DATE_MIN = -62_135_596_800_000_000
DATE_MAX = 253_402_300_799_999_999

_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
UCUM = "http://unitsofmeasure.org"
ISO_4217 = "urn:iso:std:iso:4217"

_DATE_RE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


#: Strings up to this length have their normalised form and date range remembered:
#: codes' displays, units and dates repeat from one resource to the next, and a
#: remembered answer costs a look-up instead of a regular expression or a Unicode
#: decomposition. Longer strings (narratives, notes) are rare and worked out each time.
_MEMO_LENGTH = 64
_MEMO_SIZE = 8192


def normalize_string(value: str) -> str:
    """What a plain string search compares: lower case, no accents, single spaces."""
    if len(value) <= _MEMO_LENGTH:
        return _normalize_short(value)
    return _normalize(value)


def _normalize(value: str) -> str:
    if value.isascii():
        return " ".join(value.lower().split())
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


_normalize_short = lru_cache(maxsize=_MEMO_SIZE)(_normalize)


def date_range(text: str) -> tuple[int, int] | None:
    """The inclusive range of epoch microseconds a date, dateTime or instant covers.

    The range is as wide as the precision written: ``2013`` is the whole year,
    ``2013-01-14T10:00`` the whole minute, ``...:00.25`` a hundredth of a second.
    A time without a zone is read as UTC. Returns None when ``text`` is not one.
    """
    if len(text) <= _MEMO_LENGTH:
        return _date_range_short(text)
    return _date_range(text)


def _date_range(text: str) -> tuple[int, int] | None:
    """``date_range`` worked out."""
    m = _DATE_RE.match(text.strip())
    if m is None:
        return None
    year_s, month_s, day_s, hour_s, minute_s, second_s, fraction, zone = m.groups()
    year = int(year_s)
    try:
        if month_s is None:
            low_day = date(year, 1, 1).toordinal()
            high_day = date(year + 1, 1, 1).toordinal() if year < 9999 else None
            return _day_bounds(low_day, high_day)
        month = int(month_s)
        if day_s is None:
            low_day = date(year, month, 1).toordinal()
            if month == 12:
                high_day = date(year + 1, 1, 1).toordinal() if year < 9999 else None
            else:
                high_day = date(year, month + 1, 1).toordinal()
            return _day_bounds(low_day, high_day)
        day_ordinal = date(year, month, int(day_s)).toordinal()
    except ValueError:
        return None
    if hour_s is None:
        return _day_bounds(day_ordinal, day_ordinal + 1)
    hour, minute = int(hour_s), int(minute_s)
    if hour > 23 or minute > 59:
        return None
    seconds = int(second_s) if second_s is not None else 0
    if seconds > 59:
        return None
    low = (day_ordinal - _EPOCH_ORDINAL) * _US_PER_DAY + (
        (hour * 60 + minute) * 60 + seconds
    ) * 1_000_000
    if second_s is None:
        width = 60_000_000
    elif fraction:
        digits = fraction[:6]
        low += int(digits.ljust(6, "0"))
        width = 10 ** (6 - len(digits))
    else:
        width = 1_000_000
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000_000
        low -= sign * offset
    return low, low + width - 1


_date_range_short = lru_cache(maxsize=_MEMO_SIZE)(_date_range)


def _day_bounds(low_day: int, next_day: int | None) -> tuple[int, int]:
    low = (low_day - _EPOCH_ORDINAL) * _US_PER_DAY
    high = (next_day - _EPOCH_ORDINAL) * _US_PER_DAY - 1 if next_day is not None else DATE_MAX
    return low, high


def _many(value: Any) -> list[Any]:
    """A JSON array as a list; anything else (a malformed body) as nothing to read."""
    return value if isinstance(value, list) else []


def _cut(value: str) -> str:
    """The value as an index column holds it: at most 255 characters, no NUL (which
    PostgreSQL text refuses)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value if len(value) <= INDEX_STRING_LENGTH else value[:INDEX_STRING_LENGTH]


# --- one function per parameter type: (code, items, rows, base_url) -------------------

_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def _add_string(code: str, value: str, out: list[tuple[Any, ...]]) -> None:
    normalized = normalize_string(value)
    if normalized:
        out.append((code, _cut(normalized), _cut(value)))


def _strings(code: str, items: list[Any], rows: IndexRows, base_url: str | None) -> None:
    out = rows["string"]
    for item in items:
        value = plain(item)
        if isinstance(value, str):
            _add_string(code, value, out)
        elif isinstance(value, dict):
            # HumanName, Address (and any other complex value): its string parts.
            parts = _ADDRESS_PARTS if type_of(item) == "Address" or (
                "line" in value or "city" in value or "postalCode" in value
            ) else _NAME_PARTS
            for part in parts:
                found = value.get(part)
                if isinstance(found, str):
                    _add_string(code, found, out)
                elif isinstance(found, list):
                    for one in found:
                        if isinstance(one, str):
                            _add_string(code, one, out)


_CODING_KEYS = frozenset(
    {"system", "version", "code", "display", "userSelected", "id", "extension"}
)


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        normalized = normalize_string(value)
        return _cut(normalized) if normalized else None
    return None


def _opt(value: Any) -> str | None:
    return _cut(value) if isinstance(value, str) and value else None


def _tokens(code: str, items: list[Any], rows: IndexRows, base_url: str | None) -> None:
    out = rows["token"]
    for item in items:
        # plain() and type_of(), written out: this runs for most values indexed.
        if item.__class__ is Typed:
            value = item.value
            kind = item.type
        else:
            value = item
            kind = None
        if isinstance(value, bool):
            out.append((code, None, "true" if value else "false", None))
        elif isinstance(value, str):
            if value:
                out.append((code, None, _cut(value), None))
        elif isinstance(value, int | float):
            out.append((code, None, str(value), None))
        elif isinstance(value, dict):
            if kind is None:
                rtype = value.get("resourceType")
                kind = rtype if isinstance(rtype, str) else None
            if kind == "CodeableConcept" or (
                kind is None and ("coding" in value or set(value) <= {"text", "id", "extension"})
            ):
                text = _token_text(value.get("text"))
                for coding in _many(value.get("coding")):
                    if isinstance(coding, dict):
                        out.append((code, _opt(coding.get("system")), _opt(coding.get("code")),
                                    _token_text(coding.get("display")) or text))
                if text is not None:
                    out.append((code, None, None, text))
            elif "value" in value and isinstance(value["value"], str):
                # Identifier (type.text for :text) or ContactPoint: system|value.
                type_cc = value.get("type")
                text = _token_text(type_cc.get("text")) if isinstance(type_cc, dict) else None
                out.append((code, _opt(value.get("system")), _cut(value["value"]), text))
            elif ("code" in value or "system" in value) and value.keys() <= _CODING_KEYS:
                out.append((code, _opt(value.get("system")), _opt(value.get("code")),
                            _token_text(value.get("display"))))


def _date_of(value: Any) -> tuple[int, int] | None:
    if isinstance(value, str):
        return date_range(value)
    return None


def _period(value: dict[str, Any]) -> tuple[int, int] | None:
    start = _date_of(value.get("start"))
    end = _date_of(value.get("end"))
    if start is None and end is None:
        return None
    return (start[0] if start else DATE_MIN, end[1] if end else DATE_MAX)


def _dates(code: str, items: list[Any], rows: IndexRows, base_url: str | None) -> None:
    out = rows["date"]
    for item in items:
        value = item.value if item.__class__ is Typed else item
        if isinstance(value, str):
            found = date_range(value)
            if found is not None:
                out.append((code, *found))
        elif isinstance(value, dict):
            if "start" in value or "end" in value:
                found = _period(value)
                if found is not None:
                    out.append((code, *found))
                continue
            # Timing: each event, and the bounds of its repeat when they are a Period.
            for event in _many(value.get("event")):
                found = _date_of(event)
                if found is not None:
                    out.append((code, *found))
            repeat = value.get("repeat")
            bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
            if isinstance(bounds, dict):
                found = _period(bounds)
                if found is not None:
                    out.append((code, *found))


def _number_of(value: Any) -> float | None:
    """A finite number of the body as a float (NaN would not store; infinities are ours)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _range_bounds(value: dict[str, Any]) -> tuple[float, float] | None:
    low = value.get("low")
    high = value.get("high")
    low_v = _number_of(low.get("value")) if isinstance(low, dict) else None
    high_v = _number_of(high.get("value")) if isinstance(high, dict) else None
    if low_v is None and high_v is None:
        return None
    return (low_v if low_v is not None else float("-inf"),
            high_v if high_v is not None else float("inf"))


def _numbers(code: str, items: list[Any], rows: IndexRows, base_url: str | None) -> None:
    out = rows["number"]
    for item in items:
        value = plain(item)
        number = _number_of(value)
        if number is not None:
            out.append((code, number, number))
        elif isinstance(value, dict):
            if "low" in value or "high" in value:
                bounds = _range_bounds(value)
                if bounds is not None:
                    out.append((code, *bounds))
            else:
                number = _number_of(value.get("value"))
                if number is not None:
                    out.append((code, number, number))


def _quantity_rows(code: str, value: dict[str, Any], out: list[tuple[Any, ...]]) -> None:
    """A Quantity's row (system, code); one more, with no system, for a unit unlike the code.

    ``value=5||mg`` must match a quantity whose unit is mg whatever its code
    (search.html#quantity), hence the second row.
    """
    number = _number_of(value.get("value"))
    if number is None:
        return
    low, high = number, number
    comparator = value.get("comparator")
    if comparator in ("<", "<="):
        low = float("-inf")
    elif comparator in (">", ">="):
        high = float("inf")
    if "currency" in value:
        out.append((code, low, high, ISO_4217, _opt(value.get("currency"))))
        return
    unit_code = _opt(value.get("code")) or _opt(value.get("unit"))
    out.append((code, low, high, _opt(value.get("system")), unit_code))
    unit = _opt(value.get("unit"))
    if unit is not None and unit != unit_code:
        out.append((code, low, high, None, unit))


def _quantities(code: str, items: list[Any], rows: IndexRows, base_url: str | None) -> None:
    out = rows["quantity"]
    for item in items:
        value = plain(item)
        if not isinstance(value, dict) or type_of(item) == "SampledData":
            continue
        if "low" in value or "high" in value:
            bounds = _range_bounds(value)
            if bounds is None:
                continue
            ends = [q for q in (value.get("low"), value.get("high")) if isinstance(q, dict)]
            unit = next((q for q in ends if q.get("code") or q.get("unit")), {})
            out.append((code, *bounds, _opt(unit.get("system")),
                        _opt(unit.get("code") or unit.get("unit"))))
        else:
            _quantity_rows(code, value, out)


def reference_row(code: str, reference: str, base_url: str | None) -> tuple[Any, ...] | None:
    """The idx_reference row for a reference string (None for ``#contained``)."""
    if not reference or reference.startswith("#"):
        return None
    if base_url and reference.startswith(base_url.rstrip("/") + "/"):
        reference = reference[len(base_url.rstrip("/")) + 1 :]
    if "://" not in reference and not reference.startswith("urn:"):
        target = reference_target(reference)
        if target is not None:
            return (code, target[0], target[1], None)
    return (code, None, None, _cut(reference.split("|", 1)[0]))


def _references(code: str, items: list[Any], rows: IndexRows, base_url: str | None) -> None:
    out = rows["reference"]
    for item in items:
        value = item.value if item.__class__ is Typed else item
        if isinstance(value, str):
            row = reference_row(code, value, base_url)
            if row is not None:
                out.append(row)
        elif isinstance(value, dict) and "resourceType" not in value:
            reference = value.get("reference")
            if isinstance(reference, str):
                row = reference_row(code, reference, base_url)
                if row is not None:
                    out.append(row)
            identifier = value.get("identifier")
            if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
                rows["token"].append(
                    (code, _opt(identifier.get("system")), _cut(identifier["value"]), None)
                )


def _uris(code: str, items: list[Any], rows: IndexRows, base_url: str | None) -> None:
    out = rows["uri"]
    for item in items:
        value = item.value if item.__class__ is Typed else item
        if isinstance(value, str) and value:
            out.append((code, _cut(value)))


_EXTRACTORS: dict[str, Callable[[str, list[Any], IndexRows, str | None], None]] = {
    "string": _strings,
    "token": _tokens,
    "date": _dates,
    "number": _numbers,
    "quantity": _quantities,
    "reference": _references,
    "uri": _uris,
}


@cache
def _plan(res_type: str) -> tuple[tuple[SearchParam, Callable[..., None]], ...]:
    params = registry().params(res_type)
    return tuple((p, _EXTRACTORS[p.type]) for p in params.values() if p.indexed)


@cache
def _names_of(key: str) -> tuple[str, ...]:
    """The element names a JSON key may stand for: itself and, for ``valueQuantity``, value."""
    names = [key]
    for i in range(1, len(key)):
        if key[i].isupper() and key[i:] in CHOICE_SUFFIXES:
            names.append(key[:i])
    return tuple(names)


def _unique_rows(rows: IndexRows) -> IndexRows:
    for kind, found in rows.items():
        if len(found) > 1:
            rows[kind] = list(dict.fromkeys(found))
    return rows


def extract_index(resource: dict[str, Any], base_url: str | None = None) -> IndexRows:
    """The index rows of a resource, by table kind, without duplicates.

    ``base_url`` is this server's base: absolute references that start with it are
    indexed as local ``Type/id`` references. The values come from the type's reading
    plan (``readers.py``), which gives what each parameter's expression gives.
    """
    rows: IndexRows = {kind: [] for kind in TABLE_KINDS}
    res_type = resource.get("resourceType")
    if not isinstance(res_type, str):
        return rows
    if not is_resource_type(res_type):
        # Only the Resource-level parameters apply; no plan is kept for such names.
        return extract_index_by_expression(resource, base_url)
    type_reader(res_type).read(resource, _EXTRACTORS, rows, base_url)
    return rows


def extract_index_by_expression(
    resource: dict[str, Any], base_url: str | None = None
) -> IndexRows:
    """``extract_index`` by evaluating each parameter's whole expression, one by one.

    The reference the reading plans are checked against: slower, and the same rows.
    """
    rows: IndexRows = {kind: [] for kind in TABLE_KINDS}
    res_type = resource.get("resourceType")
    if not isinstance(res_type, str):
        return rows
    present: set[str] = set()
    for key in resource:
        present.update(_names_of(key))
    env = Env(resource)
    for param, extractor in _plan(res_type):
        leading = param.leading_keys
        if leading is not None and leading.isdisjoint(present):
            continue
        assert param.compiled is not None
        try:
            items = param.compiled.evaluate(resource, env)
        except FhirPathEvaluationError:
            # A body that breaks an expression's assumptions (two values where the
            # definition expects one) leaves that parameter unindexed, not the resource.
            continue
        if items:
            extractor(param.code, items, rows, base_url)
    return _unique_rows(rows)
