"""The ``hygie`` command: one sub-command group per service, plus serve and demo.

This is one of the two modules that know every service (with ``app.py``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import click
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from hygie.channels import cli as channels_cli
from hygie.channels.errors import ChannelError
from hygie.config import load_settings
from hygie.devices import cli as devices_cli
from hygie.devices.errors import DevicesError
from hygie.epidemic import cli as epidemic_cli
from hygie.epidemic.errors import EpidemicError
from hygie.followup import cli as followup_cli
from hygie.followup.errors import FollowupError
from hygie.imaging import cli as imaging_cli
from hygie.imaging.errors import ImagingError
from hygie.mobility import cli as mobility_cli
from hygie.mobilization import cli as mobilization_cli
from hygie.mobilization.errors import MobilizationError
from hygie.platform import OPEN_HOOKS
from hygie.scheduling import cli as scheduling_cli
from hygie.scheduling.errors import SchedulingError
from hygie.security import cli as security_cli
from hygie.security import operations_cli as security_operations_cli
from hygie.security.installation import install as install_security
from hygie.store import cli as store_cli
from hygie.store.outcomes import FhirError
from hygie.tracing import cli as tracing_cli
from hygie.tracing.errors import TracingError


def database_problem(exc: DBAPIError) -> str:
    """One line that tells an operator what to do about a database error.

    Most often a command was run on a database that ``hygie migrate`` has not brought
    to the current schema (a table is missing); else the database is out of reach.
    """
    from hygie.store.migrations import is_current

    settings = load_settings()
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        engine = create_engine(settings.database_url)
        try:
            current = is_current(engine)
        finally:
            engine.dispose()
    except DBAPIError as reaching:
        first = str(reaching.orig).strip().splitlines()[0] if reaching.orig else ""
        return f"cannot reach the database {where}: {first}"
    if not current:
        return (f"the database {where} does not have the current schema: "
                "run `hygie migrate` first (`hygie serve` and `hygie demo` migrate it themselves)")
    first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return f"database error on {where}: {first}"


#: What the services raise to refuse a request (their API answers them with a 4xx):
#: from a command, the message alone is what the operator needs.
REFUSALS: tuple[type[Exception], ...] = (
    FhirError, ChannelError, DevicesError, EpidemicError, FollowupError, ImagingError,
    MobilizationError, SchedulingError, TracingError,
)


class _Commands(click.Group):
    """The ``hygie`` group: a refusal or a database error reaches the operator as one
    clear line (``Error: ...``, exit status 1), never as a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            raise click.ClickException(database_problem(exc)) from exc
        except REFUSALS as exc:
            raise click.ClickException(str(exc) or type(exc).__name__) from exc


