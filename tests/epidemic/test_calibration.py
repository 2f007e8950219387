"""Calibration: likelihoods, recovery of known parameters, the fit to ICU admissions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from hygie.epidemic import Calibration, InvalidInput
from hygie.epidemic.calibration import negbin_loglik, poisson_loglik
from hygie.epidemic.runner import calibrate, calibration_json, fit_chart


def test_likelihoods_match_scipy():
    y = np.array([0, 3, 17, 250])
    mu = np.array([0.5, 4.0, 12.0, 300.0])
    k = 7.5
    expected = stats.nbinom.logpmf(y, k, k / (k + mu)).sum()
    assert negbin_loglik(y, mu, k) == pytest.approx(expected)
    assert poisson_loglik(y, mu) == pytest.approx(stats.poisson.logpmf(y, mu).sum())


def test_recovers_known_parameters_from_synthetic_admissions(idf_model, published):
    truth = dataclasses.replace(published, beta=0.1, phases=(dataclasses.replace(
        published.phases[0], scale=0.9),))
    mu = idf_model.mean_field(truth, channels=("icu_admissions",)).total("icu_admissions")[0]
    rng = np.random.default_rng(0)
    days = list(range(25, 80))
    k = 50.0
    y = rng.negative_binomial(k, k / (k + mu[days]))
    dates = [published.dates()[d] for d in days]
    cal = Calibration(idf_model, published, n_walkers=16, n_steps=500, burn_in=200,
                      random_state=1).fit(dates, y)
    lo, _, hi = cal.intervals_["beta"]
    assert lo < 0.1 < hi and hi - lo < 0.03
    lo, _, hi = cal.intervals_["lockdown_scale"]
    assert lo < 0.9 < hi
    assert cal.acceptance_ > 0.15


def test_fit_to_icu_admissions(ref):
    cal = calibrate(ref, n_steps=400, burn_in=150, n_walkers=16, random_state=2)
    summary = calibration_json(cal)
    # lockdown R from the posterior brackets the published 0.68
    assert summary["r_lockdown"]["p2_5"] < 0.68 < summary["r_lockdown"]["p97_5"]
    assert 0.07 < cal.beta_ < 0.13
    assert 1 < cal.seed_ < 1000
    band = cal.predict(n_draws=100, random_state=0)
    dates, obs = cal.observed_
    idx = [cal.scenario.day_index(d) for d in dates]
    inside = np.mean((obs >= band[0, idx]) & (obs <= band[2, idx]))
    assert inside > 0.8
    svg = fit_chart(cal)
    assert svg.startswith("<svg") and svg.count('class="obs"') == len(obs)


def test_bad_observations_are_refused(idf_model, published):
    cal = Calibration(idf_model, published, n_steps=200, burn_in=50)
    with pytest.raises(InvalidInput):
        cal.fit(published.dates()[1:4], [1.0, -2.0, 3.0])
    with pytest.raises(InvalidInput):
        cal.fit(published.dates()[1:4], [1.0, 2.0])
