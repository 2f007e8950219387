"""QIDO-RS search (PS3.18 §10.6) and C-FIND matching (PS3.4 C.2.2.2) on the index.

Both protocols ask the same questions of the same index, so one module answers them:
``Query`` holds parsed matching keys (keyword -> value) at one level, and
``search_*`` turns them into SQL on the index columns. Matching follows PS3.4 C.2.2.2:
single value, wildcard (``*`` and ``?``; case-insensitive for person names, the
"fuzzy" behaviour most archives use), UID list (``\\``- or comma-separated) and range
(``a-b``, ``-b``, ``a-``) for dates and times. A key the index cannot match is
reported back, so that QIDO-RS can say so in a ``Warning`` header (PS3.18 §8.3.4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, and_, func, literal, or_, select

from hygie.imaging import tables
from hygie.imaging.archive import BASE_PLACEHOLDER
from hygie.imaging.errors import InvalidRequest

__all__ = ["Query", "parse_qido", "search_instances", "search_series", "search_studies"]

_STUDY_KEYS: dict[str, tuple[Any, str]] = {
    "PatientName": (tables.study.c.patient_name, "pn"),
    "PatientID": (tables.study.c.patient_id, "text"),
    "PatientBirthDate": (tables.study.c.patient_birth_date, "range"),
    "PatientSex": (tables.study.c.patient_sex, "text"),
    "StudyDate": (tables.study.c.study_date, "range"),
    "StudyTime": (tables.study.c.study_time, "range"),
    "AccessionNumber": (tables.study.c.accession_number, "text"),
    "StudyID": (tables.study.c.study_id, "text"),
    "StudyInstanceUID": (tables.study.c.study_uid, "uid"),
    "StudyDescription": (tables.study.c.study_description, "pn"),
    "ReferringPhysicianName": (tables.study.c.referring_physician, "pn"),
    "ModalitiesInStudy": (tables.study.c.modalities, "modalities"),
}
_SERIES_KEYS: dict[str, tuple[Any, str]] = {
    "Modality": (tables.series.c.modality, "text"),
    "SeriesInstanceUID": (tables.series.c.series_uid, "uid"),
    "SeriesNumber": (tables.series.c.series_number, "int"),
    "SeriesDescription": (tables.series.c.series_description, "pn"),
    "BodyPartExamined": (tables.series.c.body_part, "text"),
}
_INSTANCE_KEYS: dict[str, tuple[Any, str]] = {
    "SOPClassUID": (tables.instance.c.sop_class_uid, "uid"),
    "SOPInstanceUID": (tables.instance.c.sop_instance_uid, "uid"),
    "InstanceNumber": (tables.instance.c.instance_number, "int"),
}
#: Instance-level attributes returned without includefield (PS3.18 Table 10.6.3-5).
_INSTANCE_DEFAULT = ("00080016", "00080018", "00080056", "00200013", "00280010", "00280011",
                     "00280100", "00280008", "00080005", "00201041")
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
MAX_LIMIT = 10_000


@dataclass
class Query:
    """Matching keys by keyword, paging, and what to include."""

    keys: dict[str, str] = field(default_factory=dict)
    limit: int = 1000
    offset: int = 0
    include_all: bool = False
    include: set[str] = field(default_factory=set)
    #: Keys given but not supported for matching at this level.
    unsupported: list[str] = field(default_factory=list)


def keyword_of(name: str) -> str:
    """A keyword from a keyword or an 8-digit hex tag (``0020000D``)."""
    from pydicom.datadict import keyword_for_tag

    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        keyword = keyword_for_tag(int(name, 16))
        if not keyword:
            raise InvalidRequest(f"unknown attribute tag {name}")
        return keyword
    if "." in name:
        raise InvalidRequest(f"sequence matching ({name}) is not supported")
    return name


def tag_of(keyword: str) -> str | None:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return f"{tag:08X}" if tag is not None else None


def parse_qido(params: Iterable[tuple[str, str]], level: str) -> Query:
    """Parse QIDO-RS query parameters for ``study``, ``series`` or ``instance`` level."""
    q = Query()
    supported = set(_STUDY_KEYS)
    if level in ("series", "instance"):
        supported |= set(_SERIES_KEYS)
    if level == "instance":
        supported |= set(_INSTANCE_KEYS)
    for name, value in params:
        if name == "limit" or name == "offset":
            try:
                number = int(value)
            except ValueError as exc:
                raise InvalidRequest(f"{name} must be an integer") from exc
            if number < 0:
                raise InvalidRequest(f"{name} must not be negative")
            if name == "limit":
                q.limit = min(number, MAX_LIMIT)
            else:
                q.offset = number
        elif name == "includefield":
            for item in value.split(","):
                item = item.strip()
                if item == "all":
                    q.include_all = True
                elif item:
                    tag = tag_of(keyword_of(item))
                    if tag is None:
                        raise InvalidRequest(f"unknown attribute {item}")
                    q.include.add(tag)
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise InvalidRequest("fuzzymatching must be true or false")
        elif name in _CONTROL or name.startswith("_"):
            continue
        else:
            keyword = keyword_of(name)
            if tag_of(keyword) is None:
                raise InvalidRequest(f"unknown attribute {name}")
            if keyword in supported:
                q.keys[keyword] = value
            else:
                q.unsupported.append(keyword)
    return q


def _like(value: str) -> str:
    """A DICOM wildcard as a LIKE pattern with ``!`` as the escape character."""
    escaped = value.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped.replace("*", "%").replace("?", "_")


def _condition(column: Any, kind: str, value: str) -> ColumnElement[bool] | None:
    """SQL for one key; None for universal matching (empty value or ``*``)."""
    if value in ("", "*"):
        return None
    if kind == "uid":
        uids = [u.strip() for u in value.replace("\\", ",").split(",") if u.strip()]
        return column.in_(uids)
    if kind == "int":
        try:
            return column == int(value)  # type: ignore[no-any-return]
        except ValueError as exc:
            raise InvalidRequest(f"{value!r} is not an integer") from exc
    if kind == "range" and "-" in value:
        low, _, high = value.partition("-")
        parts = []
        if low:
            parts.append(column >= low)
        if high:
            # A time range's upper bound covers its whole precision (1200 -> 1200xx).
            parts.append(column <= high + "\uffff" if len(high) < 14 else column <= high)
        return and_(*parts)
    if kind == "modalities":
        # Stored as A\\B: match any listed modality as a whole item.
        padded = literal("\\") + column + literal("\\")
        options = [v for v in value.replace(",", "\\").split("\\") if v]
        return or_(*[padded.like(f"%\\{_like(m)}\\%", escape="!") for m in options])
    if "*" in value or "?" in value:
        if kind == "pn":
            return func.lower(column).like(_like(value.lower()), escape="!")  # type: ignore[no-any-return]
        return column.like(_like(value), escape="!")  # type: ignore[no-any-return]
    if kind == "pn":
        return func.lower(column) == value.lower()  # type: ignore[no-any-return]
    return column == value  # type: ignore[no-any-return]


def _where(q: Query, keys: dict[str, tuple[Any, str]]) -> list[ColumnElement[bool]]:
    out = []
    for keyword, value in q.keys.items():
        if keyword in keys:
            column, kind = keys[keyword]
            cond = _condition(column, kind, value)
            if cond is not None:
                out.append(cond)
    return out


def render(items: list[dict[str, Any]], base: str) -> bytes:
    """The DICOM JSON response body, with the archive's base URL in place."""
    return orjson.dumps(items).replace(BASE_PLACEHOLDER.encode(), base.encode())


