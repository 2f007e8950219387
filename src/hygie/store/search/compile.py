"""Search compilation: a ``SearchRequest`` becomes SQLAlchemy Core selects.

Every filter becomes ``resource.pk IN (SELECT res_pk FROM idx_<type> WHERE ...)``
over the index table of its parameter type, built by one ``_compile_<type>`` per
type; chains join ``idx_reference`` to the target resources, ``_has`` joins it to
the referring ones. Every value is a bound parameter, and only constructs that
SQLite and PostgreSQL read alike are used, so one query serves both engines.

Paging is by keyset, never OFFSET (``keyset.py``): results are ordered by the
``_sort`` keys and then by ``pk``, and a cursor carries the keys of the last row
shown, so that the next page starts right after it even while others write.
See https://hl7.org/fhir/R4/search.html (prefixes, modifiers, chaining, _has,
_sort, _include) and http.html#paging.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    case,
    false,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
)

from hygie.store.schema import INDEX_STRING_LENGTH, INDEX_TABLES, idx_reference, idx_token, resource
from hygie.store.search.extract import DATE_MAX, DATE_MIN
from hygie.store.search.keyset import (
    SortTerm,
    decode_cursor,
    encode_cursor,
    fingerprint,
    rows_after,
    sort_terms,
    type_clause,
)
from hygie.store.search.params import COLUMN_PARAMS
from hygie.store.search.parse import (
    Chain,
    Condition,
    DateValue,
    Filter,
    Has,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    SearchRequest,
    StringValue,
    TokenValue,
    UriValue,
)

#: Columns every result select returns, in this order.
RESULT_COLUMNS = (
    resource.c.pk,
    resource.c.res_type,
    resource.c.res_id,
    resource.c.version,
    resource.c.last_updated,
    resource.c.body,
)

Res = FromClause
Clause = ColumnElement[bool]

#: How far ``ap`` reaches around a value: 10% of its distance to now / of the number.
APPROXIMATION = 0.1


# --- shared pieces ---------------------------------------------------------------------


def _rows_where(kind: str, code: str, types: Sequence[str], clause: Clause | None) -> Select[Any]:
    """``SELECT res_pk FROM idx_<kind> WHERE param = code [AND type] [AND clause]``."""
    table = INDEX_TABLES[kind]
    parts: list[Clause] = [table.c.param == code]
    by_type = type_clause(table.c.res_type, types)
    if by_type is not None:
        parts.append(by_type)
    if clause is not None:
        parts.append(clause)
    return select(table.c.res_pk).where(*parts)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix_match(column: Any, prefix: str) -> Clause:
    """``column`` starts with ``prefix``: a range the b-tree uses, and LIKE to be exact."""
    prefix = prefix[:INDEX_STRING_LENGTH]
    if not prefix:
        return true()
    following = ord(prefix[-1]) + 1
    if following > 0x10FFFF:
        return column.like(_like_escape(prefix) + "%", escape="\\")  # type: ignore[no-any-return]
    if 0xD800 <= following <= 0xDFFF:  # no surrogate: the next character is U+E000
        following = 0xE000
    upper = prefix[:-1] + chr(following)
    return and_(  # type: ignore[no-any-return]
        column >= prefix, column < upper, column.like(_like_escape(prefix) + "%", escape="\\")
    )


# --- one function per parameter type -------------------------------------------------------


def _compile_string(cond: Condition, types: Sequence[str]) -> Select[Any]:
    table = INDEX_TABLES["string"]
    clauses: list[Clause] = []
    for value in cond.values:
        assert isinstance(value, StringValue)
        if cond.modifier == "exact":
            clauses.append(table.c.exact == value.text[:INDEX_STRING_LENGTH])
        elif cond.modifier == "contains":
            clauses.append(table.c.value.like("%" + _like_escape(value.text) + "%", escape="\\"))
        else:
            clauses.append(_prefix_match(table.c.value, value.text))
    return _rows_where("string", cond.code, types, or_(*clauses))


def _token_clause(table: Any, value: TokenValue) -> Clause:
    parts: list[Clause] = []
    if value.code is not None:
        parts.append(table.c.code == value.code[:INDEX_STRING_LENGTH])
    if value.system is not None:
        parts.append(table.c.system == value.system[:INDEX_STRING_LENGTH])
    elif not value.any_system:
        parts.append(table.c.system.is_(None))
    return and_(*parts) if parts else true()  # type: ignore[no-any-return]


def _text_clause(column: Any, text: str) -> Clause:
    """Some word of ``column`` starts with ``text`` (token ``:text``)."""
    escaped = _like_escape(text[:INDEX_STRING_LENGTH])
    return or_(  # type: ignore[no-any-return]
        column.like(escaped + "%", escape="\\"), column.like("% " + escaped + "%", escape="\\")
    )


def _compile_token(cond: Condition, types: Sequence[str]) -> Select[Any]:
    table = idx_token
    clauses: list[Clause] = []
    for value in cond.values:
        if isinstance(value, StringValue):
            clauses.append(_text_clause(table.c.text, value.text))
        else:
            assert isinstance(value, TokenValue)
            clauses.append(_token_clause(table, value))
    return _rows_where("token", cond.code, types, or_(*clauses))


def _range_clause(
    prefix: str, low: Any, high: Any, col_low: Any, col_high: Any, exact: float | None = None
) -> Clause:
    """Compare a stored range with a search range by prefix (search.html#prefix).

    Dates compare ranges both ways; numbers and quantities pass ``exact`` (the
    value as written) since gt/lt/ge/le/sa/eb compare with it, not its precision.
    Implied bounds (``col_low <= col_high``) are added so an index on low or high
    can serve each prefix.
    """
    if exact is None:
        eq = and_(col_low >= low, col_high <= high, col_low <= high)
        if prefix == "eq":
            return eq  # type: ignore[no-any-return]
        if prefix == "ne":
            return not_(eq)
        if prefix == "gt":
            return col_high > high  # type: ignore[no-any-return]
        if prefix == "lt":
            return col_low < low  # type: ignore[no-any-return]
        if prefix == "ge":
            return or_(col_high > high, eq)  # type: ignore[no-any-return]
        if prefix == "le":
            return or_(col_low < low, eq)  # type: ignore[no-any-return]
        if prefix == "sa":
            return col_low > high  # type: ignore[no-any-return]
        if prefix == "eb":
            return col_high < low  # type: ignore[no-any-return]
        # ap: overlaps the value widened by 10% of its distance to now.
        now = int(time.time() * 1_000_000)
        reach = int(abs(now - low) * APPROXIMATION)
        return and_(
            col_low <= min(high + reach, DATE_MAX),  # type: ignore[no-any-return]
            col_high >= max(low - reach, DATE_MIN),
        )
    eq = and_(col_low >= low, col_high < high, col_low < high)
    if prefix == "eq":
        return eq  # type: ignore[no-any-return]
    if prefix == "ne":
        return not_(eq)
    if prefix == "gt":
        return col_high > exact  # type: ignore[no-any-return]
    if prefix == "lt":
        return col_low < exact  # type: ignore[no-any-return]
    if prefix == "ge":
        return col_high >= exact  # type: ignore[no-any-return]
    if prefix == "le":
        return col_low <= exact  # type: ignore[no-any-return]
    if prefix == "sa":
        return col_low > exact  # type: ignore[no-any-return]
    if prefix == "eb":
        return col_high < exact  # type: ignore[no-any-return]
    reach = abs(exact) * APPROXIMATION
    return and_(col_low <= exact + reach, col_high >= exact - reach)  # type: ignore[no-any-return]


def _compile_date(cond: Condition, types: Sequence[str]) -> Select[Any]:
    table = INDEX_TABLES["date"]
    clauses = []
    for value in cond.values:
        assert isinstance(value, DateValue)
        clauses.append(
            _range_clause(value.prefix, value.low, value.high, table.c.low, table.c.high)
        )
    return _rows_where("date", cond.code, types, or_(*clauses))


def _compile_number(cond: Condition, types: Sequence[str]) -> Select[Any]:
    table = INDEX_TABLES["number"]
    clauses = []
    for value in cond.values:
        assert isinstance(value, NumberValue)
        clauses.append(
            _range_clause(
                value.prefix, value.low, value.high, table.c.low, table.c.high, exact=value.value
            )
        )
    return _rows_where("number", cond.code, types, or_(*clauses))


def _compile_quantity(cond: Condition, types: Sequence[str]) -> Select[Any]:
    table = INDEX_TABLES["quantity"]
    clauses = []
    for value in cond.values:
        assert isinstance(value, QuantityValue)
        parts = [
            _range_clause(
                value.prefix, value.low, value.high, table.c.low, table.c.high, exact=value.value
            )
        ]
        if value.code is not None:
            parts.append(table.c.code == value.code[:INDEX_STRING_LENGTH])
        if value.system is not None:
            parts.append(table.c.system == value.system[:INDEX_STRING_LENGTH])
        clauses.append(and_(*parts))
    return _rows_where("quantity", cond.code, types, or_(*clauses))


def _compile_reference(cond: Condition, types: Sequence[str]) -> Select[Any]:
    if cond.modifier == "identifier":
        clauses = [_token_clause(idx_token, v) for v in cond.values if isinstance(v, TokenValue)]
        return _rows_where("token", cond.code, types, or_(*clauses))
    table = idx_reference
    clauses = []
    for value in cond.values:
        assert isinstance(value, ReferenceValue)
        if value.url is not None:
            clauses.append(table.c.url == value.url[:INDEX_STRING_LENGTH])
            continue
        parts = [table.c.target_id == value.res_id]
        if value.res_type is not None:
            if cond.modifier == "type" and value.res_type not in cond.target_types:
                clauses.append(false())
                continue
            parts.append(table.c.target_type == value.res_type)
        elif cond.modifier == "type":
            parts.append(table.c.target_type == cond.target_types[0])
        clauses.append(and_(*parts))
    return _rows_where("reference", cond.code, types, or_(*clauses))


def _uri_ancestors(uri: str) -> list[str]:
    """``a/b/c`` and its parents at path boundaries, for ``:above``."""
    out = [uri]
    cut = uri.rstrip("/")
    while "/" in cut:
        cut = cut.rsplit("/", 1)[0]
        if not cut or cut.endswith(":") or cut.endswith("/"):
            break
        out.append(cut)
    return out


def _compile_uri(cond: Condition, types: Sequence[str]) -> Select[Any]:
    table = INDEX_TABLES["uri"]
    clauses = []
    for value in cond.values:
        assert isinstance(value, UriValue)
        if cond.modifier == "below":
            clauses.append(_prefix_match(table.c.value, value.value))
        elif cond.modifier == "above":
            clauses.append(
                table.c.value.in_([u[:INDEX_STRING_LENGTH] for u in _uri_ancestors(value.value)])
            )
        else:
            clauses.append(table.c.value == value.value[:INDEX_STRING_LENGTH])
    return _rows_where("uri", cond.code, types, or_(*clauses))


_COMPILERS: dict[str, Callable[[Condition, Sequence[str]], Select[Any]]] = {
    "string": _compile_string,
    "token": _compile_token,
    "date": _compile_date,
    "number": _compile_number,
    "quantity": _compile_quantity,
    "reference": _compile_reference,
    "uri": _compile_uri,
}


def _compile_column_param(cond: Condition, res: Res) -> Clause:
    """``_id`` and ``_lastUpdated``: the resource table's own columns."""
    if cond.code == "_id":
        ids = [v.code for v in cond.values if isinstance(v, TokenValue) and v.code is not None]
        if cond.missing is not None:
            return false() if cond.missing else true()
        clause = res.c.res_id.in_(ids)
        return not_(clause) if cond.modifier == "not" else clause  # type: ignore[no-any-return]
    if cond.missing is not None:
        return false() if cond.missing else true()
    column = res.c.last_updated
    return or_(
        *(  # type: ignore[no-any-return]
            _range_clause(v.prefix, v.low, v.high, column, column)
            for v in cond.values
            if isinstance(v, DateValue)
        )
    )


def match_rows(item: Filter, types: Sequence[str]) -> Select[Any] | None:
    """``SELECT res_pk`` of the resources a positive filter matches, or None.

    None for what is not a plain match on an index table: ``_id``/``_lastUpdated``
    (columns), ``_has`` (matches by id), ``:missing``, and token ``:not``.
    """
    if isinstance(item, Chain):
        return _compile_chain(item, types)
    if isinstance(item, Has) or item.code in COLUMN_PARAMS or item.missing is not None:
        return None
    if item.modifier == "not":
        return None
    return _COMPILERS[item.type](item, types)


def probe_filter(item: Filter, res: Res, types: Sequence[str]) -> Clause:
    """The same condition as ``compile_filter``, written as a correlated EXISTS.

    ``pk IN (subquery)`` lets SQLite collect every match of the subquery first;
    ``EXISTS`` lets it check one candidate at a time through the ``res_pk`` index,
    which is what the filters besides the one driving a page need. PostgreSQL
    plans both forms as the same semi-join.
    """
    rows = match_rows(item, types)
    if rows is None:
        if isinstance(item, Condition) and item.modifier == "not":
            token_rows = _COMPILERS[item.type](item, types)
            column = token_rows.selected_columns[0]
            return not_(token_rows.where(column == res.c.pk).exists())
        return compile_filter(item, res, types)
    column = rows.selected_columns[0]
    return rows.where(column == res.c.pk).exists()


def driver_rank(item: Filter) -> int:
    """How likely a filter is to match few resources (lower first), to drive a page.

    SQLite has no statistics on values, so the filter whose index rows a page
    walks is chosen by kind: a reference or a system|code names few resources, a
    code alone more, a prefix more again; a range or a text search may match
    most of a table, and then no filter drives (the page walks the type by pk).
    """
    if isinstance(item, Chain):
        return 1
    if (
        isinstance(item, Has)
        or item.missing is not None
        or item.modifier in ("not", "text", "contains")
    ):
        return 9
    if item.code == "_id" or item.code.endswith("identifier"):
        return 0
    if item.type == "reference" or (item.type == "string" and item.modifier == "exact"):
        return 0
    if item.type == "uri" and item.modifier is None:
        return 0
    if item.type == "token":
        # A code names a concept, and a common one (a LOINC vital sign) matches a
        # good share of a table: a reference to one patient is the better driver.
        explicit = all(isinstance(v, TokenValue) and v.system and v.code for v in item.values)
        return 2 if explicit else 3
    if item.type in ("string", "uri"):
        return 4
    return 9


def compile_filter(item: Filter, res: Res, types: Sequence[str]) -> Clause:
    """The SQL condition for one filter on the resource table (or an alias of it)."""
    if isinstance(item, Has):
        return _compile_has(item, res, types)
    if isinstance(item, Chain):
        return res.c.pk.in_(_compile_chain(item, types))  # type: ignore[no-any-return]
    if item.code in COLUMN_PARAMS:
        return _compile_column_param(item, res)
    if item.missing is not None:
        present = _rows_where(item.type, item.code, types, None)
        return res.c.pk.not_in(present) if item.missing else res.c.pk.in_(present)  # type: ignore[no-any-return]
    rows = _COMPILERS[item.type](item, types)
    if item.modifier == "not":
        return res.c.pk.not_in(rows)  # type: ignore[no-any-return]
    return res.c.pk.in_(rows)  # type: ignore[no-any-return]


def _compile_chain(chain: Chain, types: Sequence[str]) -> Select[Any]:
    """``subject:Patient.name=x``: a reference row to a live target that matches."""
    ref = idx_reference.alias()
    target = resource.alias()
    parts: list[Clause] = [ref.c.param == chain.code]
    by_type = type_clause(ref.c.res_type, types)
    if by_type is not None:
        parts.append(by_type)
    target_types = type_clause(target.c.res_type, chain.target_types)
    if target_types is not None:
        parts.append(target_types)
    parts.append(target.c.deleted == false())
    parts.append(compile_filter(chain.condition, target, chain.target_types))
    return (
        select(ref.c.res_pk)
        .select_from(
            ref.join(
                target,
                and_(target.c.res_type == ref.c.target_type, target.c.res_id == ref.c.target_id),
            )
        )
        .where(*parts)
    )


def _compile_has(has: Has, res: Res, types: Sequence[str]) -> Clause:
    """``_has:Observation:patient:code=x``: a live Observation matching x refers here.

    When the condition is a plain index match, the references are looked up from
    its rows (``ref.res_pk IN (...)``): the referring resources are then never read,
    and an engine cannot choose to walk every reference of the parameter instead.
    """
    ref = idx_reference.alias()
    parts: list[Clause] = [ref.c.res_type == has.res_type, ref.c.param == has.reference]
    by_type = type_clause(ref.c.target_type, types)
    if by_type is not None:
        parts.append(by_type)
    rows = match_rows(has.condition, (has.res_type,))
    source_from: Any = ref
    if rows is not None:
        # Index rows of deleted resources are removed with them.
        parts.append(ref.c.res_pk.in_(rows))
    else:
        source = resource.alias()
        source_from = ref.join(source, source.c.pk == ref.c.res_pk)
        parts.append(source.c.deleted == false())
        parts.append(compile_filter(has.condition, source, (has.res_type,)))
    if len(types) == 1:
        ids = select(ref.c.target_id).select_from(source_from).where(*parts)
        return res.c.res_id.in_(ids)  # type: ignore[no-any-return]
    keys = select(ref.c.target_type, ref.c.target_id).select_from(source_from).where(*parts)
    return tuple_(res.c.res_type, res.c.res_id).in_(keys)  # type: ignore[no-any-return]


def compartment_clause(
    compartment_type: str, compartment_id: str, params: Sequence[str], res: Res = resource
) -> Clause:
    """Resources in ``compartment_type/compartment_id`` through one of ``params``.

    For ``GET Patient/123/Observation``: ``params`` are the parameters that the
    compartment definition lists for the searched type (compartmentdefinition.html).
    """
    if not params:
        return false()
    rows = select(idx_reference.c.res_pk).where(
        idx_reference.c.param.in_(list(params)),
        idx_reference.c.target_type == compartment_type,
        idx_reference.c.target_id == compartment_id,
    )
    return res.c.pk.in_(rows)  # type: ignore[no-any-return]


# --- the compiled search -----------------------------------------------------------------


@dataclass
class CompiledSearch:
    """The SQL of one search: its page, count and include queries."""

    request: SearchRequest
    #: Conditions on ``resource`` every query applies (types, not deleted, restrictions).
    where: list[Clause] = field(default_factory=list)
    #: One condition per filter of the request.
    filters: list[Clause] = field(default_factory=list)
    #: For a search with one positive filter and no ``_sort``: the ``res_pk`` rows that
    #: filter matches, which a page reads in ``res_pk`` order and stops (see page_query).
    driver: Select[Any] | None = None
    #: For several filters and no ``_sort``: the likeliest selective one as ``IN``, the
    #: others as correlated ``EXISTS`` (see ``driver_rank``).
    page_filters: list[Clause] = field(default_factory=list)
    _terms: list[SortTerm] = field(default_factory=list)
    _fingerprint: int = 0

    def page_query(self, count: int, cursor: str | None = None) -> Select[Any]:
        """One page: ``count + 1`` rows (the extra one says there is a next page).

        With a single filter and the default order, the filter's index rows are read
        in ``res_pk`` order after the cursor and cut at ``count + 1`` distinct
        resources inside the subquery, so that a common code does not make either
        engine collect all its matches first (index rows of deleted resources are
        removed with them, so none is lost on the way).
        """
        keys = [term.expression.label(f"sort_{i}") for i, term in enumerate(self._terms)]
        query = select(*RESULT_COLUMNS, *keys).where(*self.where)
        after_pk: int | None = None
        if cursor is not None:
            values = decode_cursor(cursor, self._fingerprint, len(self._terms))
            after_pk = values[-1]
            query = query.where(rows_after(self._terms, values))
        if self.driver is not None:
            rows = self.driver
            column = rows.selected_columns[0]
            if after_pk is not None:
                rows = rows.where(column > after_pk)
            query = query.where(
                resource.c.pk.in_(rows.distinct().order_by(column).limit(count + 1))
            )
        elif not self.request.sort:
            query = query.where(*self.page_filters)
        else:
            query = query.where(*self.filters)
        order: list[Any] = []
        for term in self._terms:
            if term.nullable:
                order.append(case((term.expression.is_(None), 1), else_=0))
            order.append(term.expression.desc() if term.descending else term.expression.asc())
        return query.order_by(*order).limit(count + 1)

    def next_cursor(self, row: Any) -> str:
        """The cursor of the page that starts after ``row`` (a row of ``page_query``)."""
        mapping = row._mapping
        values = [mapping[f"sort_{i}"] for i in range(len(self._terms) - 1)]
        values.append(mapping["pk"])
        return encode_cursor(self._fingerprint, values)

    def count_query(self) -> Select[Any]:
        """The number of matches (``_total=accurate``)."""
        if self.driver is not None:
            # One filter: count its index rows' resources, without reading the resources.
            matches = self.driver.distinct().subquery()
            return select(func.count()).select_from(matches)
        return select(func.count()).select_from(resource).where(*self.where, *self.filters)

    def capped_count_query(self, cap: int) -> Select[Any]:
        """The number of matches, counting no further than ``cap + 1`` (``_total=estimate``).

        Cheap whatever the result size: the caller gives an exact total when the count
        stays within ``cap`` and leaves it out otherwise.
        """
        if self.driver is not None:
            matches = self.driver.distinct().limit(cap + 1).subquery()
        else:
            matches = (
                select(resource.c.pk)
                .where(*self.where, *self.page_filters or self.filters)
                .limit(cap + 1)
                .subquery()
            )
        return select(func.count()).select_from(matches)

    def include_query(self, pks: Sequence[int], *, iterate: bool = False) -> Select[Any] | None:
        """Resources that ``_include``/``_revinclude`` add for the resources ``pks``.

        With ``iterate`` False, every directive applies to the page's resources;
        the caller then calls again with ``iterate=True`` and the resources just
        added, for the ``:iterate`` directives only, until nothing new comes (and
        within its own limit). None when there is nothing to ask.
        """
        directives = [
            d
            for d in (*self.request.includes, *self.request.revincludes)
            if d.iterate or not iterate
        ]
        if not directives or not pks:
            return None
        pk_list = list(pks)
        parts = []
        for directive in directives:
            ref = idx_reference.alias()
            other = resource.alias()
            link = and_(other.c.res_type == ref.c.target_type, other.c.res_id == ref.c.target_id)
            conditions: list[Clause] = [ref.c.res_type == directive.source_type]
            if directive.code is not None:
                conditions.append(ref.c.param == directive.code)
            if directive.target_type is not None:
                conditions.append(ref.c.target_type == directive.target_type)
            if directive.reverse:
                # Resources of source_type whose reference points at one of pks.
                conditions.append(other.c.pk.in_(pk_list))
                parts.append(
                    resource.c.pk.in_(
                        select(ref.c.res_pk).select_from(ref.join(other, link)).where(*conditions)
                    )
                )
            else:
                conditions.append(ref.c.res_pk.in_(pk_list))
                parts.append(
                    resource.c.pk.in_(
                        select(other.c.pk).select_from(ref.join(other, link)).where(*conditions)
                    )
                )
        return (
            select(*RESULT_COLUMNS)
            .where(or_(*parts), resource.c.deleted == false(), resource.c.pk.not_in(pk_list))
            .order_by(resource.c.pk)
        )


def compile_search(req: SearchRequest, *, restrict: Sequence[Clause] = ()) -> CompiledSearch:
    """Compile a parsed search. ``restrict`` adds conditions on ``resource`` (access rules,
    a compartment) to every query but the include ones."""
    where: list[Clause] = [resource.c.deleted == false()]
    by_type = type_clause(resource.c.res_type, req.types)
    if by_type is not None:
        where.append(by_type)
    where.extend(restrict)
    filters = [compile_filter(item, resource, req.types) for item in req.filters]
    driver = None
    if len(req.filters) == 1 and not req.sort and not restrict:
        driver = match_rows(req.filters[0], req.types)
    page_filters = filters
    if len(req.filters) > 1 and not req.sort:
        ranked = sorted(range(len(req.filters)), key=lambda i: driver_rank(req.filters[i]))
        lead = ranked[0] if driver_rank(req.filters[ranked[0]]) < 9 else None
        page_filters = [
            filters[i] if i == lead else probe_filter(item, resource, req.types)
            for i, item in enumerate(req.filters)
        ]
    return CompiledSearch(
        req, where, filters, driver, page_filters, sort_terms(req), fingerprint(req)
    )
