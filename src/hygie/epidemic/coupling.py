"""Metapopulation coupling: commuting between patches from origin-destination matrices.

The coupling is the classic commuting (time-scale separation) one: residents of patch k
spend a share ``sigma_kl`` of their day in patch l and meet there the infectious people
present; the force of infection met in l is the model's own (``beta * C * I / N`` with
the infectious and the population *present* in l) and the one felt by a resident of k
is ``sum_l sigma_kl * lambda_l``. With a single patch, or no travel, it reduces exactly
to the published single-population model. Severe cases do not travel.

Input is a plain array so that the model works with any source of flows (the mobility
service, a census commuting table, a gravity model):

``od``: array of shape (n_matrices, n_patches, n_patches) or (n_patches, n_patches);
entry (k, l) is the number of residents of patch k present in patch l during a typical
day of that period (trips per day, people), in the patch order of the ``Population``;
the diagonal is ignored. ``dates`` gives the first day each matrix applies (a step
function; days before the first date use the first matrix). A lockdown's measured fall
of trips therefore enters the model directly as a lower-flow matrix from its date on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from hygie.epidemic.errors import InvalidInput
from hygie.epidemic.model import Population


@dataclass(frozen=True, eq=False)
class Coupling:
    """Origin-destination flows between patches and how long a traveller stays.

    ``time_away`` is the share of a traveller's day spent at the destination (8 hours of
    24 by default): sigma_kl = time_away * od_kl / N_k.
    """

    od: np.ndarray
    dates: tuple[date, ...] | None = None
    time_away: float = 1.0 / 3.0

    def matrices(self) -> np.ndarray:
        od = np.asarray(self.od, dtype=np.float64)
        if od.ndim == 2:
            od = od[None]
        if od.ndim != 3 or od.shape[1] != od.shape[2] or od.shape[0] == 0:
            raise InvalidInput("od must have shape (n_matrices, n_patches, n_patches)")
        if not np.all(np.isfinite(od)) or np.any(od < 0):
            raise InvalidInput("od flows must be finite and non-negative (people per day)")
        if self.dates is not None and len(self.dates) != od.shape[0]:
            raise InvalidInput("od dates must give one date per matrix")
        if not 0.0 < self.time_away <= 1.0:
            raise InvalidInput("time_away must lie in (0, 1]")
        return od

    def sigma(self, population: Population) -> np.ndarray:
        """Row-stochastic day-share matrices, shape (n_matrices, P, P)."""
        od = self.matrices()
        n = np.asarray(population.sizes, dtype=np.float64).sum(axis=1)
        if od.shape[1] != n.shape[0]:
            raise InvalidInput(
                f"od has {od.shape[1]} patches, the population has {n.shape[0]}"
            )
        off = od.copy()
        idx = np.arange(n.shape[0])
        off[:, idx, idx] = 0.0
        if np.any(off.sum(axis=2) > n[None, :] * (1 + 1e-9)):
            raise InvalidInput("od: more residents leave a patch than live there")
        sig = self.time_away * off / n[None, :, None]
        sig[:, idx, idx] = 1.0 - sig.sum(axis=2)
        return sig

    def day_index(self, start: date, n_days: int) -> np.ndarray:
        """Which matrix applies on each day of a scenario, shape (n_days,)."""
        m = self.matrices().shape[0]
        if self.dates is None:
            if m != 1:
                raise InvalidInput("several od matrices need their dates")
            return np.zeros(n_days, dtype=np.int64)
        ords = np.array([d.toordinal() for d in self.dates])
        if np.any(np.diff(ords) <= 0):
            raise InvalidInput("od dates must be increasing")
        days = start.toordinal() + np.arange(n_days)
        return np.clip(np.searchsorted(ords, days, side="right") - 1, 0, m - 1).astype(np.int64)

    def with_travel_change(self, when: date, factor: float) -> Coupling:
        """A copy where, from ``when`` on, every flow is multiplied by ``factor`` (e.g.
        0.35 for the measured 65 % fall of trips under lockdown)."""
        if factor < 0:
            raise InvalidInput("travel factor must be non-negative")
        od = self.matrices()
        dates = self.dates or (date.min,)
        idx = self.day_index(when, 1)[0] if self.dates else 0
        new = od[idx] * factor
        keep = [i for i, d in enumerate(dates) if d < when]
        later = [i for i, d in enumerate(dates) if d > when]
        stack = [od[i] for i in keep] + [new] + [od[i] * factor for i in later]
        new_dates = (*tuple(dates[i] for i in keep), when, *tuple(dates[i] for i in later))
        return Coupling(od=np.stack(stack), dates=new_dates, time_away=self.time_away)


def to_csr(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pack (M, P, P) matrices as padded CSR rows: ptr (M, P+1), idx and val (M, nnz)."""
    m, p, _ = sigma.shape
    nnz = max(1, int((sigma != 0).sum(axis=(1, 2)).max()))
    ptr = np.zeros((m, p + 1), dtype=np.int64)
    idx = np.zeros((m, nnz), dtype=np.int64)
    val = np.zeros((m, nnz), dtype=np.float64)
    for i in range(m):
        rows, cols = np.nonzero(sigma[i])
        ptr[i, 1:] = np.cumsum(np.bincount(rows, minlength=p))
        idx[i, : rows.size] = cols
        val[i, : rows.size] = sigma[i][rows, cols]
    return ptr, idx, val


def identity_sigma(n_patches: int) -> np.ndarray:
    """No travel: every resident spends the day at home."""
    return np.eye(n_patches)[None]


def aggregate_od(od: np.ndarray, zones: Sequence[str], groups: dict[str, str],
                 patches: Sequence[str]) -> np.ndarray:
    """Sum zone-level flows (e.g. départements) into patch-level flows (e.g. regions).

    ``od`` (..., n_zones, n_zones) in ``zones`` order; ``groups`` maps a zone code to its
    patch code; zones outside ``patches`` are dropped. Returns (..., P, P).
    """
    od = np.asarray(od, dtype=np.float64)
    pos = {c: i for i, c in enumerate(patches)}
    member = np.zeros((len(zones), len(patches)))
    for z, code in enumerate(zones):
        target = groups.get(str(code))
        if target in pos:
            member[z, pos[target]] = 1.0
    return np.einsum("zp,...zy,yq->...pq", member, od, member)
