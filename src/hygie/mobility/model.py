"""Data types of the mobility service: scenarios, privacy rules, releases, OD matrices."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The Europe/Paris day is the unit of processing and publication.
TIMEZONE = "Europe/Paris"
#: Presence is counted per 30-minute slot (Flux Vision's finest time step).
SLOT_SECONDS = 1800


@dataclass(frozen=True)
class Scenario:
    """What the synthetic population does on the generated days.

    ``lockdown_day`` is the index (from 0) of the first generated day under lockdown,
    or None for an ordinary period. Under lockdown each outing happens with probability
    ``lockdown_trip_factor`` times its usual one (0.35 gives the measured -65 % of
    trips) and residents of the départements in ``exodus`` leave, with the given
    probability, for a second home in another département on the first lockdown day.
    """

    name: str = "normal"
    lockdown_day: int | None = None
    lockdown_trip_factor: float = 0.35
    exodus: dict[str, float] = field(default_factory=dict)

    @classmethod
    def named(cls, name: str, days: int) -> Scenario:
        """The built-in scenarios: ``normal`` (ordinary weeks) and ``lockdown``.

        ``lockdown`` keeps the first half of the period ordinary (the baseline) and
        locks down from the middle day on, like 17 March 2020 after a normal week.
        """
        if name == "normal":
            return cls(name="normal")
        if name == "lockdown":
            exodus = {"75": 0.22, "92": 0.08, "93": 0.04, "94": 0.06, "69": 0.06,
                      "13": 0.05, "59": 0.04, "31": 0.05, "33": 0.05, "06": 0.05,
                      "67": 0.04, "44": 0.05, "34": 0.05}
            return cls(name="lockdown", lockdown_day=max(1, days // 2), exodus=exodus)
        raise ValueError(f"unknown scenario {name!r}: expected 'normal' or 'lockdown'")

    def is_lockdown(self, day_index: int) -> bool:
        return self.lockdown_day is not None and day_index >= self.lockdown_day


@dataclass(frozen=True)
class PrivacyRule:
    """How small groups are kept out of a release (issue: no published cell below 20).

    ``min_count`` applies to the number of distinct devices behind a published cell.
    ``method`` is ``suppress`` (the cell is withheld) or ``merge`` (small cells of a row
    are pooled into one ``other`` cell, itself withheld if still under ``min_count``).
    ``epsilon`` switches on differential privacy (Laplace noise on every published
    count, see ``privacy.py``); None publishes exact (thresholded) counts.
    """

    min_count: int = 20
    method: str = "suppress"
    epsilon: float | None = None

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError("min_count must be at least 1")
        if self.method not in ("suppress", "merge"):
            raise ValueError(f"unknown privacy method {self.method!r}: suppress or merge")
        if self.epsilon is not None and not self.epsilon > 0:
            raise ValueError("epsilon must be positive")


@dataclass(frozen=True)
class PipelineConfig:
    """Parameters of the daily pipeline (windows are in local hours)."""

    #: Night presence ("nuitée") is where a device spends most of this window.
    night_hours: tuple[int, int] = (0, 6)
    #: The present zone of the day is where a device spends most of this window.
    day_hours: tuple[int, int] = (9, 18)
    #: Trips counted per device and day (bounds one device's weight in the trip table).
    max_trips_per_device: int = 12


@dataclass(frozen=True)
class ODMatrices:
    """Daily origin-destination matrices, in people.

    ``people[d, i, j]`` is the estimate for day ``dates[d]`` from zone ``zones[i]`` to
    zone ``zones[j]``; cells withheld by the privacy rule are 0 there and True in
    ``suppressed``. ``kind`` is ``trips`` (moves between consecutive stays),
    ``home_night`` (home zone x zone of the night) or ``home_day`` (home zone x main
    zone of the day).
    """

    kind: str
    level: str
    dates: tuple[dt.date, ...]
    zones: tuple[str, ...]
    people: np.ndarray  # (n_days, n_zones, n_zones) float64, people
    suppressed: np.ndarray  # (n_days, n_zones, n_zones) bool


@dataclass
class ReleaseManifest:
    """What a daily release holds and how it was protected (``manifest.json``)."""

    date: dt.date
    engine: str
    devices: int
    rule: PrivacyRule
    epsilon_by_table: dict[str, float] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    privacy_report: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @property
    def epsilon_total(self) -> float:
        return float(sum(self.epsilon_by_table.values()))
