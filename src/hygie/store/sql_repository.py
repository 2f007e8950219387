"""The repository on SQLAlchemy Core: one code path for SQLite and PostgreSQL.

Every write validates the resource, stamps ``meta``, and writes the current row,
the version row and the search-index rows in one database transaction, so that a
reader never sees an index that disagrees with the body. Writers on SQLite take the
write lock up front (``BEGIN IMMEDIATE``); on PostgreSQL a resource row is locked
(``FOR UPDATE``) before a new version is written, and ``lock(name)`` takes a
transaction-scoped advisory lock for conditional interactions.

Transactions are ambient: a write inside ``with repo.transaction():`` joins it,
tracked by a context variable so that threads and tasks never share one.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Engine,
    Float,
    Integer,
    LargeBinary,
    String,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from hygie.platform import pairs_in, write_transaction
from hygie.store import outcomes
from hygie.store.access import BodyCodec, Clause
from hygie.store.connections import autocommit_driver_connection, single_statement_reads
from hygie.store.definitions import patient_compartment
from hygie.store.model import (
    ID_RE,
    HistoryPage,
    SearchPage,
    StoredResource,
    WriteResult,
    format_instant,
    now_us,
)
from hygie.store.repository import Repository
from hygie.store.schema import INDEX_TABLES, idx_reference, metadata, resource_version
from hygie.store.schema import resource as resource_tbl

Validator = Callable[[dict[str, Any]], None]
Indexer = Callable[[dict[str, Any]], dict[str, list[tuple[Any, ...]]]]


@dataclass(frozen=True, slots=True)
class PreparedResource:
    """A validated resource with its id and index rows, ready for ``put_many``.

    ``index`` holds the rows of each index table as they are inserted, ``[res_pk,
    res_type, *values]`` (``index_rows``), with a placeholder for ``res_pk`` that the
    write fills in: the rows are built here, ahead of the write transaction, which
    then only sets one slot of each.
    """

    res_type: str
    res_id: str
    body: dict[str, Any]
    index: dict[str, list[list[Any]]]


def index_rows(
    res_type: str, extracted: dict[str, list[tuple[Any, ...]]]
) -> dict[str, list[list[Any]]]:
    """The rows of each index table for one resource's extracted values, ``res_pk`` 0."""
    return {
        kind: [[0, res_type, *v] for v in values] for kind, values in extracted.items() if values
    }


_CONNECTION: ContextVar[dict[int, Connection] | None] = ContextVar("hygie_store_tx", default=None)

_CURRENT_COLUMNS = (
    resource_tbl.c.pk,
    resource_tbl.c.res_type,
    resource_tbl.c.res_id,
    resource_tbl.c.version,
    resource_tbl.c.last_updated,
    resource_tbl.c.deleted,
    resource_tbl.c.body,
)

_READ_CURRENT = select(*_CURRENT_COLUMNS).where(
    resource_tbl.c.res_type == bindparam("t"), resource_tbl.c.res_id == bindparam("i")
)

_CURRENT_SQL = (f"SELECT {', '.join(c.name for c in _CURRENT_COLUMNS)} FROM {resource_tbl.name} "
                "WHERE res_type = {mark} AND res_id = {mark}")
_READ_CURRENT_SQLITE = _CURRENT_SQL.format(mark="?")
_READ_CURRENT_PG = _CURRENT_SQL.format(mark="%s")

_RESOURCE_COLUMNS = ("pk", "res_type", "res_id", "version", "last_updated", "deleted", "body")
_VERSION_COLUMNS = ("res_type", "res_id", "version", "last_updated", "method", "body")

_UPDATE_CURRENT = (
    update(resource_tbl)
    .where(resource_tbl.c.pk == bindparam("b_pk"))
    .values(
        version=bindparam("b_version"),
        last_updated=bindparam("b_when"),
        deleted=False,
        body=bindparam("b_body"),
    )
)

#: Column names of each index table after (res_pk, res_type), in IndexRows tuple order.
_INDEX_COLUMNS = {kind: [c.name for c in table.columns][2:] for kind, table in INDEX_TABLES.items()}
_INDEX_INSERT_COLUMNS = {
    kind: ("res_pk", "res_type", *names) for kind, names in _INDEX_COLUMNS.items()
}


