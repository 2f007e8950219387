"""The board's routes: JSON for the page, the page itself, journal counts, access."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

import hygie.web
from hygie.devices import api
from hygie.devices.ingest import Mapper
from hygie.devices.journal import open_journal
from hygie.devices.model import DevicesSettings
from hygie.platform import Platform
from hygie.store.interactions import StoreContext
from tests.devices.corpus import monitor, ventilator
from tests.devices.test_mapper import journal


def make_app(platform: Platform) -> Starlette:
    static = Path(hygie.web.__file__).parent / "static"
    app = Starlette(
        routes=[
            Mount("/static", StaticFiles(directory=static)),
            Mount("/devices", routes=api.routes()),
        ]
    )
    app.state.platform = platform
    app.state.nav = []
    return app


def map_messages(platform: Platform, store: StoreContext, *messages: str) -> None:
    journal(platform, *messages)
    Mapper(
        platform.engine,
        store.repository,
        DevicesSettings(),  # type: ignore[arg-type]
        open_journal(platform),
    ).run_once()


@pytest.fixture
def client(platform: Platform, store: StoreContext) -> Iterator[TestClient]:
    with TestClient(make_app(platform)) as c:
        yield c


def test_board_json_has_beds_values_and_flags(
    client: TestClient, platform: Platform, store: StoreContext
) -> None:
    assert client.get("/devices/api/board").json()["beds"] == []
    map_messages(
        platform,
        store,
        monitor("A1", hr="130", spo2="97"),
        ventilator("A2"),
        monitor(
            "A3", hr="72", bed="icu^102^a^ch-jeanne-sorel", ipp="0000000008", eui="0012A1FFFE000A02"
        ),
    )
    body = client.get("/devices/api/board").json()
    assert [c["key"] for c in body["columns"]][:3] == ["hr", "spo2", "rr"]
    beds = {b["label"]: b for b in body["beds"]}
    assert list(beds) == ["icu 101 a", "icu 102 a"]
    first = beds["icu 101 a"]
    assert first["provisional"] is True
    assert first["patient"] == "Claire MARTIN (0000000007)"
    assert first["values"]["hr"]["value"] == 130 and first["values"]["hr"]["abnormal"]
    assert not first["values"]["spo2"]["abnormal"]
    assert first["values"]["peep"]["value"] == 8
    assert first["values"]["hr"]["time"] == "08:15:00"  # shown in Paris time
    assert first["values"]["hr"]["stale"]  # 2026-03-21 is long ago for the board
    assert not beds["icu 102 a"]["values"]["hr"]["abnormal"]
    only = client.get("/devices/api/board", params={"unit": "icu"}).json()["beds"]
    assert len(only) == 2
    assert client.get("/devices/api/board", params={"unit": "cardio"}).json()["beds"] == []
    assert client.get("/devices/api/journal").json() == {"stored": 3}


def test_board_page_and_bad_query(client: TestClient) -> None:
    page = client.get("/devices/")
    assert page.status_code == 200
    assert "Réanimation" in page.text and 'id="beds"' in page.text
    bad = client.get("/devices/api/board", params={"unit": "x" * 101})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"


def test_board_needs_observation_search(platform: Platform) -> None:
    from hygie.app import create_app
    from hygie.security.tokens import issue_service_token

    with TestClient(create_app(platform=platform)) as c:
        assert c.get("/devices/api/board").status_code == 401
        weak = issue_service_token(platform, subject="t", scope="system/Patient.rs")
        denied = c.get("/devices/api/board", headers={"Authorization": f"Bearer {weak}"})
        assert denied.status_code == 403
        good = issue_service_token(platform, subject="t", scope="system/Observation.rs")
        ok = c.get("/devices/api/board", headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 200
