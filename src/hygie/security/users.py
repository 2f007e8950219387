"""Platform user accounts: staff, administrators and patients who sign in.

An account holds what the session token will carry (kind, roles, scopes, the FHIR
reference of the person, the hospital) and an Argon2id password hash. As for clients,
``authenticate_user`` costs one Argon2 verification whether the account exists, is
disabled or not, so the login page does not reveal which usernames exist. Hashes made
with weaker parameters are replaced on the next successful sign-in.

Exception tree::

    ValueError
     +-- AccountError         an account that cannot be created as asked
          +-- AccountExists   the username is taken
    LookupError
     +-- UnknownAccount       no account has this username
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from hygie.platform import write_transaction
from hygie.security import passwords
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeError, ScopeSet
from hygie.security.tables import app_user

#: Shortest password accepted (ANSSI recommends at least 12 characters for a password
#: that is the only factor; the second factor for staff comes with TOTP).
MIN_PASSWORD_LENGTH = 12
#: Longest password accepted: Argon2 takes any length, this only bounds the work.
MAX_PASSWORD_LENGTH = 1024

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,127}")
_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_FHIR_USER = re.compile(
    r"(Patient|Practitioner|PractitionerRole|RelatedPerson|Person)/([A-Za-z0-9\-.]{1,64})"
)
_USER_KINDS = (Kind.PRACTITIONER, Kind.PATIENT, Kind.ADMIN)


class AccountError(ValueError):
    """Raised when an account cannot be created as asked; the message says why."""


class AccountExists(AccountError):
    """Raised when the username is already taken."""


class UnknownAccount(LookupError):
    """Raised when an operation names a username that has no account."""


@dataclass(frozen=True, slots=True)
class User:
    """An account as the platform sees it (never its password hash)."""

    username: str
    display: str
    kind: Kind
    scopes: ScopeSet
    roles: frozenset[str] = field(default_factory=frozenset)
    fhir_user: str | None = None
    hospital: str | None = None
    created: datetime | None = None
    disabled: bool = False

    def principal(self) -> Principal:
        """The principal a session of this user stands for."""
        patient = None
        if self.fhir_user and self.fhir_user.startswith("Patient/"):
            patient = self.fhir_user.removeprefix("Patient/")
        return Principal(
            subject=self.username, kind=self.kind, scopes=self.scopes, display=self.display,
            roles=self.roles, patient=patient, fhir_user=self.fhir_user, hospital=self.hospital,
        )


def normalize_username(username: str) -> str:
    """The stored form of a username: NFKC, trimmed, lower case."""
    return unicodedata.normalize("NFKC", username).strip().lower()


def _user(row: RowMapping) -> User:
    return User(
        username=row["username"],
        display=row["display"],
        kind=Kind(row["kind"]),
        scopes=ScopeSet.parse(row["scopes"]),
        roles=frozenset(row["roles"].split()),
        fhir_user=row["fhir_user"],
        hospital=row["hospital"],
        created=datetime.fromtimestamp(row["created"] / 1e6, UTC),
        disabled=bool(row["disabled"]),
    )


def _check_account(kind: Kind, scopes: ScopeSet, fhir_user: str | None) -> None:
    """Refuse combinations that would grant more than the kind of person should have."""
    if kind not in _USER_KINDS:
        raise AccountError("a user is a practitioner, a patient or an admin "
                           "(services are OAuth clients)")
    if fhir_user is not None:
        match = _FHIR_USER.fullmatch(fhir_user)
        if match is None:
            raise AccountError(f"fhir_user {fhir_user!r} is not a reference such as "
                               "Practitioner/123 or Patient/456")
        if kind is Kind.PATIENT and match.group(1) != "Patient":
            raise AccountError("a patient's fhir_user must be a Patient reference")
    elif kind is Kind.PATIENT:
        raise AccountError("a patient account needs its Patient reference (fhir_user)")
    for scope in scopes.resource_scopes:
        if scope.context == "system":
            raise AccountError(f"scope {scope} is for services: users hold user/ or patient/ ones")
        if kind is Kind.PATIENT and scope.context != "patient":
            raise AccountError(f"scope {scope}: a patient holds patient/ scopes only")


def create_user(engine: Engine, username: str, password: str, *, display: str, kind: Kind | str,
                roles: Iterable[str] = (), scopes: str | Iterable[str] = "",
                fhir_user: str | None = None, hospital: str | None = None) -> User:
    """Create an account; raises ``AccountError`` (or ``AccountExists``) when it cannot."""
    username = normalize_username(username)
    if not _USERNAME.fullmatch(username):
        raise AccountError("a username is 1 to 128 characters: letters, digits and . _ @ + -")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
                           "characters long")
    display = display.strip()
    if not display or len(display) > 200:
        raise AccountError("a display name is 1 to 200 characters")
    try:
        kind = Kind(kind)
        granted = ScopeSet.parse(scopes)
    except ScopeError as exc:
        raise AccountError(str(exc)) from None
    except ValueError:
        raise AccountError(f"unknown kind {kind!r} (practitioner, patient or admin)") from None
    role_set = frozenset(roles)
    bad_roles = sorted(r for r in role_set if not _ROLE.fullmatch(r))
    if bad_roles:
        raise AccountError(f"invalid role name(s): {', '.join(bad_roles)}")
    if hospital is not None and not 0 < len(hospital) <= 64:
        raise AccountError("a hospital id is 1 to 64 characters")
    _check_account(kind, granted, fhir_user)
    created = time.time_ns() // 1000
    try:
        with write_transaction(engine) as conn:
            conn.execute(insert(app_user).values(
                username=username, password_hash=passwords.hash_secret(password),
                display=display, kind=kind.value, roles=" ".join(sorted(role_set)),
                scopes=str(granted), fhir_user=fhir_user, hospital=hospital,
                created=created, disabled=False,
            ))
    except IntegrityError:
        raise AccountExists(f"username {username!r} is already taken") from None
    return User(username, display, kind, granted, role_set, fhir_user, hospital,
                datetime.fromtimestamp(created / 1e6, UTC))


def get_user(engine: Engine, username: str) -> User | None:
    """The account with this username (any case), or None."""
    username = normalize_username(username)
    with engine.connect() as conn:
        row = conn.execute(
            select(app_user).where(app_user.c.username == username)
        ).mappings().first()
    return _user(row) if row else None


def authenticate_user(engine: Engine, username: str, password: str) -> User | None:
    """The enabled account whose password this is, else None (constant cost)."""
    username = normalize_username(username)
    row = None
    if _USERNAME.fullmatch(username) and len(password) <= MAX_PASSWORD_LENGTH:
        with engine.connect() as conn:
            row = conn.execute(
                select(app_user).where(app_user.c.username == username)
            ).mappings().first()
    matches = passwords.verify_secret(row["password_hash"] if row else None,
                                      password[:MAX_PASSWORD_LENGTH])
    if row is None or not matches or row["disabled"]:
        return None
    if passwords.needs_rehash(row["password_hash"]):
        with write_transaction(engine) as conn:
            conn.execute(update(app_user).where(app_user.c.username == username)
                         .values(password_hash=passwords.hash_secret(password)))
    return _user(row)


def list_users(engine: Engine) -> list[User]:
    """Every account, by username."""
    with engine.connect() as conn:
        rows = conn.execute(select(app_user).order_by(app_user.c.username)).mappings().all()
    return [_user(r) for r in rows]


def disable_user(engine: Engine, username: str) -> None:
    """Refuse any further sign-in (a session already open runs to its expiry)."""
    with write_transaction(engine) as conn:
        result = conn.execute(update(app_user)
                              .where(app_user.c.username == normalize_username(username))
                              .values(disabled=True))
    if result.rowcount == 0:
        raise UnknownAccount(f"no account {username!r}")
