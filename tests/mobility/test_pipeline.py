"""The Ibis pipeline: exact semantics on hand-made events, and one result on both engines."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hygie.mobility import engines, release, storage
from hygie.mobility.generator import EVENT_SCHEMA, day_bounds
from hygie.mobility.geography import Geography
from hygie.mobility.model import PipelineConfig
from hygie.mobility.pipeline import (
    REGISTER_SCHEMA,
    DayContext,
    _stay_starts,
    compute_day,
    reference_tables,
)
from tests.conftest import shared_data
from tests.mobility.conftest import START

DAY = dt.date(2020, 3, 10)


def _world(geo: Geography) -> tuple[pd.DataFrame, dict[str, int]]:
    """Three communes' cells: Paris (75), Versailles (78) and Lyon (69)."""
    cells = pd.DataFrame({"cell_id": np.arange(3, dtype=np.int32),
                          "commune": np.array([0, 1, 2], dtype=np.int32),
                          "dep": ["75", "78", "69"], "region": ["11", "11", "84"]})
    return cells, {"75": 0, "78": 1, "69": 2}


def _events(rows: list[tuple[int, float, int]], day: dt.date = DAY) -> pd.DataFrame:
    start, _ = day_bounds(day)
    return pd.DataFrame({
        "device_id": np.array([r[0] for r in rows], dtype=np.int64),
        "ts_ms": np.array([int((start + r[1] * 3600) * 1000) for r in rows], dtype=np.int64),
        "cell_id": np.array([r[2] for r in rows], dtype=np.int32),
    })


