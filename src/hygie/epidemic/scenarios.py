"""Scenario files (TOML or the same keys as JSON) and what a health agency reads out of
a run: ICU demand with 95 % bands against ICU capacity.

A file names the population (``"idf"``: Île-de-France as published; ``"regions"``: the
13 metropolitan regions), the seeding, and a list of ``[[phase]]`` tables. A phase is a
contact matrix (``matrix``, a name from the reference data, times ``scale``) over dates
and optionally some regions; three kinds expand into several phases:

- ``kind = "lockdown"``: matrix ``LD`` (default scale 1);
- ``kind = "curfew"``: the named matrix (default ``baseline``) with the evening contacts
  removed expressed as ``scale`` (required: the reference data have no curfew matrix);
- ``kind = "school_reopening"``: the weekly school protocols of Di Domenico et al.
  (Nat Commun 12:1073, 2021): ``group`` in ``kids_only``, ``kids_and_teens``,
  ``kids_before_teens`` and ``protocol`` in ``closure``, ``progressive_100``,
  ``progressive_50``, ``prompt_50``, ``prompt_100``, eight weeks from ``start`` then the
  summer holidays matrix between ``summer_start`` and ``summer_end`` when given.

See ``src/hygie/epidemic/scenarios/*.toml`` for complete examples.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from hygie.epidemic.coupling import Coupling
from hygie.epidemic.engine import Ensemble
from hygie.epidemic.errors import ScenarioError
from hygie.epidemic.model import Phase, Scenario, Seed

BUILTIN_DIR = Path(__file__).parent / "scenarios"

#: Weekly matrices of each school protocol, by group (8 weeks from the reopening day).
_WEEKS = {
    "kids_only": ("TS_75_100", "TS_50_100", "TS_25_100", "SO_kids"),
    "kids_and_teens": ("TS_75_75", "TS_50_50", "TS_25_25", "SO"),
}


def school_weeks(group: str, protocol: str) -> list[str]:
    """The eight weekly contact matrices of a school reopening protocol."""
    if protocol == "closure":
        return ["SC"] * 8
    if group in _WEEKS:
        w1, w2, w3, w4 = _WEEKS[group]
        table = {
            "progressive_100": [w1, w2, w3] + [w4] * 5,
            "progressive_50": [w1] + [w2] * 7,
            "prompt_50": [w2] * 8,
            "prompt_100": [w4] * 8,
        }
    elif group == "kids_before_teens":
        first = ["TS_75_100", "TS_50_100", "TS_25_100", "SO_kids"]
        table = {
            "progressive_100": [*first, "TS_0_75", "TS_0_50", "TS_0_25", "SO"],
            "progressive_50": first + ["TS_0_75"] + ["TS_0_50"] * 3,
            "prompt_50": first + ["TS_0_50"] * 4,
            "prompt_100": first + ["SO"] * 4,
        }
    else:
        raise ScenarioError(f"phase.group: unknown school group {group!r}")
    if protocol not in table:
        raise ScenarioError(f"phase.protocol: unknown school protocol {protocol!r}")
    return table[protocol]


@dataclass(frozen=True, eq=False)
class Study:
    """A parsed scenario file: the scenario, which population, how patches are coupled."""

    scenario: Scenario
    population: str = "idf"
    coupling: Coupling | None = None
    mobility: Mapping[str, Any] = field(default_factory=dict)


def load_study(path: str | Path) -> Study:
    """Read a TOML scenario file; errors name the faulty key."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file: {exc.strerror}") from exc
    return parse_study(data, base_dir=Path(path).parent)


