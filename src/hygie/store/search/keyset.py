"""Keyset paging: the order of a search's results, and cursors that resume it.

Results are ordered by the ``_sort`` keys, then by ``pk``. A resource sorts by its
least value of a parameter ascending, its greatest descending (dates and ranges: the
start ascending, the end descending), and one without a value comes last either way:
each nullable key is ordered by ``(key IS NULL, key)``. A page's cursor carries the
keys and ``pk`` of its last row; the next page is the rows strictly after them in that
order (``rows_after``), so it starts at the right place however many rows were added,
changed or removed meanwhile, and no OFFSET is ever read past. The cursor also carries
a fingerprint of the search's order, so a cursor cannot be replayed on another search.
See https://hl7.org/fhir/R4/search.html#sort and http.html#paging.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select
from sqlalchemy.sql.expression import ScalarSelect

from hygie.store import outcomes
from hygie.store.schema import INDEX_TABLES, resource
from hygie.store.search.parse import SearchRequest, SortKey

Clause = ColumnElement[bool]


def type_clause(column: Any, types: Sequence[str]) -> Clause | None:
    """``column`` is one of ``types`` (None: every type, no condition)."""
    if not types:
        return None
    if len(types) == 1:
        return column == types[0]  # type: ignore[no-any-return]
    return column.in_(types)  # type: ignore[no-any-return]


_SORT_COLUMNS: dict[str, tuple[str, str]] = {
    # type -> (column for ascending, column for descending)
    "string": ("value", "value"),
    "token": ("code", "code"),
    "date": ("low", "high"),
    "number": ("low", "high"),
    "quantity": ("low", "high"),
    "uri": ("value", "value"),
}


def sort_expression(key: SortKey, types: Sequence[str]) -> Any:
    """The value a resource sorts by: the least (or, descending, greatest) of its values."""
    if key.code == "_id":
        return resource.c.res_id
    if key.code == "_lastUpdated":
        return resource.c.last_updated
    table = INDEX_TABLES[key.type]
    if key.type == "reference":
        column: Any = func.coalesce(table.c.target_type + "/" + table.c.target_id, table.c.url)
    else:
        column = table.c[_SORT_COLUMNS[key.type][1 if key.descending else 0]]
    aggregate = func.max(column) if key.descending else func.min(column)
    parts: list[Clause] = [table.c.res_pk == resource.c.pk, table.c.param == key.code]
    by_type = type_clause(table.c.res_type, types)
    if by_type is not None:
        parts.append(by_type)
    subquery: ScalarSelect[Any] = select(aggregate).where(*parts).scalar_subquery()
    return subquery


@dataclass(frozen=True)
class SortTerm:
    """One column of the keyset order: an expression, its direction, nullable or not."""

    expression: Any
    descending: bool
    nullable: bool


def rows_after(terms: Sequence[SortTerm], values: Sequence[Any]) -> Clause:
    """Rows strictly after ``values`` in the order of ``terms`` (keyset condition)."""
    term, value = terms[0], values[0]
    rest_terms, rest_values = terms[1:], values[1:]
    if term.nullable:
        flag = case((term.expression.is_(None), 1), else_=0)
        missing = 1 if value is None else 0
        if value is None:
            # In the block of missing values: the value column is NULL for all of them.
            inner = rows_after(rest_terms, rest_values) if rest_terms else false()
            return or_(flag > missing, and_(flag == missing, inner))  # type: ignore[no-any-return]
        beyond = term.expression < value if term.descending else term.expression > value
        tie: Clause = term.expression == value
        later = beyond
        if rest_terms:
            later = or_(beyond, and_(tie, rows_after(rest_terms, rest_values)))
        return or_(flag > missing, and_(flag == missing, later))  # type: ignore[no-any-return]
    beyond = term.expression < value if term.descending else term.expression > value
    if not rest_terms:
        return beyond  # type: ignore[no-any-return]
    return or_(beyond, and_(term.expression == value, rows_after(rest_terms, rest_values)))  # type: ignore[no-any-return]


def encode_cursor(fingerprint: int, values: list[Any]) -> str:
    raw = json.dumps([fingerprint, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, fingerprint: int, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        decoded = None
    if (
        not isinstance(decoded, list)
        or len(decoded) != size + 1
        or decoded[0] != fingerprint
        or not isinstance(decoded[-1], int)
        or not all(v is None or isinstance(v, int | float | str) for v in decoded[1:])
    ):
        raise outcomes.invalid("this paging cursor does not belong to this search",
                               expression="_cursor")
    return decoded[1:]


def sort_terms(req: SearchRequest) -> list[SortTerm]:
    """The keyset order of a search: its ``_sort`` keys, then ``pk``."""
    terms = [
        SortTerm(sort_expression(key, req.types), key.descending,
                 nullable=key.code not in ("_id", "_lastUpdated"))
        for key in req.sort
    ]
    terms.append(SortTerm(resource.c.pk, False, nullable=False))
    return terms


def fingerprint(req: SearchRequest) -> int:
    """What a cursor must match: the types searched and their order."""
    spec = ",".join(f"{'-' if k.descending else ''}{k.code}" for k in req.sort)
    return zlib.crc32(f"{req.res_type}|{','.join(req.types)}|{spec}".encode())
