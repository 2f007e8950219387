"""Reproduction numbers from the next-generation matrix (Diekmann, Heesterbeek & Roberts,
J R Soc Interface 7:873, 2010).

Entry ((k, i), (m, j)) of the matrix is the expected number of infections in age i of
patch k caused by one infection of age j resident in patch m, over its whole infectious
life, with the contacts of one day of the scenario:

    K = S_ki * sum_c sum_l sigma_kl * beta_l * W_c[l, i, j] * sigma^c_ml * days_c[j] / N*_l

(W_c the contact kernel of infectious class c, sigma the commuting shares, sigma^c the
identity for classes that do not travel, days_c the expected days spent in class c, N*_l
the people present in l). R is its spectral radius: R0 with everyone susceptible,
R(t) with the susceptibles of day t. The daily model leaves each class with probability
1/duration, so ``days_c`` equals the durations and the matrix is exact for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hygie.epidemic.engine import MOBILE, Compiled, EpidemicModel
from hygie.epidemic.errors import InvalidInput
from hygie.epidemic.model import DiseaseParameters, Scenario


def next_generation_matrix(comp: Compiled, params: DiseaseParameters, day: int,
                           susceptible: np.ndarray | None = None) -> np.ndarray:
    """The (P*A, P*A) next-generation matrix for the contacts of ``day``.

    ``susceptible`` (P, A) defaults to the initial susceptibles (plus the seeded, i.e.
    the whole population).
    """
    n_t = comp.kernel_index.shape[0]
    if not 0 <= day < n_t:
        raise InvalidInput(f"day must lie in 0..{n_t - 1}")
    n_p, n_a, _ = comp.init.shape
    s = comp.init[:, :, :3].sum(axis=2) if susceptible is None else np.asarray(susceptible)
    if s.shape != (n_p, n_a):
        raise InvalidInput("susceptible must have shape (n_patches, n_ages)")
    sig = comp.sigma[comp.coupling_index[day]]
    days = params.expected_days()
    npres = comp.npres[comp.coupling_index[day]]
    k_mat = np.zeros((n_p, n_a, n_p, n_a))
    for c in range(5):
        sig_c = sig if MOBILE[c] else np.eye(n_p)
        # kernel per destination l: scale_l * W[l] / N*_l, shape (P_l, A_i, A_j)
        w = np.stack([comp.kernels[comp.kernel_index[day, lp], c] for lp in range(n_p)])
        w = w * (comp.kernel_scale[day] / npres)[:, None, None]
        # sum over l: sigma_kl * w[l, i, j] * sig_c[m, l]
        k_mat += np.einsum("kl,lij,ml->kimj", sig, w, sig_c) * days[c][None, None, None, :]
    k_mat *= s[:, :, None, None]
    return k_mat.reshape(n_p * n_a, n_p * n_a)


def spectral_radius(matrix: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(matrix))))


def basic_reproduction_number(model: EpidemicModel, scenario: Scenario, day: int = 0) -> float:
    """R0: the contacts of ``day`` with a fully susceptible population."""
    comp = model.compile(scenario)
    params = model.parameters or DiseaseParameters()
    return spectral_radius(next_generation_matrix(comp, params, day))


def effective_reproduction_numbers(model: EpidemicModel, scenario: Scenario,
                                   susceptible: np.ndarray | None = None,
                                   days: Sequence[int] | None = None) -> np.ndarray:
    """R(t) for each day: the day's contacts with the day's susceptibles.

    ``susceptible`` (n_days, P, A) defaults to the mean-field trajectory's.
    """
    comp = model.compile(scenario)
    params = model.parameters or DiseaseParameters()
    if susceptible is None:
        susceptible = model.mean_field(scenario, channels=("susceptible",), by_age=True
                                       ).series["susceptible"][0]
    susceptible = np.asarray(susceptible, dtype=np.float64)
    wanted = range(scenario.days) if days is None else days
    return np.array([spectral_radius(next_generation_matrix(comp, params, d, susceptible[d]))
                     for d in wanted])
