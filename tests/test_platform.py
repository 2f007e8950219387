"""The shared engine: connections that died while idle, index-friendly pair lists, and
read-then-write transactions on SQLite."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text

from hygie import platform as platform_module
from hygie.platform import create_engine, pairs_in, write_transaction


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
