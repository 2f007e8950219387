"""Sub-commands for identities: ``hygie token``, ``hygie client`` and ``hygie user``.

* ``hygie token create --scope ... --subject ...`` prints a signed access token, for an
  operator or a script (it needs only the signing key, not the database);
* ``hygie client create NAME --scope ...`` registers an OAuth client and prints its id
  and secret, the one time the secret can be read;
* ``hygie user create USERNAME --display ... --kind ... --role ... --scope ...`` creates
  a sign-in account (the password is prompted unless ``--password`` is given);
* ``list`` and ``disable`` under ``client`` and ``user``.

The database schema is managed by ``hygie migrate``; these commands only use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from zoneinfo import ZoneInfo

import click
from sqlalchemy import inspect

from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.security import clients, users
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeError, ScopeSet
from hygie.security.tables import app_user, oauth_client
from hygie.security.tokens import tokens_for

_PARIS = ZoneInfo("Europe/Paris")
_T = TypeVar("_T")


@contextmanager
def _platform(*, needs_tables: bool = True) -> Iterator[Platform]:
    platform = open_platform(load_settings())
    try:
        if needs_tables:
            present = set(inspect(platform.engine).get_table_names())
            if not {oauth_client.name, app_user.name} <= present:
                raise click.ClickException(
                    "the database has no account tables yet: run `hygie migrate` first")
        yield platform
    finally:
        platform.close()


def _scopes(values: tuple[str, ...]) -> ScopeSet:
    """Scopes from repeated ``--scope`` options, each possibly holding several words."""
    try:
        return ScopeSet.parse(" ".join(values))
    except ScopeError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None


def _paris(moment: object) -> str:
    return moment.astimezone(_PARIS).strftime("%Y-%m-%d %H:%M")  # type: ignore[attr-defined]


def _run(action: Callable[[], _T], *errors: type[Exception]) -> _T:
    """Run ``action``, turning the expected errors into a clean command-line message."""
    try:
        return action()
    except errors as exc:
        raise click.ClickException(str(exc)) from None


_SCOPE_HELP = "Scope (SMART syntax), repeatable; several may be given space-separated."

# --- hygie token ---------------------------------------------------------------------------


@click.group("token")
def token_group() -> None:
    """Access tokens signed by the platform."""


@token_group.command("create")
@click.option("--scope", "scope", multiple=True, required=True, help=_SCOPE_HELP)
@click.option("--subject", required=True, help="Who the token is for (sub).")
@click.option("--lifetime", type=click.IntRange(1, 366 * 86400), default=None,
              help="Lifetime in seconds (default: access_token_lifetime_s).")
@click.option("--client-id", default=None, help="client_id claim.")
@click.option("--kind", type=click.Choice([k.value for k in Kind]), default=Kind.SERVICE.value,
              show_default=True, help="Kind of principal.")
@click.option("--name", "display", default="", help="Display name (name claim).")
@click.option("--role", "roles", multiple=True, help="Role, repeatable.")
@click.option("--patient", default=None, help="Patient id in context (patient claim).")
@click.option("--fhir-user", default=None, help="FHIR reference of the user (fhirUser claim).")
@click.option("--hospital", default=None, help="Establishment (hospital claim).")
def token_create(scope: tuple[str, ...], subject: str, lifetime: int | None,
                 client_id: str | None, kind: str, display: str, roles: tuple[str, ...],
                 patient: str | None, fhir_user: str | None, hospital: str | None) -> None:
    """Print a signed access token with these claims."""
    principal = Principal(subject=subject, kind=Kind(kind), scopes=_scopes(scope),
                          client_id=client_id, display=display, roles=frozenset(roles),
                          patient=patient, fhir_user=fhir_user, hospital=hospital)
    with _platform(needs_tables=False) as platform:
        click.echo(tokens_for(platform).issue(principal, lifetime).token)


# --- hygie client ---------------------------------------------------------------------------


@click.group("client")
def client_group() -> None:
    """OAuth clients (services that get tokens with client credentials)."""


@client_group.command("create")
@click.argument("name")
@click.option("--scope", "scope", multiple=True, required=True, help=_SCOPE_HELP)
@click.option("--redirect-uri", "redirect_uris", multiple=True,
              help="Redirect URI for the authorization code grant, repeatable.")
@click.option("--public", is_flag=True,
              help="A browser or mobile app: no secret, PKCE instead.")
def client_create(name: str, scope: tuple[str, ...], redirect_uris: tuple[str, ...],
                  public: bool) -> None:
    """Register a client; prints its id and secret (shown only this once)."""
    allowed = _scopes(scope)
    with _platform() as platform:
        new = _run(lambda: clients.create_client(platform.engine, name, allowed,
                                                 redirect_uris=redirect_uris, public=public),
                   clients.ClientError)
    click.echo(f"client_id: {new.client.client_id}")
    if new.secret:
        click.echo(f"client_secret: {new.secret}")
        click.echo("Keep the secret now: it is stored hashed and cannot be shown again.",
                   err=True)


@client_group.command("list")
def client_list() -> None:
    """List the registered clients."""
    with _platform() as platform:
        found = clients.list_clients(platform.engine)
    for c in found:
        state = "disabled" if c.disabled else "active"
        click.echo(f"{c.client_id}\t{c.name}\t{state}\t{_paris(c.created)}\t{c.allowed_scopes}")


@client_group.command("disable")
@click.argument("client_id")
def client_disable(client_id: str) -> None:
    """Refuse further tokens to a client."""
    with _platform() as platform:
        _run(lambda: clients.disable_client(platform.engine, client_id), clients.UnknownClient)
    click.echo(f"client {client_id} disabled")


# --- hygie user -----------------------------------------------------------------------------


@click.group("user")
def user_group() -> None:
    """Sign-in accounts of staff, administrators and patients."""


@user_group.command("create")
@click.argument("username")
@click.option("--display", required=True, help="Name shown in the interface.")
@click.option("--kind", type=click.Choice([k.value for k in Kind if k is not Kind.SERVICE]),
              required=True, help="Kind of account.")
@click.option("--role", "roles", multiple=True, help="Role, repeatable.")
@click.option("--scope", "scope", multiple=True, help=_SCOPE_HELP)
@click.option("--fhir-user", default=None, help="FHIR reference, e.g. Practitioner/123.")
@click.option("--hospital", default=None, help="Establishment the user belongs to.")
@click.option("--password", default=None,
              help="Password (prompted, hidden, when absent; avoid on shared machines).")
def user_create(username: str, display: str, kind: str, roles: tuple[str, ...],
                scope: tuple[str, ...], fhir_user: str | None, hospital: str | None,
                password: str | None) -> None:
    """Create a sign-in account."""
    granted = _scopes(scope)
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _platform() as platform:
        user = _run(lambda: users.create_user(
            platform.engine, username, password, display=display, kind=kind, roles=roles,
            scopes=granted, fhir_user=fhir_user, hospital=hospital), users.AccountError)
    click.echo(f"user {user.username} created ({user.kind}, scopes: {user.scopes or 'none'})")


@user_group.command("list")
def user_list() -> None:
    """List the accounts."""
    with _platform() as platform:
        found = users.list_users(platform.engine)
    for u in found:
        state = "disabled" if u.disabled else "active"
        click.echo(f"{u.username}\t{u.display}\t{u.kind}\t{' '.join(sorted(u.roles))}\t"
                   f"{state}\t{u.scopes}")


@user_group.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Refuse further sign-ins to an account."""
    with _platform() as platform:
        _run(lambda: users.disable_user(platform.engine, username), users.UnknownAccount)
    click.echo(f"user {username} disabled")


@user_group.command("totp-reset")
@click.argument("username")
def user_totp_reset(username: str) -> None:
    """Forget an account's second factor: it enrols again at its next sign-in."""
    from sqlalchemy import update

    with _platform() as platform, platform.engine.begin() as conn:
        done = conn.execute(update(app_user).where(
            app_user.c.username == users.normalize_username(username)).values(
            totp_secret=None, totp_confirmed=False, totp_last_step=0)).rowcount
    if not done:
        raise click.ClickException(f"no account {username!r}")
    click.echo(f"second factor of {username} reset: enrolment at the next sign-in")


#: The groups ``hygie.cli`` adds to the ``hygie`` command.
GROUPS = [token_group, client_group, user_group]
