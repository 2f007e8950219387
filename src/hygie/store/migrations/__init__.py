"""Versioned schema migrations (Alembic), for the store and every package with tables.

The store's revisions live in ``versions/``; a service that declares tables keeps its
own revisions in ``src/hygie/<service>/migrations/`` on its own branch (a
``branch_labels`` of its name, ``depends_on`` the store's first revision). Those
folders are found by looking at the file tree, not by importing the services, so
the core still never imports a service.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

_HERE = Path(__file__).resolve().parent
_PACKAGE = _HERE.parent.parent


def version_locations() -> list[str]:
    folders = [_HERE / "versions"]
    folders += sorted(p for p in _PACKAGE.glob("*/migrations") if p != _HERE and p.is_dir())
    return [str(f) for f in folders]


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.set_main_option("version_locations", " ".join(version_locations()))
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the database schema to the latest revision of every branch."""
    command.upgrade(alembic_config(engine), revision)


def is_current(engine: Engine) -> bool:
    """Whether the database is at the head of every branch."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(script.get_heads())
