"""Access rules beyond SMART scopes: roles, the patient compartment, hospital boundaries,
and emergency access ("break the glass").

``AccessRules`` is the store's ``AccessPolicy`` (``hygie.store.access``). The scopes are
checked first, by ``Principal.require``; then:

* **roles** narrow what a staff member's scopes grant (``roles.py``): a nurse does not
  delete, a secretary does not read clinical data, an administrator does not read
  records at all;
* a **patient** sees only their own compartment
  (https://hl7.org/fhir/R4/compartmentdefinition-patient.html), plus the directory
  (practitioners, organizations, locations...);
* a **practitioner of a hospital** sees the records of the patients within reach: the
  patients that hospital manages (``Patient.managingOrganization``), the patients of an
  encounter that hospital provided (``Encounter.serviceProvider``), and the patients the
  practitioner has a care relationship with (encounter participant, care team member,
  general practitioner, episode-of-care manager). A practitioner with no hospital
  works for the whole territory and has no boundary;
* **emergency access**: a practitioner who declares a reason opens one record out of
  reach for ``EMERGENCY_HOURS``; every access made that way is flagged in the audit trail
  and the grant waits for review (``break_glass.py``).

Reach is expressed as SQL conditions on the store's tables (the index rows that the
search parameters above extract), so that a search returns, counts and pages only what
the caller may see, with no filtering after the fact; a read runs the same condition on
one row. Services (``system/`` scopes) have no boundary: they are trusted by their scopes.

Exception tree::

    FhirError (hygie.store.outcomes)
     +-- AccessDenied     allowed by the scopes, refused by these rules (403)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    Engine,
    Select,
    and_,
    bindparam,
    exists,
    false,
    literal,
    or_,
    select,
    tuple_,
    union,
)

from hygie.security.model import Kind, Principal
from hygie.security.tables import break_glass
from hygie.store.access import Clause
from hygie.store.connections import single_statement_reads
from hygie.store.definitions import patient_compartment
from hygie.store.outcomes import FhirError, Issue
from hygie.store.schema import idx_reference, resource

#: Types anyone signed in may read whatever their boundary: the territory's directory.
DIRECTORY_TYPES = frozenset({
    "Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService",
    "Endpoint", "Medication", "Substance", "Questionnaire", "ValueSet", "CodeSystem",
    "ConceptMap", "StructureDefinition", "SearchParameter", "OperationDefinition",
    "CapabilityStatement", "ActivityDefinition", "PlanDefinition", "Library",
})

#: Types that are neither in a patient's compartment nor in the directory but hold
#: patients' data or the trail of who read it: only services and unbounded staff.
GUARDED_TYPES = frozenset({"AuditEvent", "Binary", "Group", "Provenance", "Bundle",
                           "List", "Linkage", "Person", "Consent"})

#: How a patient comes within a practitioner's reach: (resource type, parameter naming
#: the hospital or the practitioner, parameter naming the patient). ``Patient`` rows
#: name the patient themselves.
_HOSPITAL_LINKS = (
    ("Patient", "organization", None),
    ("Encounter", "service-provider", "patient"),
    ("EpisodeOfCare", "organization", "patient"),
)
_PRACTITIONER_LINKS = (
    ("Patient", "general-practitioner", None),
    ("Encounter", "participant", "patient"),
    ("Encounter", "practitioner", "patient"),
    ("CareTeam", "participant", "patient"),
    ("EpisodeOfCare", "care-manager", "patient"),
)


@cache
def _links_query(with_practitioner: bool) -> Select[Any]:
    """One patient linked to a hospital (and to a practitioner): bound parameters
    ``patient``, ``hospital``, ``who``; built once, so each check is one cached statement."""
    targets = [("Organization", "hospital", _HOSPITAL_LINKS)]
    if with_practitioner:
        targets.append(("Practitioner", "who", _PRACTITIONER_LINKS))
    tests = []
    for target_type, name, links in targets:
        for res_type, param, patient_param in links:
            link = idx_reference.alias()
            if patient_param is None:
                tests.append(exists(select(link.c.res_pk).select_from(link.join(
                    resource, resource.c.pk == link.c.res_pk)).where(
                    resource.c.res_type == "Patient", resource.c.res_id == bindparam("patient"),
                    link.c.res_type == res_type, link.c.param == param,
                    link.c.target_type == target_type, link.c.target_id == bindparam(name))))
                continue
            subject = idx_reference.alias()
            tests.append(exists(select(subject.c.res_pk).select_from(subject.join(
                link, link.c.res_pk == subject.c.res_pk)).where(
                subject.c.res_type == res_type, subject.c.param == patient_param,
                subject.c.target_type == "Patient", subject.c.target_id == bindparam("patient"),
                link.c.param == param, link.c.target_type == target_type,
                link.c.target_id == bindparam(name))))
    return select(literal(1)).where(or_(*tests))


@cache
def _patients_query(res_type: str) -> Select[Any]:
    """The patients whose compartment holds ``res_type/:id`` (bound parameter ``id``).

    The resource's reference rows are reached by its pk. The tests on their type and
    parameter are written so that no index can serve them (``|| ''``): without the
    planner's statistics (a store never analysed), SQLite chose the index that starts
    with type and parameter and walked every subject reference of the type, some
    240 us a check with 2,000 Observations and growing with the store.
    """
    return select(idx_reference.c.target_id).select_from(resource.join(
        idx_reference, idx_reference.c.res_pk == resource.c.pk)).where(
        resource.c.res_type == res_type, resource.c.res_id == bindparam("id"),
        idx_reference.c.res_type.concat("") == res_type,
        idx_reference.c.param.concat("").in_(patient_compartment()[res_type]),
        idx_reference.c.target_type == "Patient")


class AccessDenied(FhirError):
    """Raised when the scopes allow an action but the access rules refuse it (403)."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(Issue("forbidden", diagnostics), status=403)


