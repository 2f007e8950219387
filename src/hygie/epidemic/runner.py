"""End-to-end uses shared by the CLI, the HTTP API and the pages: run a study, calibrate
on the Île-de-France ICU admissions, and draw their charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from hygie.epidemic.calibration import Calibration
from hygie.epidemic.charts import Band, line_chart
from hygie.epidemic.engine import Ensemble, EpidemicModel
from hygie.epidemic.mobility_link import coupling_from_od, fetch_mobility_od
from hygie.epidemic.model import DiseaseParameters, Phase, Scenario, Seed
from hygie.epidemic.reference_data import ReferenceData, departement_regions, locate_data_root
from hygie.epidemic.reproduction import effective_reproduction_numbers
from hygie.epidemic.scenarios import IcuDemand, Study, icu_demand

#: Default bound on runs x days x patches x channels of one request (about 100 MB).
DEFAULT_MAX_CELLS = 25_000_000


def reference_data(extra: dict[str, Any] | None = None) -> ReferenceData:
    """Reference data located from the settings' ``epidemic_data_dir`` (or defaults)."""
    return ReferenceData(locate_data_root((extra or {}).get("epidemic_data_dir")))


def build_model(study: Study, ref: ReferenceData,
                parameters: DiseaseParameters | None = None,
                mobility_root: Path | None = None) -> EpidemicModel:
    """The model a study asks for: its population, the reference matrices, its coupling
    (a file, or the mobility service's matrices when ``mobility.source = "mobility"``,
    read from ``mobility_root``, else from the mobility service's own folder)."""
    population = ref.idf() if study.population == "idf" else ref.regions()
    matrices = {name: ref.matrix(name) for name in ref.matrix_names()}
    coupling = study.coupling
    if coupling is None and study.mobility.get("source") == "mobility":
        sc = study.scenario
        level = str(study.mobility.get("level", "region"))
        if mobility_root is None and isinstance(study.mobility.get("root"), str):
            mobility_root = Path(study.mobility["root"])
        od = fetch_mobility_od(None, sc.dates()[-1],
                               kind=str(study.mobility.get("kind", "home_day")), level=level,
                               zones=population.codes if level == "region" else None,
                               root=mobility_root)
        mapping = None if level == "region" else departement_regions(ref.root)
        coupling = coupling_from_od(od, population, mapping,
                                    float(study.mobility.get("time_away", 1 / 3)))
    return EpidemicModel(parameters=parameters or DiseaseParameters(), population=population,
                         matrices=matrices, coupling=coupling)


@dataclass(eq=False)
class StudyResult:
    """What a run of a study gives an agency: ICU demand and reproduction numbers."""

    study: Study
    ensemble: Ensemble
    icu: IcuDemand
    r0: float
    r_t: np.ndarray

    def as_json(self) -> dict[str, Any]:
        sc = self.study.scenario
        return {
            "scenario": sc.name, "description": sc.description, "runs": self.ensemble.n_runs,
            "population": self.study.population, "regions": list(self.ensemble.codes),
            "r0": self.r0, "r_t": self.r_t.tolist(), **self.icu.as_json(),
        }

    def charts(self) -> dict[str, str]:
        icu = self.icu
        beds = line_chart(
            icu.dates, [Band("Lits de réanimation occupés (médiane, bande à 95 %)",
                             icu.bands[1], icu.bands[0], icu.bands[2])],
            title=f"Besoin en réanimation : {self.study.scenario.name}", y_label="lits",
            hline=icu.capacity, hline_label="Capacité de réanimation", chart_id="icu-demand")
        adm = line_chart(
            icu.dates, [Band("Admissions en réanimation (médiane, bande à 95 %)",
                             icu.admissions_bands[1], icu.admissions_bands[0],
                             icu.admissions_bands[2], "#7a4fa0")],
            title="Admissions quotidiennes en réanimation", y_label="admissions par jour",
            chart_id="icu-adm")
        rt = line_chart(icu.dates, [Band("R(t), champ moyen", self.r_t, color="#2b7a3d")],
                        title="Nombre de reproduction effectif", y_label="R", hline=1.0,
                        hline_label="R = 1", chart_id="r-t")
        return {"icu_demand": beds, "icu_admissions": adm, "r_t": rt}


