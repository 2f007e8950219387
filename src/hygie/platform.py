"""The running platform: settings and the shared database engine, built once.

``app.py`` and ``cli.py`` build one ``Platform`` and hand it to every service; an HTTP
route finds it at ``request.app.state.platform``. Keeping it a plain object (no
globals) lets tests build as many platforms as they need, each on its own database.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

try:  # POSIX: processes queue on a file lock to write to SQLite
    import fcntl
except ImportError:  # pragma: no cover - elsewhere they wait in SQLite's busy handler
    fcntl = None  # type: ignore[assignment]
from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, event, false, insert, or_
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.exc import DisconnectionError

from hygie.config import Settings


def _json_dumps(value: Any) -> str:
    """JSON columns through orjson (a fifth of the cost of ``json.dumps``); what orjson
    will not write (an integer past 64 bits) goes through the standard module."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _json_loads(text: str | bytes) -> Any:
    """The reverse; rows written with a NaN (which only the standard module reads)
    still load."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def create_engine(url: str, pool_size: int = 20, max_overflow: int = 10) -> Engine:
    """Create the engine with the settings each backend needs to be safe and fast.

    SQLite gets WAL journaling (readers never wait for the writer), foreign keys on,
    and a busy timeout so concurrent writers queue instead of failing. JSON columns
    are written and read with orjson on both.
    """
    codec = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # The pool hands out the connection returned last: each SQLite connection has a
        # page cache of its own, emptied whenever another one commits, and a queue that
        # went round all of them handed out cold caches (a secured write 0.88x of an
        # unsecured one, 0.93x with the warm connection first).
        engine = sa_create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_use_lifo=True,
            **codec
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" start the transaction, so BEGIN IMMEDIATE works.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Checkpoint every ~40 MB of WAL instead of 4 MB: a write touches pages of many
            # index b-trees, and copying them back at every few commits cost a third of
            # the write time; the file is cut back to 64 MB after each checkpoint.
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.execute("PRAGMA journal_size_limit=67108864")
            # 64 MB of page cache instead of 2: with 100,000 patients followed, the
            # index pages a batch of answers walks stay in it (a tenth less CPU per
            # answer); pages are taken as used, so an idle connection holds little.
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers ask for BEGIN IMMEDIATE (execution option ``sqlite_begin``): taking
            # the write lock up front avoids the deadlock of two readers upgrading.
            # An empty ``sqlite_begin`` runs a single-statement read with no transaction.
            begin = conn.get_execution_options().get("sqlite_begin", "BEGIN")
            if begin:
                conn.exec_driver_sql(begin)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = sa_create_engine(url, pool_size=pool_size, max_overflow=max_overflow, **codec)
    if engine.dialect.name == "postgresql":
        _ping_idle_connections(engine)
    return engine


#: A pooled connection unused for longer than this is checked before it is handed out.
PING_AFTER_IDLE_S = 10.0


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection at checkout only when it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` pays one round trip per checkout, which doubled the
    cost of a point read under load. A connection in steady use is known to be alive;
    one that sat idle (a night, a database restart) is pinged, and a dead one is
    replaced by the pool before anybody sees it.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            cursor = dbapi_conn.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_conn.rollback()
        except Exception as exc:  # the driver's own error types: the connection is dead
            raise DisconnectionError(f"idle connection lost: {type(exc).__name__}") from exc


class _SqliteWriter:
    """The turn to write to one SQLite file: the threads of a process queue on a lock,
    the processes on an exclusive ``flock`` of a file beside the database.

    SQLite's busy handler sleeps in steps of up to 100 ms while another connection
    writes; a thread or a process queued here wakes as soon as the writer before it is
    done (two ``hygie serve`` workers taking Bundles in turn waited up to 100 ms each).
    Reentrant within a thread; the file lock is taken by the outermost turn, and the
    file opened again in a forked child (a lock is shared by a file's descriptions).
    """

    def __init__(self, path: str | None) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._path = path
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            if self._depth == 0 and self._path is not None and fcntl is not None:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._lock.release()
            raise
        self._depth += 1

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None and fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd


#: One writer's turn per SQLite engine, shared by every writer of the process.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, _SqliteWriter] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> _SqliteWriter | None:
    """The write turn of a SQLite engine; None on other engines."""
    if engine.dialect.name != "sqlite":
        return None
    with _SQLITE_WRITERS_GUARD:
        found = _SQLITE_WRITERS.get(engine)
        if found is None:
            database = engine.url.database
            on_disk = bool(database) and database != ":memory:" and "mode=memory" not in str(
                engine.url)
            found = _SQLITE_WRITERS[engine] = _SqliteWriter(
                f"{database}-writer" if on_disk else None)
        return found


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction for code that reads, then writes.

    On SQLite it takes the write lock up front (``BEGIN IMMEDIATE``): a deferred
    transaction that read first cannot upgrade once another connection has committed
    since its snapshot, and fails at once with "database is locked" instead of
    waiting. Threads of one process first queue on a lock of the process: SQLite's
    busy handler sleeps in steps of up to 100 ms while another connection writes,
    whereas a thread waiting on the lock wakes as soon as the writer before it
    commits. Other processes still queue on the busy timeout. On
    PostgreSQL the transaction is a plain one: read the rows you will change with
    ``FOR UPDATE``.
    """
    lock = _writer_lock(engine)
    if lock is None:
        with engine.connect() as conn, conn.begin():
            yield conn
        return
    with lock, engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            yield conn


@dataclass(frozen=True)
class _InsertPlan:
    """An INSERT compiled once for a table and a set of keys, with what each row needs."""

    sql: str
    #: Parameter names in the order the statement takes them.
    names: tuple[str, ...]
    positional: bool
    #: Scalar column defaults the rows leave out, and the columns whose values the
    #: dialect converts (JSON, for instance).
    defaults: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]


