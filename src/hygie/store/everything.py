"""``Patient/[id]/$everything``: a patient's whole record in one searchset Bundle.

Returns the patient, every resource of the patient compartment (as defined by the
official CompartmentDefinition), and the resources those point to that are outside
the compartment (practitioners, organizations, locations, medications...), so that
the Bundle can be read on its own
(http://hl7.org/fhir/R4/operation-patient-everything.html).
"""

from __future__ import annotations

from typing import Any

from hygie.store import outcomes
from hygie.store.bundles import searchset
from hygie.store.interactions import FhirRequest, FhirResponse, StoreContext, _allow, _guard
from hygie.store.model import SearchPage, StoredResource, parse_instant

#: Resource types pulled in when referenced from the record, even outside the compartment.
_REFERENCED_TYPES = {
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Medication",
    "Device",
    "Substance",
    "HealthcareService",
    "Group",
}


def _references(value: Any, out: set[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and ref.count("/") == 1 and not ref.startswith(("#", "urn:")):
            res_type, res_id = ref.split("/")
            if res_type in _REFERENCED_TYPES:
                out.add((res_type, res_id))
        for v in value.values():
            _references(v, out)
    elif isinstance(value, list):
        for v in value:
            _references(v, out)


def patient_everything(req: FhirRequest, ctx: StoreContext) -> FhirResponse:
    if len(req.path) != 2 or req.path[0] != "Patient" or req.method not in ("GET", "POST"):
        raise outcomes.FhirError(
            outcomes.Issue(
                "not-supported", "$everything is available as GET Patient/[id]/$everything"
            ),
            status=404,
        )
    patient_id = req.path[1]
    _allow(req, "Patient", "r")
    _guard(ctx, req, "Patient", patient_id)
    repo = ctx.repository
    patient = repo.read("Patient", patient_id)
    since = None
    if req.param("_since"):
        try:
            since = parse_instant(req.param("_since") or "")
        except ValueError as exc:
            raise outcomes.invalid("_since must be an instant", expression="_since") from exc
    types_param = req.param("_type")
    types = [t for t in types_param.split(",") if t] if types_param else None
    for t in types or []:
        if t not in ctx.resource_types:
            raise outcomes.invalid(f"unknown resource type {t!r} in _type", expression="_type")
    records: list[StoredResource] = []
    if types is None or "Patient" in types:
        records.append(patient)
    seen = {("Patient", patient_id)}
    for stored in repo.compartment("Patient", patient_id, types, since=since):
        if (stored.res_type, stored.res_id) not in seen:
            seen.add((stored.res_type, stored.res_id))
            records.append(stored)
    wanted: set[tuple[str, str]] = set()
    for stored in records:
        _references(stored.resource, wanted)
    for res_type, res_id in sorted(wanted - seen):
        if types is not None and res_type not in types:
            continue
        try:
            records.append(repo.read(res_type, res_id))
        except (outcomes.ResourceNotFound, outcomes.ResourceGone):
            continue
    readable = []
    for stored in records:
        try:
            _allow(req, stored.res_type, "r")
        except outcomes.FhirError:
            continue  # what the caller may not read is left out, not an error
        readable.append(stored)
    count_text = req.param("_count")
    offset_text = req.param("_cursor") or "0"
    if not offset_text.isdigit():
        raise outcomes.invalid("the paging cursor is not valid", expression="_cursor")
    offset = int(offset_text)
    count = int(count_text) if count_text and count_text.isdigit() else len(readable)
    page = SearchPage(matches=readable[offset : offset + max(count, 1)], total=len(readable))
    if offset + count < len(readable):
        page.next_cursor = str(offset + count)
    bundle = searchset(ctx.base_url, f"Patient/{patient_id}/$everything", req.query, page)
    return FhirResponse(200, resource=bundle)