def run_study(study: Study, ref: ReferenceData, runs: int | None = None,
              random_state: int | None = None, max_cells: int | None = DEFAULT_MAX_CELLS,
              parameters: DiseaseParameters | None = None,
              mobility_root: Path | None = None) -> StudyResult:
    """Simulate a study's ensemble and summarise it."""
    model = build_model(study, ref, parameters, mobility_root)
    sc = study.scenario
    ens = model.simulate(sc, n_runs=runs, random_state=random_state,
                         channels=("icu_admissions", "icu_beds"), max_cells=max_cells)
    r_t = effective_reproduction_numbers(model, sc)
    return StudyResult(study=study, ensemble=ens, icu=icu_demand(ens, sc), r0=float(r_t[0]),
                       r_t=r_t)


# --- calibration ---------------------------------------------------------------------


def published_scenario(days: int = 90) -> Scenario:
    """Île-de-France as published: 50 prodromal adults on 2020-02-11 (19 days before
    1 March), lockdown matrix from 2020-03-22 (5 days after the 17 March start) to the
    11 May exit."""
    return Scenario(
        name="Île-de-France, first wave (published set-up)", start=date(2020, 2, 11),
        days=days, seeds=(Seed("11", 50.0),),
        phases=(Phase(start=date(2020, 3, 22), end=date(2020, 5, 11), matrix="LD",
                      label="lockdown"),),
    )


def calibrate(ref: ReferenceData, *, n_steps: int = 1500, burn_in: int = 500,
              n_walkers: int = 24, likelihood: str = "negbin",
              random_state: int | None = 0, since: date | None = None) -> Calibration:
    """Fit beta, seeding and lockdown scale to the Île-de-France ICU admissions (from
    ``since`` on, default the whole series from 1 March 2020)."""
    study = Study(scenario=published_scenario())
    model = build_model(study, ref)
    dates, obs = ref.icu_admissions()
    if since is not None:
        keep = [i for i, d in enumerate(dates) if d >= since]
        dates, obs = [dates[i] for i in keep], obs[keep]
    return Calibration(model, study.scenario, lockdown_phase=0, likelihood=likelihood,
                       n_walkers=n_walkers, n_steps=n_steps, burn_in=burn_in,
                       random_state=random_state).fit(dates, obs)


def fit_chart(cal: Calibration, random_state: int | None = 0) -> str:
    """Observed ICU admissions against the posterior predictive band."""
    bands = cal.predict(random_state=random_state)
    dates, obs = cal.observed_
    sc = cal.scenario
    lo = sc.day_index(dates[0]) - 7
    hi = sc.day_index(dates[-1]) + 1
    days = sc.dates()[lo:hi]
    return line_chart(days, [Band("prédiction a posteriori (médiane, 95 %)", bands[1][lo:hi],
                                  bands[0][lo:hi], bands[2][lo:hi])],
                      title="Calibration : admissions en réanimation, Île-de-France",
                      y_label="admissions par jour", points=(dates, obs),
                      points_label="observées", chart_id="fit")


def calibration_json(cal: Calibration) -> dict[str, Any]:
    return {
        "likelihood": cal.likelihood,
        "intervals": {k: {"p2_5": v[0], "median": v[1], "p97_5": v[2]}
                      for k, v in cal.intervals_.items()},
        "r0": dict(zip(("p2_5", "median", "p97_5"), cal.r0_, strict=True)),
        "r_lockdown": dict(zip(("p2_5", "median", "p97_5"), cal.r_lockdown_, strict=True)),
        "acceptance": cal.acceptance_, "samples": len(cal.samples_),
        "max_log_posterior": cal.log_likelihood_,
    }


def write_outputs(result: StudyResult, out: Path) -> list[Path]:
    """CSV of the ICU demand and the charts as SVG files in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    icu = result.icu
    csv_path = out / "icu_demand.csv"
    with open(csv_path, "w", encoding="utf-8") as fh:
        fh.write("date,icu_beds_p2_5,icu_beds_median,icu_beds_p97_5,"
                 "icu_admissions_median,exceed_probability,r_t\n")
        for i, d in enumerate(icu.dates):
            ex = "" if icu.exceed_probability is None else f"{icu.exceed_probability[i]:.3f}"
            fh.write(f"{d.isoformat()},{icu.bands[0, i]:.1f},{icu.bands[1, i]:.1f},"
                     f"{icu.bands[2, i]:.1f},{icu.admissions_bands[1, i]:.1f},{ex},"
                     f"{result.r_t[i]:.4f}\n")
    paths = [csv_path]
    for name, svg in result.charts().items():
        p = out / f"{name}.svg"
        p.write_text(svg, encoding="utf-8")
        paths.append(p)
    return paths