def builtin_studies() -> dict[str, Path]:
    """The example scenarios shipped with the package, by name."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def parse_study(data: Mapping[str, Any], base_dir: Path | None = None) -> Study:
    """Build a ``Study`` from TOML/JSON keys (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise ScenarioError("a scenario is a table of keys")
    start = _date(data, "start")
    days = _int(data, "days", 1, 3660)
    seeds = tuple(
        Seed(str(s.get("region", "11")), _float(s, "count", 0, 1e8),
             int(_int(s, "age", 0, 3, default=2)))
        for s in _tables(data, "seed")
    ) or (Seed("11", 50.0),)
    phases: list[Phase] = []
    for i, ph in enumerate(_tables(data, "phase")):
        phases += _phases(ph, f"phase[{i}]")
    capacity = {str(k): _float({"v": v}, "v", 0, 1e7) for k, v in
                _table(data, "icu_capacity").items()}
    beta_by = {str(k): _float({"v": v}, "v", 0, 100) for k, v in
               _table(data, "beta_by_region").items()}
    population = str(data.get("population", "idf"))
    if population not in ("idf", "regions"):
        raise ScenarioError("population: must be 'idf' or 'regions'")
    scenario = Scenario(
        name=str(data.get("name", "scenario"))[:200], start=start, days=days,
        phases=tuple(phases), seeds=seeds,
        baseline_matrix=str(data.get("baseline_matrix", "baseline")),
        icu_capacity=capacity, runs=_int(data, "runs", 1, 100_000, default=200),
        random_seed=_int(data, "random_seed", 0, 2**63 - 1, default=None),
        beta=_float(data, "beta", 1e-6, 10, default=None), beta_by_patch=beta_by,
        description=str(data.get("description", ""))[:2000],
    )
    mobility = _table(data, "mobility")
    coupling = _coupling(mobility, base_dir) if mobility.get("source") == "file" else None
    return Study(scenario=scenario, population=population, coupling=coupling,
                 mobility=mobility)


def _phases(ph: Mapping[str, Any], where: str) -> list[Phase]:
    kind = str(ph.get("kind", "contacts"))
    start = _date(ph, "start", where)
    end = _date(ph, "end", where, default=None)
    regions = ph.get("regions")
    if regions is not None and (not isinstance(regions, list) or not regions):
        raise ScenarioError(f"{where}.regions: a non-empty list of region codes")
    patches = tuple(str(r) for r in regions) if regions else None
    testing = _float(ph, "testing", 0, 1, where, default=0.0)
    label = str(ph.get("label", kind))[:100]
    if kind == "school_reopening":
        weeks = school_weeks(str(ph.get("group", "kids_only")), str(ph.get("protocol", "")))
        out = [Phase(start=start + timedelta(weeks=w), end=start + timedelta(weeks=w + 1),
                     matrix=m, testing=testing, patches=patches, label=f"{label} w{w + 1}")
               for w, m in enumerate(weeks)]
        s0 = _date(ph, "summer_start", where, default=None)
        if s0 is not None:
            summer = "SC" if ph.get("protocol") == "closure" else "vacation"
            out.append(Phase(start=s0, end=_date(ph, "summer_end", where, default=None),
                             matrix=summer, testing=testing, patches=patches,
                             label="summer holidays"))
        return out
    if kind == "lockdown":
        matrix, scale = str(ph.get("matrix", "LD")), _float(ph, "scale", 0, 10, where, 1.0)
    elif kind == "curfew":
        matrix, scale = str(ph.get("matrix", "baseline")), _float(ph, "scale", 0, 10, where)
    elif kind == "contacts":
        matrix, scale = str(ph.get("matrix", "")), _float(ph, "scale", 0, 10, where, 1.0)
    else:
        raise ScenarioError(f"{where}.kind: unknown kind {kind!r}")
    if not matrix:
        raise ScenarioError(f"{where}.matrix: required")
    return [Phase(start=start, end=end, matrix=matrix, scale=scale, testing=testing,
                  patches=patches, label=label)]


def _coupling(mob: Mapping[str, Any], base_dir: Path | None) -> Coupling:
    path = mob.get("path")
    if not isinstance(path, str):
        raise ScenarioError("mobility.path: the .npy file of origin-destination flows")
    full = (base_dir or Path.cwd()) / path
    try:
        od = np.load(full, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"mobility.path: cannot read {path}: {exc}") from exc
    dates = mob.get("dates")
    coupling = Coupling(od=od, dates=tuple(_date({"d": d}, "d") for d in dates)
                        if dates else None,
                        time_away=_float(mob, "time_away", 1e-6, 1, "mobility", 1 / 3))
    for i, change in enumerate(mob.get("travel_change", []) or []):
        coupling = coupling.with_travel_change(
            _date(change, "date", f"mobility.travel_change[{i}]"),
            _float(change, "factor", 0, 10, f"mobility.travel_change[{i}]"))
    return coupling


# --- ICU demand ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class IcuDemand:
    """ICU beds occupied: quantiles over runs (2.5, 50, 97.5 %) per day, the capacity,
    and the share of runs above capacity each day."""

    dates: list[date]
    bands: np.ndarray
    capacity: float | None
    exceed_probability: np.ndarray | None
    peak_median: float
    peak_date: date
    admissions_bands: np.ndarray

    def as_json(self) -> dict[str, Any]:
        return {
            "dates": [d.isoformat() for d in self.dates],
            "icu_beds": {"p2_5": self.bands[0].tolist(), "median": self.bands[1].tolist(),
                         "p97_5": self.bands[2].tolist()},
            "icu_admissions": {"p2_5": self.admissions_bands[0].tolist(),
                               "median": self.admissions_bands[1].tolist(),
                               "p97_5": self.admissions_bands[2].tolist()},
            "capacity": self.capacity,
            "exceed_probability": None if self.exceed_probability is None
            else self.exceed_probability.tolist(),
            "peak_median": self.peak_median,
            "peak_date": self.peak_date.isoformat(),
        }


def icu_demand(ensemble: Ensemble, scenario: Scenario,
               regions: list[str] | None = None) -> IcuDemand:
    """Summarise an ensemble that recorded ``icu_beds`` and ``icu_admissions``."""
    beds = ensemble.total("icu_beds", regions)
    bands = np.quantile(beds, [0.025, 0.5, 0.975], axis=0)
    adm = np.quantile(ensemble.total("icu_admissions", regions), [0.025, 0.5, 0.975], axis=0)
    cap_map = scenario.icu_capacity
    if "*" in cap_map and regions is None:
        capacity: float | None = cap_map["*"]
    else:
        wanted = regions if regions is not None else list(ensemble.codes)
        vals = [cap_map[c] for c in wanted if c in cap_map]
        capacity = float(sum(vals)) if vals else None
    exceed = None if capacity is None else (beds > capacity).mean(axis=0)
    peak = int(np.argmax(bands[1]))
    return IcuDemand(dates=ensemble.dates, bands=bands, capacity=capacity,
                     exceed_probability=exceed, peak_median=float(bands[1, peak]),
                     peak_date=ensemble.dates[peak], admissions_bands=adm)


# --- key readers: each error names the key ---------------------------------------------


def _tables(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    v = data.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, Mapping) for x in v):
        raise ScenarioError(f"{key}: a list of tables ([[{key}]])")
    return v


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = data.get(key, {})
    if not isinstance(v, Mapping):
        raise ScenarioError(f"{key}: a table")
    return v