_INSERT_PLANS: dict[tuple[Table, str, tuple[str, ...]], _InsertPlan | None] = {}


def _insert_plan(dialect: Any, table: Table, keys: tuple[str, ...]) -> _InsertPlan | None:
    cache_key = (table, dialect.name, keys)
    if cache_key in _INSERT_PLANS:
        return _INSERT_PLANS[cache_key]
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(compiled.params)
    defaults: dict[str, Any] = {}
    plan: _InsertPlan | None = None
    for name in names:
        if name in keys:
            continue
        default = table.c[name].default
        if default is None or not default.is_scalar:  # computed defaults: the slow path
            break
        defaults[name] = default.arg
    else:
        processors = {}
        for name in names:
            impl = table.c[name].type.dialect_impl(dialect)
            processor = impl.bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        plan = _InsertPlan(str(compiled), names, bool(dialect.positional), defaults, processors)
    _INSERT_PLANS[cache_key] = plan
    return plan


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows (mappings with the same keys) with one driver-level ``executemany``.

    SQLAlchemy's ``execute(insert(table), rows)`` runs its parameter processing for
    every row, which on a wave of messages cost more than SQLite's own work; here the
    statement is compiled once per table and keys, and each row becomes a tuple (or a
    dict, for named parameter styles) with only the conversions its columns need.
    """
    if not rows:
        return
    keys = tuple(rows[0])
    plan = _insert_plan(conn.dialect, table, keys)
    if plan is None:
        conn.execute(insert(table), list(rows))
        return
    names, defaults, processors = plan.names, plan.defaults, plan.processors
    copying = conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS
    params: list[Any] = []
    for row in rows:
        values = {**defaults, **row} if defaults else dict(row)
        for name, processor in processors.items():
            values[name] = processor(values[name])
        params.append(tuple(values[n] for n in names) if plan.positional or copying
                      else values)
    if copying:
        _copy_rows(conn, table, names, params)
    else:
        conn.exec_driver_sql(plan.sql, params)


#: From this many rows, PostgreSQL gets them by ``COPY``: half the time of a pipelined
#: ``executemany`` for a batch of messages, a third of the client's CPU.
COPY_FROM_ROWS = 8


def _copy_rows(conn: Connection, table: Table, names: Sequence[str],
               rows: Sequence[tuple[Any, ...]]) -> None:
    """``COPY ... FROM STDIN`` on the connection's own transaction; the driver's errors
    are raised as SQLAlchemy's (an IntegrityError stays one)."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    prep = conn.dialect.identifier_preparer
    sql = (f"COPY {prep.format_table(table)} ({', '.join(prep.quote(n) for n in names)}) "
           "FROM STDIN")
    driver = conn.connection.driver_connection
    try:
        with driver.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def pairs_in(
    first: ColumnElement[Any], second: ColumnElement[Any], pairs: Iterable[tuple[Any, Any]]
) -> ColumnElement[bool]:
    """``(first, second) IN pairs``, written so that SQLite uses a two-column index.

    SQLite answers a row-value ``IN`` by scanning the whole index; grouped as
    ``first = a AND second IN (...) OR ...`` it searches the index once per group, on
    both engines.
    """
    groups: dict[Any, list[Any]] = {}
    for a, b in pairs:
        groups.setdefault(a, []).append(b)
    if not groups:
        return false()
    return or_(*(and_(first == a, second.in_(bs)) for a, bs in groups.items()))


@dataclass
class Platform:
    """What every service may use: the settings, the engine and shared services."""

    settings: Settings
    engine: Engine
    #: Objects the core attaches once built (the store's repository, token keys...).
    parts: dict[str, Any] = field(default_factory=dict)
    #: Called by ``close`` before the engine goes, newest first (background workers).
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop background work, then release the database connections."""
        while self.closers:
            self.closers.pop()()
        self.engine.dispose()


#: Called with every platform that ``open_platform`` builds. The ``hygie`` command
#: registers the security layer here for the time of one command, so that every
#: sub-command reads and writes through it without the core knowing of it.
OPEN_HOOKS: list[Callable[[Platform], None]] = []


def open_hook_names() -> list[str]:
    """This process's ``OPEN_HOOKS`` as importable names (``module:function``).

    A process started with ``spawn`` begins with none: one that opens a platform for
    its parent (the devices mapper) gets these names and ``adopt_open_hooks`` them, or
    it would read and write the store without the security layer (sealed bodies it
    cannot open, bodies written in clear, accesses left out of the audit trail).
    """
    return [f"{hook.__module__}:{hook.__qualname__}" for hook in OPEN_HOOKS]


def adopt_open_hooks(names: Iterable[str]) -> None:
    """Register the hooks that ``open_hook_names`` named in the parent process."""
    import importlib

    for name in names:
        module, _, attribute = name.partition(":")
        hook = getattr(importlib.import_module(module), attribute)
        if hook not in OPEN_HOOKS:
            OPEN_HOOKS.append(hook)


def open_platform(settings: Settings) -> Platform:
    """Build the platform for these settings (no schema change: see ``migrate``)."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url, settings.database_pool_size,
                           settings.database_max_overflow)
    platform = Platform(settings=settings, engine=engine)
    for hook in OPEN_HOOKS:
        hook(platform)
    return platform
