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
