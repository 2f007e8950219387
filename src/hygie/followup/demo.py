"""Demo follow-ups: a few patients of the demo territory followed for COVID-19.

``seed_demo(platform)`` (called by ``hygie demo``, and ``hygie followup seed-demo``)
gives the demo a care team of nurses from the territory (a ``CareTeam`` of their
PractitionerRoles, so their ``availableTime`` says who is on duty) and enrolls the
first patients of the record whose mobile number (``Patient.telecom``, generated with
the fictional territory) is a valid mobile number, with the shipped COVID-19 protocol
from today and consent recorded. ``hygie serve`` sends through the loopback SMSC by
default, so nobody's phone hears them. It is idempotent: a second run finds the team
and the enrollments and does nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hygie.followup.engine import FollowupService, Options
from hygie.followup.enrollments import mobile_number
from hygie.followup.errors import InvalidPhone
from hygie.followup.model import EnrollmentRequest, EnrollmentStatus
from hygie.platform import Platform

TEAM_ID = "followup-demo-team"
#: SNOMED CT "Registered nurse".
NURSE = "224547003"


def _nurse_roles(repository: Any, limit: int = 4) -> list[str]:
    page = repository.search("PractitionerRole", [("_count", "200")])
    out = []
    for match in page.matches:
        codes = {
            c.get("code") for cc in match.resource.get("code", []) for c in cc.get("coding", [])
        }
        if NURSE in codes:
            out.append(match.res_id)
        if len(out) >= limit:
            break
    return out


def seed_demo(platform: Platform, patients: int = 6, today: date | None = None) -> str:
    """Enroll ``patients`` demo patients (once); returns what was done, in a sentence."""
    service = platform.parts.get("followup")
    if service is None:
        service = FollowupService(platform, Options(worker=False))
        service.install_protocols()
    repository = service.repository
    roles = _nurse_roles(repository)
    if not roles:
        raise ValueError("the record has no nurse to tell of alerts")
    repository.update(
        "CareTeam",
        TEAM_ID,
        {
            "resourceType": "CareTeam",
            "id": TEAM_ID,
            "status": "active",
            "name": "Suivi à domicile COVID-19 (démonstration)",
            "participant": [{"member": {"reference": f"PractitionerRole/{r}"}} for r in roles],
        },
    )
    already = {e.patient_id for e in service.enrollments(EnrollmentStatus.ACTIVE, limit=1000)}
    page = repository.search("Patient", [("_count", str(patients * 4)), ("_sort", "_id")])
    enrolled = 0
    start = (today or date.today()).isoformat()
    for match in page.matches:
        if enrolled + len(already) >= patients:
            break
        if match.res_id in already:
            continue
        phone = next(
            (
                t.get("value")
                for t in match.resource.get("telecom", [])
                if t.get("system") == "phone" and t.get("use") == "mobile"
            ),
            None,
        )
        try:
            phone = mobile_number(phone or "")
        except InvalidPhone:
            continue
        service.enroll(
            EnrollmentRequest(
                patient_id=match.res_id,
                protocol_id="covid19",
                phone=phone,
                start=start,
                consent=True,
                consent_method="oral",
                team=TEAM_ID,
            ),
            by="demo",
        )
        enrolled += 1
    return (
        f"{enrolled} patient(s) enrolled in the COVID-19 home follow-up "
        f"({len(already)} already), care team of {len(roles)} nurses"
    )
