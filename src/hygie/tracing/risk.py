"""ROBERT v2 risk scoring and its published parameters.

Facts from the ROBERT scoring algorithm version 2 (the TousAntiCovid server's
published configuration, after the Inria report hal-02641630, eq. 52 and 56-57):

1. HELLOs of one contact (one EBID, so one epoch of 15 minutes) are grouped by minute
   from the first reception; RSSIs above -5 dBm are dropped as invalid and the others
   capped at ``rssi_max`` = -35 dBm (fading peaks).
2. Each minute gets the soft-max average, ``a * ln(mean(exp(rssi / a)))`` with a = 4.342
   (that is: the mean received power, back in dBm), over a two-minute window.
3. Each minute's risk is ``clip((avg - P0) / delta[n], 0, 1)`` with P0 = -66 dBm and
   ``delta`` indexed by the number of RSSIs n (capped): [39, 27, 23, 21, 20, 15].
4. The contact's score is ``min(1.2 * softmax_b(risks), 1) * last_minute`` with b = 0.2:
   a per-minute risk times the duration in minutes.
5. Scores add up over the exposed epochs kept (the 14-day contagious period); the
   user's risk is ``1 - exp(-0.0071 * sum)`` and they are at risk above 0.1, which
   takes about 15 minutes of close contact. The at-risk state lasts 7 days after the
   last exposed epoch (the last contact date shown to the user).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hygie.tracing.epochs import EPOCH_SECONDS, EPOCHS_PER_DAY


@dataclass(frozen=True)
class RiskParameters:
    """The published parameters of scoring v2 (see the module docstring)."""

    rssi_max: int = -35
    rssi_invalid_above: int = -5
    soft_max_a: float = 4.342
    soft_max_b: float = 0.2
    p0: float = -66.0
    deltas: tuple[float, ...] = (39, 27, 23, 21, 20, 15)
    r0: float = 0.0071
    threshold: float = 0.1
    #: Largest spread (s) of one contact's receptions beyond the epoch's 900 s.
    epoch_tolerance_s: int = 180
    contagious_days: int = 14
    at_risk_days: int = 7
    epoch_minutes: int = EPOCH_SECONDS // 60
    extra: dict[str, float] = field(default_factory=dict)

    def published(self) -> list[dict[str, object]]:
        """The parameters as the status response's ``config`` list, as apps read them."""
        return [
            {"name": "app.riskModel.version", "value": 2},
            {"name": "app.riskModel.rssiMax", "value": self.rssi_max},
            {"name": "app.riskModel.softMaxA", "value": self.soft_max_a},
            {"name": "app.riskModel.softMaxB", "value": self.soft_max_b},
            {"name": "app.riskModel.p0", "value": self.p0},
            {"name": "app.riskModel.deltas", "value": list(self.deltas)},
            {"name": "app.riskModel.r0", "value": self.r0},
            {"name": "app.riskModel.threshold", "value": self.threshold},
            {"name": "app.contagiousPeriodDays", "value": self.contagious_days},
            {"name": "app.atRiskDays", "value": self.at_risk_days},
        ]

    @property
    def contagious_epochs(self) -> int:
        return self.contagious_days * EPOCHS_PER_DAY

    @property
    def at_risk_epochs(self) -> int:
        return self.at_risk_days * EPOCHS_PER_DAY


DEFAULT_PARAMETERS = RiskParameters()


def soft_max(values: Sequence[float], coef: float) -> float:
    """``coef * ln(mean(exp(v / coef)))``; 0 for no values."""
    if not values:
        return 0.0
    return coef * math.log(sum(math.exp(v / coef) for v in values) / len(values))


def score_contact(times: Sequence[int], rssis: Sequence[int],
                  params: RiskParameters = DEFAULT_PARAMETERS) -> float:
    """Score of one contact: its HELLOs' reception times (s, ascending) and RSSIs (dBm)."""
    if not times:
        return 0.0
    n_min = params.epoch_minutes
    first = times[0]
    if times[-1] - first > n_min * 60 + params.epoch_tolerance_s:
        return 0.0  # receptions spread wider than one epoch: not one real contact
    by_minute: list[list[int]] = [[] for _ in range(n_min)]
    for t, rssi in zip(times, rssis, strict=True):
        if rssi > params.rssi_invalid_above:
            continue
        minute = min(int((t - first) // 60), n_min - 1)
        by_minute[minute].append(min(rssi, params.rssi_max))
    last = len(params.deltas) - 1
    risks: list[float] = []
    minute_max = 0
    for k in range(n_min):
        window = by_minute[k] + by_minute[k + 1] if k < n_min - 1 else by_minute[k]
        if not window:
            continue
        minute_max = k
        gamma = (soft_max(window, params.soft_max_a) - params.p0) / params.deltas[
            min(len(window), last)]
        risks.append(min(max(gamma, 0.0), 1.0))
    return min(soft_max(risks, params.soft_max_b) * 1.2, 1.0) * minute_max


def aggregate_risk(scores: Iterable[float], params: RiskParameters = DEFAULT_PARAMETERS) -> float:
    """Risk from contact scores (eq. 56): ``1 - exp(-R0 * sum)``."""
    return 1.0 - math.exp(-params.r0 * sum(scores))


@dataclass(frozen=True)
class Evaluation:
    """A user's risk as a status request reports it."""

    risk: float
    at_risk: bool
    last_contact_epoch: int | None


def evaluate(exposed: Mapping[Any, Sequence[float]], current_epoch: int,
             params: RiskParameters = DEFAULT_PARAMETERS) -> Evaluation:
    """Aggregate every kept exposure; at risk above the threshold, for 7 days after the last.

    ``exposed`` maps epochs (int, or str as stored in JSON) to contact scores.
    """
    oldest = current_epoch - params.contagious_epochs
    epochs = list(map(int, exposed))
    if not epochs:
        return Evaluation(0.0, False, None)
    if min(epochs) >= oldest:  # the usual case: processing passes purge old epochs
        total, last = math.fsum(map(sum, exposed.values())), max(epochs)
    else:
        kept = [(e, s) for e, s in zip(epochs, exposed.values(), strict=True) if e >= oldest]
        if not kept:
            return Evaluation(0.0, False, None)
        total, last = math.fsum(sum(s) for _, s in kept), max(e for e, _ in kept)
    risk = 1.0 - math.exp(-params.r0 * total)
    at_risk = risk > params.threshold and current_epoch - last <= params.at_risk_epochs
    return Evaluation(risk, at_risk, last)


def purge_exposures(exposed: Mapping[int, Sequence[float]], current_epoch: int,
                    params: RiskParameters = DEFAULT_PARAMETERS) -> dict[int, list[float]]:
    """Exposed epochs still within the contagious period (older ones are forgotten)."""
    return {e: list(s) for e, s in exposed.items()
            if current_epoch - e <= params.contagious_epochs}
