"""Population mobility statistics from mobile-network events (issue #9).

Public outputs, for other services (the epidemic model reads them):

- ``od_matrices(start, end, kind, level, root=None, zones=None)`` -> ``ODMatrices``: daily
  origin-destination matrices in people, ``people[d, i, j]`` from ``zones[i]`` to
  ``zones[j]`` on ``dates[d]``, with the ``suppressed`` mask of withheld cells (0 in
  ``people``). ``kind``: ``trips``, ``home_night`` or ``home_day``; ``level``:
  ``departement`` or ``region``.
  ``root`` defaults to ``data_root(load_settings())``. ``read_od_matrices(root, ...)``
  is the same with an explicit folder.
- ``read_presence(root, level, start, end)``: presence per zone and 30-minute slot
  (pandas frame: date, zone, slot, people, suppressed).
- ``data_root(settings)``: the folder holding the releases for these settings.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from hygie.mobility.model import ODMatrices, PrivacyRule
from hygie.mobility.release import ReleaseNotFound, read_od_matrices, read_presence


def data_root(settings: Any) -> Path:
    """Where releases live: setting ``mobility_root``, else ``<var_dir>/mobility``."""
    return Path(settings.extra.get("mobility_root") or settings.var_dir / "mobility")


def od_matrices(start: dt.date | None = None, end: dt.date | None = None, kind: str = "trips",
                level: str = "departement", root: Path | None = None,
                zones: tuple[str, ...] | None = None) -> ODMatrices:
    """Published daily origin-destination matrices between two dates (inclusive).

    Raises ``ReleaseNotFound`` when no release falls in the period.
    """
    if root is None:
        from hygie.config import load_settings

        root = data_root(load_settings())
    return read_od_matrices(Path(root), kind=kind, level=level, start=start, end=end,
                            zones=zones)


__all__ = [
    "ODMatrices",
    "PrivacyRule",
    "ReleaseNotFound",
    "data_root",
    "od_matrices",
    "read_od_matrices",
    "read_presence",
]
