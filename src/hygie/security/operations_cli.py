"""Operator commands of the trust layer: ``hygie audit``, ``hygie keys``, ``hygie backup``,
``hygie restore`` and ``hygie research``.

* ``hygie audit verify``: walk the audit chain; prints each altered, removed or moved
  record and exits 1 when there is one;
* ``hygie audit reviews``: the emergency accesses waiting for review;
* ``hygie keys rotate``: a new data key, and every stored body re-sealed under it while
  the platform keeps running;
* ``hygie backup FILE`` / ``hygie restore FILE``: consistent online backup, sealed by the
  master key, and its restore into an empty database with a content-hash check;
* ``hygie research export FOLDER --project-key-file KEY``: the pseudonymised extract and
  its k-anonymity report.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.security.installation import SecurityParts, install

_PARIS = ZoneInfo("Europe/Paris")


@contextmanager
def _secured() -> Iterator[tuple[Platform, SecurityParts]]:
    platform = open_platform(load_settings())
    try:
        yield platform, install(platform)
    finally:
        platform.close()


# --- hygie audit ------------------------------------------------------------------------------


@click.group("audit")
def audit_group() -> None:
    """The audit trail: verification and reviews."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Check the whole chain; name every altered, removed or moved record."""
    from hygie.security.audit import verify

    with _secured() as (_platform, parts):
        report = verify(parts.audit_chain)
    for problem in report.problems:
        click.echo(f"FAIL {problem}")
    if report.problems:
        raise click.ClickException(f"{len(report.problems)} problem(s) in "
                                   f"{report.checked} audit records")
    click.echo(f"audit trail intact: {report.checked} records verified")


@audit_group.command("reviews")
def audit_reviews() -> None:
    """List the emergency accesses that nobody has reviewed yet."""
    from hygie.security.break_glass import pending_reviews

    with _secured() as (platform, _parts):
        grants = pending_reviews(platform.engine)
    for g in grants:
        when = g.created.astimezone(_PARIS).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{g.id}\t{when}\t{g.username}\tPatient/{g.patient_id}\t{g.reason}")
    click.echo(f"{len(grants)} emergency access(es) to review", err=True)


# --- hygie keys -------------------------------------------------------------------------------


@click.group("keys")
def keys_group() -> None:
    """Encryption keys of the data at rest."""


@keys_group.command("rotate")
@click.option("--settle", type=click.FloatRange(0, 600), default=None,
              help="Seconds to let running processes pick the new key up (default: 2x "
                   "their refresh interval).")
def keys_rotate(settle: float | None) -> None:
    """Make a new data key active and re-seal every stored body under it, online."""
    from hygie.security.encryption import BodyVault, rotate

    with _secured() as (platform, parts):
        vault = parts.vault or BodyVault(platform.engine, parts.master_key)
        started = time.perf_counter()
        key_id, report = rotate(platform.engine, vault, settle_s=settle)
    click.echo(f"data key {key_id} active; {report.resealed} bodies re-sealed of "
               f"{report.examined} examined in {time.perf_counter() - started:.1f} s; "
               f"{report.remaining} left under older keys")
    if report.remaining:
        raise click.ClickException("some bodies are still under older keys: run it again")


# --- hygie backup / restore --------------------------------------------------------------------


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(path: Path) -> None:
    """Write a consistent online backup of the whole database to PATH (sealed)."""
    from hygie.security.backup import backup

    if not path.parent.is_dir():
        raise click.ClickException(f"cannot write {path}: folder {path.parent} does not exist")
    with _secured() as (platform, parts):
        try:
            report = backup(platform.engine, path, parts.master_key)
        except OSError as exc:
            raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    click.echo(f"{path}: {report.rows} rows in {len(report.tables)} tables, "
               f"{path.stat().st_size:,} bytes in {report.seconds:.1f} s")
    click.echo(f"content hash: {report.content_hash}")


@click.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(path: Path) -> None:
    """Restore a backup into the (empty) database; checks its content hash."""
    from hygie.security.backup import BackupError, restore

    with _secured() as (platform, parts):
        try:
            report = restore(platform.engine, path, parts.master_key)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"restored {report.rows} rows in {len(report.tables)} tables in "
               f"{report.seconds:.1f} s")
    click.echo(f"content hash: {report.content_hash} (matches the backup)")


# --- hygie research ------------------------------------------------------------------------------


@click.group("research")
def research_group() -> None:
    """Pseudonymised extracts for research projects."""


@research_group.command("export")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--project-key-file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The project's secret key (at least 16 bytes); same key, same pseudonyms.")
@click.option("--min-k", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Smallest group of patients sharing the kept quasi-identifiers.")
@click.option("--max-shift-days", type=click.IntRange(1, 3650), default=180, show_default=True)
def research_export(folder: Path, project_key_file: Path, min_k: int,
                    max_shift_days: int) -> None:
    """Export every patient's record, pseudonymised, and print the k-anonymity report."""
    from hygie.security import audit
    from hygie.security.audit_sink import record_security_event
    from hygie.security.research import export
    from hygie.store.definitions import patient_compartment
    from hygie.store.server import open_store

    key = project_key_file.read_bytes().strip()
    with _secured() as (platform, parts):
        repository = open_store(platform).repository
        patients = (s.resource for s in repository.iter_resources(["Patient"]))
        resources = (s.resource for s in repository.iter_resources(
            sorted(patient_compartment())))
        try:
            result = export(patients, resources, folder, key, min_k=min_k,
                            max_shift_days=max_shift_days)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        record_security_event(
            parts.audit_writer, what="export", outcome=audit.SUCCESS,
            description=f"research export to {folder.name}: "
                        f"{result.report.exported_patients} patients, k={result.report.k}")
    for res_type, count in sorted(result.files.items()):
        click.echo(f"{res_type}.ndjson: {count}")
    for line in result.report.lines():
        click.echo(line)


#: Commands and groups ``hygie.cli`` adds to the ``hygie`` command.
COMMANDS = [audit_group, keys_group, backup_command, restore_command, research_group]
