"""OAuth 2.0 clients: the services that obtain tokens with client credentials.

A client is registered once (``hygie client create``); its secret is shown at that
moment and stored only as an Argon2id hash. ``authenticate_client`` costs one Argon2
verification whether or not the client exists or is disabled, so that timing tells an
attacker nothing (RFC 6749 §10.10 asks for secrets that cannot be guessed; §2.3.1 for
client authentication).

Exception tree::

    ValueError
     +-- ClientError          a name or a scope list that cannot be registered
    LookupError
     +-- UnknownClient        no client has this id
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import RowMapping

from hygie.platform import write_transaction
from hygie.security import passwords
from hygie.security.scopes import ScopeError, ScopeSet
from hygie.security.tables import oauth_client

#: Longest client id looked up; longer ones cannot exist (the column is 64 wide).
_MAX_CLIENT_ID = 64


class ClientError(ValueError):
    """Raised when a client cannot be registered as asked; the message says why."""


class UnknownClient(LookupError):
    """Raised when an operation names a client id that is not registered."""


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client (never its secret)."""

    client_id: str
    name: str
    allowed_scopes: ScopeSet
    created: datetime
    disabled: bool = False
    #: Where the authorization code grant may redirect (exact match).
    redirect_uris: tuple[str, ...] = ()
    #: A public client (browser or mobile app) has no secret and must use PKCE.
    public: bool = False


@dataclass(frozen=True, slots=True)
class NewClient:
    """A client just registered, with its secret: the only time it can be read."""

    client: Client
    secret: str


def _client(row: RowMapping) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        allowed_scopes=ScopeSet.parse(row["allowed_scopes"]),
        created=datetime.fromtimestamp(row["created"] / 1e6, UTC),
        disabled=bool(row["disabled"]),
        redirect_uris=tuple((row["redirect_uris"] or "").split()),
        public=bool(row["public"]),
    )


def _check_redirect_uri(uri: str) -> None:
    """RFC 6749 §3.1.2: absolute, no fragment; https, or http on the loopback only."""
    parts = urlsplit(uri)
    if parts.fragment or not parts.netloc or any(ch.isspace() for ch in uri):
        raise ClientError(f"redirect URI {uri!r} must be absolute, without fragment or spaces")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ClientError(f"redirect URI {uri!r}: http is allowed on the loopback only")
    if parts.scheme not in ("http", "https"):
        raise ClientError(f"redirect URI {uri!r} must use https")


def create_client(engine: Engine, name: str, scopes: str | Iterable[str], *,
                  redirect_uris: Iterable[str] = (), public: bool = False) -> NewClient:
    """Register a client allowed to request ``scopes``; returns it with its secret.

    A public client gets no secret (``NewClient.secret`` is empty): it authenticates
    nothing and proves possession with PKCE, and may not use client credentials.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise ClientError("a client name is 1 to 200 characters")
    try:
        allowed = ScopeSet.parse(scopes)
    except ScopeError as exc:
        raise ClientError(str(exc)) from None
    if not allowed:
        raise ClientError("a client needs at least one allowed scope")
    uris = tuple(dict.fromkeys(redirect_uris))
    for uri in uris:
        _check_redirect_uri(uri)
    if public and not uris:
        raise ClientError("a public client needs at least one redirect URI")
    if public and any(s.context == "system" for s in allowed.resource_scopes):
        raise ClientError("a public client cannot hold system/ scopes")
    client_id = "c_" + secrets.token_hex(10)
    secret = "" if public else secrets.token_urlsafe(32)
    created = time.time_ns() // 1000
    with write_transaction(engine) as conn:
        conn.execute(insert(oauth_client).values(
            client_id=client_id, name=name,
            secret_hash=passwords.hash_secret(secret or secrets.token_urlsafe(32)),
            allowed_scopes=str(allowed), created=created, disabled=False,
            redirect_uris=" ".join(uris), public=public,
        ))
    client = Client(client_id, name, allowed, datetime.fromtimestamp(created / 1e6, UTC),
                    redirect_uris=uris, public=public)
    return NewClient(client, secret)


def get_client(engine: Engine, client_id: str) -> Client | None:
    """The client with this id, or None."""
    if len(client_id) > _MAX_CLIENT_ID:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(oauth_client).where(oauth_client.c.client_id == client_id)
        ).mappings().first()
    return _client(row) if row else None


def authenticate_client(engine: Engine, client_id: str, secret: str) -> Client | None:
    """The client when ``secret`` is its secret and it is enabled, else None.

    Costs one Argon2 verification in every case (see the module docstring).
    """
    row = None
    if len(client_id) <= _MAX_CLIENT_ID:
        with engine.connect() as conn:
            row = conn.execute(
                select(oauth_client).where(oauth_client.c.client_id == client_id)
            ).mappings().first()
    matches = passwords.verify_secret(row["secret_hash"] if row else None, secret)
    if row is None or not matches or row["disabled"] or row["public"]:
        return None
    return _client(row)


def list_clients(engine: Engine) -> list[Client]:
    """Every registered client, by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(oauth_client).order_by(oauth_client.c.name, oauth_client.c.client_id)
        ).mappings().all()
    return [_client(r) for r in rows]


def disable_client(engine: Engine, client_id: str) -> None:
    """Refuse any further token to this client (tokens already issued run to ``exp``)."""
    with write_transaction(engine) as conn:
        result = conn.execute(update(oauth_client)
                              .where(oauth_client.c.client_id == client_id)
                              .values(disabled=True))
    if result.rowcount == 0:
        raise UnknownClient(f"no client {client_id!r}")
