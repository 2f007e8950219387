"""Small synthetic worlds for the mobility tests, generated once per session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hygie.mobility import engines, release, storage
from hygie.mobility.generator import GeneratorConfig, generate
from hygie.mobility.geography import Geography, load_geography
from hygie.mobility.model import PrivacyRule
from tests.conftest import shared_data

START = dt.date(2020, 3, 9)


@pytest.fixture(scope="session")
def geo() -> Geography:
    return load_geography(shared_data() / "geo")


def make_world(root: Path, geo: Geography, devices: int, days: int, scenario: str) -> Path:
    generate(geo, root, GeneratorConfig(devices=devices, days=days, start=START,
                                        scenario=scenario, seed=7))
    for day in storage.raw_days(root):
        storage.mark_received(storage.events_dir(root, day))
    return root


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory, geo: Geography) -> Path:
    """3,000 devices over two days (the second under lockdown): raw events only."""
    return make_world(tmp_path_factory.mktemp("mobility-small"), geo, 3_000, 2, "lockdown")


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, geo: Geography) -> Path:
    """20,000 devices over four days (lockdown from the third), published with DuckDB."""
    root = make_world(tmp_path_factory.mktemp("mobility-published"), geo, 20_000, 4,
                      "lockdown")
    engine = engines.connect("duckdb", threads=2)
    try:
        for day in storage.raw_days(root):
            release.publish_day(engine, root, geo, day, PrivacyRule())
    finally:
        engine.close()
    return root
