"""``hygie scheduling``: publish the demo calendar, generate slots, run background work."""

from __future__ import annotations

import time
from datetime import date, timedelta

import click

from hygie.config import load_settings


def _service():  # type: ignore[no-untyped-def]
    from hygie.platform import open_platform
    from hygie.scheduling.engine import Options, SchedulingService
    from hygie.store.server import open_store

    platform = open_platform(load_settings())
    open_store(platform)
    return SchedulingService(platform, Options(worker=False))


@click.group(name="scheduling")
def group() -> None:
    """Appointments and online pre-admission."""


@group.command("seed-demo")
@click.option("--days", default=90, show_default=True, help="Days of slots to open.")
def seed_demo(days: int) -> None:
    """Give the demo territory's doctors agendas, rules and slots (run after hygie demo)."""
    from hygie.platform import open_platform
    from hygie.scheduling.demo import seed_demo as seed

    platform = open_platform(load_settings())
    try:
        click.echo(seed(platform, days))
    except ValueError as exc:
        raise click.ClickException(f"{exc} (run `hygie demo` first)") from None
    finally:
        platform.close()


@group.command()
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day (default: today).")
@click.option("--days", default=90, show_default=True, help="How many days.")
@click.option("--agenda", default=None, help="Only this agenda.")
def generate(first: object, days: int, agenda: str | None) -> None:
    """Open the slots the opening rules give (idempotent: run it nightly)."""
    service = _service()
    try:
        start = first.date() if first else date.today()  # type: ignore[attr-defined]
        created = service.generate(start, start + timedelta(days=days), agenda)
        click.echo(f"{created} new slots")
    finally:
        service.platform.close()


@group.command()
@click.argument("site")
@click.argument("max_arrivals", type=int)
@click.option("--window", default=15, show_default=True, help="Window in minutes.")
def cap(site: str, max_arrivals: int, window: int) -> None:
    """Allow at most MAX_ARRIVALS people expected at SITE in any window."""
    service = _service()
    try:
        service.put_site_cap(site, max_arrivals, window)
        click.echo(f"{site}: at most {max_arrivals} arrivals in any {window} minutes")
    finally:
        service.platform.close()


@group.command("run-jobs")
@click.option("--loop/--once", default=False, help="Keep running every few seconds.")
def run_jobs(loop: bool) -> None:
    """Send due reminders, pass expired offers on, write Appointments to the store."""
    service = _service()
    try:
        while True:
            done = service.run_once()
            click.echo(" ".join(f"{k}={v}" for k, v in done.items()))
            if not loop:
                return
            time.sleep(service.options.worker_interval_s)
    finally:
        service.platform.close()