_MISSING = object()


def _date(data: Mapping[str, Any], key: str, where: str = "", default: Any = _MISSING) -> Any:
    name = f"{where}.{key}" if where else key
    v = data.get(key, _MISSING)
    if v is _MISSING:
        if default is _MISSING:
            raise ScenarioError(f"{name}: required (a date, YYYY-MM-DD)")
        return default
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        raise ScenarioError(f"{name}: not a date (YYYY-MM-DD)") from None


def _float(data: Mapping[str, Any], key: str, lo: float, hi: float, where: str = "",
           default: Any = _MISSING) -> Any:
    name = f"{where}.{key}" if where else key
    v = data.get(key, _MISSING)
    if v is _MISSING:
        if default is _MISSING:
            raise ScenarioError(f"{name}: required (a number)")
        return default
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ScenarioError(f"{name}: must be a number")
    if not (lo <= float(v) <= hi):
        raise ScenarioError(f"{name}: must lie in [{lo}, {hi}]")
    return float(v)


def _int(data: Mapping[str, Any], key: str, lo: int, hi: int, where: str = "",
         default: Any = _MISSING) -> Any:
    name = f"{where}.{key}" if where else key
    v = data.get(key, _MISSING)
    if v is _MISSING:
        if default is _MISSING:
            raise ScenarioError(f"{name}: required (an integer)")
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ScenarioError(f"{name}: must be an integer")
    if not lo <= v <= hi:
        raise ScenarioError(f"{name}: must lie in [{lo}, {hi}]")
    return v
