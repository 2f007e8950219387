"""The compiled ensemble kernel: same distribution as the plain loop implementation,
mean field, reproducibility, metapopulation coupling, input checks."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from hygie.epidemic import Coupling, EpidemicModel, InvalidInput, LimitExceeded, Phase, Population
from hygie.epidemic.model import Scenario, Seed
from hygie.epidemic.reference import simulate_reference


def _small_town(matrices, n=20_000, coupling=None, codes=("A",)):
    shares = np.array([0.1447, 0.1113, 0.59, 0.154])
    sizes = np.round(np.outer(np.full(len(codes), n), shares))
    pop = Population(codes=codes, sizes=sizes)
    return EpidemicModel(population=pop, matrices=matrices, coupling=coupling)


def test_kernel_draws_from_the_same_distribution_as_the_loop_implementation(matrices):
    model = _small_town(matrices)
    sc = Scenario(name="t", start=date(2020, 1, 1), days=70, seeds=(Seed("A", 20),),
                  phases=(Phase(start=date(2020, 2, 1), matrix="LD", scale=1.5),))
    channels = ("infections", "icu_admissions", "deaths")
    fast = model.simulate(sc, n_runs=400, random_state=1, channels=channels)
    slow = simulate_reference(model.compile(sc), 150, np.random.default_rng(2), channels)
    for ch in channels:
        a = fast.total(ch).sum(axis=1)
        b = slow[ch].sum(axis=(1, 2))
        se = np.sqrt(a.var() / a.size + b.var() / b.size)
        assert abs(a.mean() - b.mean()) < 4 * se + 1e-9, ch
    # the epidemic took off: the comparison is not between two empty runs
    assert fast.total("infections").sum(axis=1).mean() > 1000


def test_mean_field_is_the_mean_of_large_stochastic_runs(idf_model, published):
    sc = dataclasses.replace(published, days=45)
    ens = idf_model.simulate(sc, n_runs=200, random_state=3, channels=("infections",))
    mf = idf_model.mean_field(sc, channels=("infections",))
    mean = ens.total("infections").mean(axis=0)
    ref = mf.total("infections")[0]
    assert ref[-1] > 1e4
    np.testing.assert_allclose(mean[-10:], ref[-10:], rtol=0.15)


def test_runs_depend_only_on_their_seed(idf_model, published):
    sc = dataclasses.replace(published, days=40)
    a = idf_model.simulate(sc, n_runs=5, random_state=42).series["icu_beds"]
    b = idf_model.simulate(sc, n_runs=8, random_state=42).series["icu_beds"]
    np.testing.assert_array_equal(a, b[:5])
    c = idf_model.simulate(sc, n_runs=5, random_state=43).series["icu_beds"]
    assert not np.array_equal(a, c)


def test_counts_are_whole_non_negative_and_susceptibles_only_fall(idf_model, published):
    sc = dataclasses.replace(published, days=80)
    ens = idf_model.simulate(sc, n_runs=20, random_state=5,
                             channels=("susceptible", "icu_beds", "ward_beds"), by_age=True)
    for arr in ens.series.values():
        assert arr.shape == (20, 80, 1, 4)
        assert np.all(arr >= 0) and np.all(arr == np.round(arr))
    assert np.all(np.diff(ens.series["susceptible"], axis=1) <= 0)
    # no severe cases among children and teens: no ICU beds for them
    assert ens.series["icu_beds"][..., :2].max() == 0


def test_without_travel_an_unseeded_region_stays_free(matrices):
    codes = ("A", "B")
    still = Coupling(od=np.zeros((2, 2)))
    sc = Scenario(name="t", start=date(2020, 1, 1), days=80, seeds=(Seed("A", 20),))
    alone = _small_town(matrices, coupling=still, codes=codes).mean_field(
        sc, channels=("infections",))
    assert alone.total("infections", ["B"]).sum() == 0
    flows = np.array([[0.0, 2000.0], [2000.0, 0.0]])
    linked = _small_town(matrices, coupling=Coupling(od=flows), codes=codes).mean_field(
        sc, channels=("infections",))
    assert linked.total("infections", ["B"]).sum() > 1000


def test_a_measured_fall_of_trips_delays_the_spread(matrices):
    codes = ("A", "B")
    flows = np.array([[0.0, 400.0], [400.0, 0.0]])
    sc = Scenario(name="t", start=date(2020, 1, 1), days=120, seeds=(Seed("A", 20),))
    base = Coupling(od=flows)
    cut = base.with_travel_change(date(2020, 1, 10), 0.35)

    def arrival(coupling):
        mf = _small_town(matrices, coupling=coupling, codes=codes).mean_field(
            sc, channels=("infections",))
        cum = np.cumsum(mf.total("infections", ["B"])[0])
        return int(np.argmax(cum > 100))

    assert arrival(cut) > arrival(base)


def test_one_patch_coupled_to_itself_is_the_published_model(matrices, idf_model, published):
    sc = dataclasses.replace(published, days=60)
    coupled = EpidemicModel(population=idf_model.population, matrices=matrices,
                            coupling=Coupling(od=np.zeros((1, 1))))
    a = idf_model.mean_field(sc).total("icu_beds")
    b = coupled.mean_field(sc).total("icu_beds")
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_regional_phases_and_multipliers_apply_only_there(matrices):
    codes = ("A", "B")
    sc = Scenario(name="t", start=date(2020, 1, 1), days=60,
                  seeds=(Seed("A", 20), Seed("B", 20)),
                  phases=(Phase(start=date(2020, 1, 1), matrix="LD", patches=("B",)),),
                  beta_by_patch={"A": 1.2})
    comp = _small_town(matrices, codes=codes).compile(sc)
    assert comp.kernel_keys == (("baseline", 0.0), ("LD", 0.0))
    assert np.all(comp.kernel_index[:, 0] == 0) and np.all(comp.kernel_index[:, 1] == 1)
    np.testing.assert_allclose(comp.kernel_scale[:, 0], 0.0942 * 1.2)
    np.testing.assert_allclose(comp.kernel_scale[:, 1], 0.0942)


@pytest.mark.parametrize("scenario_change, message", [
    ({"phases": (Phase(start=date(2020, 1, 2), matrix="nope"),)}, "unknown contact matrix"),
    ({"phases": (Phase(start=date(2020, 1, 2), matrix="LD", scale=-1),)}, "scale"),
    ({"seeds": (Seed("Z", 5),)}, "unknown patch"),
    ({"seeds": (Seed("A", 1e9),)}, "more seeds"),
    ({"days": 0}, "at least one day"),
])
def test_bad_scenarios_are_refused_with_a_reason(matrices, scenario_change, message):
    sc = dataclasses.replace(
        Scenario(name="t", start=date(2020, 1, 1), days=10, seeds=(Seed("A", 5),)),
        **scenario_change)
    with pytest.raises(InvalidInput, match=message):
        _small_town(matrices).simulate(sc, n_runs=2, random_state=0)


def test_output_size_limit(matrices):
    sc = Scenario(name="t", start=date(2020, 1, 1), days=10, seeds=(Seed("A", 5),))
    with pytest.raises(LimitExceeded):
        _small_town(matrices).simulate(sc, n_runs=100, max_cells=1000)


def test_coupling_checks_its_array(ref):
    pop = ref.idf()
    with pytest.raises(InvalidInput, match="shape"):
        Coupling(od=np.zeros((2, 3))).sigma(pop)
    with pytest.raises(InvalidInput, match="non-negative"):
        Coupling(od=-np.ones((1, 1))).sigma(pop)
    with pytest.raises(InvalidInput, match="patches"):
        Coupling(od=np.zeros((2, 2))).sigma(pop)