def _filter(attrs: dict[str, Any], q: Query, default: Iterable[str] | None = None
            ) -> dict[str, Any]:
    if q.include_all or default is None:
        return attrs
    keep = set(default) | q.include
    return {k: v for k, v in attrs.items() if k in keep}


def search_studies(engine: Engine, q: Query) -> list[dict[str, Any]]:
    """Study-level matches with their counts and RetrieveURL."""
    s, se, i = tables.study, tables.series, tables.instance
    n_series = (select(func.count()).select_from(se).where(se.c.study_uid == s.c.study_uid)
                .scalar_subquery())
    n_inst = (select(func.count()).select_from(i).where(i.c.study_uid == s.c.study_uid)
              .scalar_subquery())
    where = _where(q, _STUDY_KEYS)
    series_where = _where(q, _SERIES_KEYS)
    if series_where:
        where.append(select(1).select_from(se).where(se.c.study_uid == s.c.study_uid,
                                                     *series_where).exists())
    query = (select(s.c.study_uid, s.c.attributes, s.c.modalities, n_series, n_inst)
             .where(*where).order_by(s.c.study_date, s.c.study_time, s.c.study_uid)
             .limit(q.limit).offset(q.offset))
    out = []
    with engine.connect() as conn:
        for uid, attributes, modalities, count_series, count_inst in conn.execute(query):
            item = orjson.loads(attributes)
            item["00080061"] = {"vr": "CS", "Value": [m for m in modalities.split("\\") if m]}
            item["00201206"] = {"vr": "IS", "Value": [count_series]}
            item["00201208"] = {"vr": "IS", "Value": [count_inst]}
            item["00081190"] = {"vr": "UR", "Value": [f"{BASE_PLACEHOLDER}/studies/{uid}"]}
            out.append(item)
    return out


