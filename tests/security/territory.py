"""A small territory for the trust tests: two hospitals, their staff, three patients.

* ``chu`` and ``ch-sud`` are the hospitals (Organizations);
* ``anne`` is managed by ``chu``; ``bruno`` by ``ch-sud``; ``chloe`` by ``ch-sud`` too,
  but was seen at ``chu`` (an Encounter whose serviceProvider is ``chu``), so she is in
  ``chu``'s reach by a care relationship; ``bruno`` has an encounter where Dr Durand
  (``chu``) took part, so he is in Dr Durand's reach but not in the other ``chu`` staff's.
* every patient has an Observation, a Condition and an Encounter.

Names come from here and nowhere else, so the log test knows what to look for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeSet
from hygie.security.tokens import tokens_for
from hygie.store.migrations import upgrade
from hygie.store.server import open_store

BASE = "http://testserver"
HOSPITALS = {"chu": "CHU du Nord", "ch-sud": "Centre hospitalier du Sud"}
PATIENTS = {
    "anne": ("Anne", "Lefebvre-Trust", "chu", "1951-03-14", "female", "59000"),
    "bruno": ("Bruno", "Marchetti-Trust", "ch-sud", "1984-11-02", "male", "13001"),
    "chloe": ("Chloé", "Baptiste-Trust", "ch-sud", "1990-06-30", "female", "13002"),
}
PRACTITIONERS = {"durand": "Durand", "petit": "Petit", "roux": "Roux"}
CLINICAL_TYPES = ("Observation", "Condition", "Encounter")


def _patient(pid: str) -> dict[str, Any]:
    given, family, org, birth, gender, postal = PATIENTS[pid]
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth,
            "name": [{"family": family, "given": [given]}],
            "telecom": [{"system": "phone", "value": "06 12 34 56 78"}],
            "address": [{"line": ["12 rue des Tests"], "city": "Lille", "postalCode": postal}],
            "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": f"INS-{pid}"}],
            "managingOrganization": {"reference": f"Organization/{org}"}}


def clinical(pid: str, res_type: str, *, provider: str | None = None,
             participant: str | None = None) -> dict[str, Any]:
    subject = {"reference": f"Patient/{pid}"}
    if res_type == "Observation":
        return {"resourceType": "Observation", "id": f"obs-{pid}", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": subject, "effectiveDateTime": "2020-04-01T10:00:00+02:00",
                "valueQuantity": {"value": 88, "unit": "/min"}}
    if res_type == "Condition":
        return {"resourceType": "Condition", "id": f"cond-{pid}", "subject": subject,
                "code": {"text": "COVID-19"}, "recordedDate": "2020-03-30"}
    encounter: dict[str, Any] = {
        "resourceType": "Encounter", "id": f"enc-{pid}", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": subject, "period": {"start": "2020-03-29", "end": "2020-04-05"},
        "serviceProvider": {"reference": f"Organization/{provider or PATIENTS[pid][2]}"}}
    if participant:
        encounter["participant"] = [{"individual": {"reference": f"Practitioner/{participant}"}}]
    return encounter


def seed(platform: Platform) -> None:
    ctx = platform.parts.get("store") or open_store(platform)
    repo = ctx.repository
    for oid, name in HOSPITALS.items():
        repo.create({"resourceType": "Organization", "id": oid, "name": name}, res_id=oid)
    for prid, family in PRACTITIONERS.items():
        repo.create({"resourceType": "Practitioner", "id": prid,
                     "name": [{"family": family}]}, res_id=prid)
    for pid in PATIENTS:
        repo.create(_patient(pid), res_id=pid)
        for res_type in CLINICAL_TYPES:
            body = seeded(pid, res_type)
            repo.create(body, res_id=body["id"])


def seeded(pid: str, res_type: str) -> dict[str, Any]:
    """The resource as the territory holds it (Chloé seen at the CHU, Bruno by Durand)."""
    if res_type == "Patient":
        return _patient(pid)
    extra: dict[str, str] = {}
    if pid == "chloe" and res_type == "Encounter":
        extra = {"provider": "chu"}
    if pid == "bruno" and res_type == "Encounter":
        extra = {"participant": "durand"}
    return clinical(pid, res_type, **extra)


@dataclass(frozen=True)
class Who:
    """A caller of the matrix: the principal, and what the test expects of it."""

    name: str
    principal: Principal


def staff(subject: str, roles: set[str], hospital: str | None, fhir_user: str | None = None,
          scope: str = "user/*.cruds", kind: Kind = Kind.PRACTITIONER) -> Principal:
    return Principal(subject=subject, kind=kind, scopes=ScopeSet.parse(scope),
                     roles=frozenset(roles), hospital=hospital, fhir_user=fhir_user,
                     display=subject)


def patient_principal(pid: str) -> Principal:
    return Principal(subject=f"user-{pid}", kind=Kind.PATIENT,
                     scopes=ScopeSet.parse("patient/*.cruds"), patient=pid,
                     fhir_user=f"Patient/{pid}")


def make_platform(database_url: str, var_dir: Path, **settings: Any) -> Platform:
    settings.setdefault("base_url", BASE)
    platform = open_platform(load_settings(database_url=database_url, var_dir=var_dir,
                                           **settings))
    upgrade(platform.engine)
    return platform


def client_for(app: Any, platform: Platform, principal: Principal) -> TestClient:
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    client.headers["Authorization"] = f"Bearer {tokens_for(platform).issue(principal).token}"
    return client


def app_and_platform(database_url: str, tmp_path: Path) -> Iterator[tuple[Any, Platform]]:
    platform = make_platform(database_url, tmp_path / "var")
    app = create_app(platform=platform)
    seed(platform)
    try:
        yield app, platform
    finally:
        platform.close()