#: PostgreSQL type of each column kind, for binary COPY (which sends no type names).
_PG_COPY_TYPES = {
    BigInteger: "int8",
    Integer: "int4",
    String: "varchar",
    Float: "float8",
    Boolean: "bool",
    LargeBinary: "bytea",
}


@cache
def _copy_types(table: str, columns: tuple[str, ...]) -> list[str]:
    """The PostgreSQL types of ``columns`` of a store table, in order."""
    declared = metadata.tables[table]
    return [_PG_COPY_TYPES[type(declared.c[name].type)] for name in columns]


def in_transaction() -> bool:
    """True when the caller runs inside a repository transaction (``transaction()``).

    Work that must not wait on the database's write lock (an audit record that another
    thread appends) asks this first.
    """
    return bool(_CONNECTION.get())


def current_connection(engine: Engine) -> Connection | None:
    """The connection of the repository transaction the caller runs in, on ``engine``.

    Lets a record that must commit or roll back with the write (its audit event) be
    written in the same transaction.
    """
    for conn in (_CONNECTION.get() or {}).values():
        if conn.engine is engine:
            return conn
    return None


def _row_to_stored(row: Any, codec: BodyCodec | None = None) -> StoredResource:
    body = bytes(row.body) if row.body is not None else None
    if body is not None and codec is not None:
        body = codec.open(body, f"{row.res_type}/{row.res_id}/{row.version}")
    return StoredResource(
        res_type=row.res_type,
        res_id=row.res_id,
        version=row.version,
        last_updated=row.last_updated,
        body=body,
        deleted=bool(getattr(row, "deleted", False)),
    )


def _encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise outcomes.invalid("the paging cursor is not valid", expression="_cursor") from exc
    if not isinstance(parts, list):
        raise outcomes.invalid("the paging cursor is not valid", expression="_cursor")
    return parts


