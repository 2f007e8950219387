"""The daily job: raw events of a day in, a protected release of aggregates out.

``publish_day`` runs ``pipeline.compute_day`` on the chosen engine, protects each
table with ``privacy.protect``, writes the release (Parquet plus ``manifest.json`` with
the epsilon of each table and the privacy report) and saves the home register. Reading
functions turn releases back into frames and matrices for the API, the pages and the
epidemic service.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hygie.mobility import privacy, storage
from hygie.mobility.generator import day_bounds
from hygie.mobility.geography import LEVELS, Geography, check_level
from hygie.mobility.model import (
    SLOT_SECONDS,
    ODMatrices,
    PipelineConfig,
    PrivacyRule,
    ReleaseManifest,
)

if TYPE_CHECKING:  # the engines (Ibis) load only when a day is processed
    from hygie.mobility.engines import Engine
    from hygie.mobility.pipeline import DayAggregates

OD_KINDS = ("trips", "home_night", "home_day")


class ReleaseNotFound(LookupError):
    """No release for that day: run ``hygie mobility run`` for it first."""


class RawEventsNotFound(LookupError):
    """No raw events for that day (never received, or already deleted after 24 hours)."""


def _empty_register() -> pd.DataFrame:
    return pd.DataFrame({"home_pid": pd.Series([], dtype=object),
                         "dep_idx": pd.Series([], dtype="int32"),
                         "nights": pd.Series([], dtype="int64"),
                         "since": pd.Series([], dtype="int64")})


def aggregate_day(engine: Engine, root: Path, geo: Geography, day: dt.date,
                  cfg: PipelineConfig | None = None, register: pd.DataFrame | None = None
                  ) -> DayAggregates:
    """Run the pipeline for one day of raw events under ``root`` (nothing is written)."""
    from hygie.mobility.pipeline import (
        REGISTER_SCHEMA,
        DayContext,
        compute_day,
        reference_tables,
    )

    folder = storage.events_dir(root, day)
    if not folder.is_dir():
        raise RawEventsNotFound(f"no raw events for {day.isoformat()}")
    cells = pd.read_parquet(root / "cells.parquet")
    cell_ref, census = reference_tables(geo, cells)
    start, seconds = day_bounds(day)
    ctx = DayContext(day_start=start, n_slots=seconds // SLOT_SECONDS,
                     day_number=(day - dt.date(1970, 1, 1)).days,
                     day_key=storage.day_key(root, day), period_key=storage.period_key(root, day))
    if register is None:
        path = storage.register_path(root, day)
        register = pd.read_parquet(path) if path.is_file() else _empty_register()
    return compute_day(engine.read_parts(folder), engine.table(cell_ref),
                       engine.table(census), engine.table(register, schema=REGISTER_SCHEMA),
                       ctx, cfg or PipelineConfig())


def _coded(agg: DayAggregates, geo: Geography) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace zone indexes by INSEE codes; presence gets its région level too."""
    deps = np.array(geo.dep_codes)
    regs = np.array(geo.region_codes)
    p = agg.presence
    dep_level = pd.DataFrame({"level": "departement", "zone": deps[p["dep_idx"]],
                              "slot": p["slot"], "devices": p["devices"],
                              "people": p["people"]})
    reg = p.assign(zone=regs[geo.dep_region[p["dep_idx"]]]).groupby(
        ["zone", "slot"], as_index=False)[["devices", "people"]].sum()
    presence = pd.concat([dep_level, reg.assign(level="region")], ignore_index=True)
    od = agg.od.copy()
    codes = np.where(od["level"] == "departement", 0, 1)
    for col in ("origin", "destination"):
        idx = od[col].to_numpy()
        od[col] = np.where(codes == 0, deps[np.minimum(idx, len(deps) - 1)],
                           regs[np.minimum(idx, len(regs) - 1)])
    return presence, od


