"""The migration history builds exactly the tables the code declares, on both engines."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import hygie
from hygie.platform import create_engine
from hygie.store.migrations import is_current, upgrade
from hygie.store.schema import metadata


def _import_every_table_module() -> None:
    root = Path(hygie.__file__).parent
    for module in sorted(root.glob("*/tables.py")):
        importlib.import_module(f"hygie.{module.parent.name}.tables")


def test_migrations_match_declared_tables(database_url: str) -> None:
    _import_every_table_module()
    engine = create_engine(database_url)
    try:
        assert not is_current(engine)
        upgrade(engine)
        assert is_current(engine)
        upgrade(engine)  # idempotent
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
        assert diff == []
    finally:
        engine.dispose()


def test_index_rows_lose_their_foreign_key_and_keep_their_data(database_url: str) -> None:
    """0003 rebuilds the idx_* tables on SQLite: rows and search indexes survive it."""
    from sqlalchemy import inspect

    from hygie.store.schema import INDEX_TABLES
    from hygie.store.sql_repository import SqlRepository

    engine = create_engine(database_url)
    try:
        upgrade(engine, "0002")
        repo = SqlRepository(engine)
        repo.create({"resourceType": "Patient", "gender": "female"}, res_id="kept")
        upgrade(engine)
        assert is_current(engine)
        inspector = inspect(engine)
        for table in INDEX_TABLES.values():
            assert inspector.get_foreign_keys(table.name) == []
            names = {ix["name"] for ix in inspector.get_indexes(table.name)}
            assert names == {ix.name for ix in table.indexes}
        found = repo.search("Patient", [("gender", "female")])
        assert [m.res_id for m in found.matches] == ["kept"]
    finally:
        engine.dispose()