def search_series(engine: Engine, q: Query, study_uid: str | None = None
                  ) -> list[dict[str, Any]]:
    """Series-level matches (within one study or all), with study attributes."""
    s, se, i = tables.study, tables.series, tables.instance
    n_inst = (select(func.count()).select_from(i).where(i.c.series_uid == se.c.series_uid)
              .scalar_subquery())
    where = _where(q, _SERIES_KEYS) + _where(q, _STUDY_KEYS)
    if study_uid is not None:
        where.append(se.c.study_uid == study_uid)
    query = (select(se.c.series_uid, se.c.study_uid, se.c.attributes, s.c.attributes, n_inst)
             .join(s, s.c.study_uid == se.c.study_uid).where(*where)
             .order_by(se.c.study_uid, se.c.series_number, se.c.series_uid)
             .limit(q.limit).offset(q.offset))
    out = []
    with engine.connect() as conn:
        for uid, study, attrs, study_attrs, count in conn.execute(query):
            item = orjson.loads(study_attrs) if study_uid is None else {
                k: v for k, v in orjson.loads(study_attrs).items() if k in ("00080005",)}
            item.update(orjson.loads(attrs))
            item["00201209"] = {"vr": "IS", "Value": [count]}
            item["00081190"] = {"vr": "UR", "Value": [
                f"{BASE_PLACEHOLDER}/studies/{study}/series/{uid}"]}
            out.append(item)
    return out


def search_instances(engine: Engine, q: Query, study_uid: str | None = None,
                     series_uid: str | None = None, *,
                     metadata: Callable[[str], bytes] | None = None) -> list[dict[str, Any]]:
    """Instance-level matches; study and series attributes come along.

    ``metadata(sop_uid)`` supplies the metadata of an instance whose metadata is not
    computed yet (``Archive.metadata_by_uid``).
    """
    s, se, i = tables.study, tables.series, tables.instance
    where = _where(q, _INSTANCE_KEYS) + _where(q, _SERIES_KEYS) + _where(q, _STUDY_KEYS)
    if study_uid is not None:
        where.append(i.c.study_uid == study_uid)
    if series_uid is not None:
        where.append(i.c.series_uid == series_uid)
    query = (select(i.c.sop_instance_uid, i.c.series_uid, i.c.study_uid, i.c.metadata,
                    se.c.attributes, s.c.attributes)
             .join(se, se.c.series_uid == i.c.series_uid)
             .join(s, s.c.study_uid == i.c.study_uid).where(*where)
             .order_by(i.c.series_uid, i.c.instance_number, i.c.sop_instance_uid)
             .limit(q.limit).offset(q.offset))
    out = []
    with engine.connect() as conn:
        found = list(conn.execute(query))
    for sop, series, study, meta, series_attrs, study_attrs in found:
        if meta is None:
            if metadata is None:
                continue
            meta = metadata(sop)
        item = _filter(orjson.loads(meta), q, _INSTANCE_DEFAULT)
        if not q.include_all:
            item.update(orjson.loads(series_attrs))
            if study_uid is None:
                item.update(orjson.loads(study_attrs))
        item["00081190"] = {"vr": "UR", "Value": [
            f"{BASE_PLACEHOLDER}/studies/{study}/series/{series}/instances/{sop}"]}
        out.append(item)
    return out
