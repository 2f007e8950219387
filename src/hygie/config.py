"""One settings object for the whole platform.

Values come, by increasing priority, from the embedded defaults below, an optional
TOML file (``HYGIE_CONFIG``, else ``./hygie.toml`` when it exists) and environment
variables named ``HYGIE_<FIELD>`` in upper case. The defaults run the platform with
nothing else installed: a SQLite file under ``./var`` and keys generated there.

Every limit the platform enforces (body size, page size, Bundle entries...) is a
field here, so that an operator can read in one place what a client may send.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints


@dataclass(frozen=True)
class Settings:
    """Platform settings; see the module docstring for where values come from."""

    #: SQLAlchemy URL of the one database (SQLite file by default, PostgreSQL in production).
    database_url: str = "sqlite:///./var/hygie.db"
    #: Connections each process keeps open to a database server, and how many more it
    #: may open at a peak (PostgreSQL; size them so that processes x (pool + overflow)
    #: stays under the server's ``max_connections``, 100 by default). Each request a
    #: server worker answers at once holds a connection, and so does its audit writer:
    #: with 16 requests at once per worker, a pool of 10 opened and closed a connection
    #: (a new server process) for each request past it, and reads by id fell from about
    #: 2,300 to about 2,000 a second, some requests waiting over 2 s.
    database_pool_size: int = 20
    database_max_overflow: int = 10
    #: Directory for local state: the SQLite file, signing keys, bulk export files.
    var_dir: Path = Path("./var")
    #: Public base URL, used in Location headers, Bundle links and fullUrls.
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    # --- tokens ---------------------------------------------------------------
    #: Issuer (``iss``) written in and required from access tokens.
    token_issuer: str = "hygie"
    #: Lifetime of access tokens issued by /oauth/token, in seconds.
    access_token_lifetime_s: int = 900
    #: Lifetime of browser sessions, in seconds.
    session_lifetime_s: int = 8 * 3600

    #: Lifetime of refresh tokens (authorization code grant with offline_access), seconds.
    refresh_token_lifetime_s: int = 8 * 3600

    # --- security -------------------------------------------------------------
    #: Seal resource bodies at rest with AES-256-GCM (docs/security.md).
    encrypt_at_rest: bool = True
    #: Record every access in the hash-chained audit trail.
    audit: bool = True
    #: Staff (practitioners, administrators) must sign in with a TOTP second factor;
    #: those who have none yet are asked to enrol at sign-in.
    totp_for_staff: bool = False
    #: Failed sign-ins in a row that lock a username, and for how long (seconds).
    lockout_threshold: int = 5
    lockout_s: int = 900
    #: Requests per second (sustained, then burst) from one network address, and from
    #: one authenticated client; beyond: 429 with Retry-After.
    rate_per_address: float = 1000.0
    burst_per_address: int = 5000
    rate_per_client: float = 2000.0
    burst_per_client: int = 10000
    #: Sign-in attempts per minute from one network address.
    login_rate_per_minute: int = 30

    # --- limits ---------------------------------------------------------------
    #: Largest accepted request body, in bytes (413 beyond).
    max_body_bytes: int = 16 * 1024 * 1024
    #: Largest accepted body for bulk import, in bytes.
    max_import_bytes: int = 2 * 1024 * 1024 * 1024
    #: Default and maximum page size of a search (``_count`` is clamped to the maximum).
    default_page_size: int = 20
    max_page_size: int = 1000
    #: Most entries accepted in one batch or transaction Bundle.
    max_bundle_entries: int = 10_000
    #: Most resources ``_include`` / ``_revinclude`` may add to one page.
    max_include: int = 5000
    #: Deepest JSON nesting accepted in a resource.
    max_json_depth: int = 64

    # --- search ---------------------------------------------------------------
    #: How ``_total`` is computed when the client does not ask: none, estimate or accurate.
    #: ``estimate`` counts up to ``estimate_total_cap`` matches and gives the exact total
    #: when there are no more, leaving it out otherwise: every search stays cheap.
    default_total: str = "estimate"
    estimate_total_cap: int = 1000

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (settings are immutable)."""
        return dataclasses.replace(self, **changes)


def _coerce(kind: Any, raw: Any) -> Any:
    """Turn a TOML or environment value into the field's declared type."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        return str(raw).strip().lower() in {"1", "true", "yes", "on"}
    if kind is int:
        return int(raw)
    if kind is Path:
        return Path(raw)
    if kind is str:
        return str(raw)
    return raw


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, TOML file, environment and explicit overrides."""
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    path = config_file or os.environ.get("HYGIE_CONFIG")
    if path is None and Path("hygie.toml").exists():
        path = "hygie.toml"
    names = {f.name for f in fields(Settings)}
    extra: dict[str, Any] = {}
    if path:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        for key, raw in data.get("hygie", data).items():
            if key in names and key != "extra":
                values[key] = _coerce(hints[key], raw)
            else:
                extra[key] = raw
    for f in fields(Settings):
        env = os.environ.get("HYGIE_" + f.name.upper())
        if env is not None and f.name != "extra":
            values[f.name] = _coerce(hints[f.name], env)
    for key, raw in overrides.items():
        values[key] = _coerce(hints[key], raw) if key in hints else raw
    if extra:
        values["extra"] = {**extra, **values.get("extra", {})}
    return Settings(**values)


class ReferenceDataNotFound(FileNotFoundError):
    """The reference data folder is missing: set HYGIE_SHARED_DATA to the ``shared/data``
    folder (the one holding ``fhir-r4/``, ``geo/``, ``epidemic/``...)."""


def find_shared_data(needs: str, configured: str | os.PathLike[str] | None = None) -> Path:
    """Locate the reference data folder that holds ``needs`` (e.g. ``geo/communes.json``).

    Order: an explicit folder (a service setting), ``$HYGIE_SHARED_DATA``, then the
    nearest ``shared/data`` above the working directory or above the installed package
    (the repository layout). An explicit folder that lacks ``needs`` is an error, never
    silently replaced by another one.
    """
    explicit = configured or os.environ.get("HYGIE_SHARED_DATA")
    if explicit:
        if (Path(explicit) / needs).exists():
            return Path(explicit)
        raise ReferenceDataNotFound(
            f"{needs} is not in the reference data folder {explicit} "
            "(HYGIE_SHARED_DATA or the service's setting)"
        )
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (p / "shared" / "data" for p in [start, *start.parents]):
            if (folder / needs).exists():
                return folder
    raise ReferenceDataNotFound(
        f"reference data not found ({needs}): set HYGIE_SHARED_DATA to the shared/data folder"
    )
