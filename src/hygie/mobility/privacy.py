"""What may be published from a day's aggregates: thresholds, differential privacy, report.

Issue #9 asks for no published group under 20 people. Every cell carries the number
of distinct devices behind it; a cell under ``PrivacyRule.min_count`` devices is
withheld (``suppress``) or pooled with the other small cells of its row (``merge``).
Where a row's total is public (home tables sum to the census population of the home
zone, presence per slot to the whole population), one withheld cell could be found by
subtraction, so a second, smallest cell of that row is withheld too (complementary
suppression).

With ``epsilon`` set, counts go through OpenDP's Laplace mechanism instead: the budget
of the release is split evenly over the published tables and, in each, between the
device counts (used for the threshold) and the people counts (published). The L1
sensitivity of a table is what one device can change in it in one day: ``n_slots``
presence cells, one home cell, ``max_trips_per_device`` trip cells, each by one device
or by the largest extrapolation weight in people. The weights are treated as public
(they come from the census and from per-département device totals in the thousands).

``privacy_report`` then tests the release: smallest published group, cells that could
be recovered by differencing (a row with a public total and one withheld cell, or a
région cell minus its published départements), and a uniqueness test of devices on
the combination of attributes the release exposes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hygie.mobility.model import PrivacyRule

#: Destination code of the pooled small cells under the ``merge`` rule.
OTHER = "other"


@dataclass(frozen=True)
class TableSpec:
    """How one published table is protected.

    ``row`` names the columns of a row, ``cell`` the column spread over a row;
    ``total_public`` says whether a row's total is known outside the release;
    ``sensitivity`` is the number of cells one device can change in a day.
    """

    name: str
    row: tuple[str, ...]
    cell: str
    total_public: bool
    sensitivity: int


def _laplace(values: np.ndarray, scale: float, rng_seed: int | None = None) -> np.ndarray:
    """Add Laplace noise of ``scale`` with OpenDP (a vector of floats)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float))
    measurement = dp.m.make_laplace(*space, scale=float(scale))
    return np.asarray(measurement([float(v) for v in values]), dtype=np.float64)


def laplace_epsilon(sensitivity: float, scale: float) -> float:
    """The epsilon OpenDP's Laplace mechanism spends for this sensitivity and scale."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float))
    return float(dp.m.make_laplace(*space, scale=float(scale)).map(float(sensitivity)))


def _full_grid(table: pd.DataFrame, spec: TableSpec, rows: Iterable[tuple[Any, ...]],
               cells: list[Any]) -> pd.DataFrame:
    """Every (row, cell) pair, zeros where the aggregate had no device (DP needs them)."""
    index = pd.MultiIndex.from_tuples([(*r, c) for r in rows for c in cells],
                                      names=[*spec.row, spec.cell])
    keyed = table.set_index([*spec.row, spec.cell])[["devices", "people"]]
    return keyed.reindex(index, fill_value=0).reset_index()


def protect(table: pd.DataFrame, spec: TableSpec, rule: PrivacyRule, *,
            epsilon: float | None = None, weight_max: float = 1.0,
            grid: tuple[list[tuple[Any, ...]], list[Any]] | None = None,
            hide: set[tuple[Any, ...]] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Apply the rule to one table (columns: row columns, cell column, devices, people).

    Returns the table to publish (row columns, cell column, ``people`` with NaN where
    withheld, ``suppressed``) and facts for the privacy report. ``devices`` stays
    internal: it is dropped from what is published. ``hide`` lists (row..., cell) keys
    to withhold whatever their count (cells that would give away a finer withheld cell).
    """
    facts: dict[str, Any] = {"cells": len(table)}
    t = table[[*spec.row, spec.cell, "devices", "people"]].copy()
    t["devices"] = t["devices"].astype(np.float64)
    if epsilon is not None:
        if grid is None:
            raise ValueError("differential privacy needs the full grid of the table")
        t = _full_grid(t, spec, grid[0], grid[1])
        half = epsilon / 2
        scale_devices = spec.sensitivity / half
        scale_people = spec.sensitivity * weight_max / half
        t["devices"] = _laplace(t["devices"].to_numpy(np.float64), scale_devices)
        t["people"] = np.clip(_laplace(t["people"].to_numpy(np.float64), scale_people), 0, None)
        facts["epsilon"] = laplace_epsilon(spec.sensitivity, scale_devices) + laplace_epsilon(
            spec.sensitivity * weight_max, scale_people)
        facts["noise_scale_people"] = scale_people
        facts["cells"] = len(t)
    small = t["devices"] < rule.min_count
    if rule.method == "merge" and small.any():
        pooled = t[small].groupby(list(spec.row), as_index=False)[["devices", "people"]].sum()
        pooled[spec.cell] = OTHER
        t = pd.concat([t[~small], pooled[t.columns]], ignore_index=True)
        small = t["devices"] < rule.min_count
    t["suppressed"] = small.to_numpy()
    if hide:
        keys = list(zip(*(t[c] for c in (*spec.row, spec.cell)), strict=True))
        t["suppressed"] |= np.array([k in hide for k in keys], dtype=bool)
    if spec.total_public and epsilon is None:
        t = _complementary(t, spec)
    published = t.loc[~t["suppressed"]]
    facts["published"] = len(published)
    facts["suppressed"] = int(t["suppressed"].sum())
    facts["min_devices_published"] = (None if epsilon is not None or published.empty
                                      else int(published["devices"].min()))
    facts["recoverable_cells"] = (0 if epsilon is not None or not spec.total_public
                                  else recoverable_in_rows(t, spec))
    t.loc[t["suppressed"], "people"] = np.nan
    # A zero-device cell from the DP grid that stays under the threshold says nothing.
    out = t.drop(columns=["devices"])
    return out.sort_values([*spec.row, spec.cell], key=_sort_key, ignore_index=True), facts


