"""The shared engine: connections that died while idle, index-friendly pair lists,
read-then-write transactions on SQLite, the process's writer queue and bulk inserts."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    event,
    func,
    insert,
    select,
    text,
)

from hygie import platform as platform_module
from hygie.platform import create_engine, insert_many, pairs_in, write_transaction


def test_a_connection_killed_while_idle_is_replaced(database_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to lose the connection")
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        killer = create_engine(database_url)
        with killer.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        killer.dispose()
        monkeypatch.setattr(platform_module, "PING_AFTER_IDLE_S", 0.0)
        with engine.connect() as conn:  # the dead one is pinged, dropped, replaced
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


def test_pairs_in_selects_exactly_the_pairs_and_uses_the_index(database_url: str) -> None:
    engine = create_engine(database_url)
    table = Table("pairs", MetaData(), Column("a", String(8), primary_key=True),
                  Column("b", String(8), primary_key=True), Column("n", Integer))
    try:
        table.create(engine)
        rows = [{"a": a, "b": b, "n": i} for i, (a, b) in
                enumerate((a, b) for a in "xyz" for b in "pqrs")]
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
        wanted = [("x", "p"), ("x", "s"), ("z", "q"), ("y", "nope")]
        query = select(table.c.a, table.c.b).where(pairs_in(table.c.a, table.c.b, wanted))
        with engine.connect() as conn:
            assert sorted(conn.execute(query).all()) == [("x", "p"), ("x", "s"), ("z", "q")]
            assert conn.execute(
                select(table.c.n).where(pairs_in(table.c.a, table.c.b, []))).all() == []
            if engine.dialect.name == "sqlite":
                compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
                plan = " ".join(str(r[3]) for r in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {compiled}"))
                assert "SCAN" not in plan, plan
    finally:
        engine.dispose()


def test_read_then_write_transactions_queue_instead_of_failing(database_url: str) -> None:
    engine = create_engine(database_url)
    table = Table("counter", MetaData(), Column("id", Integer, primary_key=True),
                  Column("n", Integer))
    try:
        table.create(engine)
        with engine.begin() as conn:
            conn.execute(insert(table).values(id=1, n=0))
        errors: list[Exception] = []

        def bump() -> None:
            try:
                for _ in range(20):
                    with write_transaction(engine) as conn:
                        n = conn.execute(select(table.c.n).where(table.c.id == 1)
                                         .with_for_update()).scalar_one()
                        conn.execute(table.update().where(table.c.id == 1).values(n=n + 1))
            except Exception as exc:  # collected: the assertion below names it
                errors.append(exc)

        threads = [threading.Thread(target=bump) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with engine.connect() as conn:
            assert conn.execute(select(table.c.n)).scalar_one() == 80  # no lost update
    finally:
        engine.dispose()


def test_writers_of_one_process_queue_on_its_lock_not_in_sqlite(database_url: str,
                                                                tmp_path: Any) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL writers lock rows, not the database")
    engine = create_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    table = Table("slots", MetaData(), Column("id", Integer, primary_key=True))
    try:
        table.create(engine)

        @event.listens_for(engine, "connect")
        def no_busy_wait(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA busy_timeout = 0")  # SQLite alone would fail at once

        engine.dispose()
        inside = threading.Event()
        errors: list[Exception] = []

        def second() -> None:
            inside.wait()
            try:
                with write_transaction(engine) as conn:
                    conn.execute(insert(table).values(id=2))
            except Exception as exc:  # collected: the assertion below names it
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        with write_transaction(engine) as conn:
            conn.execute(insert(table).values(id=1))
            inside.set()
            thread.join(0.3)  # it waits for us, on the process's lock
            assert thread.is_alive()
        thread.join(5)
        assert errors == []
        with engine.connect() as conn:
            assert sorted(conn.scalars(select(table.c.id))) == [1, 2]
    finally:
        engine.dispose()


_OTHER_PROCESS_WRITER = """
import sys
from sqlalchemy import event, text
from hygie.platform import create_engine, write_transaction
engine = create_engine(sys.argv[1])

@event.listens_for(engine, "connect")
def no_busy_wait(dbapi_conn, _record):
    dbapi_conn.execute("PRAGMA busy_timeout = 0")  # SQLite alone would fail at once

print("ready", flush=True)
with write_transaction(engine) as conn:
    conn.execute(text("INSERT INTO slots (id) VALUES (2)"))
