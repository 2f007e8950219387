"""The model front: compile a scenario into kernel arrays and run ensembles or mean field.

``EpidemicModel(parameters, population, matrices, coupling)`` stores its arguments
unchanged; ``simulate(scenario, random_state=...)`` runs the stochastic chain-binomial
ensemble (runs computed together by the compiled kernel, ``kernels.py``) and
``mean_field(scenario)`` the deterministic version of the same daily model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from hygie.epidemic.coupling import Coupling, identity_sigma, to_csr
from hygie.epidemic.errors import InvalidInput, LimitExceeded
from hygie.epidemic.kernels import CHANNELS, simulate_ensemble
from hygie.epidemic.model import (
    COMPARTMENTS,
    N_AGES,
    DiseaseParameters,
    Phase,
    Population,
    Scenario,
)

DEFAULT_CHANNELS = ("icu_admissions", "icu_beds")
MOBILE = np.array([1.0, 1.0, 1.0, 1.0, 0.0])  # severe cases stay home


@dataclass(frozen=True, eq=False)
class Compiled:
    """A scenario as kernel arrays (see ``kernels.py`` for the shapes)."""

    init: np.ndarray
    table: np.ndarray
    kernels: np.ndarray
    kernel_index: np.ndarray
    kernel_scale: np.ndarray
    kernel_keys: tuple[tuple[str, float], ...]
    cp_ptr: np.ndarray
    cp_idx: np.ndarray
    cp_val: np.ndarray
    npres: np.ndarray
    coupling_index: np.ndarray
    sigma: np.ndarray
    dates: list[date]


@dataclass(eq=False)
class Ensemble:
    """Recorded channels of an ensemble: ``series[name]`` has shape (n_runs, n_days,
    n_patches) or (n_runs, n_days, n_patches, n_ages); people (per day for incidences)."""

    dates: list[date]
    codes: tuple[str, ...]
    series: dict[str, np.ndarray]

    @property
    def n_runs(self) -> int:
        return next(iter(self.series.values())).shape[0]

    def total(self, channel: str, patches: Sequence[str] | None = None) -> np.ndarray:
        """Sum over patches (all, or ``patches``) and ages: shape (n_runs, n_days)."""
        arr = self._get(channel)
        if arr.ndim == 4:
            arr = arr.sum(axis=3)
        if patches is not None:
            arr = arr[:, :, [self.codes.index(str(p)) for p in patches]]
        return arr.sum(axis=2, dtype=np.float64)

    def bands(self, channel: str, patches: Sequence[str] | None = None,
              q: Sequence[float] = (0.025, 0.5, 0.975)) -> np.ndarray:
        """Quantiles over runs of the (patch-summed) channel, shape (len(q), n_days)."""
        return np.quantile(self.total(channel, patches), q, axis=0)

    def _get(self, channel: str) -> np.ndarray:
        try:
            return self.series[channel]
        except KeyError:
            raise InvalidInput(f"channel {channel!r} was not recorded") from None


class EpidemicModel:
    """The age-structured metapopulation model over one population.

    ``matrices`` maps a contact-matrix name (as used by phases) to its (4, 4) array;
    ``coupling`` (optional) gives the origin-destination flows between patches.
    """

    def __init__(self, parameters: DiseaseParameters | None = None,
                 population: Population | None = None,
                 matrices: Mapping[str, np.ndarray] | None = None,
                 coupling: Coupling | None = None) -> None:
        self.parameters = parameters
        self.population = population
        self.matrices = matrices
        self.coupling = coupling

    # --- compile ---------------------------------------------------------------------

    def compile(self, scenario: Scenario) -> Compiled:
        """Turn a scenario into the kernel's arrays; every input is checked here."""
        params = (self.parameters or DiseaseParameters()).validate()
        if self.population is None or self.matrices is None:
            raise InvalidInput("the model needs a population and contact matrices")
        pop = self.population.validate()
        if scenario.days < 1:
            raise InvalidInput("a scenario needs at least one day")
        n_p, n_t = pop.n_patches, scenario.days
        beta = params.beta if scenario.beta is None else float(scenario.beta)
        if not beta > 0:
            raise InvalidInput("beta must be positive")
        patch_beta = np.ones(n_p)
        for code, mult in scenario.beta_by_patch.items():
            patch_beta[pop.index(code)] = float(mult)

        # resolve, for every day and patch, the phase that applies (later ones win)
        keys: dict[tuple[str, float], int] = {}
        kidx = np.zeros((n_t, n_p), dtype=np.int64)
        kscale = np.zeros((n_t, n_p))
        base = (scenario.baseline_matrix, 0.0)
        keys[base] = 0
        kscale[:] = 1.0
        for ph in scenario.phases:
            _check_phase(ph)
            d0 = max(0, scenario.day_index(ph.start))
            d1 = n_t if ph.end is None else min(n_t, scenario.day_index(ph.end))
            if d1 <= d0:
                continue
            cols = (list(range(n_p)) if ph.patches is None
                    else [pop.index(c) for c in ph.patches])
            key = (ph.matrix, float(ph.testing))
            k = keys.setdefault(key, len(keys))
            for c in cols:
                kidx[d0:d1, c] = k
                kscale[d0:d1, c] = ph.scale
        kscale *= beta * patch_beta[None, :]

        susc = np.asarray(params.susceptibility)
        infect = params.infectiousness()
        kernels = np.zeros((len(keys), 5, N_AGES, N_AGES))
        for (name, testing), k in keys.items():
            cm = self._matrix(name)
            f = params.contact_factors(testing)
            kernels[k] = (susc[None, :, None] * (infect * f[:, None])[:, None, :]
                          * cm[None, :, :])

        if self.coupling is None:
            sigma = identity_sigma(n_p)
            cidx = np.zeros(n_t, dtype=np.int64)
        else:
            sigma = self.coupling.sigma(pop)
            cidx = self.coupling.day_index(scenario.start, n_t)
        ptr, idx, val = to_csr(sigma)
        n_res = np.asarray(pop.sizes, dtype=np.float64).sum(axis=1)
        npres = np.einsum("mkl,k->ml", sigma, n_res)

        init = np.zeros((n_p, N_AGES, len(COMPARTMENTS)))
        init[:, :, 0] = pop.sizes
        for seed in scenario.seeds:
            p = pop.index(seed.patch)
            if not 0 <= seed.age < N_AGES or seed.count < 0:
                raise InvalidInput("a seed needs an age class in 0..3 and a count >= 0")
            if seed.count > init[p, seed.age, 0]:
                raise InvalidInput("more seeds than residents in that age class")
            init[p, seed.age, 0] -= seed.count
            init[p, seed.age, 2] += seed.count
        return Compiled(
            init=init, table=params.transition_table(), kernels=kernels, kernel_index=kidx,
            kernel_scale=kscale, kernel_keys=tuple(keys), cp_ptr=ptr, cp_idx=idx,
            cp_val=val, npres=npres, coupling_index=cidx, sigma=sigma,
            dates=scenario.dates(),
        )

    def _matrix(self, name: str) -> np.ndarray:
        assert self.matrices is not None
        try:
            cm = np.asarray(self.matrices[name], dtype=np.float64)
        except KeyError:
            known = ", ".join(sorted(self.matrices))
            raise InvalidInput(f"unknown contact matrix {name!r}; known: {known}") from None
        if cm.shape != (N_AGES, N_AGES) or not np.all(np.isfinite(cm)) or np.any(cm < 0):
            raise InvalidInput(f"contact matrix {name!r} must be (4, 4), finite, >= 0")
        return cm

    # --- run -------------------------------------------------------------------------

    def simulate(self, scenario: Scenario, n_runs: int | None = None,
                 random_state: int | np.random.Generator | None = None,
                 channels: Sequence[str] = DEFAULT_CHANNELS, by_age: bool = False,
                 max_cells: int | None = None) -> Ensemble:
        """Stochastic ensemble of ``n_runs`` (default ``scenario.runs``) chain-binomial runs.

        ``random_state`` (seed or Generator; default ``scenario.random_seed``) fixes every
        run: run r depends only on the r-th seed drawn from it.
        """
        runs = scenario.runs if n_runs is None else int(n_runs)
        if runs < 1:
            raise InvalidInput("n_runs must be at least 1")
        rng = np.random.default_rng(
            scenario.random_seed if random_state is None else random_state)
        seeds = rng.integers(0, 2**32 - 1, size=runs, dtype=np.int64)
        comp = self.compile(scenario)
        if not np.allclose(comp.init, np.round(comp.init)):
            raise InvalidInput("stochastic runs need whole numbers of seeded people")
        return self._run(comp, scenario, seeds, channels, by_age, True, max_cells)

    def mean_field(self, scenario: Scenario, channels: Sequence[str] = DEFAULT_CHANNELS,
                   by_age: bool = False) -> Ensemble:
        """The deterministic mean-field trajectory (an ``Ensemble`` with one run)."""
        comp = self.compile(scenario)
        return self._run(comp, scenario, np.zeros(1, dtype=np.int64), channels, by_age,
                         False, None)

    def _run(self, comp: Compiled, scenario: Scenario, seeds: np.ndarray,
             channels: Sequence[str], by_age: bool, stochastic: bool,
             max_cells: int | None) -> Ensemble:
        codes = np.array([_channel_code(c) for c in channels], dtype=np.int64)
        n_p = comp.init.shape[0]
        cells = seeds.size * scenario.days * n_p * len(codes) * (N_AGES if by_age else 1)
        if max_cells is not None and cells > max_cells:
            raise LimitExceeded(f"{cells} output cells asked, the limit is {max_cells}")
        dtype = np.float32
        out = np.zeros((len(codes), seeds.size, scenario.days, n_p, N_AGES if by_age else 1),
                       dtype=dtype)
        simulate_ensemble(
            comp.init, comp.table, comp.kernels, comp.kernel_index, comp.kernel_scale,
            comp.cp_ptr, comp.cp_idx, comp.cp_val, comp.npres, comp.coupling_index, MOBILE,
            seeds, codes, stochastic, out,
        )
        series = {name: (out[i] if by_age else out[i, ..., 0]) for i, name in enumerate(channels)}
        assert self.population is not None
        return Ensemble(dates=comp.dates, codes=self.population.codes, series=series)


def _channel_code(name: str) -> int:
    try:
        return CHANNELS.index(name)
    except ValueError:
        raise InvalidInput(f"unknown channel {name!r}; known: {', '.join(CHANNELS)}") from None


def _check_phase(ph: Phase) -> None:
    if not (np.isfinite(ph.scale) and ph.scale >= 0):
        raise InvalidInput(f"phase {ph.label or ph.matrix}: scale must be >= 0")
    if not 0.0 <= ph.testing <= 1.0:
        raise InvalidInput(f"phase {ph.label or ph.matrix}: testing must lie in [0, 1]")
    if ph.end is not None and ph.end < ph.start:
        raise InvalidInput(f"phase {ph.label or ph.matrix}: end before start")
