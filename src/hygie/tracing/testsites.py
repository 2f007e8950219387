"""Test-centre finder: import of the public test-site list, and nearest-site queries.

Sites come in the data.gouv.fr schema of "sites de prélèvements pour les tests
COVID" (columns ``rs, adresse, latitude, longitude, mod_prel, public, horaire,
check_rdv, tel_rdv, web_rdv, do_prel, do_antigenic``; ``;`` or ``,`` separated).
An import replaces the list (the file is a snapshot of every open site).

Queries are answered from an in-memory index: sites as unit vectors on the sphere,
where the straight-line (chord) distance grows with the great-circle distance, so a
k-d tree (``scipy.spatial.cKDTree``) over the 3-D points finds the nearest sites
exactly. A filtered query uses a tree over the sites that pass the filter, built once
per distinct filter and kept.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from scipy.spatial import cKDTree

from hygie.tracing import tables as t
from hygie.tracing.errors import InvalidRequest

EARTH_RADIUS_KM = 6371.0088
COLUMNS = ("rs", "adresse", "latitude", "longitude", "mod_prel", "public", "horaire",
           "check_rdv", "tel_rdv", "web_rdv", "do_prel", "do_antigenic")
_TRUE = {"true", "1", "oui", "yes", "vrai", "t", "o"}


@dataclass(frozen=True)
class TestSite:
    """One test site, as the public schema describes it."""

    __test__ = False  # not a pytest test class despite its name

    rs: str
    adresse: str
    latitude: float
    longitude: float
    mod_prel: str
    public: str
    horaire: str
    check_rdv: str
    tel_rdv: str
    web_rdv: str
    do_prel: bool
    do_antigenic: bool

    def as_dict(self, distance_km: float | None = None) -> dict[str, Any]:
        out = asdict(self)
        if distance_km is not None:
            out["distance_km"] = round(distance_km, 3)
        return out


@dataclass(frozen=True)
class SiteFilter:
    """Query filters; empty strings and None mean "any"."""

    pcr: bool | None = None
    antigenic: bool | None = None
    without_appointment: bool | None = None
    public: str = ""
    mod_prel: str = ""


def parse_csv(text: str) -> tuple[list[TestSite], int]:
    """Sites of a CSV in the public schema; returns them and how many rows were skipped."""
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if reader.fieldnames is None:
        raise InvalidRequest("the file is empty")
    names = {n.strip().lower() for n in reader.fieldnames}
    missing = [c for c in ("rs", "latitude", "longitude") if c not in names]
    if missing:
        raise InvalidRequest(f"missing columns: {', '.join(missing)}")
    sites, skipped = [], 0
    for raw in reader:
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            lat = float(row["latitude"].replace(",", "."))
            lon = float(row["longitude"].replace(",", "."))
        except ValueError:
            skipped += 1
            continue
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not row.get("rs"):
            skipped += 1
            continue
        sites.append(TestSite(
            rs=row["rs"][:255], adresse=row.get("adresse", "")[:512], latitude=lat,
            longitude=lon, mod_prel=row.get("mod_prel", "")[:255],
            public=row.get("public", "")[:255], horaire=row.get("horaire", ""),
            check_rdv=row.get("check_rdv", "")[:32], tel_rdv=row.get("tel_rdv", "")[:64],
            web_rdv=row.get("web_rdv", "")[:512],
            do_prel=row.get("do_prel", "").lower() in _TRUE,
            do_antigenic=row.get("do_antigenic", "").lower() in _TRUE))
    return sites, skipped


def replace_sites(engine: sa.Engine, sites: Iterable[TestSite]) -> int:
    """Replace the stored list with these sites; returns how many were stored."""
    rows = [asdict(s) for s in sites]
    with engine.begin() as conn:
        conn.execute(t.test_site.delete())
        if rows:
            conn.execute(t.test_site.insert(), rows)
    return len(rows)


def load_sites(engine: sa.Engine) -> list[TestSite]:
    cols = [t.test_site.c[c] for c in COLUMNS]
    with engine.connect() as conn:
        return [TestSite(*r) for r in conn.execute(sa.select(*cols).order_by(t.test_site.c.pk))]


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)


class SiteIndex:
    """Nearest-site queries over a fixed list of sites; see the module docstring."""

    def __init__(self, sites: list[TestSite]) -> None:
        self.sites = sites
        lat = np.array([s.latitude for s in sites], dtype=np.float64)
        lon = np.array([s.longitude for s in sites], dtype=np.float64)
        self._xyz = _unit_vectors(lat, lon) if sites else np.zeros((0, 3))
        self._lower = {
            "public": [s.public.lower() for s in sites],
            "mod_prel": [s.mod_prel.lower() for s in sites],
        }
        self._pcr = np.array([s.do_prel for s in sites], dtype=bool)
        self._antigenic = np.array([s.do_antigenic for s in sites], dtype=bool)
        rdv = [s.check_rdv.lower() for s in sites]
        # "Sans rendez-vous", "non", "false" mean a walk-in site.
        self._walk_in = np.array([("sans" in r) or r in ("non", "false", "0") for r in rdv],
                                 dtype=bool)
        self._tree = cKDTree(self._xyz) if sites else None
        self._subsets: dict[tuple[Any, ...], tuple[Any, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.sites)

    def _mask(self, key: tuple[Any, ...]) -> np.ndarray:
        pcr, antigenic, walk_in, public, mod_prel = key
        mask = np.ones(len(self.sites), dtype=bool)
        if pcr is not None:
            mask &= self._pcr == pcr
        if antigenic is not None:
            mask &= self._antigenic == antigenic
        if walk_in is not None:
            mask &= self._walk_in == walk_in
        for name, want in (("public", public), ("mod_prel", mod_prel)):
            if want:
                mask &= np.array([want in v for v in self._lower[name]], dtype=bool)
        return mask

    def _subset(self, f: SiteFilter) -> tuple[Any, np.ndarray | None]:
        """The tree to search for this filter, and the site numbers of its points."""
        key = (f.pcr, f.antigenic, f.without_appointment, f.public.lower(), f.mod_prel.lower())
        if key == (None, None, None, "", ""):
            return self._tree, None
        found = self._subsets.get(key)
        if found is None:
            idx = np.flatnonzero(self._mask(key))
            found = (cKDTree(self._xyz[idx]) if len(idx) else None, idx)
            with self._lock:
                if len(self._subsets) > 256:
                    self._subsets.clear()
                self._subsets[key] = found
        return found

    def nearest(self, lat: float, lon: float, limit: int = 10,
                where: SiteFilter | None = None) -> list[tuple[TestSite, float]]:
        """The ``limit`` nearest sites passing the filter, with their distance in km."""
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InvalidRequest("latitude must be within [-90, 90] and longitude [-180, 180]")
        tree, idx = self._subset(where or SiteFilter())
        if tree is None or limit <= 0:
            return []
        la, lo = math.radians(lat), math.radians(lon)
        q = (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))
        k = min(limit, tree.n)
        chords, found = tree.query(q, k=k)
        chords, found = np.atleast_1d(chords), np.atleast_1d(found)
        if idx is not None:
            found = idx[found]
        sites = self.sites
        return [(sites[i], 2 * EARTH_RADIUS_KM * math.asin(min(1.0, c / 2)))
                for i, c in zip(found.tolist(), chords.tolist(), strict=True)]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance, the plain formula (used as the reference in tests and bench)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))