@cache
def compartment_pairs() -> tuple[tuple[str, str], ...]:
    """(type, parameter) pairs that put a resource in a patient's compartment."""
    return tuple((t, p) for t, params in patient_compartment().items() for p in params
                 if t != "Patient")


def in_compartment(res_type: str) -> bool:
    return res_type == "Patient" or res_type in patient_compartment()


class Reach:
    """Which patients' records one caller may see: a few ids, or an SQL subquery."""

    def __init__(self, ids: frozenset[str] = frozenset(),
                 build: Callable[[], Select[Any]] | None = None) -> None:
        self.ids = ids
        self._build = build
        self._query: Select[Any] | None = None

    @property
    def bounded_by_links(self) -> bool:
        """True when patients come within reach by links in the data, not only by id."""
        return self._build is not None

    @property
    def query(self) -> Select[Any] | None:
        """The patients linked to the caller, as a subquery (built on first use)."""
        if self._query is None and self._build is not None:
            self._query = self._build()
        return self._query

    def contains(self, column: Any) -> Clause:
        parts: list[Clause] = []
        if self.ids:
            parts.append(column.in_(sorted(self.ids)))
        if self.query is not None:
            parts.append(column.in_(self.query))
        return or_(*parts) if parts else false()


def _link_query(res_type: str, param: str, target_type: str, target_id: str,
                patient_param: str | None) -> Select[Any]:
    """Ids of patients linked to ``target_type/target_id`` through ``res_type.param``."""
    link = idx_reference.alias()
    rows = select(link.c.res_pk).where(link.c.res_type == res_type, link.c.param == param,
                                       link.c.target_type == target_type,
                                       link.c.target_id == target_id)
    if patient_param is None:
        return select(resource.c.res_id).where(resource.c.res_type == "Patient",
                                               resource.c.pk.in_(rows))
    subject = idx_reference.alias()
    return select(subject.c.target_id).where(subject.c.res_type == res_type,
                                             subject.c.param == patient_param,
                                             subject.c.target_type == "Patient",
                                             subject.c.res_pk.in_(rows))


