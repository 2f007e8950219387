"""OAuth grants kept by the server: authorization codes, refresh tokens, revocations.

* Authorization codes (RFC 6749 §4.1) live 60 seconds, are single use, are bound to the
  client, the redirect URI and a PKCE S256 challenge (RFC 7636 §4.2; ``plain`` is
  refused, as the OAuth 2.0 Security BCP asks). A code presented twice is refused.
* Refresh tokens (RFC 6749 §6) rotate: each use returns a new one, and presenting a used
  one again revokes the whole family, since only a thief would do that (Security BCP
  §4.14.2).
* Revocation (RFC 7009) of a refresh token ends its family; of an access token, puts
  its ``jti`` on the revocation list until the token would have expired anyway.

Codes and refresh tokens are random 256-bit strings stored only as SHA-256 hashes: a
copy of the database does not hold a usable grant.

``RevocationList`` is what ``TokenService`` asks on every verification (cached or not):
revoked ``jti`` values, disabled accounts and disabled clients, read again from the
database every ``REFRESH_S`` seconds, so that a revocation reaches every process
within that time.

Exception tree::

    GrantError         an RFC 6749 §5.2 error: ``error`` code and description
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from hygie.platform import Platform, write_transaction
from hygie.security.model import Principal
from hygie.security.tables import app_user, oauth_client, oauth_code, oauth_refresh, revoked_token
from hygie.security.tokens import InvalidToken, tokens_for

#: Lifetime of an authorization code (RFC 6749 §4.1.2 recommends at most 10 minutes).
CODE_LIFETIME_S = 60
#: How often the revocation list is read again.
REFRESH_S = 2.0

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


class GrantError(Exception):
    """An OAuth error (RFC 6749 §5.2): ``error`` code and a description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now_us() -> int:
    return time.time_ns() // 1000


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.fullmatch(challenge))


# --- authorization codes ------------------------------------------------------------------


@dataclass(frozen=True)
class CodeGrant:
    """What a redeemed code grants: to whom, which scopes, and the launch context."""

    client_id: str
    username: str
    scope: str
    nonce: str | None
    patient: str | None


def new_code(engine: Engine, *, client_id: str, username: str, redirect_uri: str, scope: str,
             code_challenge: str, nonce: str | None = None, patient: str | None = None) -> str:
    """Store a new authorization code and return it (shown once, in the redirect)."""
    code = secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        conn.execute(delete(oauth_code).where(oauth_code.c.expires < _now_us()))
        conn.execute(insert(oauth_code).values(
            code_hash=_hash(code), client_id=client_id, username=username,
            redirect_uri=redirect_uri, scope=scope, code_challenge=code_challenge,
            nonce=nonce, patient=patient, expires=_now_us() + CODE_LIFETIME_S * 1_000_000,
            used=False))
    return code


def redeem_code(engine: Engine, code: str, *, client_id: str, redirect_uri: str | None,
                code_verifier: str | None) -> CodeGrant:
    """Check and consume a code (RFC 6749 §4.1.3, RFC 7636 §4.6); raises ``GrantError``."""
    if not code or len(code) > 128:
        raise GrantError("invalid_grant", "unknown authorization code")
    with write_transaction(engine) as conn:
        row = conn.execute(select(oauth_code).where(oauth_code.c.code_hash == _hash(code))
                           ).first()
        if row is None:
            raise GrantError("invalid_grant", "unknown authorization code")
        # single use: mark it first, whatever happens next
        used = conn.execute(update(oauth_code).where(oauth_code.c.code_hash == row.code_hash,
                                                     oauth_code.c.used.is_(False))
                            .values(used=True)).rowcount == 0
    if used:
        raise GrantError("invalid_grant", "the authorization code was already used")
    if row.expires < _now_us():
        raise GrantError("invalid_grant", "the authorization code has expired")
    if row.client_id != client_id:
        raise GrantError("invalid_grant", "the authorization code was issued to another client")
    if redirect_uri != row.redirect_uri:
        raise GrantError("invalid_grant", "redirect_uri differs from the authorization request")
    if not code_verifier or not _VERIFIER.fullmatch(code_verifier):
        raise GrantError("invalid_grant",
                         "code_verifier is missing or malformed (43 to 128 characters)")
    if not hmac.compare_digest(pkce_challenge(code_verifier), row.code_challenge):
        raise GrantError("invalid_grant", "code_verifier does not match the code_challenge")
    return CodeGrant(row.client_id, row.username, row.scope, row.nonce, row.patient)


# --- refresh tokens -----------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshGrant:
    """A refresh token just used: what it grants, and the new token that replaces it."""

    client_id: str
    username: str
    scope: str
    patient: str | None
    token: str


def issue_refresh(engine: Engine, *, client_id: str, username: str, scope: str,
                  patient: str | None, lifetime_s: int, family: str | None = None) -> str:
    token = secrets.token_urlsafe(32)
    now = _now_us()
    with write_transaction(engine) as conn:
        conn.execute(insert(oauth_refresh).values(
            token_hash=_hash(token), family=family or secrets.token_hex(16), client_id=client_id,
            username=username, scope=scope, patient=patient, created=now,
            expires=now + lifetime_s * 1_000_000, state="active"))
    return token


