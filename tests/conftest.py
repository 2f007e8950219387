"""Shared fixtures: a database URL for each engine the platform supports.

Tests that take ``database_url`` run twice: on a fresh SQLite file, and on a fresh
PostgreSQL schema when a server answers on 127.0.0.1:5432 (trust auth, database
``test``; start it with ``pg_ctlcluster --skip-systemctl-redirect 15 main start``).
Where it does not answer the PostgreSQL half is skipped with that reason, except
when ``HYGIE_TEST_POSTGRES=required`` (set by ``.ci/run``): then it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get(
    "HYGIE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHARED_DATA = (
    Path(os.environ.get("HYGIE_SHARED_DATA", "")) if os.environ.get("HYGIE_SHARED_DATA") else None
)


def shared_data() -> Path:
    """Locate ../shared/data (the reference data next to the repository)."""
    candidates = [SHARED_DATA] if SHARED_DATA else []
    here = Path(__file__).resolve().parent.parent
    candidates += [p / "shared" / "data" for p in [here.parent, *here.parents]]
    candidates.append(Path("/work/shared/data"))
    for c in candidates:
        if c and (c / "fhir-r4").is_dir():
            return c
    pytest.fail("reference data not found: set HYGIE_SHARED_DATA to the shared/data folder")


def pytest_configure(config: pytest.Config) -> None:
    """Point the platform at the reference data for the whole run (CLI runs included)."""
    os.environ.setdefault("HYGIE_SHARED_DATA", str(shared_data()))


@cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    try:
        import psycopg

        dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: not available here
        return f"PostgreSQL not reachable at {POSTGRES_URL} ({type(exc).__name__})"


def _require_or_skip_postgres() -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("HYGIE_TEST_POSTGRES") == "required":
        pytest.fail(problem + "; HYGIE_TEST_POSTGRES=required")
    pytest.skip(problem + "; start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database, on each supported engine in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hygie.db'}"
        return
    _require_or_skip_postgres()
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
