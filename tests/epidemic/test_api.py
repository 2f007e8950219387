"""HTTP routes, on a small app that mounts only the epidemic routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

import hygie.web
from hygie.config import load_settings
from hygie.epidemic import api
from hygie.platform import open_platform
from tests.conftest import shared_data


def make_app(tmp_path: Path, **extra: object) -> Starlette:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", var_dir=tmp_path,
                             extra={"epidemic_data_dir": str(shared_data()), **extra})
    static = Path(hygie.web.__file__).parent / "static"
    app = Starlette(routes=[Mount("/static", StaticFiles(directory=static)),
                            Mount("/epidemic", routes=api.routes())])
    app.state.platform = open_platform(settings)
    app.state.nav = []
    return app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = make_app(tmp_path)
    with TestClient(app) as c:
        yield c
    app.state.platform.close()


SCENARIO = {
    "name": "api test", "start": "2020-02-11", "days": 70, "runs": 30, "random_seed": 3,
    "phase": [{"kind": "lockdown", "start": "2020-03-22", "end": "2020-05-11"}],
    "icu_capacity": {"11": 3000},
}


def test_list_scenarios(client: TestClient) -> None:
    r = client.get("/epidemic/api/scenarios")
    assert r.status_code == 200
    names = {s["name"] for s in r.json()["scenarios"]}
    assert "idf_schools_progressive" in names


def test_run_a_scenario(client: TestClient) -> None:
    r = client.post("/epidemic/api/runs", json=SCENARIO)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["runs"] == 30 and len(body["dates"]) == 70
    assert body["capacity"] == 3000 and 3.2 < body["r0"] < 3.35
    beds = body["icu_beds"]
    assert all(lo <= m <= hi for lo, m, hi in zip(beds["p2_5"], beds["median"], beds["p97_5"],
                                                 strict=True))
    assert max(beds["median"]) > 500
    # same seed, same answer
    assert client.post("/epidemic/api/runs", json=SCENARIO).json()["icu_beds"] == beds


@pytest.mark.parametrize("payload, status, detail", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 422, "JSON object"),
    (b'{"start": "2020-02-11"}', 422, "days"),
    (b'{"start": "2020-02-11", "days": 10, "phase": [{"start": "2020-02-12", "matrix": "X"}]}',
     422, "unknown contact matrix"),
    (b'{"start": "2020-02-11", "days": 3000, "runs": 100000}', 413, "limit"),
])
def test_errors_are_problem_json(client: TestClient, payload: bytes, status: int,
                                 detail: str) -> None:
    r = client.post("/epidemic/api/runs", content=payload,
                    headers={"content-type": "application/json"})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and detail in body["detail"]


def test_reproduction(client: TestClient) -> None:
    r = client.get("/epidemic/api/reproduction", params={"scenario": "idf_schools_progressive"})
    assert r.status_code == 200
    body = r.json()
    assert 3.25 < body["r0"] < 3.3 and len(body["r_t"]) == len(body["dates"])
    assert client.get("/epidemic/api/reproduction", params={"scenario": "x"}).status_code == 422


def test_calibration_endpoint(client: TestClient) -> None:
    r = client.post("/epidemic/api/calibrations", json={"steps": 150})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["intervals"]) == {"beta", "seed", "lockdown_scale", "dispersion"}
    assert body["r0"]["p2_5"] <= body["r0"]["median"] <= body["r0"]["p97_5"]
    bad = client.post("/epidemic/api/calibrations", json={"steps": 5})
    assert bad.status_code == 422


def test_pages_render(client: TestClient) -> None:
    r = client.get("/epidemic/", params={"scenario": "idf_exit_without_measures", "runs": 20})
    assert r.status_code == 200
    assert 'id="icu-demand"' in r.text and 'class="capacity"' in r.text
    r = client.get("/epidemic/", params={"runs": "many"})
    assert r.status_code == 422 and "runs" in r.text


def test_missing_reference_data_is_503(tmp_path: Path) -> None:
    app = make_app(tmp_path, epidemic_data_dir=str(tmp_path / "nowhere"))
    with TestClient(app) as c:
        r = c.post("/epidemic/api/runs", json=SCENARIO)
    assert r.status_code == 503
    assert "HYGIE_SHARED_DATA" in r.json()["detail"]
    app.state.platform.close()
