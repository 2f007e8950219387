"""Population mobility statistics from mobile-network events (issue #9).

Public outputs, for other services (the epidemic model reads them):

- ``read_od_matrices(root, kind, level, start, end, zones)`` -> ``ODMatrices``: daily
  origin-destination matrices in people, ``people[d, i, j]`` from ``zones[i]`` to
  ``zones[j]`` on ``dates[d]``, with the ``suppressed`` mask of withheld cells (0 in
  ``people``). ``kind``: ``trips``, ``home_night`` or ``home_day``; ``level``:
  ``departement`` or ``region``.
- ``read_presence(root, level, start, end)``: presence per zone and 30-minute slot.
- ``data_root(settings)``: the folder holding the releases for these settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hygie.mobility.model import ODMatrices, PrivacyRule
from hygie.mobility.release import ReleaseNotFound, read_od_matrices, read_presence


def data_root(settings: Any) -> Path:
    """Where releases live: setting ``mobility_root``, else ``<var_dir>/mobility``."""
    return Path(settings.extra.get("mobility_root") or settings.var_dir / "mobility")


__all__ = [
    "ODMatrices",
    "PrivacyRule",
    "ReleaseNotFound",
    "data_root",
    "read_od_matrices",
    "read_presence",
]