def protect_day(agg: DayAggregates, geo: Geography, rule: PrivacyRule, n_slots: int,
                cfg: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any],
                                              dict[str, float]]:
    """Apply the privacy rule to every table of a day; returns presence, od, report, epsilons."""
    presence, od = _coded(agg, geo)
    census = dict(zip(geo.dep_codes, geo.dep_pop, strict=True))
    w_max = 1.0
    home = od[(od["kind"] == "home_night") & (od["level"] == "departement")]
    if len(home):
        per_home = home.groupby("origin")["devices"].sum()
        w_max = max(census[z] / n for z, n in per_home.items() if n > 0)
    n_tables = len(LEVELS) * (1 + len(OD_KINDS))
    eps_table = rule.epsilon / n_tables if rule.epsilon is not None else None
    tables: dict[str, Any] = {}
    epsilons: dict[str, float] = {}
    out_presence, out_od = [], []
    protected: dict[tuple[str, str], pd.DataFrame] = {}
    to_region = geo.dep_to_region()
    for level in LEVELS:
        zones = list(geo.zone_codes(level))
        specs = [(privacy.TableSpec("presence", row=("slot",), cell="zone", total_public=True,
                                    sensitivity=n_slots),
                  presence[presence["level"] == level], [(s,) for s in range(n_slots)])]
        for kind in OD_KINDS:
            spec = privacy.TableSpec(
                kind, row=("origin",), cell="destination", total_public=kind != "trips",
                sensitivity=cfg.max_trips_per_device if kind == "trips" else 1)
            specs.append((spec, od[(od["kind"] == kind) & (od["level"] == level)],
                          [(z,) for z in zones]))
        for spec, t, rows in specs:
            hide = None
            if level != "departement" and rule.epsilon is None:
                hide = privacy.cells_to_hide(protected[(spec.name, "departement")], spec,
                                             to_region)
            pub, facts = privacy.protect(t, spec, rule, epsilon=eps_table, weight_max=w_max,
                                         grid=(rows, zones), hide=hide)
            tables[f"{spec.name}/{level}"] = facts
            protected[(spec.name, level)] = pub
            if spec.name == "presence":
                out_presence.append(pub.assign(level=level))
            else:
                out_od.append(pub.assign(kind=spec.name, level=level))
    for name, facts in tables.items():
        if "epsilon" in facts:
            epsilons[name] = facts["epsilon"]
    for kind in ("presence", *OD_KINDS):
        row, cell = (("slot",), "zone") if kind == "presence" else (("origin",), "destination")
        spec = privacy.TableSpec(kind, row=row, cell=cell, total_public=False, sensitivity=1)
        tables[f"{kind}/region"]["recoverable_from_departements"] = (
            0 if rule.epsilon is not None else privacy.recoverable_across_levels(
                protected[(kind, "departement")], protected[(kind, "region")], spec, to_region))
    report: dict[str, Any] = {
        "rule": asdict(rule),
        "epsilon_total": float(sum(epsilons.values())),
        "tables": tables,
        "uniqueness": privacy.uniqueness(agg.fingerprints, rule.min_count),
    }
    mins = [f["min_devices_published"] for f in tables.values()
            if f.get("min_devices_published") is not None]
    recoverable = sum(f.get("recoverable_cells", 0) for f in tables.values())
    report["min_devices_published"] = min(mins) if mins else None
    report["recoverable_cells"] = recoverable
    report["recoverable_across_levels"] = sum(
        f.get("recoverable_from_departements", 0) for f in tables.values())
    report["threshold_respected"] = all(m >= rule.min_count for m in mins)
    presence_out = pd.concat(out_presence, ignore_index=True)[
        ["level", "zone", "slot", "people", "suppressed"]]
    od_out = pd.concat(out_od, ignore_index=True)[
        ["kind", "level", "origin", "destination", "people", "suppressed"]]
    return presence_out, od_out, report, epsilons


