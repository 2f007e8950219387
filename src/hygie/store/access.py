"""The store's three security seams: body codec, access policy, audit sink.

The store is the core and never imports ``hygie.security``; what it needs from a
security layer is written here as three small contracts, each with a default that does
nothing, so that the store works (and is tested) on its own:

* ``BodyCodec``: how a resource body is kept at rest. ``SqlRepository`` seals every
  body it writes (``resource.body``, ``resource_version.body``) and opens every body it
  reads. The default keeps the JSON bytes as they are.
* ``AccessPolicy``: rules beyond SMART scopes (patient compartment, hospital
  boundaries, emergency access). The interactions ask it before a write, after a read,
  and for the extra SQL conditions a search must carry. The default allows everything
  the scopes allow.
* ``AuditSink``: told of every FHIR interaction once it has an outcome (success,
  failure or denial). The default forgets it.

The security package puts its implementations in ``platform.parts`` under the names in
``PARTS`` before ``open_store`` runs (``app.py`` and ``cli.py`` do it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement

if TYPE_CHECKING:
    from hygie.store.interactions import FhirRequest, FhirResponse
    from hygie.store.outcomes import FhirError

#: Where ``open_store`` looks for implementations in ``platform.parts``.
PARTS = {"codec": "store.codec", "access": "store.access", "audit": "store.audit"}

Clause = ColumnElement[bool]


class BodyCodec(Protocol):
    """Turns a body into what is stored, and back; ``context`` names the row.

    ``context`` is ``Type/id/version``: an implementation may bind the stored bytes to
    it (as authenticated data), so that a body copied onto another row does not open.
    """

    def seal(self, body: bytes, context: str) -> bytes: ...

    def open(self, stored: bytes, context: str) -> bytes: ...


class AccessPolicy(Protocol):
    """Access rules applied after the scope check; every method raises ``FhirError``
    (forbidden) to refuse. ``principal`` is whatever the HTTP edge put on the request."""

    def search_restriction(self, principal: Any, res_type: str | None) -> Sequence[Clause]:
        """Extra conditions on ``resource`` rows for a search by this caller (none: all)."""
        ...

    def check_resource(self, principal: Any, res_type: str, res_id: str) -> None:
        """Refuse touching this stored resource (read, vread, history, update, delete).

        A resource that does not exist passes: the interaction then answers 404.
        """
        ...

    def check_body(self, principal: Any, body: dict[str, Any]) -> None:
        """Refuse writing this body (it would be about someone out of the caller's reach)."""
        ...

    def check_wide(self, principal: Any, what: str) -> None:
        """Refuse an interaction that spans many patients at once (type or system
        history, bulk export, conditional delete): ``what`` names it."""
        ...


class AuditSink(Protocol):
    """Told of every FHIR interaction, with its response or the error that ended it."""

    def record(self, request: FhirRequest, response: FhirResponse | None,
               error: FhirError | None) -> None: ...


class PlainBodies:
    """The default codec: bodies are stored as the JSON bytes they are."""

    def seal(self, body: bytes, context: str) -> bytes:
        return body

    def open(self, stored: bytes, context: str) -> bytes:
        return stored


class ScopesOnly:
    """The default policy: the scopes decide alone."""

    def search_restriction(self, principal: Any, res_type: str | None) -> Sequence[Clause]:
        return ()

    def check_resource(self, principal: Any, res_type: str, res_id: str) -> None:
        return None

    def check_body(self, principal: Any, body: dict[str, Any]) -> None:
        return None

    def check_wide(self, principal: Any, what: str) -> None:
        return None


class NoAudit:
    """The default sink: nothing is recorded."""

    def record(self, request: FhirRequest, response: FhirResponse | None,
               error: FhirError | None) -> None:
        return None
