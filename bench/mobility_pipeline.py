"""Mobility pipeline benchmark: 1,000,000 devices x 1 day through the whole daily job.

DuckDB (through the Ibis pipeline, the production path) processes the full day:
ingestion and pseudonymisation, stays, presence, homes, OD matrices, extrapolation,
privacy rule and report, Parquet release. Side by side, in the same run, a
straightforward pandas implementation of the same pipeline processes a 10x smaller
day (100,000 devices); the figure compared is the time per event.

    .venv/bin/python bench/mobility_pipeline.py [--devices 1000000] [--data DIR]

Generation is not timed. ``--data`` keeps the generated events between runs. CPU
seconds are printed beside wall seconds: on a shared machine they move less.

``--floor`` adds what the first two steps cost alone on one part of the day, in CPU
per event: decoding the events (``floor_decode``), and decoding and reducing them to one
row per device and 30-minute slot (``floor_reduce``, the pipeline's own query), beside the same
aggregation grouped by device only (``floor_reduce_by_device``, 40x fewer groups). With
two threads, no pipeline that decodes and reduces every event can beat
``pandas_per_event`` by more than ``floor_ratio_bound``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hygie.mobility import engines, release, storage
from hygie.mobility.generator import GeneratorConfig, day_bounds, generate
from hygie.mobility.geography import Geography, find_geo_dir, load_geography
from hygie.mobility.model import PipelineConfig, PrivacyRule

DAY = dt.date(2020, 3, 10)


def world(geo: Geography, root: Path, devices: int) -> int:
    """Generate one day for ``devices`` devices under ``root`` unless already there."""
    if not storage.events_dir(root, DAY).is_dir():
        generate(geo, root, GeneratorConfig(devices=devices, days=1, start=DAY, seed=11))
    files = storage.events_dir(root, DAY).glob("*.parquet")
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def pandas_pipeline(root: Path, geo: Geography, cfg: PipelineConfig) -> dict[str, float]:
    """The same day, written the straightforward way with pandas (one process)."""
    start, seconds = day_bounds(DAY)
    n_slots = seconds // 1800
    ev = pd.concat([pd.read_parquet(f) for f in sorted(
        storage.events_dir(root, DAY).glob("*.parquet"))], ignore_index=True)
    key = secrets.token_hex(32)
    ids = pd.Series(ev["device_id"].unique())
    digests = ids.map(lambda i: hashlib.sha256((key + str(i)).encode()).hexdigest())
    pid = pd.Series(digests.rank(method="first").astype("int64").to_numpy(), index=ids)
    ev["pid"] = ev["device_id"].map(pid)
    ev = ev.drop(columns="device_id")
    ev["slot"] = (ev["ts_ms"] - start * 1000) // 1_800_000
    ev = ev[(ev["slot"] >= 0) & (ev["slot"] < n_slots)]
    ev = ev.sort_values(["pid", "slot", "ts_ms", "cell_id"])
    slots = ev.groupby(["pid", "slot"], as_index=False).last()[["pid", "slot", "cell_id"]]
    cells = pd.read_parquet(root / "cells.parquet")
    dep_idx = {c: i for i, c in enumerate(geo.dep_codes)}
    cells["dep_idx"] = cells["dep"].map(dep_idx)
    slots = slots.merge(cells[["cell_id", "commune", "dep_idx"]], on="cell_id")
    slots = slots.sort_values(["pid", "slot"])
    prev = slots.groupby("pid")["commune"].shift()
    stays = slots[prev.isna() | (prev != slots["commune"])].copy()
    grouped = stays.groupby("pid")
    stays["seq"] = grouped.cumcount()
    stays["end"] = grouped["slot"].shift(-1).fillna(n_slots).astype("int64")
    stays["prev_dep"] = grouped["dep_idx"].shift()
    stays["start"] = np.where(stays["seq"] == 0, 0, stays["slot"])

    def main_zone(lo: int, hi: int) -> pd.Series:
        overlap = (np.minimum(stays["end"], hi) - np.maximum(stays["start"], lo)).clip(lower=0)
        per = stays.assign(o=overlap).groupby(["pid", "dep_idx"], as_index=False)["o"].sum()
        per = per.sort_values(["pid", "o", "dep_idx"], ascending=[True, False, True])
        return per.groupby("pid")["dep_idx"].first()

    night = main_zone(*(2 * h for h in cfg.night_hours))
    day = main_zone(*(2 * h for h in cfg.day_hours))
    devices = pd.DataFrame({"night": night, "day": day, "home": night})
    devices["stays"] = stays.groupby("pid").size()
    per_home = devices.groupby("home").size()
    weight = pd.Series(geo.dep_pop, index=range(geo.n_deps))[per_home.index] / per_home
    devices["w"] = devices["home"].map(weight)
    sw = stays.merge(devices[["w"]], left_on="pid", right_index=True)
    presence = np.zeros((n_slots + 1, geo.n_deps))
    np.add.at(presence, (sw["start"], sw["dep_idx"]), sw["w"])
    np.add.at(presence, (sw["end"], sw["dep_idx"]), -sw["w"])
    presence = presence.cumsum(axis=0)[:-1]
    home_night = devices.groupby(["home", "night"]).agg(devices=("w", "size"), people=("w", "sum"))
    home_day = devices.groupby(["home", "day"]).agg(devices=("w", "size"), people=("w", "sum"))
    trips = sw[(sw["seq"] >= 1) & (sw["seq"] <= cfg.max_trips_per_device)]
    trip_od = trips.groupby(["prev_dep", "dep_idx"]).agg(
        devices=("pid", "nunique"), count=("w", "size"), people=("w", "sum"))
    return {"devices": float(len(devices)), "trips": float(trip_od["count"].sum()),
            "presence": float(presence[0].sum()), "home_cells": float(len(home_night) +
                                                                       len(home_day))}


def floors(root: Path, pandas_per_event: float) -> None:
    """Print the CPU per event of decoding and of the reduction to slots (see above)."""
    from hygie.mobility import pipeline
    from hygie.mobility.model import SLOT_SECONDS

    start, seconds = day_bounds(DAY)
    ctx = pipeline.DayContext(start, seconds // SLOT_SECONDS, 0, "", "")
    engine = engines.connect("duckdb", threads=2)
    part = engine.read_parts(storage.events_dir(root, DAY))[0]
    n = int(part.count().to_pyarrow().as_py())
    slots = pipeline._last_cells(part, ctx)
    by_device = part.group_by("device_id").agg(key=part.ts_ms.max())
    queries = {
        # sums as floats: the integer sums overflow 64 bits
        "decode": part.aggregate(a=part.device_id.cast("float64").sum(),
                                 b=part.ts_ms.cast("float64").sum(), c=part.cell_id.sum()),
        "reduce": slots.aggregate(n=slots.count(), k=slots.key.cast("float64").sum()),
        "reduce_by_device": by_device.aggregate(n=by_device.count(),
                                                k=by_device.key.cast("float64").sum()),
    }
    cpu = {}
    for name, query in queries.items():
        best = float("inf")
        for _ in range(3):
            c0 = time.process_time()
            query.to_pyarrow()
            best = min(best, time.process_time() - c0)
        cpu[name] = best / n * 1e9
        print(f"floor_{name}: {cpu[name]:.1f} ns of CPU per event (one part, {n} events)")
    engine.close()
    wall = cpu["reduce"] / 2  # the reduction's query decodes the events it reduces
    print(f"floor_ratio_bound: {pandas_per_event / wall:.1f} x vs pandas per event (decoding "
          f"and reduction alone, {wall:.0f} ns per event on 2 threads)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--data", default=None, help="Folder kept between runs.")
    parser.add_argument("--floor", action="store_true",
                        help="also what decoding and the reduction to slots cost alone")
    args = parser.parse_args()
    geo = load_geography(find_geo_dir(os.environ.get("HYGIE_MOBILITY_GEO_DIR")))
    base = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="hygie-mob-bench-"))
    big, small = base / f"d{args.devices}", base / f"d{args.devices // 10}"
    n_big = world(geo, big, args.devices)
    n_small = world(geo, small, args.devices // 10)
    cfg = PipelineConfig()

    for folder in (big, small):  # a fresh release and register each run
        shutil.rmtree(folder / "releases", ignore_errors=True)
        shutil.rmtree(folder / "register", ignore_errors=True)
    engine = engines.connect("duckdb", threads=2)
    t0, c0 = time.perf_counter(), time.process_time()
    manifest = release.publish_day(engine, big, geo, DAY, PrivacyRule(), cfg)
    duck_s, duck_cpu = time.perf_counter() - t0, time.process_time() - c0
    engine.close()

    engine = engines.connect("duckdb", threads=2)
    check = release.aggregate_day(engine, small, geo, DAY, cfg)
    engine.close()
    t0, c0 = time.perf_counter(), time.process_time()
    peer = pandas_pipeline(small, geo, cfg)
    pandas_s, pandas_cpu = time.perf_counter() - t0, time.process_time() - c0
    duck_trips = float(check.od[(check.od["kind"] == "trips")
                                & (check.od["level"] == "departement")]["count"].sum())

    duck_per_event = duck_s / n_big * 1e9
    pandas_per_event = pandas_s / n_small * 1e9
    print(f"events: {n_big} events ({manifest.devices} devices, 1 day)")
    print(f"duckdb_pipeline: {duck_s:.1f} s (limit 60 s)")
    print(f"duckdb_pipeline_cpu: {duck_cpu:.1f} s of CPU over its 2 threads "
          f"({duck_cpu / n_big * 1e9:.0f} ns per event)")
    print(f"duckdb_per_event: {duck_per_event:.0f} ns "
          f"({pandas_per_event / duck_per_event:.1f} x vs pandas)")
    print(f"pandas_pipeline_10x_smaller: {pandas_s:.1f} s for {n_small} events")
    print(f"pandas_per_event: {pandas_per_event:.0f} ns (1.0 x vs pandas)")
    print(f"pandas_pipeline_cpu: {pandas_cpu:.1f} s of CPU "
          f"({pandas_cpu / n_small * 1e9:.0f} ns per event)")
    print(f"same_result_devices: {int(peer['devices'])} pandas, {check.devices} duckdb")
    print(f"same_result_trips: {int(peer['trips'])} pandas, {int(duck_trips)} duckdb")
    if args.floor:
        floors(big, pandas_per_event)
    load = os.getloadavg()[0]
    print(f"load_average_1min: {load:.2f} (2 cores)")
    if not args.data:
        shutil.rmtree(base, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
