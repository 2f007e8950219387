"""Compiled daily step of the model for a whole ensemble: the numba kernel.

One kernel serves both versions of the model. ``stochastic=True`` is the published
chain-binomial (every flow a binomial draw from the start-of-day counts, multinomial
splits as successive conditional binomials); ``stochastic=False`` replaces every draw by
its expectation ``n * p``, which is the deterministic mean-field version of the same
discrete-time model. Runs are independent, so they are spread over threads with
``prange``; each run reseeds the thread's generator from its own seed, so a run's
trajectory depends on its seed only, not on the number of threads.

Binomial draws are written here (inversion for small means, BTRS otherwise) rather than
taken from numba's ``np.random.binomial``: that one is numpy's legacy algorithm, which
rebuilds its BTPE set-up whenever (n, p) change, and here they change at every draw;
``binomial`` is about twice as fast on such calls and is tested against scipy's pmf.

Hand-written rather than built on an epidemic library because the published model's
discrete-time structure (linear exit probabilities, ``1 - exp(-lambda)`` infection,
start-of-day draws) has to be reproduced exactly, and the libraries that do ensembles
(epydemix) loop in Python per compartment; see docs/benchmarks.md.

Array shapes (P patches, A ages, K distinct contact kernels, M coupling matrices):

- ``init`` (P, A, 11): initial counts per compartment (``model.COMPARTMENTS`` order).
- ``table`` (A, 11): ``DiseaseParameters.transition_table()``.
- ``kernels`` (K, 5, A, A): susceptibility_i x infectiousness_cj x contact factor_c x
  C_ij for each infectious class c; ``kernel_index`` (T, P) picks one per day and patch
  (the contacts *made in* that patch) and ``kernel_scale`` (T, P) multiplies it (beta x
  patch multiplier x phase scale).
- coupling in CSR rows ``cp_ptr`` (M, P+1), ``cp_idx`` / ``cp_val`` (M, nnz): share of
  their day residents of patch k spend in patch l (rows sum to 1); ``coupling_index``
  (T,) picks one per day; ``npres`` (M, P) is the population present in each patch.
- ``mobile`` (5,): 1 for infectious classes that travel, 0 for those kept home.
- ``out`` (n_channels, R, T, P, A_out): recorded channels (see ``CHANNELS``), A_out = A
  or 1 (summed over ages).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

#: Recorded outputs, by code: incidences are counted over the day, the rest at its end.
CHANNELS = (
    "infections",  # new E
    "clinical",  # new I_ms + I_ss (published "clinical" cases)
    "hospital_admissions",  # new H + new U
    "icu_admissions",  # new U
    "icu_beds",  # U
    "ward_beds",  # H
    "deaths",  # new D
    "susceptible",  # S
    "infectious",  # I_p + I_as + I_ps + I_ms + I_ss
)

S, E, IP, IAS, IPS, IMS, ISS, H, U, R, D = range(11)


#: log(k!) minus its Stirling approximation, for k = 0..9 (larger k use the series).
_STIRLING_TAIL = np.array([
    0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
    0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
    0.00925546218271273, 0.00833056343336287,
])


@numba.njit(inline="always")
def _stirling_tail(k: float) -> float:
    if k <= 9.0:
        return _STIRLING_TAIL[int(k)]
    kp1 = k + 1.0
    kp1sq = kp1 * kp1
    return (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / kp1sq) / kp1sq) / kp1


@numba.njit
def _binomial_inversion(n: float, p: float) -> float:
    """Sequential search of the cumulative distribution; for n * p < 10 (p <= 1/2)."""
    q = 1.0 - p
    s = p / q
    a = (n + 1.0) * s
    while True:
        r = q ** n
        u = np.random.random()
        x = 0.0
        while u > r:
            u -= r
            x += 1.0
            if x > n:
                break
            r *= a / x - s
        if x <= n:
            return x


@numba.njit
def _binomial_btrs(n: float, p: float) -> float:
    """Transformed rejection with squeeze (BTRS, Hörmann, J Stat Comput Simul 46:101,
    1993); for n * p >= 10 (p <= 1/2). About 1.2 pairs of uniforms per draw and no
    set-up table, which suits a kernel whose (n, p) change at every call."""
    q = 1.0 - p
    spq = np.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    r = p / q
    alpha = (2.83 + 5.1 / b) * spq
    m = np.floor((n + 1.0) * p)
    while True:
        u = np.random.random() - 0.5
        v = np.random.random()
        us = 0.5 - abs(u)
        k = np.floor((2.0 * a / us + b) * u + c)
        if k < 0.0 or k > n:
            continue
        if us >= 0.07 and v <= v_r:
            return k
        v = np.log(v * alpha / (a / (us * us) + b))
        bound = ((m + 0.5) * np.log((m + 1.0) / (r * (n - m + 1.0)))
                 + (n + 1.0) * np.log((n - m + 1.0) / (n - k + 1.0))
                 + (k + 0.5) * np.log(r * (n - k + 1.0) / (k + 1.0))
                 + _stirling_tail(m) + _stirling_tail(n - m)
                 - _stirling_tail(k) - _stirling_tail(n - k))
        if v <= bound:
            return k


@numba.njit
def binomial(n: float, p: float) -> float:
    """One Binomial(n, p) draw from the thread's generator (n a whole number)."""
    if n <= 0.0 or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(n, 1.0 - p)
    if n * p < 10.0:
        return _binomial_inversion(n, p)
    return _binomial_btrs(n, p)


@numba.njit(inline="always")
def _take(n: float, p: float, stochastic: bool) -> float:
    if n <= 0.0 or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return n
    if stochastic:
        return binomial(n, p)
    return n * p


