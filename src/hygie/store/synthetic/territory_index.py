"""The territory as the patient generator sees it: hospitals, units, beds, staff.

``TerritoryIndex`` reads a list of territory resources back (as ``generate_territory``
writes them, or as loaded from a store): hospitals are the Organizations that manage a
unit; a unit is a Location typed with the local unit-kind code system; a bed belongs to
the unit found up its ``partOf`` chain; staff are placed in units by their
PractitionerRole ``location`` and known by its SNOMED CT occupation code. It relies only
on FHIR content, so a territory edited by hand still works if it keeps those codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .datatypes import SNOMED, Json
from .identifiers import UNIT_KIND_SYSTEM
from .terminology import STAFF_ROLES


@dataclass
class Unit:
    """A unit of a hospital as the patient generator sees it."""

    id: str
    kind: str
    name: str
    hospital: str
    beds: list[str] = field(default_factory=list)
    staff: dict[str, list[str]] = field(default_factory=dict)

    def people(self, *role_keys: str) -> list[str]:
        """Practitioner ids holding any of ``role_keys`` in this unit."""
        return [p for key in role_keys for p in self.staff.get(key, ())]

    def doctors(self) -> list[str]:
        """Practitioner ids of the unit's physicians."""
        return self.people(*(k for k, r in STAFF_ROLES.items() if r.category == "doctor"))

    def carers(self) -> list[str]:
        """Practitioner ids of the unit's nurses, midwives and radiographers."""
        return self.people(*(k for k, r in STAFF_ROLES.items()
                             if r.category != "doctor" and k != "nursing-assistant"))


@dataclass
class Hospital:
    """A hospital of the territory: organization id, name, position, units by kind."""

    id: str
    name: str
    latitude: float
    longitude: float
    units: dict[str, Unit] = field(default_factory=dict)


class TerritoryIndex:
    """Hospitals, units, beds and staff read back from territory resources."""

    def __init__(self, resources: Iterable[Json]) -> None:
        resources = list(resources)
        names: dict[str, str] = {str(r["id"]): str(r.get("name", r["id"])) for r in resources
                                 if r.get("resourceType") == "Organization"}
        locations = {r["id"]: r for r in resources if r.get("resourceType") == "Location"}
        self.hospitals: dict[str, Hospital] = {}
        units: dict[str, Unit] = {}
        for loc in locations.values():
            kind = _unit_kind(loc)
            org = _ref_id(loc.get("managingOrganization"))
            if kind is None or org is None:
                continue
            hospital = self.hospitals.get(org)
            if hospital is None:
                lat, lon = _hospital_position(org, locations)
                hospital = self.hospitals[org] = Hospital(org, names.get(org, org), lat, lon)
            unit = Unit(str(loc["id"]), kind, str(loc.get("name", loc["id"])), org)
            hospital.units.setdefault(kind, unit)
            units[unit.id] = unit
        for loc in locations.values():
            if _physical_code(loc) != "bd" or loc.get("status", "active") != "active":
                continue
            parent = _ref_id(loc.get("partOf"))
            while parent is not None and parent not in units:
                parent = _ref_id(locations.get(parent, {}).get("partOf"))
            if parent is not None:
                units[parent].beds.append(loc["id"])
        self.practitioner_names: dict[str, str] = {
            r["id"]: _display_name(r) for r in resources
            if r.get("resourceType") == "Practitioner" and "id" in r}
        snomed_roles = {r.snomed: k for k, r in STAFF_ROLES.items()}
        for role in resources:
            if role.get("resourceType") != "PractitionerRole" or not role.get("active", True):
                continue
            practitioner = _ref_id(role.get("practitioner"))
            key = next((snomed_roles[c["code"]] for cc in role.get("code", ())
                        for c in cc.get("coding", ())
                        if c.get("system") == SNOMED and c.get("code") in snomed_roles), None)
            for loc_ref in role.get("location", ()):
                placed = units.get(_ref_id(loc_ref) or "")
                if placed is not None and practitioner is not None and key is not None:
                    placed.staff.setdefault(key, []).append(practitioner)
        if not self.hospitals:
            raise ValueError("the territory has no hospital unit (Location typed with "
                             f"{UNIT_KIND_SYSTEM})")

    def units_of_kind(self, kind: str) -> list[Unit]:
        """Every unit of ``kind`` across hospitals."""
        return [h.units[kind] for h in self.hospitals.values() if kind in h.units]


def _display_name(practitioner: Json) -> str:
    """``Dr Given Family`` from a Practitioner's first name."""
    names = practitioner.get("name") or [{}]
    name = names[0]
    parts = [*name.get("prefix", ()), *name.get("given", ()), name.get("family", "")]
    return " ".join(p for p in parts if p) or str(practitioner.get("id", ""))


def _unit_kind(location: Json) -> str | None:
    for cc in location.get("type", ()):
        for c in cc.get("coding", ()):
            if c.get("system") == UNIT_KIND_SYSTEM:
                return str(c["code"])
    return None


def _physical_code(location: Json) -> str | None:
    codings = location.get("physicalType", {}).get("coding", ())
    return codings[0].get("code") if codings else None


def _ref_id(ref: Json | None) -> str | None:
    if not ref or "reference" not in ref:
        return None
    return str(ref["reference"]).rsplit("/", 1)[-1]


def _hospital_position(org: str, locations: dict[str, Json]) -> tuple[float, float]:
    for loc in locations.values():
        if _physical_code(loc) == "si" and _ref_id(loc.get("managingOrganization")) == org \
                and "position" in loc:
            return float(loc["position"]["latitude"]), float(loc["position"]["longitude"])
    return 47.39, 0.69
