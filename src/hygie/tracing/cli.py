"""``hygie tracing ...``: operator commands of the contact-tracing server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hygie.config import load_settings
from hygie.platform import open_platform

if TYPE_CHECKING:
    from hygie.tracing.engine import TracingService


def _service() -> TracingService:
    try:
        from hygie.tracing.engine import TracingService
    except ImportError as exc:
        raise click.ClickException(
            f"{exc.name} is missing: pip install 'hygie[tracing]'") from exc
    svc = TracingService.for_platform(open_platform(load_settings()))
    svc.create_tables()
    return svc


@click.group(name="tracing")
def group() -> None:
    """Contact tracing (ROBERT), submission codes, test-site finder."""


@group.command("process")
def process() -> None:
    """Verify, score and delete every queued contact (the ROBERT batch)."""
    from hygie.tracing.contacts import process_contacts

    done = process_contacts(_service())
    click.echo(f"contacts: {done.contacts}  hellos: {done.hellos}  "
               f"exposures added: {done.exposures_added}  users updated: {done.users_updated}")
    for name, n in sorted(done.checks.items()):
        click.echo(f"  {name}: {n}")


@group.command("issue-code")
@click.option("--kind", type=click.Choice(["short", "long"]), default="short")
def issue(kind: str) -> None:
    """Issue a single-use submission code for a positive declaration."""
    from hygie.tracing.contacts import issue_code

    code = issue_code(_service(), kind)
    click.echo(code.code)


@group.command("keys")
@click.option("--forget-old", is_flag=True, help="Destroy daily keys past the retention.")
def keys(forget_old: bool) -> None:
    """List the days that have a server key (and destroy old ones on request)."""
    svc = _service()
    if forget_old:
        click.echo(f"destroyed: {svc.forget_old_keys()}")
    days = svc.keystore.days()
    click.echo(f"daily keys: {len(days)}" + (f" (days {days[0]} to {days[-1]})" if days else ""))


@group.command("import-sites")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_sites(path: Path) -> None:
    """Replace the test-site list with a CSV in the data.gouv.fr schema."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    stored, skipped = _service().import_sites(text)
    click.echo(f"imported: {stored}  skipped: {skipped}")


@group.command("nearest")
@click.argument("lat", type=click.FloatRange(-90, 90))
@click.argument("lon", type=click.FloatRange(-180, 180))
@click.option("--limit", default=5, show_default=True, type=click.IntRange(1, 100))
def nearest(lat: float, lon: float, limit: int) -> None:
    """Print the nearest test sites to a position."""
    for site, km in _service().site_index().nearest(lat, lon, limit):
        click.echo(f"{km:7.2f} km  {site.rs} — {site.adresse}")


@group.command("stats")
def stats() -> None:
    """Counts of registrations, notifications, queued contacts, codes and sites."""
    for k, v in _service().stats().items():
        click.echo(f"{k}: {v}")


@group.command("simulate")
@click.option("--phones", default=300, show_default=True)
@click.option("--days", default=10, show_default=True)
@click.option("--positives", default=0.05, show_default=True, help="Share declaring positive.")
@click.option("--seed", default=7, show_default=True)
def simulate(phones: int, days: int, positives: float, seed: int) -> None:
    """Run the phone simulator against a private server; print precision and recall."""
    import tempfile

    from hygie.tracing.simulator import SimulationConfig, run_simulation

    with tempfile.TemporaryDirectory() as tmp:
        result = run_simulation(SimulationConfig(n_phones=phones, days=days,
                                                 positive_share=positives, seed=seed),
                                Path(tmp))
    click.echo(result.summary())
