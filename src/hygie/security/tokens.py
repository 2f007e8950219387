"""Access tokens and browser session tokens: JWTs signed by the platform (ES256).

An access token is a JWT in the profile of RFC 9068 (header ``typ: at+jwt``) with the
registered claims ``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``jti``, ``scope`` and
``client_id``, and optional ones: ``kind``, ``name``, ``roles``, ``patient`` (the patient
in context, as in a SMART launch), ``fhirUser``, ``hospital``. A browser session is the
same kind of JWT with its own ``typ`` and audience, so one can never be replayed as the
other.

Verification (``TokenService.verify``) checks the algorithm (ES256 only: no ``none``,
no HMAC-with-the-public-key confusion), the ``typ``, the ``kid``, the signature, ``iss``,
``aud``, ``exp`` and ``iat`` with a small leeway, then builds the ``Principal``. Because
an ECDSA verification costs tens of microseconds and the read path must serve thousands
of requests per second on two cores, verified tokens are kept in a bounded LRU keyed by
the token string; a cached entry is dropped when its ``exp`` passes. Failures are never
cached, so a bad token cannot push good ones out. Extra checks (revocation, a disabled
account) register with ``add_check`` and run on every verification, cached or not.

The LRU is a few lines over ``OrderedDict`` rather than a dependency, because each
entry must expire at its own token's ``exp`` and be safe to share between threads.

Exception tree::

    InvalidToken         the token cannot be trusted (401, RFC 6750 error=invalid_token)
     +-- ExpiredToken    it was good but its exp has passed
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from hygie.platform import Platform
from hygie.security.keys import ALGORITHM, FileKeyStore, KeyStore
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeError, ScopeSet

#: JOSE ``typ`` of access tokens (RFC 9068 §2.1) and of browser session tokens.
ACCESS_TOKEN_TYPE = "at+jwt"
SESSION_TOKEN_TYPE = "hygie-session+jwt"
#: A sign-in half done: the password was right, the second factor is still due.
PENDING_TOKEN_TYPE = "hygie-mfa+jwt"
#: Lifetime of a half-done sign-in, in seconds.
PENDING_LIFETIME_S = 300

#: Longest token accepted for verification; anything longer is refused unparsed.
MAX_TOKEN_LENGTH = 8192

#: Clock skew tolerated on exp and iat, in seconds.
DEFAULT_LEEWAY_S = 10

#: Verified tokens kept in memory (each entry is a few hundred bytes).
DEFAULT_CACHE_SIZE = 20_000

_REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti"]


class InvalidToken(Exception):
    """Raised when a token fails verification; the message says which check failed."""


class ExpiredToken(InvalidToken):
    """Raised when a token's ``exp`` (plus the leeway) has passed."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly signed token, with its lifetime and the principal it stands for."""

    token: str
    expires_in: int
    principal: Principal


