"""French administrative geography used by the mobility service, and its radio cells.

Zones come from the INSEE codes shipped in ``shared/data/geo`` (communes with their
census population, départements, régions). The service covers metropolitan France
(96 départements, 13 régions): the département map ships for that area only.

No real antenna positions are public in that data, so the network is a synthetic grid
of cells: each commune gets one cell per ``inhabitants_per_cell`` inhabitants (at least
one). A cell belongs to exactly one commune, so ``cell -> commune -> département ->
région`` is a plain lookup, which is what the operator's own cell reference gives.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from hygie.config import ReferenceDataNotFound, find_shared_data

#: Published zone levels, finest first.
LEVELS = ("departement", "region")


class GeographyNotFound(LookupError):
    """The geo reference folder is missing: set ``mobility_geo_dir`` or HYGIE_SHARED_DATA."""


@dataclass(frozen=True)
class Geography:
    """Metropolitan communes, départements and régions as aligned arrays.

    ``commune_dep`` indexes ``dep_codes``; ``dep_region`` indexes ``region_codes``.
    Populations are the census figures (people).
    """

    commune_codes: np.ndarray  # (n_communes,) str
    commune_pop: np.ndarray  # (n_communes,) int64
    commune_dep: np.ndarray  # (n_communes,) int32
    dep_codes: tuple[str, ...]
    dep_names: tuple[str, ...]
    dep_region: np.ndarray  # (n_deps,) int32
    dep_pop: np.ndarray  # (n_deps,) int64
    region_codes: tuple[str, ...]
    region_names: tuple[str, ...]
    geo_dir: Path

    @property
    def n_communes(self) -> int:
        return len(self.commune_codes)

    @property
    def n_deps(self) -> int:
        return len(self.dep_codes)

    def zone_codes(self, level: str) -> tuple[str, ...]:
        """Zone codes of a published level (``departement`` or ``region``)."""
        check_level(level)
        return self.dep_codes if level == "departement" else self.region_codes

    def zone_names(self, level: str) -> dict[str, str]:
        codes = self.zone_codes(level)
        names = self.dep_names if level == "departement" else self.region_names
        return dict(zip(codes, names, strict=True))

    def dep_to_region(self) -> dict[str, str]:
        return {d: self.region_codes[r] for d, r in zip(self.dep_codes, self.dep_region,
                                                         strict=True)}

    def census(self) -> pd.DataFrame:
        """Census population per département: columns ``dep`` (code) and ``population``."""
        return pd.DataFrame({"dep": list(self.dep_codes), "population": self.dep_pop})

    def departement_svg(self) -> str:
        """The département outline map (SVG, path id = INSEE code)."""
        return (self.geo_dir / "france.departments.svg").read_text(encoding="utf-8")


def check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"unknown zone level {level!r}: expected one of {', '.join(LEVELS)}")


def find_geo_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """Locate the geo reference folder (setting ``mobility_geo_dir``, else the platform's
    reference data folder: see ``hygie.config.find_shared_data``)."""
    if configured:
        if (Path(configured) / "communes.json").is_file():
            return Path(configured)
        raise GeographyNotFound(f"no communes.json in the configured folder {configured}")
    try:
        return find_shared_data("geo/communes.json") / "geo"
    except ReferenceDataNotFound as exc:
        raise GeographyNotFound(
            f"geo reference data not found ({exc}); or set the setting mobility_geo_dir"
        ) from exc


@cache
def load_geography(geo_dir: Path) -> Geography:
    """Read communes, départements and régions of metropolitan France from ``geo_dir``."""
    geo_dir = Path(geo_dir)
    communes = json.loads((geo_dir / "communes.json").read_text(encoding="utf-8"))
    deps = json.loads((geo_dir / "departements.json").read_text(encoding="utf-8"))
    regions = json.loads((geo_dir / "regions.json").read_text(encoding="utf-8"))
    metro_regions = sorted(r["code"] for r in regions if r.get("zone") == "metro")
    region_name = {r["code"]: r["nom"] for r in regions}
    metro_deps = sorted((d for d in deps if d.get("zone") == "metro"), key=lambda d: d["code"])
    dep_index = {d["code"]: i for i, d in enumerate(metro_deps)}
    rows = [c for c in communes
            if c.get("type") == "commune-actuelle" and c.get("zone") == "metro"
            and c.get("population", 0) > 0 and c["departement"] in dep_index]
    commune_dep = np.array([dep_index[c["departement"]] for c in rows], dtype=np.int32)
    commune_pop = np.array([c["population"] for c in rows], dtype=np.int64)
    dep_pop = np.bincount(commune_dep, weights=commune_pop, minlength=len(metro_deps))
    return Geography(
        commune_codes=np.array([c["code"] for c in rows]),
        commune_pop=commune_pop,
        commune_dep=commune_dep,
        dep_codes=tuple(d["code"] for d in metro_deps),
        dep_names=tuple(d["nom"] for d in metro_deps),
        dep_region=np.array([metro_regions.index(d["region"]) for d in metro_deps],
                            dtype=np.int32),
        dep_pop=dep_pop.astype(np.int64),
        region_codes=tuple(metro_regions),
        region_names=tuple(region_name[r] for r in metro_regions),
        geo_dir=geo_dir,
    )


def build_cells(geo: Geography, inhabitants_per_cell: int = 5000) -> pd.DataFrame:
    """The synthetic cell reference: one row per cell.

    Columns: ``cell_id`` (int32, dense from 0), ``commune`` (int32 index into the
    geography's communes), ``dep`` (département code), ``region`` (région code).
    """
    per_commune = np.maximum(1, np.ceil(geo.commune_pop / inhabitants_per_cell)).astype(np.int64)
    commune = np.repeat(np.arange(geo.n_communes, dtype=np.int32), per_commune)
    dep_idx = geo.commune_dep[commune]
    return pd.DataFrame({
        "cell_id": np.arange(len(commune), dtype=np.int32),
        "commune": commune,
        "dep": np.array(geo.dep_codes)[dep_idx],
        "region": np.array(geo.region_codes)[geo.dep_region[dep_idx]],
    })


def first_cells(geo: Geography, cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each commune, its first cell id and its number of cells (both int64 arrays)."""
    counts = np.bincount(cells["commune"].to_numpy(), minlength=geo.n_communes)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return first.astype(np.int64), counts.astype(np.int64)
