"""Scenario files: the shipped examples, school protocols, errors naming keys, ICU demand."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from hygie.epidemic import ScenarioError
from hygie.epidemic.runner import run_study
from hygie.epidemic.scenarios import (
    builtin_studies,
    load_study,
    parse_study,
    school_weeks,
)


def test_every_shipped_scenario_parses():
    studies = builtin_studies()
    assert {"idf_schools_progressive", "idf_exit_without_measures", "regions_curfew"} <= set(
        studies)
    for path in studies.values():
        st = load_study(path)
        assert st.scenario.days > 0 and st.scenario.phases


def test_school_protocols_follow_the_paper():
    assert school_weeks("kids_only", "progressive_100") == [
        "TS_75_100", "TS_50_100", "TS_25_100"] + ["SO_kids"] * 5
    assert school_weeks("kids_and_teens", "prompt_50") == ["TS_50_50"] * 8
    assert school_weeks("kids_before_teens", "progressive_100")[4:] == [
        "TS_0_75", "TS_0_50", "TS_0_25", "SO"]
    assert school_weeks("kids_only", "closure") == ["SC"] * 8
    with pytest.raises(ScenarioError, match="protocol"):
        school_weeks("kids_only", "sometimes")


def test_school_phase_expands_into_weeks_and_summer():
    st = parse_study({
        "start": date(2020, 2, 11), "days": 120,
        "phase": [{"kind": "school_reopening", "start": "2020-05-11", "group": "kids_only",
                   "protocol": "progressive_50", "testing": 0.5,
                   "summer_start": "2020-07-05", "summer_end": "2020-09-01"}],
    })
    phases = st.scenario.phases
    assert [p.matrix for p in phases] == ["TS_75_100"] + ["TS_50_100"] * 7 + ["vacation"]
    assert phases[1].start == date(2020, 5, 18) and phases[-1].end == date(2020, 9, 1)
    assert all(p.testing == 0.5 for p in phases)


@pytest.mark.parametrize("data, key", [
    ({"days": 10}, "start"),
    ({"start": "2020-01-01", "days": "ten"}, "days"),
    ({"start": "2020-01-01", "days": 10, "phase": [{"start": "2020-01-02"}]}, "phase[0].matrix"),
    ({"start": "2020-01-01", "days": 10, "phase": [{"kind": "curfew", "start": "2020-01-02"}]},
     "phase[0].scale"),
    ({"start": "2020-01-01", "days": 10, "phase": [{"kind": "x", "start": "2020-01-02"}]},
     "phase[0].kind"),
    ({"start": "2020-13-01", "days": 10}, "start"),
    ({"start": "2020-01-01", "days": 10, "population": "moon"}, "population"),
    ({"start": "2020-01-01", "days": 10, "icu_capacity": {"11": -3}}, "v"),
])
def test_errors_name_the_faulty_key(data, key):
    with pytest.raises(ScenarioError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_study(data)


def test_bad_toml_is_a_scenario_error(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("start = [", encoding="utf-8")
    with pytest.raises(ScenarioError, match="TOML"):
        load_study(p)


def test_od_file_couples_regions(tmp_path, ref):
    n = ref.regions().sizes.sum(axis=1)
    od = 0.01 * np.outer(n, n) / n.sum()
    np.save(tmp_path / "od.npy", od)
    p = tmp_path / "s.toml"
    p.write_text(
        'population = "regions"\nstart = 2020-02-11\ndays = 30\nruns = 4\n'
        '[mobility]\nsource = "file"\npath = "od.npy"\n'
        '[[mobility.travel_change]]\ndate = 2020-03-17\nfactor = 0.35\n', encoding="utf-8")
    st = load_study(p)
    assert st.coupling is not None and st.coupling.dates[-1] == date(2020, 3, 17)
    result = run_study(st, ref, random_state=0)
    assert result.ensemble.series["icu_beds"].shape == (4, 30, 13)


def test_icu_demand_against_capacity(ref):
    st = load_study(builtin_studies()["idf_exit_without_measures"])
    result = run_study(st, ref, runs=40, random_state=1)
    icu = result.icu
    assert icu.capacity == 3000
    assert icu.bands.shape == (3, st.scenario.days)
    assert np.all(icu.bands[0] <= icu.bands[1]) and np.all(icu.bands[1] <= icu.bands[2])
    # first peak in early April as observed (2,940 beds on 7 April 2020)
    assert date(2020, 3, 28) <= icu.peak_date <= date(2020, 4, 20) or icu.peak_date > date(
        2020, 6, 1)
    first = icu.bands[1][: st.scenario.day_index(date(2020, 5, 1))]
    assert 1500 < first.max() < 4500
    # no exit strategy: a second wave overwhelms capacity with certainty
    assert icu.exceed_probability.max() == 1.0
    assert result.as_json()["capacity"] == 3000