class _ExpiringLRU:
    """A bounded, thread-safe LRU whose entries each expire at their own deadline."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> Principal | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if now > item[0]:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, deadline: float, value: Principal) -> None:
        with self._lock:
            self._items[key] = (deadline, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class TokenService:
    """Issues and verifies the platform's access and session tokens.

    ``audience`` is the platform's base URL: the resource server the tokens are for.
    ``clock`` (seconds since the epoch) dates issued tokens and expires cached ones.
    """

    def __init__(self, keys: KeyStore, *, issuer: str, audience: str,
                 access_lifetime_s: int = 900, session_lifetime_s: int = 8 * 3600,
                 leeway_s: int = DEFAULT_LEEWAY_S, cache_size: int = DEFAULT_CACHE_SIZE,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.session_audience = audience.rstrip("/") + "/session"
        self.pending_audience = audience.rstrip("/") + "/mfa"
        self.access_lifetime_s = access_lifetime_s
        self.session_lifetime_s = session_lifetime_s
        self.leeway_s = leeway_s
        self.clock = clock
        self._caches = {ACCESS_TOKEN_TYPE: _ExpiringLRU(cache_size),
                        SESSION_TOKEN_TYPE: _ExpiringLRU(cache_size),
                        PENDING_TOKEN_TYPE: _ExpiringLRU(1000)}
        self._checks: list[Callable[[Principal], None]] = []
        self._jwt = jwt.PyJWT()

    # --- issue ----------------------------------------------------------------------

    def issue(self, principal: Principal, lifetime_s: int | None = None) -> IssuedToken:
        """Sign an access token for ``principal``; default lifetime from the settings."""
        return self._issue(principal, ACCESS_TOKEN_TYPE, self.audience,
                           lifetime_s or self.access_lifetime_s)

    def issue_session(self, principal: Principal, lifetime_s: int | None = None) -> IssuedToken:
        """Sign a browser session token (the ``hygie_session`` cookie) for a user."""
        return self._issue(principal, SESSION_TOKEN_TYPE, self.session_audience,
                           lifetime_s or self.session_lifetime_s)

    def issue_pending(self, principal: Principal) -> IssuedToken:
        """Sign the proof that the password was right, while the second factor is due."""
        return self._issue(principal, PENDING_TOKEN_TYPE, self.pending_audience,
                           PENDING_LIFETIME_S)

    def verify_pending(self, token: str) -> Principal:
        """The principal of a half-done sign-in; raises ``InvalidToken`` otherwise."""
        return self._verify(token, PENDING_TOKEN_TYPE, self.pending_audience)

    def issue_id_token(self, principal: Principal, *, client_id: str, nonce: str | None,
                       lifetime_s: int | None = None) -> str:
        """An OpenID Connect ID token (OIDC Core §2) for ``client_id``, signed ES256."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": principal.subject, "aud": client_id, "iat": now,
            "exp": now + (lifetime_s or self.access_lifetime_s), "auth_time": now,
        }
        if nonce:
            claims["nonce"] = nonce
        if principal.fhir_user:
            claims["fhirUser"] = principal.fhir_user
        if principal.display:
            claims["name"] = principal.display
        signing = self.keys.signing_key()
        return self._jwt.encode(claims, signing.key, algorithm=self.keys.algorithm,
                                headers={"kid": signing.kid, "typ": "JWT"})

    def _issue(self, principal: Principal, typ: str, audience: str,
               lifetime_s: int) -> IssuedToken:
        if lifetime_s <= 0:
            raise ValueError("token lifetime must be positive")
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": principal.subject,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": secrets.token_urlsafe(16),
            "scope": str(principal.scopes),
            "kind": str(principal.kind),
        }
        optional = {
            "client_id": principal.client_id,
            "name": principal.display,
            "roles": sorted(principal.roles),
            "patient": principal.patient,
            "fhirUser": principal.fhir_user,
            "hospital": principal.hospital,
        }
        claims.update({k: v for k, v in optional.items() if v})
        signing = self.keys.signing_key()
        token = self._jwt.encode(claims, signing.key, algorithm=self.keys.algorithm,
                                 headers={"kid": signing.kid, "typ": typ})
        return IssuedToken(token, lifetime_s, principal_from_claims(claims))

    # --- verify ---------------------------------------------------------------------

    def add_check(self, check: Callable[[Principal], None]) -> None:
        """Run ``check`` on every verified principal; it raises ``InvalidToken`` to refuse."""
        self._checks.append(check)

    def verify(self, token: str) -> Principal:
        """The principal of a valid access token; raises ``InvalidToken`` otherwise."""
        return self._verify(token, ACCESS_TOKEN_TYPE, self.audience)

    def verify_session(self, token: str) -> Principal:
        """The principal of a valid session cookie; raises ``InvalidToken`` otherwise."""
        return self._verify(token, SESSION_TOKEN_TYPE, self.session_audience)

    def _verify(self, token: str, typ: str, audience: str) -> Principal:
        cache = self._caches[typ]
        principal = cache.get(token, self.clock())
        if principal is None:
            claims = self.decode(token, typ=typ, audience=audience)
            principal = principal_from_claims(claims)
            cache.put(token, claims["exp"] + self.leeway_s, principal)
        for check in self._checks:
            check(principal)
        return principal

    def decode(self, token: str, *, typ: str = ACCESS_TOKEN_TYPE,
               audience: str | None = None) -> dict[str, Any]:
        """Verify a token completely (no cache) and return its claims."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("the token is empty or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidToken("the token is not a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"the token must be signed with {ALGORITHM}")
        if header.get("typ") != typ:
            raise InvalidToken(f"the token is not of type {typ}")
        kid = header.get("kid")
        key = self.keys.public_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("the token is signed with an unknown key")
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=audience or self.audience,
                issuer=self.issuer, leeway=self.leeway_s,
                options={"require": _REQUIRED_CLAIMS, "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token signature does not verify") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not meant for this server (aud)") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token was not issued by this platform (iss)") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is dated in the future (iat)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is invalid: {exc}") from None
        return claims


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build the ``Principal`` a verified token stands for; refuses malformed claims."""
    try:
        kind = Kind(claims.get("kind", Kind.SERVICE.value))
        scopes = ScopeSet.parse(claims.get("scope", ""))
    except (ValueError, ScopeError, AttributeError) as exc:
        raise InvalidToken(f"the token's claims are malformed: {exc}") from None
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("the token's roles claim must be a list of strings")
    texts = {name: claims.get(name) for name in
             ("sub", "client_id", "name", "patient", "fhirUser", "hospital", "jti")}
    if any(v is not None and not isinstance(v, str) for v in texts.values()):
        raise InvalidToken("the token's identity claims must be strings")
    return Principal(
        subject=claims["sub"],
        kind=kind,
        scopes=scopes,
        client_id=texts["client_id"],
        display=texts["name"] or "",
        roles=frozenset(roles),
        patient=texts["patient"],
        fhir_user=texts["fhirUser"],
        hospital=texts["hospital"],
        token_id=texts["jti"],
        expires_at=claims.get("exp"),
    )


def tokens_for(platform: Platform) -> TokenService:
    """The platform's one ``TokenService``, built on first use from its settings.

    The key store is ``platform.parts["security.keys"]`` when something put one there (a
    KMS-backed store), else a ``FileKeyStore`` under ``<var_dir>/keys``.
    """
    service = platform.parts.get("security.tokens")
    if service is None:
        settings = platform.settings
        keys = platform.parts.setdefault("security.keys",
                                         FileKeyStore(settings.var_dir / "keys"))
        service = platform.parts.setdefault("security.tokens", TokenService(
            keys,
            issuer=settings.token_issuer,
            audience=settings.base_url,
            access_lifetime_s=settings.access_token_lifetime_s,
            session_lifetime_s=settings.session_lifetime_s,
        ))
    return service


def issue_service_token(platform: Platform, *, subject: str, scope: str,
                        lifetime_s: int | None = None) -> str:
    """A signed access token for a back-end service (``kind=service``, ``client_id=subject``).

    What ``hygie token create`` does, for code and tests that need a token directly.
    """
    principal = Principal(subject=subject, kind=Kind.SERVICE, scopes=ScopeSet.parse(scope),
                          client_id=subject)
    return tokens_for(platform).issue(principal, lifetime_s).token