def publish_day(engine: Engine, root: Path, geo: Geography, day: dt.date, rule: PrivacyRule,
                cfg: PipelineConfig | None = None) -> ReleaseManifest:
    """Aggregate, protect and publish one day; save the home register of its month."""
    cfg = cfg or PipelineConfig()
    storage.rotate_period(root, day)
    agg = aggregate_day(engine, root, geo, day, cfg)
    n_slots = day_bounds(day)[1] // SLOT_SECONDS
    presence, od, report, epsilons = protect_day(agg, geo, rule, n_slots, cfg)
    folder = storage.release_dir(root, day)
    folder.mkdir(parents=True, exist_ok=True)
    presence.insert(0, "date", day)
    od.insert(0, "date", day)
    presence.to_parquet(folder / "presence.parquet", index=False)
    od.to_parquet(folder / "od.parquet", index=False)
    reg_path = storage.register_path(root, day)
    reg_path.parent.mkdir(parents=True, exist_ok=True)
    agg.register.to_parquet(reg_path, index=False)
    manifest = ReleaseManifest(
        date=day, engine=engine.name, devices=agg.devices, rule=rule,
        epsilon_by_table=epsilons,
        tables={"presence": len(presence), "od": len(od)},
        privacy_report=report,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_manifest(folder, manifest)
    return manifest


def write_manifest(folder: Path, manifest: ReleaseManifest) -> None:
    data = asdict(manifest)
    data["date"] = manifest.date.isoformat()
    data["epsilon_total"] = manifest.epsilon_total
    (folder / "manifest.json").write_text(json.dumps(data, indent=2, default=_json_default),
                                          encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def read_manifest(root: Path, day: dt.date) -> dict[str, Any]:
    path = storage.release_dir(root, day) / "manifest.json"
    if not path.is_file():
        raise ReleaseNotFound(f"no release for {day.isoformat()}")
    return json.loads(path.read_text("utf-8"))


def _read(root: Path, name: str, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    days = [d for d in storage.release_days(root)
            if (start is None or d >= start) and (end is None or d <= end)]
    if not days:
        raise ReleaseNotFound("no release in the requested period")
    frames = [pd.read_parquet(storage.release_dir(root, d) / f"{name}.parquet") for d in days]
    out = pd.concat(frames, ignore_index=True)
    out["date"] = pd.to_datetime(out["date"]).dt.date
    return out


def read_presence(root: Path, level: str = "departement", start: dt.date | None = None,
                  end: dt.date | None = None) -> pd.DataFrame:
    """Published presence: date, zone, slot, people (NaN where withheld), suppressed."""
    check_level(level)
    t = _read(root, "presence", start, end)
    return t[t["level"] == level].drop(columns=["level"]).reset_index(drop=True)


def read_od(root: Path, kind: str = "trips", level: str = "departement",
            start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """Published OD cells: date, origin, destination, people, suppressed."""
    check_level(level)
    if kind not in OD_KINDS:
        raise ValueError(f"unknown OD kind {kind!r}: expected one of {', '.join(OD_KINDS)}")
    t = _read(root, "od", start, end)
    t = t[(t["kind"] == kind) & (t["level"] == level)]
    return t.drop(columns=["kind", "level"]).reset_index(drop=True)


def read_od_matrices(root: Path, kind: str = "trips", level: str = "departement",
                     start: dt.date | None = None, end: dt.date | None = None,
                     zones: tuple[str, ...] | None = None) -> ODMatrices:
    """Published OD cells as dense daily matrices (see ``model.ODMatrices``).

    ``zones`` fixes the order of rows and columns (default: every zone code found,
    sorted). A pooled ``other`` destination (``merge`` rule) is left out of the
    matrices, and its cells count as withheld for every small destination.
    """
    t = read_od(root, kind, level, start, end)
    t = t[t["destination"] != privacy.OTHER]
    if zones is None:
        zones = tuple(sorted(set(t["origin"]) | set(t["destination"])))
    dates = tuple(sorted(set(t["date"])))
    index = {z: i for i, z in enumerate(zones)}
    day_index = {d: i for i, d in enumerate(dates)}
    people = np.zeros((len(dates), len(zones), len(zones)))
    suppressed = np.zeros(people.shape, dtype=bool)
    t = t[t["origin"].isin(index) & t["destination"].isin(index)]
    d = t["date"].map(day_index).to_numpy()
    o = t["origin"].map(index).to_numpy()
    k = t["destination"].map(index).to_numpy()
    people[d, o, k] = np.nan_to_num(t["people"].to_numpy(np.float64))
    suppressed[d, o, k] = t["suppressed"].to_numpy(bool)
    return ODMatrices(kind=kind, level=level, dates=dates, zones=zones, people=people,
                      suppressed=suppressed)
