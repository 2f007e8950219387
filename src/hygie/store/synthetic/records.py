"""One patient's resources, written either as a transaction Bundle or with fixed ids.

The generator writes every resource of a patient through a ``PatientRecord``. In
*bundle* mode resources have no id, each entry gets a ``urn:uuid:`` fullUrl and
references between them use it, as a transaction requires
(https://hl7.org/fhir/R4/bundle.html#references, http.html#trules). In *plain* mode
the same uuid becomes the resource id and references read ``Type/id``, as bulk NDJSON
import expects. References to the territory are ``Type/id`` in both modes.
"""

from __future__ import annotations

import random

from .datatypes import Json, new_uuid


class PatientRecord:
    """The resources generated for one patient, in creation order."""

    __slots__ = ("_as_bundle", "_entries", "_rng")

    def __init__(self, rng: random.Random, *, as_bundle: bool) -> None:
        self._rng = rng
        self._as_bundle = as_bundle
        self._entries: list[tuple[str, str, Json]] = []

    def new(self, resource_type: str) -> tuple[str, Json]:
        """Start a resource of ``resource_type``: its uuid and its (mutable) dict."""
        uid = new_uuid(self._rng)
        resource: Json = {"resourceType": resource_type}
        if not self._as_bundle:
            resource["id"] = uid
        self._entries.append((resource_type, uid, resource))
        return uid, resource

    def ref(self, resource_type: str, uid: str, display: str | None = None) -> Json:
        """A Reference to a resource of this record."""
        target = f"urn:uuid:{uid}" if self._as_bundle else f"{resource_type}/{uid}"
        if display is None:
            return {"reference": target}
        return {"reference": target, "display": display}

    def to_bundle(self) -> Json:
        """The record as a transaction Bundle of POST entries."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{uid}",
                    "resource": resource,
                    "request": {"method": "POST", "url": resource_type},
                }
                for resource_type, uid, resource in self._entries
            ],
        }

    def resources(self) -> list[Json]:
        """The resources, each with its id."""
        return [resource for _, _, resource in self._entries]

    def __len__(self) -> int:
        return len(self._entries)
