"""The repository contract: what every storage backend of the store provides.

Interactions (``interactions.py``) and services talk only to this class. The
conditional interactions and patch are written once here, on top of the abstract
primitives, each inside one ``transaction()`` and under ``lock(criteria)`` so that
two concurrent conditional creates with the same criteria cannot both create
(http://hl7.org/fhir/R4/http.html#ccreate).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import parse_qsl

import jsonpatch

from hygie.store import outcomes
from hygie.store.model import HistoryPage, SearchPage, StoredResource, WriteResult


def parse_criteria(criteria: str) -> list[tuple[str, str]]:
    """Split conditional criteria (``identifier=a|b&active=true``) into pairs."""
    text = criteria.split("?", 1)[1] if "?" in criteria else criteria
    pairs = parse_qsl(text, keep_blank_values=True)
    if not pairs:
        raise outcomes.invalid(f"conditional criteria are empty: {criteria!r}")
    return pairs


class Repository(ABC):
    """Abstract FHIR repository: CRUD, history and search on current versions."""

    # --- primitives ------------------------------------------------------------

    @abstractmethod
    def read(self, res_type: str, res_id: str) -> StoredResource:
        """Current version; raises ResourceNotFound or ResourceGone (http.html#read)."""

    @abstractmethod
    def vread(self, res_type: str, res_id: str, version: int) -> StoredResource:
        """A given version, deleted ones included (http.html#vread)."""

    @abstractmethod
    def create(self, resource: dict[str, Any], *, res_id: str | None = None) -> WriteResult:
        """Store a new resource under a new id (http.html#create).

        ``res_id`` is for callers that assigned the id beforehand (a transaction
        rewriting urn:uuid references), never for REST clients.
        """

    @abstractmethod
    def update(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
        method: str = "update",
    ) -> WriteResult:
        """Store a new version, or create with this id (http.html#update)."""

    @abstractmethod
    def delete(self, res_type: str, res_id: str) -> WriteResult | None:
        """Delete, keeping history; None when there was nothing to delete (http.html#delete)."""

    @abstractmethod
    def history(
        self,
        res_type: str | None = None,
        res_id: str | None = None,
        *,
        since: int | None = None,
        count: int = 50,
        cursor: str | None = None,
    ) -> HistoryPage:
        """Versions newest first, for an instance, a type or the system (http.html#history)."""

    @abstractmethod
    def search(
        self,
        res_type: str | None,
        query: list[tuple[str, str]],
        *,
        strict: bool = False,
        cursor: str | None = None,
        restrict: Sequence[Any] = (),
    ) -> SearchPage:
        """One page of matches for a FHIR search query (search.html).

        ``restrict`` holds conditions on the ``resource`` table that every match must
        meet: access rules (see ``hygie.store.access``).
        """

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A unit of work: every write inside commits together or not at all."""

    @abstractmethod
    def lock(self, name: str) -> None:
        """Serialise writers on ``name`` until the current transaction ends."""

    def write_turn(self) -> AbstractContextManager[None]:
        """This thread's turn, in its process, to prepare and write a large write (a
        transaction Bundle). Backends whose writers need no turns return a no-op."""
        return nullcontext()

    @abstractmethod
    def iter_resources(
        self, res_types: list[str] | None = None, *, since: int | None = None
    ) -> Iterator[StoredResource]:
        """Every current resource of these types (bulk export), in storage order."""

    @abstractmethod
    def compartment(
        self,
        comp_type: str,
        comp_id: str,
        res_types: list[str] | None = None,
        *,
        since: int | None = None,
    ) -> Iterator[StoredResource]:
        """Current resources in a compartment (e.g. every resource of one Patient)."""

    # --- written once ----------------------------------------------------------

    def find(self, res_type: str, criteria: str, limit: int = 2) -> list[StoredResource]:
        """Resources matching conditional criteria, at most ``limit`` (strict parsing)."""
        query = [*parse_criteria(criteria), ("_count", str(limit))]
        return self.search(res_type, query, strict=True).matches[:limit]

    def conditional_create(self, resource: dict[str, Any], criteria: str) -> WriteResult:
        """Create unless exactly one resource matches ``criteria`` (http.html#ccreate)."""
        res_type = resource.get("resourceType", "")
        with self.transaction():
            self.lock(f"{res_type}?{criteria}")
            found = self.find(res_type, criteria)
            if len(found) > 1:
                raise outcomes.multiple_matches(
                    f"If-None-Exist criteria {criteria!r} match more than one {res_type}"
                )
            if found:
                return WriteResult(found[0], created=False, unchanged=True)
            return self.create(resource)

    def conditional_update(
        self, res_type: str, criteria: str, resource: dict[str, Any]
    ) -> WriteResult:
        """Update the one match of ``criteria``, or create (http.html#cond-update)."""
        with self.transaction():
            self.lock(f"{res_type}?{criteria}")
            found = self.find(res_type, criteria)
            if len(found) > 1:
                raise outcomes.multiple_matches(
                    f"conditional update criteria {criteria!r} match more than one {res_type}"
                )
            body_id = resource.get("id")
            if found:
                target = found[0].res_id
                if body_id is not None and body_id != target:
                    raise outcomes.invalid(
                        f"the body's id {body_id!r} differs from the matching resource {target!r}",
                        expression=f"{res_type}.id",
                    )
                return self.update(res_type, target, {**resource, "id": target})
            if body_id is not None:
                return self.update(res_type, body_id, resource)
            return self.create(resource)

    def conditional_delete(self, res_type: str, criteria: str, *, multiple: bool = False) -> int:
        """Delete the match(es) of ``criteria``; returns how many (http.html#cdelete)."""
        with self.transaction():
            self.lock(f"{res_type}?{criteria}")
            found = self.find(res_type, criteria, limit=1000 if multiple else 2)
            if len(found) > 1 and not multiple:
                raise outcomes.multiple_matches(
                    f"conditional delete criteria {criteria!r} match more than one {res_type}"
                )
            for stored in found:
                self.delete(res_type, stored.res_id)
            return len(found)

    def patch(
        self,
        res_type: str,
        res_id: str,
        operations: list[dict[str, Any]],
        *,
        if_match: int | None = None,
    ) -> WriteResult:
        """Apply a JSON Patch (RFC 6902) to the current version (http.html#patch)."""
        with self.transaction():
            current = self.read(res_type, res_id)
            if if_match is not None and current.version != if_match:
                raise outcomes.conflict(
                    f"{res_type}/{res_id} is at version {current.version}, not {if_match}"
                )
            try:
                patched = jsonpatch.apply_patch(current.resource, operations)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise outcomes.unprocessable(
                    [outcomes.Issue("processing", f"JSON Patch failed: {exc}")]
                ) from exc
            except (TypeError, KeyError, ValueError) as exc:
                raise outcomes.invalid(f"malformed JSON Patch document: {exc}") from exc
            if patched.get("resourceType") != res_type or patched.get("id") != res_id:
                raise outcomes.unprocessable(
                    [outcomes.Issue("processing", "a patch may not change resourceType or id")]
                )
            return self.update(res_type, res_id, patched, if_match=current.version, method="patch")
