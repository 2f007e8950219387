"""Roles narrow what a staff member's scopes grant (least privilege, ISO 27001 A.5.15).

A user's effective permission on a resource type is what their SMART scopes grant
*and* what at least one of their roles allows. Roles not listed here restrict nothing,
and an account with none of these roles is bounded by its scopes alone (the scopes of
an account are granted one by one when it is created).

The clinical types are those of a patient's compartment
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html).
"""

from __future__ import annotations

from typing import Any

from hygie.store.definitions import patient_compartment

#: Types an administrative role works with: identity, appointments, stays, coverage.
ADMINISTRATIVE_TYPES = frozenset({
    "Patient", "Appointment", "AppointmentResponse", "Encounter", "EpisodeOfCare",
    "Coverage", "Account", "Schedule", "Slot", "RelatedPerson", "Communication",
    "CommunicationRequest",
})

#: Role -> (interactions allowed on clinical types, on administrative types, on the rest).
#: "cruds" letters as in SMART v2.
ROLES: dict[str, tuple[str, str, str]] = {
    "physician": ("cruds", "cruds", "rs"),
    "nurse": ("crus", "crus", "rs"),
    "midwife": ("crus", "crus", "rs"),
    "pharmacist": ("rs", "rs", "crus"),
    "secretary": ("", "crus", "rs"),
    "auditor": ("", "", "rs"),
    "admin": ("", "", "cruds"),
}


def _category(res_type: str) -> int:
    if res_type in ADMINISTRATIVE_TYPES:
        return 1
    if res_type == "*" or res_type in patient_compartment():
        return 0
    return 2


def allowed_by_roles(roles: Any, res_type: str, interaction: str) -> bool:
    """True when one of ``roles`` allows ``interaction`` on ``res_type`` (or none is known).

    ``res_type`` may be ``*`` (a search across types), judged as clinical.
    """
    known = [ROLES[r] for r in roles if r in ROLES]
    if not known:
        return True
    category = _category(res_type)
    return any(interaction in grant[category] for grant in known)