print("written", flush=True)
"""


def test_writers_of_two_processes_queue_on_a_file_lock_not_in_sqlite(
        database_url: str, tmp_path: Any) -> None:
    """Another process's writer waits for its turn (and gets it) instead of failing in
    SQLite's busy handler, here allowed no wait at all."""
    import subprocess
    import sys

    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL writers lock rows, not the database")
    url = f"sqlite:///{tmp_path / 'processes.db'}"
    engine = create_engine(url)
    table = Table("slots", MetaData(), Column("id", Integer, primary_key=True))
    try:
        table.create(engine)
        with write_transaction(engine) as conn:
            conn.execute(insert(table).values(id=1))
            other = subprocess.Popen([sys.executable, "-c", _OTHER_PROCESS_WRITER, url],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
            assert other.stdout is not None and other.stdout.readline() == "ready\n"
            with pytest.raises(subprocess.TimeoutExpired):
                other.wait(0.5)  # it waits for our turn to end
        out, err = other.communicate(timeout=30)
        assert other.returncode == 0, err
        assert out == "written\n"
        with engine.connect() as conn:
            assert sorted(conn.scalars(select(table.c.id))) == [1, 2]
    finally:
        engine.dispose()


def test_insert_many_fills_defaults_and_converts_values(database_url: str) -> None:
    engine = create_engine(database_url)
    counter = iter(range(100, 1000))
    table = Table("bulk", MetaData(), Column("id", Integer, primary_key=True),
                  Column("tags", JSON), Column("n", Integer, nullable=False, default=7),
                  Column("label", String(8)))
    computed = Table("bulk_computed", MetaData(), Column("id", Integer, primary_key=True),
                     Column("n", Integer, default=lambda: next(counter)))
    try:
        table.create(engine)
        computed.create(engine)
        with engine.begin() as conn:
            insert_many(conn, table, [{"id": i, "tags": ["a", {"b": i}], "label": None}
                                      for i in range(3)])
            insert_many(conn, table, [{"id": 9, "tags": None, "n": 1, "label": "x"}])
            insert_many(conn, table, [])
            insert_many(conn, computed, [{"id": 1}, {"id": 2}])  # SQLAlchemy's own path
        with engine.connect() as conn:
            assert conn.execute(select(table).order_by(table.c.id)).all() == [
                (0, ["a", {"b": 0}], 7, None), (1, ["a", {"b": 1}], 7, None),
                (2, ["a", {"b": 2}], 7, None), (9, None, 1, "x")]
            assert conn.execute(select(computed.c.n).order_by(computed.c.id)).scalars().all() \
                == [100, 101]
    finally:
        engine.dispose()


def test_json_columns_round_trip_through_the_engines_codec(database_url: str) -> None:
    """orjson writes JSON columns; what it cannot write, and rows it cannot read, go
    through the standard module, so nothing that worked before fails now."""
    engine = create_engine(database_url)
    table = Table("json_codec", MetaData(), Column("id", Integer, primary_key=True),
                  Column("doc", JSON))
    values = [{"text": "fièvre 38,5 °C", "n": [1, 2.5, None, True]}, {"big": 2**70},
              ["unicode ☎", {"nested": {"deep": []}}], "a string", 42]
    try:
        table.create(engine)
        with engine.begin() as conn:
            insert_many(conn, table, [{"id": i, "doc": v} for i, v in enumerate(values)])
            conn.execute(insert(table), [{"id": 100, "doc": {3: "integer key"}}])
        with engine.connect() as conn:
            rows = dict(conn.execute(select(table.c.id, table.c.doc)).all())
        assert [rows[i] for i in range(len(values))] == values
        assert rows[100] == {"3": "integer key"}  # as the standard module writes it
        assert platform_module._json_loads("[NaN]")[0] != 0  # read back, not refused
    finally:
        table.drop(engine)
        engine.dispose()


def test_insert_many_of_many_rows_keeps_every_value_and_error(database_url: str) -> None:
    """Past COPY_FROM_ROWS rows PostgreSQL takes them by COPY: the values come back as
    given (tabs, newlines, backslashes, JSON, booleans, nulls) and a duplicate key is
    still an IntegrityError that rolls the whole batch back."""
    from sqlalchemy import Boolean, exc

    engine = create_engine(database_url)
    table = Table("bulk_copy", MetaData(), Column("id", Integer, primary_key=True),
                  Column("label", String(40)), Column("doc", JSON), Column("flag", Boolean),
                  Column("n", Integer, nullable=False, default=7))
    n = platform_module.COPY_FROM_ROWS + 5
    rows = [{"id": i, "label": ["a\tb", "line\nbreak", "back\\slash", "é ☎", None][i % 5],
             "doc": {"i": i, "t": "x\ty"} if i % 3 else None, "flag": bool(i % 2)}
            for i in range(n)]
    try:
        table.create(engine)
        with engine.begin() as conn:
            insert_many(conn, table, rows)
        with engine.connect() as conn:
            back = [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]
        assert back == [{**r, "n": 7} for r in rows]
        with pytest.raises(exc.IntegrityError), engine.begin() as conn:
            insert_many(conn, table, [{**r, "id": r["id"] + n - 1} for r in rows])
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(table)) == n
    finally:
        table.drop(engine)
        engine.dispose()


def test_the_sqlite_pool_hands_out_the_connection_returned_last(tmp_path: Any) -> None:
    # each SQLite connection has its own page cache, emptied when another one commits:
    # the warm connection goes first
    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    first, second = engine.connect(), engine.connect()
    first_raw, second_raw = first.connection.dbapi_connection, second.connection.dbapi_connection
    first.close()
    second.close()
    with engine.connect() as again:
        assert again.connection.dbapi_connection is second_raw
    with engine.connect() as again:
        assert again.connection.dbapi_connection is second_raw
    assert first_raw is not second_raw
    engine.dispose()

