"""Ensemble throughput of the epidemic model, against two peers in the same run.

1. hygie: 1,000 stochastic runs x 4 ages x 13 regions x 300 days (regions coupled by a
   synthetic commuting matrix: 2 % of residents go to another region each day, in
   proportion to its population), one call to the compiled ensemble kernel.
2. loop: the same model written as the published code is (a Python loop per day, per
   region, per age, one numpy draw per flow: ``hygie.epidemic.reference``), on the same
   arrays; timed on ``--loop-runs`` runs and scaled linearly to 1,000 (runs are
   independent, so its cost is proportional to their number).
3. epydemix: the equivalent single-region model (Île-de-France, 4 ages, the same 11
   compartments, rates and contact matrix) built with epydemix's EpiModel, timed on
   ``--epydemix-runs`` runs and scaled to 1,000, against hygie on the same single region.

Run: ``.venv/bin/python bench/epidemic_ensemble.py`` (needs ``pip install -e '.[bench]'``
for epydemix). Prints ``name: value unit (ratio x vs peer)``.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np

from hygie.epidemic import Coupling, DiseaseParameters, EpidemicModel
from hygie.epidemic.model import COMPARTMENTS, Scenario, Seed
from hygie.epidemic.reference import simulate_reference
from hygie.epidemic.reference_data import ReferenceData, locate_data_root

RUNS, DAYS = 1000, 300


def _epydemix_model(ref: ReferenceData, params: DiseaseParameters):  # type: ignore[no-untyped-def]
    """The single-region model in epydemix's vocabulary (same flows and probabilities)."""
    from epydemix import EpiModel
    from epydemix.population import Population as EpyPopulation

    pop = ref.idf()
    sizes = pop.sizes[0]
    total = sizes.sum()
    matrix = ref.matrix("baseline")
    # epydemix divides by the group size; the reference matrices by the total population
    contacts = matrix * sizes[None, :] / total
    epy_pop = EpyPopulation(name="Ile-de-France")
    epy_pop.add_population(Nk=list(sizes), Nk_names=["0-10", "11-18", "19-64", "65+"])
    epy_pop.add_contact_matrix(contacts)
    model = EpiModel(compartments=list(COMPARTMENTS))
    model.set_population(epy_pop)
    t = params.transition_table()
    shares = params.class_shares()
    susc = np.asarray(params.susceptibility)
    inf = params.infectiousness()
    f = params.contact_factors(0.0)
    for c, comp in enumerate(("I_p", "I_as", "I_ps", "I_ms", "I_ss")):
        # infectiousness is the same across infector ages with children at 0.55
        model.add_transition("S", "E", kind="mediated",
                             params=(params.beta * susc * inf[c, 2] * f[c], comp))
    model.add_transition("E", "I_p", kind="spontaneous", params=float(t[0, 0]))
    for k, comp in enumerate(("I_as", "I_ps", "I_ms", "I_ss")):
        model.add_transition("I_p", comp, kind="spontaneous", params=t[:, 1] * shares[:, k])
    for comp in ("I_as", "I_ps", "I_ms"):
        model.add_transition(comp, "R", kind="spontaneous", params=float(t[0, 2]))
    model.add_transition("I_ss", "U", kind="spontaneous", params=t[:, 2] * t[:, 6])
    model.add_transition("I_ss", "H", kind="spontaneous", params=t[:, 2] * (1 - t[:, 6]))
    model.add_transition("H", "R", kind="spontaneous", params=t[:, 7])
    model.add_transition("H", "D", kind="spontaneous", params=(1 - t[:, 7]) * t[:, 8])
    model.add_transition("U", "R", kind="spontaneous", params=t[:, 9])
    model.add_transition("U", "D", kind="spontaneous", params=(1 - t[:, 9]) * t[:, 10])
    init = {c: np.zeros(4) for c in COMPARTMENTS}
    init["S"] = sizes.copy()
    init["S"][2] -= 50
    init["I_p"][2] = 50
    return model, init


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop-runs", type=int, default=10)
    ap.add_argument("--epydemix-runs", type=int, default=50)
    args = ap.parse_args()

    ref = ReferenceData(locate_data_root())
    matrices = {n: ref.matrix(n) for n in ref.matrix_names()}
    regions = ref.regions()
    n = regions.sizes.sum(axis=1)
    od = 0.02 * np.outer(n, n) / n.sum()
    start = date(2020, 2, 11)
    sc = Scenario(name="bench", start=start, days=DAYS, seeds=(Seed("11", 50),), runs=RUNS)
    model = EpidemicModel(population=regions, matrices=matrices, coupling=Coupling(od=od))
    channels = ("icu_admissions", "icu_beds")

    t0 = time.perf_counter()
    model.simulate(sc, n_runs=2, random_state=0, channels=channels)  # compile or load cache
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    ens = model.simulate(sc, n_runs=RUNS, random_state=1, channels=channels)
    fast = time.perf_counter() - t0
    peak = np.median(ens.total("icu_beds").max(axis=1))
    print(f"kernel_first_call: {first:.2f} s (compile or cache load, 2 runs)")
    print(f"ensemble_1000x4x13x300: {fast:.2f} s (goal <= 10 s; median peak ICU beds "
          f"{peak:,.0f})")

    comp = model.compile(sc)
    t0 = time.perf_counter()
    simulate_reference(comp, args.loop_runs, np.random.default_rng(2), channels)
    loop_per_run = (time.perf_counter() - t0) / args.loop_runs
    loop_total = loop_per_run * RUNS
    print(f"loop_per_day_per_age_1000x4x13x300: {loop_total:.0f} s "
          f"(timed on {args.loop_runs} runs, {loop_per_run:.2f} s each, scaled) "
          f"({loop_total / fast:.0f}x vs loop, goal >= 50x)")

    idf = EpidemicModel(population=ref.idf(), matrices=matrices)
    single = Scenario(name="bench-idf", start=start, days=DAYS, seeds=(Seed("11", 50),))
    idf.simulate(single, n_runs=2, random_state=0, channels=channels)
    t0 = time.perf_counter()
    ours = idf.simulate(single, n_runs=RUNS, random_state=3, channels=channels)
    ours_s = time.perf_counter() - t0
    print(f"ensemble_1000x4x1x300: {ours_s:.3f} s")
    try:
        epy, init = _epydemix_model(ref, DiseaseParameters())
    except ImportError:
        print("epydemix_1000x4x1x300: not run (pip install -e '.[bench]')")
        return
    t0 = time.perf_counter()
    res = epy.run_simulations(start_date="2020-02-11", end_date="2020-12-06",
                              initial_conditions_dict=init, Nsim=args.epydemix_runs,
                              apply_linear_approximation=True, rng=4)
    epy_per_run = (time.perf_counter() - t0) / args.epydemix_runs
    epy_total = epy_per_run * RUNS
    print(f"epydemix_1000x4x1x300: {epy_total:.1f} s (timed on {args.epydemix_runs} runs, "
          f"{epy_per_run * 1e3:.0f} ms each, scaled) ({epy_total / ours_s:.0f}x vs epydemix, "
          "goal >= 5x)")
    # same model: the ICU peaks agree (median over runs)
    epy_peak = np.median([tr.compartments["U_total"].max() for tr in res.trajectories])
    our_peak = np.median(ours.total("icu_beds").max(axis=1))
    print(f"icu_peak_single_region: {our_peak:,.0f} beds hygie, {epy_peak:,.0f} beds epydemix")


if __name__ == "__main__":
    main()
