"""The HTTP routes on a small app mounting only the mobility routes."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from hygie.config import load_settings
from hygie.mobility import api
from hygie.platform import open_platform
from hygie.web.pages import NavEntry
from tests.conftest import shared_data
from tests.mobility.conftest import START


def make_app(tmp_path: Path, root: Path) -> Starlette:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", var_dir=tmp_path,
                             extra={"mobility_root": str(root),
                                    "mobility_geo_dir": str(shared_data() / "geo")})
    app = Starlette(routes=[Mount("/mobility", routes=api.routes())])
    app.state.platform = open_platform(settings)
    app.state.nav = [NavEntry("Mobilité", "/mobility")]
    return app


@pytest.fixture
def client(tmp_path: Path, published: Path):
    app = make_app(tmp_path, published)
    with TestClient(app) as c:
        yield c
    app.state.platform.close()


def test_releases_presence_and_od(client: TestClient) -> None:
    releases = client.get("/mobility/api/releases").json()["releases"]
    assert releases[0]["date"] == START.isoformat() and len(releases) == 4
    assert releases[0]["threshold_respected"] is True
    p = client.get("/mobility/api/presence", params={"date": START.isoformat(),
                                                    "level": "region"}).json()
    assert p["slot_minutes"] == 30 and len(p["cells"]) == 13 * 48
    od = client.get("/mobility/api/od", params={"date": START.isoformat(), "kind": "home_night"})
    cells = od.json()["cells"]
    assert any(c["origin"] == "75" and c["destination"] == "75" and c["people"] > 1e6
               for c in cells)
    assert all(c["people"] is None for c in cells if c["suppressed"])


def test_privacy_report_and_map(client: TestClient) -> None:
    rep = client.get(f"/mobility/api/releases/{START.isoformat()}/privacy").json()
    assert rep["privacy_report"]["uniqueness"]["k"] == 20
    svg = client.get("/mobility/map.svg", params={"date": "2020-03-12", "baseline": "2020-03-09"})
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.count("<path") == 96 and 'id="dep-75"' in svg.text


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/mobility/api/presence", {}, 400),
    ("/mobility/api/presence", {"date": "10/03/2020"}, 400),
    ("/mobility/api/presence", {"date": "2020-03-09", "level": "canton"}, 400),
    ("/mobility/api/od", {"date": "2020-03-09", "kind": "walks"}, 400),
    ("/mobility/api/od", {"date": "2031-01-01"}, 404),
    ("/mobility/api/releases/2031-01-01/privacy", {}, 404),
    ("/mobility/api/releases/yesterday/privacy", {}, 400),
])
def test_bad_requests_are_problem_json(client: TestClient, path: str, params: dict,
                                       status: int) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status and r.json()["detail"]


def test_page_without_release_says_what_to_run(tmp_path: Path) -> None:
    app = make_app(tmp_path, tmp_path / "empty")
    with TestClient(app) as c:
        r = c.get("/mobility/")
    app.state.platform.close()
    assert r.status_code == 200 and "hygie mobility run" in r.text
