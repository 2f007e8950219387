"""Releases: privacy report, validation against the truth, retention, public outputs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import hygie.mobility as mobility
from hygie.mobility import storage, validation
from tests.mobility.conftest import START


def test_release_manifest_records_rule_epsilon_and_report(published: Path) -> None:
    m = json.loads((storage.release_dir(published, START) / "manifest.json").read_text())
    assert m["rule"] == {"min_count": 20, "method": "suppress", "epsilon": None}
    assert m["epsilon_total"] == 0.0
    rep = m["privacy_report"]
    assert rep["threshold_respected"] and rep["min_devices_published"] >= 20
    assert rep["recoverable_cells"] == 0 and rep["recoverable_across_levels"] == 0
    assert 0 < rep["uniqueness"]["share_unique"] < 1


def test_release_matches_the_truth(published: Path) -> None:
    report = validation.validate(published)
    assert report["presence"]["max_error"] <= 0.10  # 20,000 devices only: small départements
    assert report["presence"]["mean_error"] <= 0.03
    assert report["flows"]["within_tolerance"], report["flows"]
    lock = report["lockdown"]
    assert lock["trip_fall_recovered"] and 0.55 <= lock["trip_fall_true"] <= 0.75
    assert lock["exodus_recovered"], lock


def test_od_matrices_are_the_public_output(published: Path) -> None:
    m = mobility.od_matrices(kind="home_day", level="region", root=published)
    assert m.people.shape == (4, len(m.zones), len(m.zones))
    assert m.dates[0] == START and "11" in m.zones
    idf = m.zones.index("11")
    assert m.people[0, idf, idf] > 8_000_000
    assert m.suppressed.dtype == bool
    trips = mobility.read_od_matrices(published, "trips", "departement", start=START, end=START)
    assert trips.people.shape[0] == 1 and np.all(trips.people >= 0)
    presence = mobility.read_presence(published, "region", START, START)
    assert set(presence.columns) == {"date", "zone", "slot", "people", "suppressed"}
    with pytest.raises(mobility.ReleaseNotFound):
        mobility.od_matrices(start=dt.date(2030, 1, 1), root=published)


def test_public_names_are_sorted_and_exist() -> None:
    assert mobility.__all__ == sorted(mobility.__all__)
    assert all(hasattr(mobility, name) for name in mobility.__all__)


def test_raw_events_and_day_keys_go_after_24_hours(small_world: Path, tmp_path: Path) -> None:
    root = tmp_path / "w"
    shutil.copytree(storage.events_dir(small_world, START), storage.events_dir(root, START))
    storage.day_key(root, START)
    received = dt.datetime(2020, 3, 10, 1, 0, tzinfo=dt.UTC)
    storage.mark_received(storage.events_dir(root, START), received)
    assert storage.purge_raw(root, received + dt.timedelta(hours=23)) == []
    assert storage.raw_days(root) == [START]
    assert storage.purge_raw(root, received + dt.timedelta(hours=24)) == [START]
    assert storage.raw_days(root) == []
    assert not (root / "keys" / f"day-{START.isoformat()}.key").exists()


def test_home_register_and_its_key_go_with_their_month(tmp_path: Path) -> None:
    march, april = dt.date(2020, 3, 31), dt.date(2020, 4, 1)
    storage.period_key(tmp_path, march)
    path = storage.register_path(tmp_path, march)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    storage.rotate_period(tmp_path, march)
    assert path.exists()
    storage.rotate_period(tmp_path, april)
    assert not path.exists() and not list((tmp_path / "keys").glob("period-2020-03*"))


def test_keys_differ_by_day_and_are_private(tmp_path: Path) -> None:
    a = storage.day_key(tmp_path, START)
    assert a == storage.day_key(tmp_path, START)
    assert a != storage.day_key(tmp_path, START + dt.timedelta(days=1))
    mode = (tmp_path / "keys" / f"day-{START.isoformat()}.key").stat().st_mode
    assert mode & 0o077 == 0
