"""Reading the mobility service's origin-destination matrices into a ``Coupling``.

This is the one place where ``epidemic`` reads another service, and only its public
names (DESIGN.md, rules of the house). The mobility service publishes daily matrices
with ``dates``, ``zones``, ``level`` (zone level, e.g. ``departement``) and ``people``
of shape (n_days, n_zones, n_zones): residents of zone i present in zone j. The
``home_day`` kind (home zone x main zone of the day) is the commuting table the
coupling wants; zones are summed into the model's patches (départements into regions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np

from hygie.epidemic.coupling import Coupling, aggregate_od
from hygie.epidemic.errors import InvalidInput, MobilityUnavailable
from hygie.epidemic.model import Population


class ODLike(Protocol):
    """What the coupling reads from a mobility release (duck-typed)."""

    dates: Sequence[date]
    zones: Sequence[str]
    people: np.ndarray


def coupling_from_od(od: ODLike, population: Population,
                     zone_to_patch: Mapping[str, str] | None = None,
                     time_away: float = 1.0 / 3.0) -> Coupling:
    """A coupling from daily matrices; zones are mapped onto the population's patches
    (identity when the zones are the patches)."""
    people = np.asarray(od.people, dtype=np.float64)
    zones = [str(z) for z in od.zones]
    if people.ndim != 3 or people.shape[1:] != (len(zones), len(zones)):
        raise InvalidInput("mobility matrices must have shape (n_days, n_zones, n_zones)")
    if len(od.dates) != people.shape[0]:
        raise InvalidInput("mobility matrices need one date per day")
    mapping = dict(zone_to_patch) if zone_to_patch else {z: z for z in zones}
    flows = aggregate_od(people, zones, mapping, population.codes)
    order = np.argsort([d.toordinal() for d in od.dates])
    return Coupling(od=flows[order], dates=tuple(od.dates[i] for i in order),
                    time_away=time_away)


def fetch_mobility_od(start: date | None, end: date | None, kind: str = "home_day",
                      level: str = "region", zones: Sequence[str] | None = None,
                      root: Path | None = None) -> ODLike:
    """The mobility service's published matrices between two dates (inclusive), through
    its public ``od_matrices``; ``root`` defaults to the mobility service's own folder."""
    try:
        import hygie.mobility as mobility
    except ImportError as exc:
        raise MobilityUnavailable("the mobility service is not installed") from exc
    try:
        return mobility.od_matrices(start=start, end=end, kind=kind, level=level, root=root,
                                    zones=tuple(zones) if zones is not None else None)
    except LookupError as exc:  # mobility.ReleaseNotFound: nothing published for the days
        raise MobilityUnavailable(f"mobility has no {kind} matrices: {exc}") from exc
    except ValueError as exc:
        raise MobilityUnavailable(f"mobility refused the request: {exc}") from exc
