"""The same model written plainly: one run at a time, a loop per day, per patch, per age.

This is how the published code is organised (a Python loop over days and age classes,
one numpy draw per flow, multinomials for the splits). It is kept for two reasons: the
tests check that the compiled ensemble kernel (``kernels.py``) draws from the same
distribution, and ``bench/epidemic_ensemble.py`` times the kernel against it.
It takes the arrays of ``EpidemicModel.compile`` so both see identical inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hygie.epidemic.engine import MOBILE, Compiled
from hygie.epidemic.kernels import CHANNELS


def simulate_reference(comp: Compiled, n_runs: int, rng: np.random.Generator,
                       channels: Sequence[str] = ("icu_admissions", "icu_beds")
                       ) -> dict[str, np.ndarray]:
    """Run ``n_runs`` trajectories; returns channel -> (n_runs, n_days, n_patches)."""
    n_days = comp.kernel_index.shape[0]
    n_p, n_a, _ = comp.init.shape
    out = {c: np.zeros((n_runs, n_days, n_p)) for c in channels}
    for run in range(n_runs):
        state = comp.init.copy()
        for day in range(n_days):
            flows = np.zeros((n_p, n_a, 5))
            if day > 0:
                lam = _force_of_infection(comp, state, day)
                for k in range(n_p):
                    for a in range(n_a):
                        flows[k, a] = _step_one_age(state[k, a], comp.table[a], lam[k][a], rng)
            for name in channels:
                out[name][run, day] = _record(name, state, flows, day)
    return out


def _force_of_infection(comp: Compiled, state: np.ndarray, day: int) -> list[list[float]]:
    n_p, n_a, _ = state.shape
    sigma = comp.sigma[comp.coupling_index[day]]
    present = [[[0.0] * n_a for _ in range(5)] for _ in range(n_p)]
    for k in range(n_p):
        for dest in range(n_p):
            for c in range(5):
                share = sigma[k, dest] if MOBILE[c] else float(k == dest)
                if share == 0.0:
                    continue
                for j in range(n_a):
                    present[dest][c][j] += share * state[k, j, 2 + c]
    met = [[0.0] * n_a for _ in range(n_p)]
    for dest in range(n_p):
        kernel = comp.kernels[comp.kernel_index[day, dest]]
        scale = comp.kernel_scale[day, dest]
        n_present = comp.npres[comp.coupling_index[day], dest]
        for i in range(n_a):
            total = 0.0
            for c in range(5):
                for j in range(n_a):
                    total += kernel[c, i, j] * present[dest][c][j]
            met[dest][i] = scale * total / n_present
    lam = [[0.0] * n_a for _ in range(n_p)]
    for k in range(n_p):
        for dest in range(n_p):
            if sigma[k, dest] != 0.0:
                for i in range(n_a):
                    lam[k][i] += sigma[k, dest] * met[dest][i]
    return lam


def _step_one_age(x: np.ndarray, t: np.ndarray, lam: float, rng: np.random.Generator
                  ) -> np.ndarray:
    """One day for one age class of one patch; updates ``x`` in place, returns the day's
    (new E, new clinical, new hospital admissions, new ICU admissions, new deaths)."""
    s, e, ip, ias, ips, ims, iss, h, u = (int(v) for v in x[:9])
    new_e = rng.binomial(s, 1.0 - math.exp(-lam))
    new_ip = rng.binomial(e, t[0])
    p_ps = (1 - t[3]) * t[4]
    p_ms = (1 - t[3]) * (1 - t[4]) * t[5]
    p_ss = max(0.0, 1.0 - t[3] - p_ps - p_ms)
    n_as, n_ps, n_ms, n_ss, _ = rng.multinomial(
        ip, [t[1] * t[3], t[1] * p_ps, t[1] * p_ms, t[1] * p_ss, 1 - t[1]])
    rec_as = rng.binomial(ias, t[2])
    rec_ps = rng.binomial(ips, t[2])
    rec_ms = rng.binomial(ims, t[2])
    new_h, new_u, _ = rng.multinomial(iss, [t[2] * (1 - t[6]), t[2] * t[6], 1 - t[2]])
    h_d_p = (1 - t[7]) * t[8]
    h_r, h_d, _ = rng.multinomial(h, [t[7], h_d_p, max(0.0, 1 - t[7] - h_d_p)])
    u_d_p = (1 - t[9]) * t[10]
    u_r, u_d, _ = rng.multinomial(u, [t[9], u_d_p, max(0.0, 1 - t[9] - u_d_p)])
    x[0] -= new_e
    x[1] += new_e - new_ip
    x[2] += new_ip - n_as - n_ps - n_ms - n_ss
    x[3] += n_as - rec_as
    x[4] += n_ps - rec_ps
    x[5] += n_ms - rec_ms
    x[6] += n_ss - new_h - new_u
    x[7] += new_h - h_r - h_d
    x[8] += new_u - u_r - u_d
    x[9] += rec_as + rec_ps + rec_ms + h_r + u_r
    x[10] += h_d + u_d
    return np.array([new_e, n_ms + n_ss, new_h + new_u, new_u, h_d + u_d], dtype=float)


def _record(name: str, state: np.ndarray, flows: np.ndarray, day: int) -> np.ndarray:
    code = CHANNELS.index(name)
    if code == 4:
        return state[:, :, 8].sum(axis=1)
    if code == 5:
        return state[:, :, 7].sum(axis=1)
    if code == 7:
        return state[:, :, 0].sum(axis=1)
    if code == 8:
        return state[:, :, 2:7].sum(axis=(1, 2))
    if code == 6:
        return flows[:, :, 4].sum(axis=1)
    return flows[:, :, code].sum(axis=1)
