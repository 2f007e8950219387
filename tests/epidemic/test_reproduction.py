"""Reproduction numbers: the published R0 and lockdown R from the published parameters.

Published (Di Domenico et al., BMC Med 2020): R0 = 3.18 [3.09-3.24], R during lockdown
0.68 [0.66-0.69]. With the Nat Commun 2021 parameters and matrices (beta = 0.0942) the
next-generation R0 is 3.28, 3.1 % above: within 5 %, see docs/epidemic.md for why.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np

from hygie.epidemic import (
    Coupling,
    DiseaseParameters,
    EpidemicModel,
    Population,
    basic_reproduction_number,
    effective_reproduction_numbers,
    fit_scale_published,
)
from hygie.epidemic.reproduction import next_generation_matrix


def test_published_r0_within_5_percent(idf_model, published):
    r0 = basic_reproduction_number(idf_model, published)
    assert abs(r0 - 3.18) / 3.18 < 0.05
    assert 3.25 < r0 < 3.30  # the value docs/epidemic.md explains


def test_published_lockdown_r_from_the_published_fit(idf_model, published, ref):
    """The published procedure: lockdown scale fitted on 0.90-1.20 by a Poisson
    likelihood of the runs' median ICU admissions over 13-26 April 2020; R is then the
    next-generation R on the first lockdown day (22 March) with that day's susceptibles."""
    dates, obs = ref.icu_admissions()
    scales = np.round(np.arange(0.90, 1.20, 0.02), 2)
    _, best = fit_scale_published(idf_model, published, 0, dates, obs,
                                  (date(2020, 4, 13), date(2020, 4, 26)), scales,
                                  n_runs=100, random_state=1)
    assert 0.9 <= best <= 1.1
    fitted = dataclasses.replace(published, phases=(dataclasses.replace(
        published.phases[0], scale=best),))
    day = fitted.day_index(date(2020, 3, 22))
    r_ld = effective_reproduction_numbers(idf_model, fitted, days=[day])[0]
    assert abs(r_ld - 0.68) / 0.68 < 0.05
    assert 0.64 < r_ld < 0.72


def test_single_patch_matrix_is_the_textbook_formula(idf_model, published, matrices):
    """K_ij = beta * susc_i * C_ij * N_i / N * (days-weighted infectiousness of j)."""
    comp = idf_model.compile(published)
    p = DiseaseParameters()
    k = next_generation_matrix(comp, p, 0)
    n = idf_model.population.sizes[0]
    days = p.expected_days()
    weight = (p.infectiousness() * p.contact_factors(0.0)[:, None] * days).sum(axis=0)
    expected = (0.0942 * np.asarray(p.susceptibility)[:, None] * matrices["baseline"]
                * weight[None, :] * (n / n.sum())[:, None])
    np.testing.assert_allclose(k, expected, rtol=1e-10)


def test_identical_coupled_regions_share_the_single_region_r0(idf_model, published, matrices):
    sizes = np.repeat(idf_model.population.sizes, 3, axis=0)
    flows = np.full((3, 3), 50_000.0)
    model = EpidemicModel(population=Population(codes=("11", "b", "c"), sizes=sizes),
                          matrices=matrices, coupling=Coupling(od=flows))
    np.testing.assert_allclose(basic_reproduction_number(model, published),
                               basic_reproduction_number(idf_model, published), rtol=1e-9)


def test_r_of_t_falls_with_susceptibles_and_jumps_at_lockdown(idf_model, published):
    r = effective_reproduction_numbers(idf_model, published)
    day = published.day_index(date(2020, 3, 22))
    assert r[0] > 3 and r[day] < 0.75
    assert np.all(np.diff(r[:day - 1]) <= 1e-12)
    assert np.all(np.diff(r[day:]) <= 1e-12)