def _sort_key(col: pd.Series) -> pd.Series:
    return col.astype(str) if col.dtype == object else col


def _complementary(t: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Withhold a second cell in rows where exactly one is withheld and the total is public."""
    t = t.reset_index(drop=True)
    for _, rows in t.groupby(list(spec.row)):
        hidden = rows["suppressed"]
        if int(hidden.sum()) == 1 and len(rows) > 1:
            smallest = rows.loc[~hidden, "devices"].idxmin()
            t.loc[smallest, "suppressed"] = True
    return t


def recoverable_in_rows(t: pd.DataFrame, spec: TableSpec) -> int:
    """Rows with a public total and exactly one withheld cell (found by subtraction)."""
    counts = t.groupby(list(spec.row))["suppressed"].agg(["sum", "size"])
    return int(((counts["sum"] == 1) & (counts["size"] > 1)).sum())


def recoverable_across_levels(fine: pd.DataFrame, coarse: pd.DataFrame, spec: TableSpec,
                              to_coarse: dict[str, str]) -> int:
    """Withheld fine cells recoverable as a published coarse cell minus its published parts.

    ``fine`` and ``coarse`` are protected tables of the same kind at two levels
    (département and région); ``to_coarse`` maps fine zone codes to coarse ones.
    """
    if fine.empty or coarse.empty:
        return 0
    f = fine.copy()
    zone_cols = [c for c in (*spec.row, spec.cell) if c in ("zone", "origin", "destination")]
    for c in zone_cols:
        f[c] = f[c].map(lambda z: to_coarse.get(z, z))
    keys = [*spec.row, spec.cell]
    hidden = f.groupby(keys)["suppressed"].sum().rename("hidden")
    published = coarse.loc[~coarse["suppressed"], keys]
    joined = published.merge(hidden.reset_index(), on=keys, how="left")
    return int((joined["hidden"] == 1).sum())


def cells_to_hide(fine: pd.DataFrame, spec: TableSpec, to_coarse: dict[str, str]
                  ) -> set[tuple[Any, ...]]:
    """Coarse cells holding exactly one withheld fine cell (publishing them gives it away)."""
    if fine.empty:
        return set()
    f = fine.copy()
    for c in (*spec.row, spec.cell):
        if c in ("zone", "origin", "destination"):
            f[c] = f[c].map(lambda z: to_coarse.get(z, z))
    hidden = f.groupby([*spec.row, spec.cell])["suppressed"].sum()
    return {k if isinstance(k, tuple) else (k,) for k in hidden[hidden == 1].index}


def uniqueness(fingerprints: pd.DataFrame, k: int) -> dict[str, Any]:
    """Re-identification test on the attributes a release exposes about each device.

    ``fingerprints`` gives, for each group size, how many groups of devices share one
    combination of home zone, night zone, main day zone and trip count. A device alone
    in its group would be singled out by anyone able to link those published cells.
    """
    size = fingerprints["size"].to_numpy(np.int64)
    groups = fingerprints["groups"].to_numpy(np.int64)
    devices = int((size * groups).sum())
    unique = int(groups[size == 1].sum())
    below = int((size * groups)[size < k].sum())
    return {
        "attributes": ["home", "night_zone", "day_zone", "trips"],
        "devices": devices,
        "unique_devices": unique,
        "share_unique": unique / devices if devices else 0.0,
        "share_in_groups_below_k": below / devices if devices else 0.0,
        "k": k,
    }
