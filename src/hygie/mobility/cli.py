"""``hygie mobility``: generate synthetic events, run the daily job, validate, report, purge."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from hygie.config import load_settings


def _root(root: str | None) -> Path:
    if root:
        return Path(root)
    settings = load_settings()
    return Path(settings.extra.get("mobility_root") or settings.var_dir / "mobility")


def _geo():  # type: ignore[no-untyped-def]
    from hygie.mobility.geography import find_geo_dir, load_geography

    return load_geography(find_geo_dir(load_settings().extra.get("mobility_geo_dir")))


class IsoDay(click.ParamType):
    """A day written YYYY-MM-DD: refused by click, with the reason, when it is not one."""

    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            self.fail(f"{value!r} is not a day (YYYY-MM-DD): {exc}", param, ctx)


DAY = IsoDay()


root_option = click.option("--root", default=None,
                           help="Data folder (default: <var_dir>/mobility).")


@click.group("mobility")
def group() -> None:
    """Anonymous population presence and mobility from mobile-network events."""


@group.command()
@click.option("--devices", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="Devices of the operator.")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366),
              help="Days to generate.")
@click.option("--start", default="2020-03-09", show_default=True, type=DAY, help="First day.")
@click.option("--scenario", type=click.Choice(["normal", "lockdown"]), default="normal",
              show_default=True)
@click.option("--market-share", default=0.40, show_default=True,
              type=click.FloatRange(0, 1, min_open=True),
              help="Share of the population whose devices the operator sees.")
@click.option("--seed", default=2020, show_default=True)
@root_option
def generate(devices: int, days: int, start: dt.date, scenario: str, market_share: float,
             seed: int, root: str | None) -> None:
    """Write synthetic network events (Parquet) and their ground truth."""
    from hygie.mobility import storage
    from hygie.mobility.generator import GeneratorConfig
    from hygie.mobility.generator import generate as run_generator

    out = _root(root)
    cfg = GeneratorConfig(devices=devices, days=days, start=start,
                          scenario=scenario, market_share=market_share, seed=seed)
    summary = run_generator(_geo(), out, cfg)
    for day in storage.raw_days(out):
        storage.mark_received(storage.events_dir(out, day))
    events = summary["events_per_day"]
    click.echo(f"{summary['devices']:,} devices, {summary['persons']:,} persons, "
               f"{sum(events.values()):,} events over {len(events)} days -> {out}")


@group.command()
@click.option("--date", "day", default=None, type=DAY,
              help="Day to process (default: every raw day).")
@click.option("--engine", type=click.Choice(["duckdb", "pyspark"]), default="duckdb",
              show_default=True)
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="Engine threads (default: all).")
@click.option("--min-count", default=20, show_default=True, type=click.IntRange(min=1),
              help="Smallest published group, in devices.")
@click.option("--method", type=click.Choice(["suppress", "merge"]), default="suppress",
              show_default=True)
@click.option("--epsilon", default=None, type=click.FloatRange(0, min_open=True),
              help="Differential privacy budget of each daily release (off by default).")
@root_option
def run(day: dt.date | None, engine: str, threads: int | None, min_count: int, method: str,
        epsilon: float | None, root: str | None) -> None:
    """Aggregate raw events into protected daily releases."""
    from hygie.mobility import engines, release, storage
    from hygie.mobility.model import PrivacyRule

    out = _root(root)
    rule = PrivacyRule(min_count=min_count, method=method, epsilon=epsilon)
    days = [day] if day else storage.raw_days(out)
    if not days:
        raise click.ClickException(f"no raw events under {out}")
    eng = engines.connect(engine, threads=threads)
    geo = _geo()
    try:
        for d in days:
            try:
                m = release.publish_day(eng, out, geo, d, rule)
            except release.RawEventsNotFound as exc:
                raise click.ClickException(str(exc)) from exc
            rep = m.privacy_report
            click.echo(f"{d}: {m.devices:,} devices, epsilon {m.epsilon_total:.3g}, "
                       f"smallest group {rep['min_devices_published']}, "
                       f"unique devices {rep['uniqueness']['share_unique']:.2%}")
    finally:
        eng.close()


@group.command()
@root_option
def validate(root: str | None) -> None:
    """Compare releases with the generator's truth; exit 1 if a target is missed."""
    from hygie.mobility.validation import validate as run_validation

    report = run_validation(_root(root))
    click.echo(json.dumps(report, indent=2))
    if not report["passed"]:
        raise SystemExit(1)


@group.command()
@click.option("--date", "day", default=None, type=DAY,
              help="Day shown (default: last release).")
@click.option("--baseline", default=None, type=DAY,
              help="Reference day (default: first release).")
@click.option("--zone", default="75", show_default=True, help="Département of the series.")
@click.option("--format", "fmt", type=click.Choice(["html", "png"]), default="html",
              show_default=True)
@click.option("--out", default=".", show_default=True, help="Output folder.")
@root_option
def report(day: dt.date | None, baseline: dt.date | None, zone: str, fmt: str, out: str,
           root: str | None) -> None:
    """Render the dashboard (map, top flows, time series) as HTML or PNG."""
    from hygie.mobility import charts, storage

    data = _root(root)
    days = storage.release_days(data)
    if not days:
        raise click.ClickException(f"no release under {data}: run `hygie mobility run`")
    for asked in (day, baseline):
        if asked is not None and asked not in days:
            raise click.ClickException(
                f"no release for {asked}; released days: {days[0]} to {days[-1]}"
                + (f" ({len(days)} days)" if len(days) > 2 else ""))
    geo = _geo()
    if zone not in geo.dep_codes:
        raise click.ClickException(f"--zone {zone!r} is not a département code of the map "
                                   "(01 to 95, 2A, 2B)")
    path = charts.write_report(data, geo, day or days[-1], baseline or days[0],
                               Path(out), fmt=fmt, zone=zone)
    click.echo(str(path))


@group.command()
@root_option
def purge(root: str | None) -> None:
    """Delete raw events and day keys received more than 24 hours ago."""
    from hygie.mobility import storage

    days = storage.purge_raw(_root(root))
    click.echo(f"deleted raw events of {len(days)} day(s)")
