"""Store sub-commands: ``hygie migrate`` and ``hygie import FILE.ndjson``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from hygie.config import load_settings


@click.command()
def migrate() -> None:
    """Bring the database schema to the latest version."""
    from hygie.platform import open_platform
    from hygie.store.migrations import upgrade

    platform = open_platform(load_settings())
    upgrade(platform.engine)
    click.echo(f"schema up to date on {platform.engine.url.render_as_string(hide_password=True)}")


@click.command("import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Processes that validate and index (default: one per CPU).",
)
def import_command(files: tuple[Path, ...], workers: int | None) -> None:
    """Import FHIR resources from NDJSON files (one resource per line).

    Resources keep their ids: a new id is created, a known one gets a new version.
    Lines that fail validation are reported with their number and skipped.
    """
    from tqdm import tqdm

    from hygie.platform import open_platform
    from hygie.store.bulk import import_ndjson
    from hygie.store.migrations import upgrade
    from hygie.store.server import open_store

    platform = open_platform(load_settings())
    upgrade(platform.engine)
    repository = open_store(platform).repository
    failed = 0
    for path in files:
        total = sum(1 for _ in path.open("rb"))
        started = time.perf_counter()
        with path.open("rb") as fh, tqdm(total=total, unit="res", desc=path.name) as bar:
            report = import_ndjson(repository, fh, workers=workers, progress=bar.update)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        click.echo(
            f"{path.name}: {report.created} created, {report.updated} updated, "
            f"{len(report.errors)} refused in {elapsed:.1f} s "
            f"({report.written / max(elapsed, 1e-9):,.0f} resources/s)"
        )
        for number, why in report.errors[:20]:
            click.echo(f"  line {number}: {why}", err=True)
        if len(report.errors) > 20:
            click.echo(f"  ... and {len(report.errors) - 20} more", err=True)
        failed += len(report.errors)
    if failed:
        raise SystemExit(1)