class SqlRepository(Repository):
    """FHIR repository over one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        *,
        validator: Validator | None = None,
        indexer: Indexer | None = None,
        default_count: int = 20,
        max_count: int = 1000,
        default_total: str = "estimate",
        total_cap: int = 1000,
        max_include: int = 5000,
        codec: BodyCodec | None = None,
    ) -> None:
        self.engine = engine
        #: How bodies are kept at rest (None: as they are); see ``hygie.store.access``.
        self.codec = codec
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._validate = validator or _default_validator()
        self._index = indexer or _default_indexer()
        #: See ``write_turn``.
        self._turn = threading.Lock() if self.is_sqlite else None
        self.default_count = default_count
        self.max_count = max_count
        self.default_total = default_total
        self.total_cap = total_cap
        self.max_include = max_include

    # --- connections ---------------------------------------------------------------

    def _current(self) -> Connection | None:
        active = _CONNECTION.get()
        return active.get(id(self)) if active else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One database transaction for the writes inside, joined by nested ones.

        On SQLite it is ``platform.write_transaction``: the threads of a process queue
        on the process's writer lock and wake as soon as the writer before them
        commits, where SQLite's busy handler would sleep in growing steps (a Bundle
        holds the write lock about 10 ms, and a waiter used to oversleep it by several).
        """
        if self._current() is not None:
            yield
            return
        with self._begin() as conn:
            active = dict(_CONNECTION.get() or {})
            active[id(self)] = conn
            token = _CONNECTION.set(active)
            try:
                yield
            finally:
                _CONNECTION.reset(token)

    def write_turn(self) -> AbstractContextManager[None]:
        """On SQLite, the threads of a process prepare and write a Bundle one at a time.

        SQLite has one writer at a time, and while a thread holds its lock every
        statement lets go of the interpreter lock and takes it back; with another
        thread of the process validating its own Bundle meanwhile, each take-back
        could wait for that thread's switch interval (5 ms), the write lock held all
        along. Taking turns in a process leaves the other server processes to prepare
        theirs while one writes. (Measured over HTTP with two workers: the wait for
        the write lock fell from 66-101 ms to 10-16 ms per Bundle.)
        """
        return self._turn if self._turn is not None else nullcontext()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A connection in a new write transaction, committed when the block ends."""
        try:
            if self.is_sqlite:
                with write_transaction(self.engine) as conn:
                    yield conn
            else:
                with self.engine.connect() as conn, conn.begin():
                    yield conn
        except IntegrityError as exc:
            raise outcomes.conflict("a concurrent write changed the same resource; retry") from exc
        except OperationalError as exc:
            if "deadlock" in str(exc).lower() or "locked" in str(exc).lower():
                raise outcomes.conflict(
                    "the store is busy with a conflicting write; retry"
                ) from exc
            raise

    @contextmanager
    def _reading(self, single: bool = False) -> Iterator[Connection]:
        """A connection to read with: the current transaction's, or a pooled one.

        ``single`` marks a one-statement read, consistent on its own: it runs without
        a transaction (no BEGIN on SQLite; autocommit on PostgreSQL, which saves the
        BEGIN and ROLLBACK round trips that otherwise cost twice the query itself).
        """
        current = self._current()
        if current is not None:
            yield current
            return
        with single_statement_reads(self.engine) if single else self.engine.connect() as conn:
            yield conn

    def _writing(self) -> Connection:
        conn = self._current()
        if conn is None:  # pragma: no cover - every write path opens a transaction
            raise RuntimeError("write outside a transaction")
        return conn

    def lock(self, name: str) -> None:
        if self.is_sqlite:
            return  # BEGIN IMMEDIATE already serialises every writer
        key = int.from_bytes(
            hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
        )
        self._writing().execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def optimize(self, *, full: bool = False) -> None:
        """Refresh the planner's statistics on the store's tables.

        Without statistics SQLite assumes an index on ``res_type`` is selective and
        walks a whole type instead of the few matches of a search filter; one ANALYZE
        after a bulk load (or when none was ever run) fixes its plans. ``full`` forces
        it; otherwise SQLite only runs what ``PRAGMA optimize`` judges useful.
        """
        with self.engine.connect() as conn:
            if self.is_sqlite:
                analysed = conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first()
                conn.exec_driver_sql("PRAGMA analysis_limit = 2000")
                conn.exec_driver_sql("ANALYZE" if full or not analysed else "PRAGMA optimize")
            else:
                tables = ", ".join(["resource", *(t.name for t in INDEX_TABLES.values())])
                conn.exec_driver_sql(f"ANALYZE {tables}")
            conn.commit()

    # --- reads ---------------------------------------------------------------------

    def read(self, res_type: str, res_id: str) -> StoredResource:
        if self._current() is None:
            row = self._read_outside_transaction(res_type, res_id)
        else:
            with self._reading(single=True) as conn:
                row = conn.execute(_READ_CURRENT, {"t": res_type, "i": res_id}).first()
        if row is None:
            raise outcomes.not_found(res_type, res_id)
        _pk, _type, _id, version, last_updated, deleted, body = row  # _CURRENT_COLUMNS
        if deleted:
            raise outcomes.gone(res_type, res_id)
        body = bytes(body) if body is not None else None
        if body is not None and self.codec is not None:
            body = self.codec.open(body, f"{res_type}/{res_id}/{version}")
        return StoredResource(res_type=res_type, res_id=res_id, version=version,
                              last_updated=last_updated, body=body, deleted=False)

    def _read_outside_transaction(self, res_type: str, res_id: str) -> tuple[Any, ...] | None:
        """The current row of one resource, on a pooled connection's own DB-API cursor.

        A read by id is the commonest request a store serves, and through a SQLAlchemy
        ``Connection`` the query was the smallest part of it: on SQLite a read took 59 us
        that way against 13 us on the pooled connection's cursor, of which 11 us are
        the pool's checkout and return (which this path keeps, with the pool's reset).
        On PostgreSQL the statement runs in autocommit: no BEGIN or ROLLBACK round trip.
        """
        with autocommit_driver_connection(self.engine) as dbapi:
            if not self.is_sqlite:
                return dbapi.execute(  # type: ignore[no-any-return]
                    _READ_CURRENT_PG, (res_type, res_id), prepare=True).fetchone()
            cursor = dbapi.cursor()
            try:
                cursor.execute(_READ_CURRENT_SQLITE, (res_type, res_id))
                return cursor.fetchone()  # type: ignore[no-any-return]
            finally:
                cursor.close()

    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource:
        with self._reading() as conn:
            row = conn.execute(
                select(resource_version).where(
                    resource_version.c.res_type == res_type,
                    resource_version.c.res_id == res_id,
                    resource_version.c.version == version,
                )
            ).first()
        if row is None:
            raise outcomes.not_found(res_type, res_id, str(version))
        return StoredResource(
            res_type=row.res_type,
            res_id=row.res_id,
            version=row.version,
            last_updated=row.last_updated,
            body=_row_to_stored(row, self.codec).body,
            deleted=row.method == "delete",
            method=row.method,
        )

    # --- writes --------------------------------------------------------------------

    def _stamp(self, body: dict[str, Any], res_id: str, version: int, when: int) -> bytes:
        meta = dict(body.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = format_instant(when)
        body["id"] = res_id
        body["meta"] = meta
        return orjson.dumps(body)

    def _seal(self, data: bytes, res_type: str, res_id: str, version: int) -> bytes:
        """The bytes to store for a body: sealed by the codec when there is one."""
        if self.codec is None:
            return data
        return self.codec.seal(data, f"{res_type}/{res_id}/{version}")

    def _write_index(self, conn: Connection, pk: int, res_type: str, body: dict[str, Any]) -> None:
        self._insert_index_rows(conn, [(pk, index_rows(res_type, self._index(body)))])

    def _insert_index_rows(
        self, conn: Connection, items: list[tuple[int, dict[str, list[list[Any]]]]]
    ) -> None:
        """Insert the index rows (``index_rows``) of many resources, one bulk statement
        per table, each row given its resource's ``pk`` first.

        Index rows are the bulk of what a write sends (a dozen or more per resource),
        so they bypass SQLAlchemy's per-row parameter processing: ``executemany`` on
        SQLite, ``COPY`` on PostgreSQL. They were built beforehand, so that the write
        transaction makes no object per row (on SQLite it holds the store's one write
        lock, and allocations there also set off the garbage collector's passes).
        """
        by_kind: dict[str, list[list[Any]]] = {}
        for pk, tables in items:
            for kind, rows in tables.items():
                for row in rows:
                    row[0] = pk
                bucket = by_kind.get(kind)
                if bucket is None:
                    by_kind[kind] = list(rows)
                else:
                    bucket += rows
        for kind, rows in by_kind.items():
            self._bulk_rows(conn, INDEX_TABLES[kind].name, _INDEX_INSERT_COLUMNS[kind], rows)

    def _clear_index(self, conn: Connection, pk: int) -> None:
        for table in INDEX_TABLES.values():
            conn.execute(delete(table).where(table.c.res_pk == pk))

    def _prepare(self, body: dict[str, Any], res_type: str, res_id: str) -> dict[str, Any]:
        return _checked(body, res_type, res_id, self._validate)

    def create(self, resource: dict[str, Any], *, res_id: str | None = None) -> WriteResult:
        res_type = resource.get("resourceType")
        if not isinstance(res_type, str):
            raise outcomes.invalid("the resource has no resourceType", expression="resourceType")
        res_id = res_id or str(uuid.uuid4())
        body = self._prepare(resource, res_type, res_id)
        with self.transaction():
            conn = self._writing()
            when = now_us()
            data = self._stamp(body, res_id, 1, when)
            sealed = self._seal(data, res_type, res_id, 1)
            pk = conn.execute(
                insert(resource_tbl).returning(resource_tbl.c.pk),
                {
                    "res_type": res_type,
                    "res_id": res_id,
                    "version": 1,
                    "last_updated": when,
                    "deleted": False,
                    "body": sealed,
                },
            ).scalar_one()
            conn.execute(
                insert(resource_version),
                {
                    "res_type": res_type,
                    "res_id": res_id,
                    "version": 1,
                    "last_updated": when,
                    "method": "create",
                    "body": sealed,
                },
            )
            self._write_index(conn, pk, res_type, body)
        return WriteResult(StoredResource(res_type, res_id, 1, when, data), created=True)

    def update(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
        method: str = "update",
    ) -> WriteResult:
        if resource.get("resourceType") != res_type:
            raise outcomes.invalid(
                f"resourceType {resource.get('resourceType')!r} does not match "
                f"the URL's {res_type}",
                expression="resourceType",
            )
        body_id = resource.get("id")
        if body_id != res_id:
            raise outcomes.invalid(
                f"the body's id {body_id!r} does not match the URL's id {res_id!r}"
                if body_id is not None
                else "an update needs the resource id in the body",
                expression=f"{res_type}.id",
            )
        body = self._prepare(resource, res_type, res_id)
        with self.transaction():
            conn = self._writing()
            query = select(resource_tbl.c.pk, resource_tbl.c.version, resource_tbl.c.deleted).where(
                resource_tbl.c.res_type == res_type, resource_tbl.c.res_id == res_id
            )
            if not self.is_sqlite:
                query = query.with_for_update()
            row = conn.execute(query).first()
            when = now_us()
            if row is None:
                if if_match is not None:
                    raise outcomes.precondition_failed(
                        f"If-Match given but {res_type}/{res_id} does not exist"
                    )
                data = self._stamp(body, res_id, 1, when)
                sealed = self._seal(data, res_type, res_id, 1)
                pk = conn.execute(
                    insert(resource_tbl).returning(resource_tbl.c.pk),
                    {
                        "res_type": res_type,
                        "res_id": res_id,
                        "version": 1,
                        "last_updated": when,
                        "deleted": False,
                        "body": sealed,
                    },
                ).scalar_one()
                version, created = 1, True
            else:
                if if_match is not None and (row.version != if_match or row.deleted):
                    raise outcomes.conflict(
                        f"{res_type}/{res_id} is at version {row.version}"
                        f"{' (deleted)' if row.deleted else ''}, not {if_match}"
                    )
                pk, version, created = row.pk, row.version + 1, bool(row.deleted)
                data = self._stamp(body, res_id, version, when)
                sealed = self._seal(data, res_type, res_id, version)
                conn.execute(
                    update(resource_tbl)
                    .where(resource_tbl.c.pk == pk)
                    .values(version=version, last_updated=when, deleted=False, body=sealed)
                )
                self._clear_index(conn, pk)
            conn.execute(
                insert(resource_version),
                {
                    "res_type": res_type,
                    "res_id": res_id,
                    "version": version,
                    "last_updated": when,
                    "method": "create" if version == 1 else method,
                    "body": sealed,
                },
            )
            self._write_index(conn, pk, res_type, body)
        return WriteResult(StoredResource(res_type, res_id, version, when, data), created=created)

    def delete(self, res_type: str, res_id: str) -> WriteResult | None:
        with self.transaction():
            conn = self._writing()
            query = select(resource_tbl.c.pk, resource_tbl.c.version, resource_tbl.c.deleted).where(
                resource_tbl.c.res_type == res_type, resource_tbl.c.res_id == res_id
            )
            if not self.is_sqlite:
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None or row.deleted:
                return None
            when, version = now_us(), row.version + 1
            conn.execute(
                update(resource_tbl)
                .where(resource_tbl.c.pk == row.pk)
                .values(version=version, last_updated=when, deleted=True, body=None)
            )
            conn.execute(
                insert(resource_version),
                {
                    "res_type": res_type,
                    "res_id": res_id,
                    "version": version,
                    "last_updated": when,
                    "method": "delete",
                    "body": None,
                },
            )
            self._clear_index(conn, row.pk)
        return WriteResult(StoredResource(res_type, res_id, version, when, None, deleted=True))

    def put_many(
        self, prepared: list[PreparedResource], *, known_new: bool = False
    ) -> list[WriteResult]:
        """Write validated resources with their ids, creating or updating each (bulk path).

        The resources were validated and indexed beforehand (possibly in worker
        processes, see ``bulk.py``); this writes them with a handful of bulk
        statements per batch instead of several statements per resource.
        ``known_new`` says the ids were just made here (a transaction's creates), so
        no current version is looked up; were one to exist, the unique key on
        (type, id) refuses the write.
        """
        if not prepared:
            return []
        with self.transaction():
            conn = self._writing()
            keys = [(p.res_type, p.res_id) for p in prepared]
            current = {} if known_new else self._current_versions(conn, keys)
            when = now_us()
            staged: list[tuple[PreparedResource, int, bytes]] = []
            versions: dict[tuple[str, str], int] = {}
            version_rows: list[tuple[Any, ...]] = []
            sealed: dict[tuple[str, str], bytes] = {}
            for p in prepared:
                key = (p.res_type, p.res_id)
                row = current.get(key)
                version = versions.get(key, row.version if row is not None else 0) + 1
                versions[key] = version
                data = self._stamp(dict(p.body), p.res_id, version, when)
                sealed[key] = self._seal(data, p.res_type, p.res_id, version)
                staged.append((p, version, data))
                version_rows.append(
                    (
                        p.res_type,
                        p.res_id,
                        version,
                        when,
                        "create" if version == 1 else "update",
                        sealed[key],
                    )
                )
            # a resource repeated in the batch ends at its last version
            last = {(p.res_type, p.res_id): (p, v, d) for p, v, d in staged}
            new = [key for key in last if key not in current]
            pk_of = {key: row.pk for key, row in current.items()}
            pk_of.update(zip(new, self._reserve_pks(conn, len(new)), strict=True))
            self._bulk_rows(
                conn,
                "resource",
                _RESOURCE_COLUMNS,
                [
                    (pk_of[key], key[0], key[1], last[key][1], when, False, sealed[key])
                    for key in new
                ],
            )
            updated = [key for key in last if key in current]
            if updated:
                conn.execute(
                    _UPDATE_CURRENT,
                    [
                        {
                            "b_pk": pk_of[key],
                            "b_version": last[key][1],
                            "b_when": when,
                            "b_body": sealed[key],
                        }
                        for key in updated
                    ],
                )
                stale = [pk_of[key] for key in updated]
                for start in range(0, len(stale), 500):
                    for table in INDEX_TABLES.values():
                        conn.execute(
                            delete(table).where(table.c.res_pk.in_(stale[start : start + 500]))
                        )
            self._bulk_rows(conn, "resource_version", _VERSION_COLUMNS, version_rows)
            self._insert_index_rows(
                conn, [(pk_of[key], p.index) for key, (p, _v, _d) in last.items()]
            )
        return [
            WriteResult(
                StoredResource(p.res_type, p.res_id, version, when, data), created=version == 1
            )
            for p, version, data in staged
        ]

    def _current_versions(
        self, conn: Connection, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Any]:
        """pk, version and deleted flag of the resources among ``keys`` that exist."""
        found: dict[tuple[str, str], Any] = {}
        columns = (
            resource_tbl.c.pk,
            resource_tbl.c.res_type,
            resource_tbl.c.res_id,
            resource_tbl.c.version,
            resource_tbl.c.deleted,
        )
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = select(*columns).where(
                pairs_in(resource_tbl.c.res_type, resource_tbl.c.res_id, chunk)
            )
            if not self.is_sqlite:
                query = query.with_for_update()
            for row in conn.execute(query):
                found[(row.res_type, row.res_id)] = row
        return found

    def _reserve_pks(self, conn: Connection, n: int) -> list[int]:
        """``n`` fresh primary keys for new ``resource`` rows, in this transaction.

        On SQLite the write lock is held (BEGIN IMMEDIATE), so the keys after the
        largest one are ours; on PostgreSQL they come from the column's sequence.
        """
        if n == 0:
            return []
        if self.is_sqlite:
            top = conn.execute(text("SELECT coalesce(max(pk), 0) FROM resource")).scalar_one()
            return list(range(top + 1, top + 1 + n))
        rows = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('resource', 'pk')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": n},
        ).all()
        return [r[0] for r in rows]

    def _bulk_rows(
        self,
        conn: Connection,
        table: str,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Insert many rows with the driver's fastest path: executemany, or COPY.

        PostgreSQL gets COPY in binary format: neither side formats or parses text
        (about 20 us less per resource on each side than text COPY).
        """
        if not rows:
            return
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        if self.is_sqlite:
            marks = ", ".join("?" * len(columns))
            dbapi.executemany(  # type: ignore[attr-defined]
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
            )
            return
        with (
            dbapi.cursor() as cur,
            cur.copy(  # type: ignore[attr-defined]
                f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(_copy_types(table, columns))
            for row in rows:
                copy.write_row(row)

    def prepare(self, body: dict[str, Any], res_id: str | None = None) -> PreparedResource:
        """Validate and index a resource ahead of ``put_many``."""
        return prepare_resource(body, res_id, validate=self._validate, index=self._index)

    # --- history -------------------------------------------------------------------

    def history(
        self,
        res_type: str | None = None,
        res_id: str | None = None,
        *,
        since: int | None = None,
        count: int = 50,
        cursor: str | None = None,
    ) -> HistoryPage:
        rv = resource_version
        conds = []
        if res_type:
            conds.append(rv.c.res_type == res_type)
        if res_id:
            conds.append(rv.c.res_id == res_id)
        if since is not None:
            conds.append(rv.c.last_updated >= since)
        if cursor:
            parts = _decode_cursor(cursor)
            if len(parts) != 4:
                raise outcomes.invalid("the paging cursor is not valid", expression="_cursor")
            last, ctype, cid, cver = parts
            conds.append(
                or_(
                    rv.c.last_updated < last,
                    and_(
                        rv.c.last_updated == last,
                        tuple_(rv.c.res_type, rv.c.res_id, rv.c.version) < tuple_(ctype, cid, cver),
                    ),
                )
            )
        count = max(1, min(count, self.max_count))
        query = (
            select(rv)
            .where(*conds)
            .order_by(
                rv.c.last_updated.desc(),
                rv.c.res_type.desc(),
                rv.c.res_id.desc(),
                rv.c.version.desc(),
            )
            .limit(count + 1)
        )
        with self._reading() as conn:
            rows = conn.execute(query).all()
        entries = [
            StoredResource(
                r.res_type,
                r.res_id,
                r.version,
                r.last_updated,
                _row_to_stored(r, self.codec).body,
                deleted=r.method == "delete",
                method=r.method,
            )
            for r in rows[:count]
        ]
        next_cursor = None
        if len(rows) > count:
            e = entries[-1]
            next_cursor = _encode_cursor(e.last_updated, e.res_type, e.res_id, e.version)
        return HistoryPage(entries=entries, next_cursor=next_cursor)

    # --- search --------------------------------------------------------------------

    def search(
        self,
        res_type: str | None,
        query: list[tuple[str, str]],
        *,
        strict: bool = False,
        cursor: str | None = None,
        restrict: Sequence[Clause] = (),
    ) -> SearchPage:
        """One page of matches; ``restrict`` (access rules) applies to includes too."""
        from hygie.store.search import compile_search, parse_search

        request = parse_search(
            res_type,
            query,
            strict=strict,
            max_count=self.max_count,
            default_count=self.default_count,
        )
        compiled = compile_search(request, restrict=restrict)
        count = request.count
        page = SearchPage(matches=[], warnings=list(request.warnings))
        with self._reading() as conn:
            total_mode = (
                "accurate" if request.summary == "count" else (request.total or self.default_total)
            )
            if total_mode == "accurate":
                page.total = conn.execute(compiled.count_query()).scalar_one()
            elif total_mode == "estimate":
                counted = conn.execute(compiled.capped_count_query(self.total_cap)).scalar_one()
                page.total = counted if counted <= self.total_cap else None
            if request.summary == "count" or count == 0:
                return page
            rows = conn.execute(compiled.page_query(count, cursor)).all()
            page.matches = [_row_to_stored(r, self.codec) for r in rows[:count]]
            if len(rows) > count:
                page.next_cursor = compiled.next_cursor(rows[count - 1])
            seen = {(m.res_type, m.res_id) for m in page.matches}
            pks, iterate = [r.pk for r in rows[:count]], False
            while pks and len(page.included) < self.max_include:
                include = compiled.include_query(pks, iterate=iterate)
                if include is None:
                    break
                if restrict:
                    include = include.where(*restrict)
                pks, iterate = [], True
                for r in conn.execute(include.limit(self.max_include - len(page.included))):
                    if (r.res_type, r.res_id) not in seen:
                        seen.add((r.res_type, r.res_id))
                        page.included.append(_row_to_stored(r, self.codec))
                        pks.append(r.pk)
        return page

    # --- bulk and compartments -----------------------------------------------------

    def iter_resources(
        self,
        res_types: list[str] | None = None,
        *,
        since: int | None = None,
        batch: int = 2000,
    ) -> Iterator[StoredResource]:
        conds = [resource_tbl.c.deleted.is_(False)]
        if res_types:
            conds.append(resource_tbl.c.res_type.in_(res_types))
        if since is not None:
            conds.append(resource_tbl.c.last_updated >= since)
        last_pk = 0
        while True:
            with self._reading() as conn:
                rows = conn.execute(
                    select(*_CURRENT_COLUMNS)
                    .where(*conds, resource_tbl.c.pk > last_pk)
                    .order_by(resource_tbl.c.pk)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _row_to_stored(row, self.codec)
            last_pk = rows[-1].pk

    def compartment(
        self,
        comp_type: str,
        comp_id: str,
        res_types: list[str] | None = None,
        *,
        since: int | None = None,
    ) -> Iterator[StoredResource]:
        if comp_type != "Patient":
            raise outcomes.not_supported(f"the {comp_type} compartment is not supported")
        members = patient_compartment()
        pairs = [
            (t, p)
            for t, params in members.items()
            for p in params
            if res_types is None or t in res_types
        ]
        if not pairs:
            return
        matching = select(idx_reference.c.res_pk).where(
            idx_reference.c.target_type == "Patient",
            idx_reference.c.target_id == comp_id,
            tuple_(idx_reference.c.res_type, idx_reference.c.param).in_(pairs),
        )
        conds = [resource_tbl.c.pk.in_(matching), resource_tbl.c.deleted.is_(False)]
        if since is not None:
            conds.append(resource_tbl.c.last_updated >= since)
        with self._reading() as conn:
            rows = conn.execute(
                select(*_CURRENT_COLUMNS).where(*conds).order_by(resource_tbl.c.pk)
            ).all()
        for row in rows:
            yield _row_to_stored(row, self.codec)


def _checked(
    body: dict[str, Any], res_type: str, res_id: str, validate: Validator
) -> dict[str, Any]:
    """A copy of ``body`` with its id, once the id and the resource are valid."""
    if not ID_RE.match(res_id):
        raise outcomes.invalid(f"{res_id!r} is not a valid FHIR id", expression=f"{res_type}.id")
    body = dict(body)
    body["id"] = res_id
    validate(body)
    return body


def prepare_resource(
    body: dict[str, Any],
    res_id: str | None = None,
    *,
    validate: Validator | None = None,
    index: Indexer | None = None,
) -> PreparedResource:
    """Validate and index a resource for ``put_many``; needs no database.

    Bulk import runs it in worker processes, which then hand the result to the one
    process that writes. ``validate`` and ``index`` default to the store's own.
    """
    res_type = body.get("resourceType")
    if not isinstance(res_type, str):
        raise outcomes.invalid("the resource has no resourceType", expression="resourceType")
    res_id = res_id or body.get("id") or str(uuid.uuid4())
    checked = _checked(body, res_type, res_id, validate or _default_validator())
    extracted = (index or _default_indexer())(checked)
    return PreparedResource(res_type, res_id, checked, index_rows(res_type, extracted))


@cache
def _default_validator() -> Validator:
    from hygie.store.validation import check_resource

    return check_resource


@cache
def _default_indexer() -> Indexer:
    from hygie.store.search import extract_index

    return extract_index
