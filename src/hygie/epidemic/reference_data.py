"""Loading the EPIcx lab reference data: contact matrices, ICU admissions, populations.

The data are not shipped in the package: they live in the project's shared data folder
(``<root>/epidemic`` with the matrices and ICU series, ``<root>/geo`` with the
communes' populations). The root is the ``epidemic_data_dir`` setting, else the
platform's reference data folder (``HYGIE_SHARED_DATA``, else the nearest
``shared/data`` above the working directory or the package).

Contact matrices (``matrices/<name>.txt``, 16 values, row-major) are symmetric: entry
(i, j) is the daily contacts of an i-person with j-people divided by the share of j in
the population, so that the force of infection is ``sum_j C_ij * I_j / N`` with N the
whole population (SOURCE.md).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import numpy as np

from hygie.config import ReferenceDataNotFound, find_shared_data
from hygie.epidemic.errors import InvalidInput, ReferenceDataMissing
from hygie.epidemic.model import N_AGES, Population

#: Île-de-France, as published: population and age shares.
IDF_POPULATION = 12_278_210
IDF_AGE_SHARES = (0.1447, 0.1113, 0.59, 0.154)
IDF_CODE = "11"


def locate_data_root(configured: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding ``epidemic/`` (and ``geo/``): the ``epidemic_data_dir``
    setting, else the platform's reference data folder (``hygie.config.find_shared_data``).

    A folder named explicitly must hold the data: a wrong explicit path is an error,
    never silently replaced by another folder.
    """
    try:
        return find_shared_data("epidemic/matrices", configured)
    except ReferenceDataNotFound as exc:
        raise ReferenceDataMissing(
            f"epidemic reference data not found: {exc} (or the epidemic_data_dir setting)"
        ) from exc


@dataclass(frozen=True)
class ReferenceData:
    """Accessors over one data root; matrices are read once and cached."""

    root: Path

    @property
    def epidemic_dir(self) -> Path:
        return self.root / "epidemic"

    def matrix_names(self) -> list[str]:
        return sorted(p.stem for p in (self.epidemic_dir / "matrices").glob("*.txt"))

    def matrix(self, name: str) -> np.ndarray:
        """Contact matrix ``name`` (e.g. ``baseline``, ``LD``), shape (4, 4)."""
        return _read_matrix(self.epidemic_dir / "matrices", name).copy()

    def icu_admissions(self, region: str = "IDF") -> tuple[list[date], np.ndarray]:
        """Daily new ICU admissions (dates, counts) from ``hosp_data.csv``."""
        return self.series("new_ICU_admissions", region)

    def series(self, kind: str, region: str = "IDF") -> tuple[list[date], np.ndarray]:
        days: list[date] = []
        values: list[float] = []
        with open(self.epidemic_dir / "hosp_data.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                if row["type"] == kind and row["region"] == region:
                    days.append(date.fromisoformat(row["date"]))
                    values.append(float(row["obs"]))
        if not days:
            raise InvalidInput(f"no {kind} series for {region} in hosp_data.csv")
        return days, np.asarray(values)

    def national_age_shares(self) -> np.ndarray:
        """Age shares of metropolitan France from ``population_France.csv``."""
        pops = []
        with open(self.epidemic_dir / "population_France.csv", newline="") as fh:
            pops = [float(row["pop"]) for row in csv.DictReader(fh)]
        arr = np.asarray(pops[:N_AGES])
        return arr / arr.sum()

    def idf(self) -> Population:
        """Île-de-France alone, as in the published model."""
        sizes = np.round(IDF_POPULATION * np.asarray(IDF_AGE_SHARES))[None, :]
        return Population(codes=(IDF_CODE,), sizes=sizes, names=("Île-de-France",))

    def regions(self) -> Population:
        """The 13 regions of metropolitan France: residents from the communes' census
        populations (geo/communes.json), split by age with the national shares, except
        Île-de-France which keeps its published population and shares."""
        return _regions(self.root)


@cache
def _read_matrix(folder: Path, name: str) -> np.ndarray:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidInput(f"invalid contact matrix name {name!r}")
    path = folder / f"{name}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.txt")))
        raise InvalidInput(f"unknown contact matrix {name!r}; known: {known}")
    values = np.loadtxt(path, dtype=np.float64).ravel()
    if values.size != N_AGES * N_AGES:
        raise InvalidInput(f"contact matrix {name!r} must hold {N_AGES * N_AGES} values")
    return values.reshape(N_AGES, N_AGES)


@cache
def _regions(root: Path) -> Population:
    geo = root / "geo"
    try:
        regions = json.loads((geo / "regions.json").read_text())
        communes = json.loads((geo / "communes.json").read_text())
    except FileNotFoundError as exc:
        raise ReferenceDataMissing(f"geographic data missing under {geo}") from exc
    metro = [r for r in regions if r.get("zone") == "metro"]
    totals = {r["code"]: 0.0 for r in metro}
    for c in communes:
        if c.get("type", "commune-actuelle") == "commune-actuelle" and c.get("region") in totals:
            totals[c["region"]] += float(c.get("population") or 0)
    shares = ReferenceData(root).national_age_shares()
    sizes = np.array([np.round(totals[r["code"]] * shares) for r in metro])
    codes = tuple(r["code"] for r in metro)
    if IDF_CODE in codes:
        sizes[codes.index(IDF_CODE)] = np.round(IDF_POPULATION * np.asarray(IDF_AGE_SHARES))
    return Population(codes=codes, sizes=sizes, names=tuple(r["nom"] for r in metro))


def departement_regions(root: Path) -> dict[str, str]:
    """Département code -> region code (geo/departements.json), for aggregating flows."""
    deps = json.loads((root / "geo" / "departements.json").read_text())
    return {d["code"]: d["region"] for d in deps}