def _run(geo: Geography, events: pd.DataFrame | list[pd.DataFrame], cells: pd.DataFrame,
         register=None, day: dt.date = DAY):
    engine = engines.connect("duckdb", threads=1)
    cell_ref, census = reference_tables(geo, cells)
    start, seconds = day_bounds(day)
    ctx = DayContext(start, seconds // 1800, (day - dt.date(1970, 1, 1)).days, "k" * 64, "p" * 64)
    reg = register if register is not None else release._empty_register()
    try:
        tables = ([engine.table(part) for part in events] if isinstance(events, list)
                  else engine.table(events))
        return compute_day(tables, engine.table(cell_ref), engine.table(census),
                           engine.table(reg, schema=REGISTER_SCHEMA), ctx, PipelineConfig())
    finally:
        engine.close()


def test_stays_presence_homes_and_trips_on_hand_made_events(geo: Geography) -> None:
    cells, _ = _world(geo)
    a, b = 208_01_0000000001, 208_01_0000000002
    rows = [(a, 1.0, 0), (a, 3.0, 0), (a, 8.6, 1), (a, 12.0, 1), (a, 18.2, 0),  # commuter
            (b, 2.0, 2), (b, 14.1, 2)]  # stays in Lyon, silent for hours
    agg = _run(geo, _events(rows), cells)
    assert agg.devices == 2
    dep = {c: i for i, c in enumerate(geo.dep_codes)}
    p = agg.presence.set_index(["dep_idx", "slot"])["devices"]
    # A stays in Paris until the 08:30 slot, in Versailles until the 18:00 slot.
    assert p[(dep["75"], 0)] == 1 and p[(dep["75"], 16)] == 1 and p[(dep["75"], 17)] == 0
    assert p[(dep["78"], 17)] == 1 and p[(dep["78"], 35)] == 1 and p[(dep["78"], 36)] == 0
    assert p[(dep["75"], 47)] == 1
    # B is counted in Lyon in every slot, the silent ones included.
    assert all(p[(dep["69"], s)] == 1 for s in range(48))
    assert agg.presence.groupby("slot")["devices"].sum().eq(2).all()
    od = agg.od[agg.od["level"] == "departement"]
    trips = od[od["kind"] == "trips"].set_index(["origin", "destination"])["count"]
    assert trips.to_dict() == {(dep["75"], dep["78"]): 1, (dep["78"], dep["75"]): 1}
    night = od[od["kind"] == "home_night"].set_index(["origin", "destination"])["devices"]
    assert night.to_dict() == {(dep["69"], dep["69"]): 1, (dep["75"], dep["75"]): 1}
    day = od[od["kind"] == "home_day"].set_index(["origin", "destination"])["devices"]
    assert day.to_dict() == {(dep["69"], dep["69"]): 1, (dep["75"], dep["78"]): 1}
    # Extrapolation: each device stands for its home département's census population.
    people = od[od["kind"] == "home_night"].set_index("origin")["people"]
    assert people[dep["75"]] == pytest.approx(geo.dep_pop[dep["75"]])
    # The register keeps one night per pseudonym, and no raw id.
    assert len(agg.register) == 2 and agg.register["nights"].eq(1).all()
    assert not agg.register["home_pid"].astype(str).str.contains("2080100").any()


def test_home_keeps_the_longest_known_zone_on_a_tie(geo: Geography) -> None:
    cells, _ = _world(geo)
    a = 208_01_0000000001
    first = _run(geo, _events([(a, 1.0, 0), (a, 20.0, 0)]), cells)  # a night in Paris
    later = DAY + dt.timedelta(days=1)
    second = _run(geo, _events([(a, 1.0, 2), (a, 20.0, 2)], later), cells, first.register,
                  later)
    dep = {c: i for i, c in enumerate(geo.dep_codes)}
    night = second.od[(second.od["kind"] == "home_night")
                      & (second.od["level"] == "departement")]
    # One night in Paris, one in Lyon: home stays Paris, the night is counted in Lyon.
    assert night[["origin", "destination"]].values.tolist() == [[dep["75"], dep["69"]]]
    assert sorted(second.register["nights"]) == [1, 1]


def test_parts_holding_their_own_devices_give_the_day_of_one_table(geo: Geography) -> None:
    cells, _ = _world(geo)
    rng = np.random.default_rng(3)
    rows = [(208_01_0000000000 + int(d), float(h), int(c)) for d, h, c in zip(
        rng.integers(0, 40, 2000), rng.uniform(-1, 25, 2000), rng.integers(0, 3, 2000),
        strict=True)]
    events = _events(rows)
    parts = [events[events["device_id"] % 3 == k] for k in range(3)]
    whole, split = _run(geo, events, cells), _run(geo, parts, cells)
    assert split.devices == whole.devices == 40
    for name in ("presence", "od", "fingerprints", "register"):
        pd.testing.assert_frame_equal(getattr(split, name), getattr(whole, name))


def test_events_outside_the_day_are_ignored(geo: Geography) -> None:
    cells, _ = _world(geo)
    a = 208_01_0000000001
    agg = _run(geo, _events([(a, -2.0, 2), (a, 5.0, 0), (a, 26.0, 2)]), cells)
    dep = {c: i for i, c in enumerate(geo.dep_codes)}
    p = agg.presence.set_index(["dep_idx", "slot"])["devices"]
    assert all(p[(dep["75"], s)] == 1 for s in range(48))


def test_event_schema_is_what_the_pipeline_reads() -> None:
    assert EVENT_SCHEMA.names == ["device_id", "ts_ms", "cell_id"]


def _run_cli(root: Path, engine: str) -> None:
    """Run the daily job in a child process (the JVM and its sockets stay out of pytest)."""
    cmd = [sys.executable, "-m", "hygie", "mobility", "run", "--root", str(root),
           "--engine", engine, "--threads", "2", "--date", START.isoformat()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HYGIE_SHARED_DATA": str(shared_data())})
    assert done.returncode == 0, done.stderr[-3000:]


def _copy_in_parts(source: Path, target: Path, n_parts: int = 3) -> None:
    """Copy a day's events as several parts, each holding every event of its devices."""
    target.mkdir(parents=True)
    events = pd.concat([pd.read_parquet(f) for f in sorted(source.glob("*.parquet"))])
    for k in range(n_parts):
        part = events[events["device_id"] % n_parts == k]
        part.to_parquet(target / f"part-{k:05d}.parquet", index=False)
    shutil.copy(source / "_received.json", target / "_received.json")


@pytest.mark.slow
def test_duckdb_and_pyspark_publish_identical_releases(small_world: Path, tmp_path: Path) -> None:
    # Both runs share the keys of the day, so even the home register must match.
    storage.day_key(small_world, START)
    storage.period_key(small_world, START)
    roots = {}
    for name in ("duckdb", "pyspark"):
        root = tmp_path / name
        root.mkdir()
        for part in ("cells.parquet", "keys"):
            src = small_world / part
            (shutil.copytree if src.is_dir() else shutil.copy)(src, root / part)
        _copy_in_parts(storage.events_dir(small_world, START), storage.events_dir(root, START))
        _run_cli(root, name)
        roots[name] = root
    d, s = (storage.release_dir(roots[n], START) for n in ("duckdb", "pyspark"))
    for table in ("presence", "od"):
        left = pd.read_parquet(d / f"{table}.parquet")
        right = pd.read_parquet(s / f"{table}.parquet")
        assert len(left) > 100
        pd.testing.assert_frame_equal(left.drop(columns="people"), right.drop(columns="people"))
        np.testing.assert_allclose(left["people"], right["people"], rtol=1e-9)
    left = pd.read_parquet(storage.register_path(roots["duckdb"], START))
    right = pd.read_parquet(storage.register_path(roots["pyspark"], START))
    pd.testing.assert_frame_equal(left, right)
    manifests = [json.loads((p / "manifest.json").read_text()) for p in (d, s)]
    assert manifests[0]["devices"] == manifests[1]["devices"] > 2500
    assert manifests[0]["privacy_report"]["tables"] == manifests[1]["privacy_report"]["tables"]


def _starts_by_walking(seq: list[int | None]) -> list[tuple[int, int]]:
    """Stay starts the plain way: a slot whose commune differs from the last one heard."""
    out, last = [], None
    for slot, commune in enumerate(seq):
        if commune is not None and commune != last:
            out.append((slot, commune))
            last = commune
        elif commune is not None:
            last = commune
    return out


def test_stay_starts_from_slot_masks_match_a_walk_through_the_slots() -> None:
    rng = np.random.default_rng(5)
    rows, expected = [], []
    for device in range(3000):
        n_communes, silence, moves = rng.integers(1, 5), rng.random(), rng.random() * 0.4
        seq: list[int | None] = []
        commune = int(rng.integers(n_communes))
        for _ in range(48):
            if rng.random() < moves:
                commune = int(rng.integers(n_communes))
            seq.append(None if rng.random() < silence else commune)
        rows += [(device, slot, c) for slot, c in enumerate(seq) if c is not None]
        expected += [(device, slot, c) for slot, c in _starts_by_walking(seq)]
    slots = pd.DataFrame(rows, columns=["device_id", "slot", "commune"]).astype("int64")
    slots["dep_idx"] = slots["commune"]
    engine = engines.connect("duckdb", threads=1)
    try:
        got = _stay_starts(engine.table(slots), 48).to_pyarrow().to_pandas()
    finally:
        engine.close()
    got = sorted(map(tuple, got[["device_id", "slot", "commune"]].to_numpy().tolist()))
    assert got == sorted(expected)