def use_refresh(engine: Engine, token: str, *, client_id: str, lifetime_s: int) -> RefreshGrant:
    """Exchange a refresh token for a new one (rotation); raises ``GrantError``."""
    if not token or len(token) > 128:
        raise GrantError("invalid_grant", "unknown refresh token")
    with write_transaction(engine) as conn:
        row = conn.execute(select(oauth_refresh)
                           .where(oauth_refresh.c.token_hash == _hash(token))).first()
        if row is None:
            raise GrantError("invalid_grant", "unknown refresh token")
        if row.client_id != client_id:
            raise GrantError("invalid_grant", "the refresh token was issued to another client")
        if row.state != "active":
            # a used token presented again: someone kept a copy; end the whole family
            conn.execute(update(oauth_refresh).where(oauth_refresh.c.family == row.family)
                         .values(state="revoked"))
            reused = row.state == "used"
        else:
            reused = None
            changed = conn.execute(update(oauth_refresh).where(
                oauth_refresh.c.token_hash == row.token_hash,
                oauth_refresh.c.state == "active").values(state="used")).rowcount
            if changed == 0:
                reused = True
    if reused is not None:
        raise GrantError("invalid_grant", "the refresh token was already used: its family is "
                         "revoked" if reused else "the refresh token was revoked")
    if row.expires < _now_us():
        raise GrantError("invalid_grant", "the refresh token has expired")
    new = issue_refresh(engine, client_id=row.client_id, username=row.username, scope=row.scope,
                        patient=row.patient, lifetime_s=lifetime_s, family=row.family)
    return RefreshGrant(row.client_id, row.username, row.scope, row.patient, new)


def revoke_refresh(engine: Engine, token: str, client_id: str) -> bool:
    """Revoke a refresh token's family (RFC 7009 §2.1); False when it is not this client's."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(oauth_refresh.c.family, oauth_refresh.c.client_id)
                           .where(oauth_refresh.c.token_hash == _hash(token))).first()
        if row is None or row.client_id != client_id:
            return False
        conn.execute(update(oauth_refresh).where(oauth_refresh.c.family == row.family)
                     .values(state="revoked"))
    return True


def revoke_access(engine: Engine, jti: str, expires: int) -> None:
    """Put an access token on the revocation list until it would expire (seconds)."""
    with write_transaction(engine) as conn:
        conn.execute(delete(revoked_token).where(revoked_token.c.expires < time.time()))
        exists = conn.execute(select(revoked_token.c.jti).where(revoked_token.c.jti == jti)
                              ).first()
        if exists is None:
            conn.execute(insert(revoked_token).values(jti=jti[:64], expires=expires))


def revoke_user_grants(engine: Engine, username: str) -> None:
    """End every refresh token of an account (it was disabled, or signed out everywhere)."""
    with write_transaction(engine) as conn:
        conn.execute(update(oauth_refresh).where(oauth_refresh.c.username == username)
                     .values(state="revoked"))


# --- the revocation list ----------------------------------------------------------------------


class RevocationList:
    """Revoked tokens, disabled accounts and clients, refreshed every ``REFRESH_S``."""

    def __init__(self, engine: Engine, refresh_s: float = REFRESH_S) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self._jtis: frozenset[str] = frozenset()
        self._users: frozenset[str] = frozenset()
        self._clients: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def reload(self) -> None:
        now = time.time()
        try:
            with self.engine.connect() as conn:
                jtis = frozenset(conn.execute(select(revoked_token.c.jti)
                                              .where(revoked_token.c.expires >= now)).scalars())
                users = frozenset(conn.execute(select(app_user.c.username)
                                               .where(app_user.c.disabled.is_(True))).scalars())
                clients = frozenset(conn.execute(select(oauth_client.c.client_id).where(
                    oauth_client.c.disabled.is_(True))).scalars())
        except SQLAlchemyError:
            return  # no account tables yet (an unmigrated database): nothing is revoked
        self._jtis, self._users, self._clients = jtis, users, clients
        self._loaded_at = time.monotonic()

    def check(self, principal: Principal) -> None:
        """Refuse a revoked token, or one of a disabled account or client."""
        if time.monotonic() - self._loaded_at > self.refresh_s:
            with self._lock:
                if time.monotonic() - self._loaded_at > self.refresh_s:
                    self._loaded_at = time.monotonic()
                    self.reload()
        if principal.token_id is not None and principal.token_id in self._jtis:
            raise InvalidToken("the token was revoked")
        if principal.subject in self._users:
            raise InvalidToken("the account is disabled")
        if principal.client_id is not None and principal.client_id in self._clients:
            raise InvalidToken("the client is disabled")


def install_revocation_check(platform: Platform) -> RevocationList:
    """Make the platform's token service ask the revocation list on every verification."""
    existing: RevocationList | None = platform.parts.get("security.revocations")
    if existing is not None:
        return existing
    revocations = RevocationList(platform.engine)
    platform.parts["security.revocations"] = revocations
    tokens_for(platform).add_check(revocations.check)
    return revocations
