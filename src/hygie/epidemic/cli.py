"""``hygie epidemic``: run a scenario file, calibrate, print reproduction numbers."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from hygie.config import load_settings


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group(name="epidemic")
def group() -> None:
    """Epidemic model: scenarios, calibration, reproduction numbers."""


@group.command("run")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--runs", type=click.IntRange(1, 100_000), default=None,
              help="Stochastic runs (default: the file's 'runs').")
@click.option("--seed", type=int, default=None, help="Random seed (default: the file's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for icu_demand.csv and the SVG charts.")
def run(scenario: Path, runs: int | None, seed: int | None, out: Path | None) -> None:
    """Run SCENARIO (a TOML file): ICU demand with 95 % bands against capacity."""
    from hygie.epidemic import runner, scenarios
    from hygie.epidemic.errors import EpidemicError

    try:
        study = scenarios.load_study(scenario)
        ref = runner.reference_data(load_settings().extra)
        result = runner.run_study(study, ref, runs=runs,
                                  random_state=seed if seed is not None
                                  else study.scenario.random_seed, max_cells=None)
    except EpidemicError as exc:
        raise _fail(exc) from exc
    icu = result.icu
    click.echo(f"scenario: {study.scenario.name}")
    click.echo(f"runs: {result.ensemble.n_runs}  days: {study.scenario.days}  "
               f"patches: {len(result.ensemble.codes)}")
    click.echo(f"R0: {result.r0:.2f}")
    peak = int(icu.dates.index(icu.peak_date))
    click.echo(f"ICU beds peak (median): {icu.peak_median:,.0f} on {icu.peak_date} "
               f"[95 %: {icu.bands[0, peak]:,.0f}-{icu.bands[2, peak]:,.0f}]")
    if icu.capacity is not None and icu.exceed_probability is not None:
        over = int((icu.bands[1] > icu.capacity).sum())
        click.echo(f"ICU capacity: {icu.capacity:,.0f} beds; days with median above: {over}; "
                   f"max probability above: {icu.exceed_probability.max():.0%}")
    if out is not None:
        for p in runner.write_outputs(result, out):
            click.echo(f"wrote {p}")


@group.command("fit")
@click.option("--steps", type=click.IntRange(100, 100_000), default=1500)
@click.option("--walkers", type=click.IntRange(8, 1000), default=24)
@click.option("--likelihood", type=click.Choice(["negbin", "poisson"]), default="negbin")
@click.option("--seed", type=int, default=0)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Fit the admissions from this day on (default: all, from 2020-03-01).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for fit.svg and calibration.json.")
def fit(steps: int, walkers: int, likelihood: str, seed: int, since: datetime | None,
        out: Path | None) -> None:
    """Calibrate beta, seeding and lockdown scale on Île-de-France ICU admissions."""
    from hygie.epidemic import runner
    from hygie.epidemic.errors import EpidemicError

    try:
        ref = runner.reference_data(load_settings().extra)
        cal = runner.calibrate(ref, n_steps=steps, burn_in=steps // 3, n_walkers=walkers,
                               likelihood=likelihood, random_state=seed,
                               since=since.date() if since else None)
    except EpidemicError as exc:
        raise _fail(exc) from exc
    summary = runner.calibration_json(cal)
    for name, iv in summary["intervals"].items():
        click.echo(f"{name}: {iv['median']:.4g} [{iv['p2_5']:.4g}-{iv['p97_5']:.4g}]")
    for name in ("r0", "r_lockdown"):
        iv = summary[name]
        click.echo(f"{name}: {iv['median']:.3f} [{iv['p2_5']:.3f}-{iv['p97_5']:.3f}]")
    click.echo(f"acceptance: {summary['acceptance']:.2f}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "fit.svg").write_text(runner.fit_chart(cal), encoding="utf-8")
        (out / "calibration.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        click.echo(f"wrote {out / 'fit.svg'}")


@group.command("r0")
def r0() -> None:
    """R0 and lockdown R of the published set-up (published beta, lockdown scale 1)."""
    from datetime import date

    from hygie.epidemic import runner
    from hygie.epidemic.errors import EpidemicError
    from hygie.epidemic.reproduction import basic_reproduction_number
    from hygie.epidemic.scenarios import Study

    try:
        ref = runner.reference_data(load_settings().extra)
        sc = runner.published_scenario()
        model = runner.build_model(Study(scenario=sc), ref)
        click.echo(f"R0: {basic_reproduction_number(model, sc):.3f}")
        day = sc.day_index(date(2020, 3, 22))
        click.echo(f"R lockdown (scale 1): {basic_reproduction_number(model, sc, day):.3f}")
    except EpidemicError as exc:
        raise _fail(exc) from exc