class AccessRules:
    """The platform's access policy; see the module docstring."""

    def __init__(self, engine: Engine, *, grant_cache_s: float = 1.0,
                 reach_cache_s: float = 5.0) -> None:
        self.engine = engine
        self.grant_cache_s = grant_cache_s
        #: How long a "this patient is within this caller's reach" answer is reused.
        self.reach_cache_s = reach_cache_s
        self._grants: dict[str, tuple[float, frozenset[str]]] = {}
        self._links: dict[tuple[str | None, ...], tuple[float, bool]] = {}

    # --- who is bounded, and by what -----------------------------------------------------

    def emergency_patients(self, principal: Principal) -> frozenset[str]:
        """Patients this user opened by emergency access, while the grants last."""
        if principal.kind is not Kind.PRACTITIONER:
            return frozenset()
        now = time.monotonic()
        cached = self._grants.get(principal.subject)
        if cached is not None and now - cached[0] < self.grant_cache_s:
            return cached[1]
        with self.engine.connect() as conn:
            ids = frozenset(conn.execute(
                select(break_glass.c.patient_id).where(
                    break_glass.c.username == principal.subject,
                    break_glass.c.expires > time.time_ns() // 1000)).scalars())
        self._grants[principal.subject] = (now, ids)
        return ids

    def forget_grants(self, username: str) -> None:
        self._grants.pop(username, None)

    def reach(self, principal: Principal, *, emergency: bool = True) -> Reach | None:
        """The patients within reach (None: no boundary)."""
        if principal.kind is Kind.SERVICE:
            return None
        if principal.kind is Kind.PATIENT:
            return Reach(frozenset({principal.patient}) if principal.patient else frozenset())
        if principal.kind is Kind.ADMIN:
            return Reach()
        if principal.patient:
            # an app launched on one patient's record (checked reachable at launch)
            return Reach(frozenset({principal.patient}))
        if not principal.hospital:
            return None
        hospital = principal.hospital
        who = principal.fhir_user.removeprefix("Practitioner/") \
            if principal.fhir_user and principal.fhir_user.startswith("Practitioner/") else None

        def build() -> Select[Any]:
            queries = [_link_query(t, p, "Organization", hospital, s)
                       for t, p, s in _HOSPITAL_LINKS]
            if who:
                queries += [_link_query(t, p, "Practitioner", who, s)
                            for t, p, s in _PRACTITIONER_LINKS]
            return union(*queries).subquery().select()

        extra = self.emergency_patients(principal) if emergency else frozenset()
        return Reach(extra, build)

    def _type_allowed(self, principal: Principal, res_type: str) -> bool:
        """May this caller see resources of ``res_type`` at all (whatever the patient)?"""
        if principal.kind is Kind.SERVICE:
            return True
        if res_type in DIRECTORY_TYPES:
            return True
        if principal.kind is Kind.PRACTITIONER and not principal.hospital:
            return True
        return res_type not in GUARDED_TYPES and in_compartment(res_type) \
            if principal.kind is not Kind.ADMIN else False

    def _denied(self, principal: Principal, what: str) -> AccessDenied:
        return AccessDenied(f"{what} is outside what account {principal.subject!r} may see "
                            f"({self._describe(principal)})")

    @staticmethod
    def _describe(principal: Principal) -> str:
        if principal.kind is Kind.PATIENT:
            return "a patient sees only their own record"
        if principal.kind is Kind.ADMIN:
            return "administrators do not read patient records"
        return (f"patients of hospital {principal.hospital} and patients in their care; "
                "emergency access needs a declared reason")

    # --- AccessPolicy -------------------------------------------------------------------------

    def visibility(self, principal: Principal, res_type: str | None) -> Clause | None:
        """The condition on ``resource`` rows this caller may see (None: all of them)."""
        reach = self.reach(principal)
        if reach is None:
            return None
        types = [res_type] if res_type else None
        parts: list[Clause] = []
        if types is None or "Patient" in types:
            parts.append(and_(resource.c.res_type == "Patient",
                              reach.contains(resource.c.res_id)))
        members = [(t, p) for t, p in compartment_pairs() if types is None or t in types]
        if members:
            if types is not None:  # one type: plain equalities, which the indexes serve
                pairs = and_(idx_reference.c.res_type == types[0],
                             idx_reference.c.param.in_([p for _t, p in members]))
            else:
                pairs = tuple_(idx_reference.c.res_type, idx_reference.c.param).in_(members)
            rows = select(idx_reference.c.res_pk).where(
                pairs, idx_reference.c.target_type == "Patient",
                reach.contains(idx_reference.c.target_id))
            parts.append(resource.c.pk.in_(rows))
        open_types = sorted(t for t in (types or DIRECTORY_TYPES)
                            if t in DIRECTORY_TYPES
                            or (not in_compartment(t) and self._type_allowed(principal, t)))
        if open_types:
            parts.append(resource.c.res_type.in_(open_types))
        return or_(*parts) if parts else false()

    def search_restriction(self, principal: Any, res_type: str | None) -> Sequence[Clause]:
        if not isinstance(principal, Principal):
            return ()
        if res_type is not None and not self._type_allowed(principal, res_type):
            raise self._denied(principal, f"searching {res_type}")
        clause = self.visibility(principal, res_type)
        return () if clause is None else (clause,)

    def check_resource(self, principal: Any, res_type: str, res_id: str) -> None:
        if not isinstance(principal, Principal):
            return
        if not self._type_allowed(principal, res_type):
            raise self._denied(principal, f"{res_type}/{res_id}")
        reach = self.reach(principal)
        if reach is None or not in_compartment(res_type):
            return
        if res_type == "Patient":
            patients = {res_id}
        else:
            with single_statement_reads(self.engine) as conn:
                patients = set(conn.execute(_patients_query(res_type), {"id": res_id}).scalars())
                if not patients:
                    exists = conn.execute(select(resource.c.pk).where(
                        resource.c.res_type == res_type, resource.c.res_id == res_id)).first()
                    if exists is None:
                        return  # the read answers 404
        if not any(self._reachable(principal, reach, {p}) for p in patients):
            raise self._denied(principal, f"{res_type}/{res_id}")

    def check_body(self, principal: Any, body: dict[str, Any]) -> None:
        if not isinstance(principal, Principal):
            return
        res_type = str(body.get("resourceType", ""))
        if not self._type_allowed(principal, res_type):
            raise self._denied(principal, f"writing {res_type}")
        reach = self.reach(principal)
        if reach is None or not in_compartment(res_type):
            return
        patients = patients_of(body)
        if res_type == "Patient":
            own = body.get("id")
            org = (body.get("managingOrganization") or {}).get("reference")
            if principal.kind is Kind.PRACTITIONER and org == f"Organization/{principal.hospital}":
                return
            if own and self._reachable(principal, reach, {str(own)}):
                return
            raise self._denied(principal, "a Patient out of reach (its managingOrganization "
                                          "must be your hospital)")
        if not patients:
            raise self._denied(principal, f"a {res_type} that names no patient")
        if not self._reachable(principal, reach, patients):
            raise self._denied(principal, f"a {res_type} about a patient")

    def _reachable(self, principal: Principal, reach: Reach, patients: set[str]) -> bool:
        """True when every one of ``patients`` is within reach."""
        missing = patients - reach.ids
        if not missing:
            return True
        if not reach.bounded_by_links:
            return False
        return all(self._links_to(principal, p) for p in missing)

    def _links_to(self, principal: Principal, patient_id: str) -> bool:
        """Is one patient linked to the caller's hospital or to the caller (one indexed
        EXISTS per kind of link), remembered for ``reach_cache_s``."""
        key = (principal.subject, principal.hospital, principal.fhir_user, patient_id)
        now = time.monotonic()
        cached = self._links.get(key)
        if cached is not None and now - cached[0] < self.reach_cache_s:
            return cached[1]
        who = principal.fhir_user.removeprefix("Practitioner/") \
            if principal.fhir_user and principal.fhir_user.startswith("Practitioner/") else None
        values = {"patient": patient_id, "hospital": principal.hospital or "", "who": who or ""}
        with single_statement_reads(self.engine) as conn:
            linked = conn.execute(_links_query(who is not None), values).first() is not None
        if len(self._links) > 50_000:
            self._links.clear()
        self._links[key] = (now, linked)
        return linked

    def check_wide(self, principal: Any, what: str) -> None:
        if isinstance(principal, Principal) and self.reach(principal) is not None:
            raise AccessDenied(f"{what} spans many patients: only services and staff of the "
                               "whole territory may ask for it")

    def is_emergency(self, principal: Any, patients: set[str] | frozenset[str]) -> bool:
        """True when reaching ``patients`` needed an emergency grant (for the audit)."""
        if not isinstance(principal, Principal) or not patients:
            return False
        grants = self.emergency_patients(principal)
        if not grants & set(patients):
            return False
        normal = self.reach(principal, emergency=False)
        return normal is not None and not self._reachable(principal, normal,
                                                          set(patients) & grants)


def patients_of(body: dict[str, Any]) -> set[str]:
    """Ids of the patients whose compartment holds this body (by the official definition)."""
    from hygie.store.search import extract_index

    res_type = body.get("resourceType")
    if res_type == "Patient":
        return {str(body["id"])} if body.get("id") else set()
    params = set(patient_compartment().get(str(res_type), ()))
    if not params:
        return set()
    rows = extract_index(body).get("reference", [])
    return {row[2] for row in rows if row[0] in params and row[1] == "Patient" and row[2]}

