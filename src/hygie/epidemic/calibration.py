"""Calibration on daily ICU admissions: likelihood, MCMC posterior, and the published fit.

``Calibration(model, scenario).fit(dates, admissions)`` samples the joint posterior of
the transmission rate ``beta``, the seeding (number of prodromal adults on the
scenario's start day) and the scale of one phase's contacts (the lockdown), with a
negative-binomial (or Poisson) likelihood of the observed daily ICU admissions given the
mean-field model's expected admissions. Sampling uses emcee's affine-invariant ensemble
sampler (Foreman-Mackey et al., PASP 125:306, 2013). Fitted values end in ``_``.

``fit_scale_published`` reproduces the published procedure instead: a grid over the
lockdown scale, stochastic runs, Poisson likelihood of the runs' *median* admissions over
a window (13-26 April 2020 in the paper).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date

import emcee
import numpy as np
from scipy.special import gammaln

from hygie.epidemic.engine import MOBILE, EpidemicModel
from hygie.epidemic.errors import InvalidInput
from hygie.epidemic.kernels import CHANNELS, simulate_serial
from hygie.epidemic.model import DiseaseParameters, Scenario, Seed
from hygie.epidemic.reproduction import next_generation_matrix, spectral_radius

PARAMETER_NAMES = ("beta", "seed", "lockdown_scale", "dispersion")
#: Uniform prior bounds on the sampled coordinates (beta, log10 seed, scale, log10 k).
PRIOR_BOUNDS = np.array([[0.02, 0.3], [0.0, 3.5], [0.2, 2.0], [0.0, 3.0]])
_ICU_ADMISSIONS = CHANNELS.index("icu_admissions")


def negbin_loglik(y: np.ndarray, mu: np.ndarray, k: float) -> float:
    """Sum of negative-binomial log-probabilities (mean ``mu``, variance mu + mu^2/k)."""
    mu = np.maximum(mu, 1e-9)
    return float(np.sum(gammaln(y + k) - gammaln(k) - gammaln(y + 1)
                        + k * np.log(k / (k + mu)) + y * np.log(mu / (k + mu))))


def poisson_loglik(y: np.ndarray, mu: np.ndarray) -> float:
    mu = np.maximum(mu, 1e-9)
    return float(np.sum(y * np.log(mu) - mu - gammaln(y + 1)))


class _FastMeanField:
    """Mean-field ICU admissions as a function of (beta, seed, scale), compiled once."""

    def __init__(self, model: EpidemicModel, scenario: Scenario, phase: int) -> None:
        if not 0 <= phase < len(scenario.phases):
            raise InvalidInput("the fitted phase index is not in the scenario")
        unit = dataclasses.replace(scenario, beta=1.0)
        one = model.compile(unit)
        two = model.compile(dataclasses.replace(unit, phases=tuple(
            dataclasses.replace(p, scale=p.scale * 2) if i == phase else p
            for i, p in enumerate(unit.phases))))
        self.comp = one
        self.mask = two.kernel_scale != one.kernel_scale
        total = sum(s.count for s in scenario.seeds)
        if total <= 0:
            raise InvalidInput("the scenario must seed at least one infection")
        self.seed_unit = np.zeros_like(one.init)
        for s in scenario.seeds:
            p = model.population.index(s.patch) if model.population else 0
            self.seed_unit[p, s.age, 0] -= s.count / total
            self.seed_unit[p, s.age, 2] += s.count / total
        self.base_init = one.init - self.seed_unit * total
        self.out = np.zeros((1, 1, scenario.days, one.init.shape[0], 1), dtype=np.float32)
        self.codes = np.array([_ICU_ADMISSIONS], dtype=np.int64)

    def admissions(self, beta: float, seed: float, scale: float) -> np.ndarray:
        c = self.comp
        kscale = np.where(self.mask, c.kernel_scale * scale, c.kernel_scale) * beta
        init = self.base_init + self.seed_unit * seed
        simulate_serial(init, c.table, c.kernels, c.kernel_index, kscale, c.cp_ptr,
                          c.cp_idx, c.cp_val, c.npres, c.coupling_index, MOBILE,
                          np.zeros(1, dtype=np.int64), self.codes, False, self.out)
        return self.out[0, 0, :, :, 0].sum(axis=1, dtype=np.float64)


class Calibration:
    """Bayesian fit of beta, seeding and a phase's contact scale to ICU admissions.

    ``lockdown_phase`` is the index in ``scenario.phases`` of the phase whose scale is
    fitted; ``likelihood`` is ``"negbin"`` (dispersion fitted too) or ``"poisson"``.
    """

    def __init__(self, model: EpidemicModel, scenario: Scenario, *, lockdown_phase: int = 0,
                 likelihood: str = "negbin", n_walkers: int = 24, n_steps: int = 1500,
                 burn_in: int = 500, thin: int = 5,
                 random_state: int | np.random.Generator | None = None) -> None:
        self.model = model
        self.scenario = scenario
        self.lockdown_phase = lockdown_phase
        self.likelihood = likelihood
        self.n_walkers = n_walkers
        self.n_steps = n_steps
        self.burn_in = burn_in
        self.thin = thin
        self.random_state = random_state

    def fit(self, dates: Sequence[date], admissions: Sequence[float]) -> Calibration:
        """Sample the posterior; sets ``samples_`` (n, 4) and the summaries."""
        if self.likelihood not in ("negbin", "poisson"):
            raise InvalidInput("likelihood must be 'negbin' or 'poisson'")
        if self.n_walkers < 8 or self.n_steps <= self.burn_in or self.thin < 1:
            raise InvalidInput("need n_walkers >= 8, n_steps > burn_in and thin >= 1")
        y = np.asarray(admissions, dtype=np.float64)
        if y.ndim != 1 or y.size != len(dates) or y.size == 0:
            raise InvalidInput("dates and admissions must be two sequences of one length")
        if np.any(y < 0) or not np.all(np.isfinite(y)):
            raise InvalidInput("admissions must be finite counts >= 0")
        idx = np.array([self.scenario.day_index(d) for d in dates])
        if idx.min() < 1 or idx.max() >= self.scenario.days:
            raise InvalidInput("observations must fall inside the scenario's days (after day 0)")
        fast = _FastMeanField(self.model, self.scenario, self.lockdown_phase)
        negbin = self.likelihood == "negbin"

        def log_prob(theta: np.ndarray) -> float:
            if np.any(theta < PRIOR_BOUNDS[:, 0]) or np.any(theta > PRIOR_BOUNDS[:, 1]):
                return -np.inf
            mu = fast.admissions(theta[0], 10 ** theta[1], theta[2])[idx]
            if negbin:
                return negbin_loglik(y, mu, 10 ** theta[3])
            return poisson_loglik(y, mu)

        rng = np.random.default_rng(self.random_state)
        params = self.model.parameters or DiseaseParameters()
        start = np.array([params.beta, np.log10(50.0), 1.0, 1.5])
        p0 = start + rng.normal(scale=[0.003, 0.1, 0.03, 0.2], size=(self.n_walkers, 4))
        p0 = np.clip(p0, PRIOR_BOUNDS[:, 0] + 1e-6, PRIOR_BOUNDS[:, 1] - 1e-6)
        sampler = emcee.EnsembleSampler(self.n_walkers, 4, log_prob)
        sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
        sampler.run_mcmc(p0, self.n_steps, progress=False)
        chain = sampler.get_chain(discard=self.burn_in, thin=self.thin, flat=True)
        logp = sampler.get_log_prob(discard=self.burn_in, thin=self.thin, flat=True)
        samples = chain.copy()
        samples[:, 1] = 10 ** samples[:, 1]
        samples[:, 3] = 10 ** samples[:, 3] if negbin else np.inf
        self.samples_ = samples
        self.acceptance_ = float(np.mean(sampler.acceptance_fraction))
        best = int(np.argmax(logp))
        self.log_likelihood_ = float(logp[best])
        self.map_ = dict(zip(PARAMETER_NAMES, samples[best], strict=True))
        q = np.percentile(samples, [2.5, 50, 97.5], axis=0)
        self.intervals_ = {n: tuple(float(v) for v in q[:, i])
                           for i, n in enumerate(PARAMETER_NAMES)}
        self.beta_, self.seed_, self.lockdown_scale_, self.dispersion_ = (float(v) for v in q[1])
        r0_unit, rld_unit = self._unit_reproduction(fast)
        self.r0_ = tuple(float(v) for v in np.percentile(samples[:, 0] * r0_unit,
                                                         [2.5, 50, 97.5]))
        self.r_lockdown_ = tuple(float(v) for v in np.percentile(
            samples[:, 0] * samples[:, 2] * rld_unit, [2.5, 50, 97.5]))
        self.observed_ = (list(dates), y)
        self._fast = fast
        self._idx = idx
        return self

    def _unit_reproduction(self, fast: _FastMeanField) -> tuple[float, float]:
        """R0 and lockdown R for beta = 1 and scale = 1 (both are linear in them)."""
        params = self.model.parameters or DiseaseParameters()
        comp = fast.comp
        r0 = spectral_radius(next_generation_matrix(comp, params, 0))
        days = np.nonzero(fast.mask.any(axis=1))[0]
        rld = spectral_radius(next_generation_matrix(comp, params, int(days[0]))) if days.size \
            else float("nan")
        return r0, rld

    def predict(self, n_draws: int = 200, random_state: int | np.random.Generator | None = None
                ) -> np.ndarray:
        """Posterior predictive of daily ICU admissions over the scenario's days: quantiles
        (2.5, 50, 97.5 %) of the observation model around posterior mean-field curves,
        shape (3, n_days)."""
        if not hasattr(self, "samples_"):
            raise InvalidInput("fit() first")
        rng = np.random.default_rng(random_state)
        pick = rng.choice(len(self.samples_), size=min(n_draws, len(self.samples_)),
                          replace=False)
        draws = []
        for beta, seed, scale, k in self.samples_[pick]:
            mu = np.maximum(self._fast.admissions(beta, seed, scale), 1e-9)
            if np.isfinite(k):
                draws.append(rng.negative_binomial(k, k / (k + mu)))
            else:
                draws.append(rng.poisson(mu))
        return np.percentile(np.array(draws), [2.5, 50, 97.5], axis=0)

    def fitted_scenario(self) -> Scenario:
        """The scenario with the posterior medians put in (beta, seeds, phase scale)."""
        total = sum(s.count for s in self.scenario.seeds)
        seeds = tuple(Seed(s.patch, round(self.seed_ * s.count / total), s.age)
                      for s in self.scenario.seeds)
        phases = tuple(dataclasses.replace(p, scale=p.scale * self.lockdown_scale_)
                       if i == self.lockdown_phase else p
                       for i, p in enumerate(self.scenario.phases))
        return dataclasses.replace(self.scenario, beta=self.beta_, seeds=seeds, phases=phases)


def fit_scale_published(model: EpidemicModel, scenario: Scenario, phase: int,
                        dates: Sequence[date], admissions: Sequence[float],
                        window: tuple[date, date], scales: Sequence[float],
                        n_runs: int = 500, random_state: int | None = None
                        ) -> tuple[np.ndarray, float]:
    """The published lockdown-scale fit: for each scale, ``n_runs`` stochastic runs, and
    the Poisson log-likelihood of the observations in ``window`` (inclusive) given the
    runs' median daily ICU admissions. Returns (log-likelihoods, best scale)."""
    y = np.asarray(admissions, dtype=np.float64)
    sel = [i for i, d in enumerate(dates) if window[0] <= d <= window[1]]
    if not sel:
        raise InvalidInput("no observation inside the window")
    idx = np.array([scenario.day_index(dates[i]) for i in sel])
    lls = []
    for s in scales:
        sc = dataclasses.replace(scenario, phases=tuple(
            dataclasses.replace(p, scale=float(s)) if i == phase else p
            for i, p in enumerate(scenario.phases)))
        ens = model.simulate(sc, n_runs=n_runs, random_state=random_state,
                             channels=("icu_admissions",))
        median = np.median(ens.total("icu_admissions"), axis=0)
        lls.append(poisson_loglik(y[sel], median[idx]))
    lls_arr = np.asarray(lls)
    return lls_arr, float(np.asarray(scales)[int(np.argmax(lls_arr))])
