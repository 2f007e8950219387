"""Store fixtures: a migrated platform on each engine, its store, and an HTTP client.

The client carries a bearer token with every SMART scope (``system/*.cruds``), as a
back-end service would; authorization itself is tested in tests/security.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.store.interactions import StoreContext
from hygie.store.migrations import upgrade
from hygie.store.server import open_store

BASE = "http://testserver"


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    settings = load_settings(database_url=database_url, var_dir=tmp_path / "var", base_url=BASE)
    platform = open_platform(settings)
    upgrade(platform.engine)
    yield platform
    platform.close()


@pytest.fixture
def store(platform: Platform) -> StoreContext:
    return open_store(platform)


def service_token(platform: Platform, scope: str = "system/*.cruds") -> str:
    from hygie.security.tokens import issue_service_token

    return issue_service_token(platform, subject="test-suite", scope=scope)


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    app = create_app(platform=platform)
    with TestClient(app, base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {service_token(platform)}"
        yield c
