"""The store's tables, declared once with SQLAlchemy Core for SQLite and PostgreSQL.

``resource`` holds the current version of every resource (deleted ones keep a row
with ``deleted`` set, so that a read answers 410 and the id is never reused by
accident); ``resource_version`` holds every version ever written, which is what
history and vread read. The ``idx_*`` tables are the search indexes: one row per
value a search parameter extracts, keyed by the surrogate ``resource.pk`` so that
rows stay narrow. They are rewritten in the same transaction as the resource, so a
search never sees an index that disagrees with the body. Their search indexes end
with ``res_pk``, so that a search reads the matching resources from the index alone,
in ``pk`` order (idx_date also has one led by ``res_pk``, to walk a wide date range
in ``pk`` order and stop at a page); see store/search/compile.py.

Times are integers: microseconds since the Unix epoch, UTC. A date search compares
ranges, and integers compare the same way on both engines, with no time-zone or
text-format trap. Index values that are ranges (a date, a Period, a number with
its precision) are stored as ``low``/``high`` bounds, both inclusive.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: Shared by every package that declares tables, so one migration history covers all.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Longest indexed string kept; longer values are cut (search on a prefix still works).
INDEX_STRING_LENGTH = 255

resource = Table(
    "resource",
    metadata,
    Column(
        "pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("body", LargeBinary, nullable=True),
    UniqueConstraint("res_type", "res_id"),
    Index(None, "res_type", "last_updated"),
    Index(None, "last_updated"),
)

resource_version = Table(
    "resource_version",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("last_updated", BigInteger, nullable=False),
    #: create, update, patch or delete: what produced this version.
    Column("method", String(8), nullable=False),
    Column("body", LargeBinary, nullable=True),
    Index(None, "last_updated"),
    Index(None, "res_type", "last_updated"),
)


def _idx_table(name: str, *columns: Column, indexes: list[tuple[str, ...]]) -> Table:
    # No foreign key to resource.pk: only the repository writes these rows, with the pk
    # of the resource row it writes in the same transaction, and resource rows are never
    # removed; checking a key per index row cost PostgreSQL a third of a bulk write.
    pk = Column("res_pk", BigInteger().with_variant(Integer, "sqlite"), nullable=False)
    table = Table(
        name,
        metadata,
        pk,
        Column("res_type", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *columns,
    )
    Index(None, table.c.res_pk)
    for cols in indexes:
        Index(None, *(table.c[c] for c in cols))
    return table


idx_string = _idx_table(
    "idx_string",
    #: Lower case, accents removed, whitespace collapsed: what a plain string search compares.
    Column("value", String(INDEX_STRING_LENGTH), nullable=False),
    #: The value as written, for :exact.
    Column("exact", String(INDEX_STRING_LENGTH), nullable=False),
    indexes=[("res_type", "param", "value", "res_pk")],
)

idx_token = _idx_table(
    "idx_token",
    Column("system", String(INDEX_STRING_LENGTH), nullable=True),
    Column("code", String(INDEX_STRING_LENGTH), nullable=True),
    #: Normalised display text (Coding.display, CodeableConcept.text), for :text.
    Column("text", String(INDEX_STRING_LENGTH), nullable=True),
    indexes=[("res_type", "param", "code", "res_pk", "system")],
)

idx_date = _idx_table(
    "idx_date",
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    indexes=[
        ("res_type", "param", "low", "high", "res_pk"),
        ("res_type", "param", "high", "low", "res_pk"),
        ("res_type", "param", "res_pk", "low", "high"),
    ],
)

idx_number = _idx_table(
    "idx_number",
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    indexes=[("res_type", "param", "low", "high", "res_pk")],
)

idx_quantity = _idx_table(
    "idx_quantity",
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("system", String(INDEX_STRING_LENGTH), nullable=True),
    Column("code", String(INDEX_STRING_LENGTH), nullable=True),
    indexes=[("res_type", "param", "code", "low", "high", "res_pk")],
)

idx_reference = _idx_table(
    "idx_reference",
    #: For a local reference (``Patient/123``, or an absolute URL on our base): type and id.
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    #: For an external or canonical reference: the URL as written (version cut off).
    Column("url", String(INDEX_STRING_LENGTH), nullable=True),
    indexes=[
        ("res_type", "param", "target_id", "target_type", "res_pk"),
        ("target_id", "target_type"),
    ],
)

idx_uri = _idx_table(
    "idx_uri",
    Column("value", String(INDEX_STRING_LENGTH), nullable=False),
    indexes=[("res_type", "param", "value", "res_pk")],
)

#: Index tables by search-parameter type (composite and special have none).
INDEX_TABLES: dict[str, Table] = {
    "string": idx_string,
    "token": idx_token,
    "date": idx_date,
    "number": idx_number,
    "quantity": idx_quantity,
    "reference": idx_reference,
    "uri": idx_uri,
}

#: Asynchronous bulk jobs ($export kick-off/status/download, $import).
bulk_job = Table(
    "bulk_job",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("request", Text, nullable=False),
    Column("owner", String(128), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("result", Text, nullable=True),
)
