"""The ``hygie`` command: one sub-command group per service, plus serve and demo.

This is one of the two modules that know every service (with ``app.py``).
"""

from __future__ import annotations

import click

from hygie.config import load_settings
from hygie.epidemic import cli as epidemic_cli
from hygie.security import cli as security_cli
from hygie.store import cli as store_cli
from hygie.tracing import cli as tracing_cli


@click.group()
@click.version_option(package_name="hygie")
def main() -> None:
    """Hygie: e-health platform for a hospital territory in a health crisis."""


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: settings.host).")
@click.option("--port", default=None, type=int, help="Port (default: settings.port).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the platform over HTTP (uvicorn), migrating the schema first."""
    import uvicorn

    from hygie.platform import open_platform
    from hygie.store.migrations import upgrade

    settings = load_settings()
    platform = open_platform(settings)
    upgrade(platform.engine)
    platform.close()
    uvicorn.run(
        "hygie.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@main.command()
@click.option("--patients", default=2000, show_default=True, help="Patients to generate.")
@click.option("--seed", default=2020, show_default=True, help="Random seed of the generator.")
@click.option("--serve/--no-serve", "then_serve", default=True, help="Serve once seeded.")
def demo(patients: int, seed: int, then_serve: bool) -> None:
    """Seed a fictional hospital territory (once), print the logins, and serve it."""
    from hygie.demo import seed_demo

    settings = load_settings()
    logins = seed_demo(settings, patients=patients, seed=seed)
    url = settings.base_url
    click.echo("")
    click.echo(f"Hygie is ready at {url}/  (FHIR API at {url}/fhir)")
    click.echo("Demo logins (fictional people, demo passwords):")
    for login in logins:
        click.echo(f"  {login.username:<12} {login.password:<16} {login.description}")
    click.echo("")
    if then_serve:
        click.get_current_context().invoke(serve)


main.add_command(store_cli.migrate)
main.add_command(store_cli.import_command)
main.add_command(epidemic_cli.group)
main.add_command(tracing_cli.group)
for _group in security_cli.GROUPS:  # hygie token / client / user
    main.add_command(_group)
