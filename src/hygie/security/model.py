"""Who is calling: the ``Principal`` every authenticated request carries.

The middleware builds one ``Principal`` per verified token (and caches it with the
token), and puts it at ``request.state.principal``. Code that serves data asks it
``require(resource_type, interaction)`` before touching the store; the refusal is a
FHIR ``forbidden`` outcome (403) that names the scope that would have allowed the call,
so a client developer can fix the request without reading server logs.

Exception tree::

    FhirError (hygie.store.outcomes)
     +-- InsufficientScope   the token is valid but lacks the scope (403, RFC 6750 §3.1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hygie.security.roles import allowed_by_roles
from hygie.security.scopes import ScopeSet
from hygie.store.outcomes import FhirError, Issue

__all__ = ["InsufficientScope", "Kind", "Principal", "ScopeSet"]

_INTERACTION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


class Kind(StrEnum):
    """What kind of party a principal is; it picks the SMART context of its scopes."""

    SERVICE = "service"
    PRACTITIONER = "practitioner"
    PATIENT = "patient"
    ADMIN = "admin"

    @property
    def scope_context(self) -> str:
        """The SMART scope context this kind of principal normally holds."""
        return {"service": "system", "patient": "patient"}.get(self.value, "user")


class InsufficientScope(FhirError):
    """Raised when a valid token lacks the scope an action needs; ``scope`` names it.

    It is a ``forbidden`` OperationOutcome (403) for FHIR routes; non-FHIR routes render
    it as problem+json with ``WWW-Authenticate: Bearer error="insufficient_scope"``.
    """

    def __init__(self, scope: str, diagnostics: str) -> None:
        self.scope = scope
        super().__init__(Issue("forbidden", diagnostics), status=403)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: identity, kind, scopes and the claims rules need.

    ``subject`` is the token's ``sub`` (a username, or a client id for services);
    ``patient`` is the Patient id a patient-context token is bound to; ``fhir_user`` the
    FHIR reference of the person (``Practitioner/123``); ``hospital`` the establishment
    the user belongs to within the territory. ``token_id`` and ``expires_at`` (seconds
    since the epoch) come from the token, for audit and revocation.
    """

    subject: str
    kind: Kind
    scopes: ScopeSet
    client_id: str | None = None
    display: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    patient: str | None = None
    fhir_user: str | None = None
    hospital: str | None = None
    token_id: str | None = None
    expires_at: int | None = None

    def may(self, resource_type: str, interaction: str) -> bool:
        """True when the scopes grant ``interaction`` (c r u d s) on ``resource_type``
        and the roles allow it (``roles.py``)."""
        return self.scopes.allows(resource_type, interaction) and \
            allowed_by_roles(self.roles, resource_type, interaction)

    def require(self, resource_type: str, interaction: str) -> None:
        """Raise ``InsufficientScope`` (a FHIR forbidden outcome) unless allowed.

        ``interaction`` is a SMART v2 letter: c(reate), r(ead, vread, history of an
        instance), u(pdate, patch), d(elete), s(earch, history of a type).
        """
        if self.scopes.allows(resource_type, interaction):
            if not allowed_by_roles(self.roles, resource_type, interaction):
                raise InsufficientScope(
                    f"{self.kind.scope_context}/{resource_type}.{interaction}",
                    f"{_INTERACTION_NAMES[interaction]} of {resource_type} is not part of the "
                    f"role(s) {', '.join(sorted(self.roles))}",
                )
            return
        needed = f"{self.kind.scope_context}/{resource_type}.{interaction}"
        raise InsufficientScope(
            needed,
            f"{_INTERACTION_NAMES[interaction]} of {resource_type} needs scope {needed} "
            f"(or {self.kind.scope_context}/*.{interaction}); the token grants: "
            f"{str(self.scopes) or 'no scope'}",
        )

    def require_scope(self, scope: str) -> None:
        """Raise ``InsufficientScope`` unless a service or identity scope is present.

        For routes that are not FHIR interactions: e.g. ``require_scope("tracing:admin")``.
        """
        if not self.scopes.has(scope):
            raise InsufficientScope(scope, f"this action needs scope {scope}")

    def has_role(self, role: str) -> bool:
        return role in self.roles
