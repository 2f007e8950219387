"""The synthetic network: events at realistic rates, truth consistent with the census."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hygie.mobility import storage
from hygie.mobility.generator import day_bounds, public_holidays
from tests.mobility.conftest import START


def test_events_are_imsis_on_known_cells_ordered_by_device_then_time(
        small_world: Path) -> None:
    folder = storage.events_dir(small_world, START)
    table = pq.read_table(next(folder.glob("*.parquet")))
    assert table.schema.names == ["device_id", "ts_ms", "cell_id"]
    ev = table.to_pandas()
    order = ev.sort_values(["device_id", "ts_ms"], kind="stable").index
    assert (order == ev.index).all()
    start, seconds = day_bounds(START)
    assert ev["ts_ms"].between(start * 1000, (start + seconds) * 1000 - 1).all()
    assert (ev["device_id"] // 10**10 == 20801).all()  # MCC 208 (France), MNC 01
    cells = pd.read_parquet(small_world / "cells.parquet")
    assert ev["cell_id"].isin(cells["cell_id"]).all()


def test_event_parts_are_laid_out_for_decoding(small_world: Path) -> None:
    """Timestamps delta-encoded, ids in dictionaries, pages uncompressed (``write_events``)."""
    folder = storage.events_dir(small_world, START)
    meta = pq.ParquetFile(next(folder.glob("*.parquet"))).metadata
    for g in range(meta.num_row_groups):
        columns = {meta.row_group(g).column(i).path_in_schema: meta.row_group(g).column(i)
                   for i in range(meta.num_columns)}
        assert {c.compression for c in columns.values()} == {"UNCOMPRESSED"}
        assert "DELTA_BINARY_PACKED" in columns["ts_ms"].encodings
        assert "RLE_DICTIONARY" not in columns["ts_ms"].encodings
        for name in ("device_id", "cell_id"):
            assert "RLE_DICTIONARY" in columns[name].encodings


def test_devices_emit_about_175_events_a_day(small_world: Path) -> None:
    meta = json.loads((small_world / "generator.json").read_text())
    per_device = meta["events_per_day"][START.isoformat()] / meta["devices"]
    assert 150 <= per_device <= 200
    # Market share: about 40 % of the simulated persons carry a device.
    assert 0.37 <= meta["devices"] / meta["persons"] <= 0.43


def test_truth_presence_adds_up_to_the_census(small_world: Path, geo) -> None:
    truth = pd.read_parquet(small_world / "truth" / "presence.parquet")
    per_slot = truth.groupby(["date", "slot"])["people"].sum()
    np.testing.assert_allclose(per_slot, geo.dep_pop.sum(), rtol=1e-9)
    night = pd.read_parquet(small_world / "truth" / "home_night.parquet")
    residents = night.groupby(["date", "origin"])["people"].sum().unstack("origin")
    census = dict(zip(geo.dep_codes, geo.dep_pop, strict=True))
    for code in residents.columns:
        np.testing.assert_allclose(residents[code], census[code], rtol=1e-9)


def test_lockdown_cuts_trips_by_about_two_thirds_and_empties_paris(small_world: Path) -> None:
    trips = pd.read_parquet(small_world / "truth" / "trips.parquet")
    per_day = trips.groupby("date")["people"].sum().to_numpy()
    assert 0.55 <= 1 - per_day[1] / per_day[0] <= 0.75
    night = pd.read_parquet(small_world / "truth" / "home_night.parquet")
    away = night[(night["origin"] == "75") & (night["destination"] != "75")]
    gone = away.groupby("date")["people"].sum().to_numpy()
    assert gone[1] > 5 * gone[0]


def test_public_holidays_include_easter_monday() -> None:
    import datetime as dt

    days = public_holidays(2020)
    assert dt.date(2020, 4, 13) in days and dt.date(2020, 7, 14) in days
    assert len(days) == 11