@click.group(cls=_Commands)
@click.version_option(package_name="hygie")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Hygie: e-health platform for a hospital territory in a health crisis."""
    # every platform a command opens stores, reads and audits through the security layer
    if install_security not in OPEN_HOOKS:
        OPEN_HOOKS.append(install_security)
        ctx.call_on_close(lambda: OPEN_HOOKS.remove(install_security))


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: settings.host).")
@click.option("--port", default=None, type=int, help="Port (default: settings.port).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the platform over HTTP (uvicorn), migrating the schema first."""
    import uvicorn

    from hygie.platform import open_platform
    from hygie.store.migrations import upgrade
    from hygie.store.server import open_store

    settings = load_settings()
    platform = open_platform(settings)
    upgrade(platform.engine)
    open_store(platform).repository.optimize()  # type: ignore[attr-defined]
    platform.close()
    os.environ.setdefault("HYGIE_CHANNELS_AUTOSTART", "1")  # simulators and dispatcher
    uvicorn.run(
        "hygie.app:serve_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    description: str


def _demo_logins(territory: list[dict]) -> list[tuple[DemoLogin, dict]]:
    """Demo accounts tied to people of the generated territory (demo passwords)."""
    roles = [r for r in territory if r["resourceType"] == "PractitionerRole"]

    def role(code: str) -> dict:
        return next(r for r in roles if any(c.get("code") == code for cc in r["code"]
                                            for c in cc.get("coding", [])))

    doctor, nurse, radiologist = role("309294001"), role("224547003"), role("66862007")
    logins = []
    for username, password, who, kind, roles_, scopes in (
        ("admin", "hygie-admin-demo", None, "admin", ["admin"], "user/*.cruds"),
        ("urgentiste", "hygie-urgences-demo", doctor, "practitioner", ["physician"],
         "user/*.cruds"),
        ("infirmiere", "hygie-infirmiere-demo", nurse, "practitioner", ["nurse"],
         "user/*.rs user/Observation.cu user/Flag.u"),
        ("radiologue", "hygie-radiologie-demo", radiologist, "practitioner", ["physician"],
         "user/*.cruds"),
    ):
        display = who["practitioner"]["display"] if who else "Administrateur de démonstration"
        text = who["code"][0].get("text", "") if who else "administrateur"
        logins.append((DemoLogin(username, password, f"{display} ({text})"), {
            "kind": kind, "roles": roles_, "scopes": scopes, "display": display,
            "fhir_user": who["practitioner"]["reference"] if who else None,
            "hospital": who["organization"]["reference"].split("/")[1] if who else None,
        }))
    return logins


#: What ``hygie demo`` adds once the store holds the territory: (what, "module:function"),
#: run in this order; each function takes the open platform, is idempotent and returns
#: a line saying what it did.
DEMO_SEEDERS: list[tuple[str, str]] = [
    ("appointments", "hygie.scheduling.demo:seed_demo"),
    ("follow-up", "hygie.followup.demo:seed_demo"),
    ("mobilization", "hygie.mobilization.demo:seed_demo"),
    ("mobility", "hygie.mobility.demo:seed_demo"),
    ("test sites", "hygie.tracing.demo:seed_demo"),
    ("imaging", "hygie.imaging.demo:seed_demo"),
]


@main.command()
@click.option("--patients", default=2000, show_default=True, help="Patients to generate.")
@click.option("--seed", default=2020, show_default=True, help="Random seed of the generator.")
@click.option("--serve/--no-serve", "then_serve", default=True, help="Serve once seeded.")
def demo(patients: int, seed: int, then_serve: bool) -> None:
    """Seed a fictional hospital territory (once), print the logins, and serve it."""
    from tqdm import tqdm

    from hygie.platform import open_platform
    from hygie.security.users import create_user, get_user
    from hygie.store.migrations import upgrade
    from hygie.store.seeding import seed_store
    from hygie.store.server import open_store

    settings = load_settings()
    platform = open_platform(settings)
    upgrade(platform.engine)
    repository = open_store(platform).repository
    with tqdm(unit="res", desc="seeding the demo territory") as bar:
        result = seed_store(repository, patients=patients, seed=seed,  # type: ignore[arg-type]
                            progress=bar.update)
    if result.already_seeded:
        click.echo("The demo territory is already in the store; nothing written.")
    logins = _demo_logins(result.territory)
    for login, account in logins:
        if get_user(platform.engine, login.username) is None:
            create_user(platform.engine, login.username, login.password, **account)
    for what, target in DEMO_SEEDERS:
        module, _, name = target.partition(":")
        click.echo(f"{what}: {getattr(importlib.import_module(module), name)(platform)}")
    platform.close()
    url = settings.base_url
    click.echo("")
    click.echo(f"Hygie is ready at {url}/  (FHIR API at {url}/fhir)")
    click.echo("Demo logins (fictional people, demo passwords):")
    for login, _account in logins:
        click.echo(f"  {login.username:<12} {login.password:<24} {login.description}")
    if not then_serve:
        click.echo("")
        return
    from hygie.devices import demo as icu_demo

    icu = None
    try:
        icu = icu_demo.start(settings)
    except RuntimeError as exc:
        click.echo(f"ICU: no simulated devices ({exc})", err=True)
    else:
        click.echo(f"ICU: {icu_demo.MONITORS} monitors and {icu_demo.VENTILATORS} ventilators "
                   f"simulated, sending to the devices gateway on port {icu.port} (board at "
                   f"{url}/devices/)")
    click.echo("")
    try:
        click.get_current_context().invoke(serve)
    finally:
        if icu is not None:
            icu.stop()


main.add_command(store_cli.migrate)
main.add_command(store_cli.import_command)
main.add_command(channels_cli.group)
main.add_command(devices_cli.group)
main.add_command(epidemic_cli.group)
main.add_command(followup_cli.group)
main.add_command(imaging_cli.group)
main.add_command(mobility_cli.group)
main.add_command(mobilization_cli.group)
main.add_command(tracing_cli.group)
main.add_command(scheduling_cli.group)
for _group in security_cli.GROUPS:  # hygie token / client / user
    main.add_command(_group)
for _command in security_operations_cli.COMMANDS:  # audit, keys, backup, restore, research
    main.add_command(_command)
