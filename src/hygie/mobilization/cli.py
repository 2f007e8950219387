"""``hygie mobilization``: load plans, import the directory, launch and close campaigns,
print a board, run the background work."""

from __future__ import annotations

import time
from pathlib import Path

import click

from hygie.config import load_settings


def _service():  # type: ignore[no-untyped-def]
    from hygie.mobilization.engine import MobilizationService, Options
    from hygie.platform import open_platform
    from hygie.store.server import open_store

    platform = open_platform(load_settings())
    open_store(platform)
    return MobilizationService(platform, Options(worker=False))


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group(name="mobilization")
def group() -> None:
    """Emergency staff mobilization (Plan Blanc)."""


@group.command("import-staff")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_staff(path: Path) -> None:
    """Import staff from a CSV file (Practitioner + PractitionerRole in the store)."""
    from hygie.mobilization.errors import MobilizationError

    service = _service()
    try:
        report = service.import_csv(path.read_bytes())
    except MobilizationError as exc:
        raise _fail(exc) from exc
    finally:
        service.platform.close()
    click.echo(f"{report.lines} lines, {report.written} written, {len(report.errors)} refused")
    for line, error in report.errors[:50]:
        click.echo(f"  line {line}: {error}", err=True)


@group.command("sync-directory")
def sync_directory() -> None:
    """Rebuild the directory from the store's PractitionerRoles."""
    service = _service()
    try:
        click.echo(f"{service.sync_directory()} directory entries")
    finally:
        service.platform.close()


@group.command("load-plan")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load_plan(path: Path) -> None:
    """Create or replace a plan from a JSON or TOML file."""
    from hygie.mobilization.errors import MobilizationError
    from hygie.mobilization.plans import read_plan_file

    service = _service()
    try:
        plan = service.save_plan(read_plan_file(path.read_text(encoding="utf-8"), path.suffix))
    except MobilizationError as exc:
        raise _fail(exc) from exc
    finally:
        service.platform.close()
    click.echo(f"{plan.id}: version {plan.version}, {len(plan.levels)} level(s)")


@group.command("plans")
def plans() -> None:
    """List the plans and their levels."""
    service = _service()
    try:
        for plan in service.plans():
            click.echo(f"{plan.id}  {plan.name}  (v{plan.version})")
            for level in plan.levels:
                needs = ", ".join(
                    f"{r.quota} x {r.role}" + (f" @{r.unit}" if r.unit else "")
                    for r in level.requests
                )
                click.echo(f"  level {level.number} {level.name}: {needs}")
    finally:
        service.platform.close()


@group.command()
@click.argument("plan_id")
@click.option("--level", type=int, required=True, help="Level of the plan to launch.")
@click.option("--exercise/--real", required=True, help="A drill, or a real alert.")
@click.option("--note", default=None, help="Why (kept with the campaign).")
@click.option("--by", "launched_by", default=None, help="Who launches (default: $USER).")
@click.option(
    "--yes", "confirmed", is_flag=True, help="Skip the prompt (confirms with the mode's word)."
)
def launch(
    plan_id: str,
    level: int,
    exercise: bool,
    note: str | None,
    launched_by: str | None,
    confirmed: bool,
) -> None:
    """Launch a plan level. Asks to type EXERCICE or ALERTE to confirm."""
    import getpass

    from hygie.mobilization.engine import confirmation_word
    from hygie.mobilization.errors import MobilizationError

    word = confirmation_word(exercise)
    answer = (
        word
        if confirmed
        else click.prompt(f"{'Exercise' if exercise else 'REAL ALERT'}: type {word} to confirm")
    )
    service = _service()
    try:
        campaign = service.launch(
            plan_id,
            level,
            exercise=exercise,
            confirm=answer,
            launched_by=launched_by or f"{getpass.getuser()} (cli)",
            note=note,
        )
    except MobilizationError as exc:
        raise _fail(exc) from exc
    finally:
        service.platform.close()
    click.echo(
        f"campaign {campaign.id} launched ({word.lower()}): "
        f"{service.platform.settings.base_url}/mobilization/campaigns/{campaign.id}"
    )


@group.command()
@click.argument("campaign_id")
@click.option("--by", "closed_by", default=None, help="Who closes (default: $USER).")
@click.option("--yes", "confirmed", is_flag=True, help="Do not ask.")
def close(campaign_id: str, closed_by: str | None, confirmed: bool) -> None:
    """Close a campaign: everyone asked is stood down."""
    import getpass

    from hygie.mobilization.errors import MobilizationError

    if not confirmed:
        click.confirm("Stand everyone down and close the campaign?", abort=True)
    service = _service()
    try:
        service.close(
            campaign_id, closed_by=closed_by or f"{getpass.getuser()} (cli)", confirm=True
        )
    except MobilizationError as exc:
        raise _fail(exc) from exc
    finally:
        service.platform.close()
    click.echo(f"campaign {campaign_id} closed")


@group.command()
@click.argument("campaign_id")
def board(campaign_id: str) -> None:
    """Print a campaign's board."""
    from hygie.mobilization.errors import MobilizationError

    service = _service()
    try:
        data = service.board(campaign_id)
    except MobilizationError as exc:
        raise _fail(exc) from exc
    finally:
        service.platform.close()
    c = data["campaign"]
    click.echo(f"[{c['mode']}] {c['plan']} level {c['level']} ({c['status']})")
    for r in data["requests"]:
        click.echo(
            f"  {r['role']} / {r['unit']}: {r['confirmed']}/{r['quota']} confirmed, "
            f"{r['declined']} declined, {r['pending']} pending, {r['needed']} needed "
            f"({r['status']}, by {r['deadline']})"
        )
    for a in data["arrivals"]:
        click.echo(f"  arrival {a['eta'] or '?'}  {a['name']} ({a['unit']})")


@group.command("seed-demo")
def seed_demo_command() -> None:
    """Save the demo hospitals' plans and read the directory from the demo store."""
    from hygie.mobilization.demo import seed_demo

    service = _service()
    try:
        click.echo(seed_demo(service.platform))
    finally:
        service.platform.close()


@group.command()
@click.option("--loop/--once", default=True, help="Keep running.")
def worker(loop: bool) -> None:
    """Run timers, answers and hand-over in this process (when no server runs them)."""
    service = _service()
    service.register_answers()
    try:
        while True:
            service.channels.deliver_answers()
            done = service.run_once()
            if not loop:
                click.echo(" ".join(f"{k}={v}" for k, v in done.items()))
                return
            time.sleep(service.options.worker_interval_s)
    finally:
        service.platform.close()