def _simulate(
    init, table, kernels, kernel_index, kernel_scale,
    cp_ptr, cp_idx, cp_val, npres, coupling_index, mobile,
    seeds, channels, stochastic, out,
):
    n_runs = seeds.shape[0]
    n_days = out.shape[2]
    n_p = init.shape[0]
    n_a = init.shape[1]
    n_ch = channels.shape[0]
    by_age = out.shape[4] == n_a
    for r in prange(n_runs):
        if stochastic:
            np.random.seed(seeds[r])
        x = init.astype(np.float64)
        flow = np.zeros((n_p, n_a, 8))
        ipres = np.zeros((n_p, 5, n_a))
        lam_star = np.zeros((n_p, n_a))
        lam = np.zeros((n_p, n_a))
        for day in range(n_days):
            if day > 0:
                m = coupling_index[day]
                # infectious people present in each patch during the day
                ipres[:] = 0.0
                for k in range(n_p):
                    xk = x[k]
                    n_inf = 0.0
                    for j in range(n_a):
                        for c in range(5):
                            n_inf += xk[j, IP + c]
                    if n_inf == 0.0:
                        continue
                    for c in range(5):
                        if mobile[c] == 0.0:
                            for j in range(n_a):
                                ipres[k, c, j] += xk[j, IP + c]
                    for q in range(cp_ptr[m, k], cp_ptr[m, k + 1]):
                        lp = cp_idx[m, q]
                        w = cp_val[m, q]
                        for c in range(5):
                            if mobile[c] != 0.0:
                                for j in range(n_a):
                                    ipres[lp, c, j] += w * xk[j, IP + c]
                # force of infection met in each patch, then felt by its visitors
                for lp in range(n_p):
                    kk = kernel_index[day, lp]
                    sc = kernel_scale[day, lp] / npres[m, lp]
                    for i in range(n_a):
                        acc = 0.0
                        for c in range(5):
                            for j in range(n_a):
                                v = ipres[lp, c, j]
                                if v != 0.0:
                                    acc += kernels[kk, c, i, j] * v
                        lam_star[lp, i] = acc * sc
                for k in range(n_p):
                    for i in range(n_a):
                        lam[k, i] = 0.0
                    for q in range(cp_ptr[m, k], cp_ptr[m, k + 1]):
                        lp = cp_idx[m, q]
                        w = cp_val[m, q]
                        for i in range(n_a):
                            lam[k, i] += w * lam_star[lp, i]
                # transitions, all drawn from the start-of-day counts
                for k in range(n_p):
                    for a in range(n_a):
                        t = table[a]
                        xs = x[k, a]
                        la = lam[k, a]
                        new_e = _take(xs[S], -np.expm1(-la), stochastic) if la > 0.0 else 0.0
                        new_ip = _take(xs[E], t[0], stochastic)
                        out_p = _take(xs[IP], t[1], stochastic)
                        n_as = _take(out_p, t[3], stochastic)
                        rest = out_p - n_as
                        n_ps = _take(rest, t[4], stochastic)
                        rest -= n_ps
                        n_ms = _take(rest, t[5], stochastic)
                        n_ss = rest - n_ms
                        rec_as = _take(xs[IAS], t[2], stochastic)
                        rec_ps = _take(xs[IPS], t[2], stochastic)
                        rec_ms = _take(xs[IMS], t[2], stochastic)
                        out_ss = _take(xs[ISS], t[2], stochastic)
                        new_u = _take(out_ss, t[6], stochastic)
                        new_h = out_ss - new_u
                        h_r = _take(xs[H], t[7], stochastic)
                        h_d = _take(xs[H] - h_r, t[8], stochastic)
                        u_r = _take(xs[U], t[9], stochastic)
                        u_d = _take(xs[U] - u_r, t[10], stochastic)
                        xs[S] -= new_e
                        xs[E] += new_e - new_ip
                        xs[IP] += new_ip - out_p
                        xs[IAS] += n_as - rec_as
                        xs[IPS] += n_ps - rec_ps
                        xs[IMS] += n_ms - rec_ms
                        xs[ISS] += n_ss - out_ss
                        xs[H] += new_h - h_r - h_d
                        xs[U] += new_u - u_r - u_d
                        xs[R] += rec_as + rec_ps + rec_ms + h_r + u_r
                        xs[D] += h_d + u_d
                        f = flow[k, a]
                        f[0] = new_e
                        f[1] = n_ms + n_ss
                        f[2] = new_h + new_u
                        f[3] = new_u
                        f[4] = h_d + u_d
            # record
            for ch in range(n_ch):
                code = channels[ch]
                for k in range(n_p):
                    tot = 0.0
                    for a in range(n_a):
                        xs = x[k, a]
                        if code == 4:
                            v = xs[U]
                        elif code == 5:
                            v = xs[H]
                        elif code == 7:
                            v = xs[S]
                        elif code == 8:
                            v = xs[IP] + xs[IAS] + xs[IPS] + xs[IMS] + xs[ISS]
                        elif day == 0:
                            v = 0.0
                        elif code == 6:
                            v = flow[k, a, 4]
                        else:
                            v = flow[k, a, code]
                        if by_age:
                            out[ch, r, day, k, a] = v
                        else:
                            tot += v
                    if not by_age:
                        out[ch, r, day, k, 0] = tot
    return out


#: Runs spread over threads (ensembles).
simulate_ensemble = numba.njit(cache=True, parallel=True, nogil=True)(_simulate)
#: The same on the calling thread only: no thread start-up, for many short calls
#: (the calibration's mean-field evaluations).
simulate_serial = numba.njit(cache=True, nogil=True)(_simulate)
