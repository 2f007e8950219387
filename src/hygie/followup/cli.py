"""``hygie followup``: the worker, protocols, enrollments and alerts from a terminal."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from hygie.config import load_settings


def _service() -> Any:
    from hygie.followup.engine import FollowupService, Options
    from hygie.platform import open_platform
    from hygie.store.server import open_store

    platform = open_platform(load_settings())
    open_store(platform)
    service = FollowupService(platform, Options(worker=False))
    platform.parts["followup"] = service
    service.install_protocols()
    return service


@click.group(name="followup")
def group() -> None:
    """Remote follow-up of patients at home by SMS."""


@group.command("seed-demo")
def seed_demo() -> None:
    """Enroll a few demo patients (run after hygie demo's seeding)."""
    from hygie.followup.demo import seed_demo as seed

    service = _service()
    try:
        click.echo(seed(service.platform))
    except ValueError as exc:
        raise click.ClickException(f"{exc} (run `hygie demo` first)") from None
    finally:
        service.platform.close()


@group.command()
@click.option("--loop/--once", default=True, help="Keep running (default) or one pass.")
def worker(loop: bool) -> None:
    """Start due sessions, fire timers, escalate, and take answers (without the server).

    Answers are taken here when no dispatcher runs in this process: the channels
    dispatcher (hygie serve or hygie channels worker) must still send the messages.
    """
    service = _service()
    service.register()
    try:
        while True:
            done = service.run_once()
            done["answers"] = service.channels.deliver_answers()
            click.echo(" ".join(f"{k}={v}" for k, v in done.items()))
            if not loop:
                return
            if not any(done.values()):
                time.sleep(service.options.worker_interval_s)
    except KeyboardInterrupt:
        pass
    finally:
        service.platform.close()


@group.command()
def status() -> None:
    """Active follow-ups and open alerts per level."""
    service = _service()
    try:
        counts = service.counts()
        click.echo(f"active follow-ups: {counts.pop('active')}")
        for key in ("level3", "level2", "level1"):
            click.echo(f"open alerts {key}: {counts.get(key, 0)}")
    finally:
        service.platform.close()


@group.command()
@click.argument("protocol_id", required=False)
@click.option(
    "--save",
    "source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Save (create or edit) the protocol from this JSON file.",
)
def protocol(protocol_id: str | None, source: Path | None) -> None:
    """List protocols, print one as JSON, or save one from a file (--save)."""
    from hygie.followup.errors import FollowupError
    from hygie.followup.protocols import protocol_definition

    service = _service()
    try:
        if source is not None:
            saved = service.save_protocol(json.loads(source.read_text()), by="cli")
            click.echo(f"{saved.id}: version {saved.version} saved")
        elif protocol_id:
            click.echo(
                json.dumps(
                    protocol_definition(service.protocol(protocol_id)), ensure_ascii=False, indent=2
                )
            )
        else:
            for p in service.protocols():
                click.echo(f"{p.id}\tv{p.version}\t{p.title}\t{', '.join(p.schedule.times)}")
    except (FollowupError, json.JSONDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        service.platform.close()


@group.command()
@click.argument("patient")
@click.option("--phone", required=True, help="Mobile number of the patient.")
@click.option("--protocol", "protocol_id", default="covid19", show_default=True)
@click.option("--start", required=True, help="First day (YYYY-MM-DD).")
@click.option("--end", default=None, help="Last day (default: the protocol's length).")
@click.option("--team", default=None, help="CareTeam told of alerts.")
@click.option("--language", default="fr", type=click.Choice(["fr", "en"]))
@click.option("--consent/--no-consent", default=False, help="The patient consented (required).")
def enroll(
    patient: str,
    phone: str,
    protocol_id: str,
    start: str,
    end: str | None,
    team: str | None,
    language: str,
    consent: bool,
) -> None:
    """Follow PATIENT (a Patient id of the record) by SMS."""
    from hygie.followup.errors import FollowupError
    from hygie.followup.model import EnrollmentRequest

    service = _service()
    try:
        e = service.enroll(
            EnrollmentRequest(
                patient_id=patient,
                protocol_id=protocol_id,
                phone=phone,
                start=start,
                consent=consent,
                end=end,
                language=language,
                team=team,
            ),
            by="cli",
        )
        click.echo(f"{e.id}: {e.patient_name} followed from {e.start} to {e.end}")
    except FollowupError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        service.platform.close()


@group.command()
@click.option("--all", "show_all", is_flag=True, help="Resolved alerts too.")
def alerts(show_all: bool) -> None:
    """Alerts by severity (open and acknowledged by default)."""
    from hygie.followup.schedule import local_text

    service = _service()
    try:
        for a in service.alerts(None if show_all else "active"):
            click.echo(
                f"{a.id}\t{a.level.label}\t{a.status}\t{local_text(a.raised_ms)}\t"
                f"{'; '.join(a.reasons)}"
            )
    finally:
        service.platform.close()
