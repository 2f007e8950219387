"""The demo territory's mobilization: a Plan Blanc for each demo hospital, and the staff
directory read from the demo store.

``seed_demo(platform)`` is called by ``hygie demo`` once the store holds the generated
territory (``hygie.store.synthetic``: units ``<hospital>-icu``, ``-emergency``,
``-surgery``...; roles coded in SNOMED CT). It is idempotent: the plans are saved again
(a new version each time only if they changed) and the directory is rebuilt.
"""

from __future__ import annotations

from typing import Any

from hygie.mobilization.engine import MobilizationService, Options
from hygie.mobilization.errors import NotFound
from hygie.mobilization.plans import parse_plan, plan_to_dict
from hygie.platform import Platform

#: SNOMED CT codes of the demo roles a Plan Blanc recalls.
ICU_NURSE = "224547003"
EMERGENCY_NURSE = "224537001"
NURSE = "224535009"
NURSING_ASSISTANT = "224576000"
INTENSIVIST = "309338004"
ANAESTHETIST = "88189002"
EMERGENCY_PHYSICIAN = "309294001"
SURGEON = "78703002"

#: (hospital id, display name, whether it has an ICU).
DEMO_HOSPITALS = (
    ("ch-jeanne-sorel", "CH Jeanne-Sorel", True),
    ("ch-deux-rives", "CH des Deux-Rives", True),
    ("ch-val-amasse", "CH du Val d'Amasse", False),
)


def _request(role: str, unit: str, quota: int, minutes: int) -> dict[str, Any]:
    return {"role": role, "unit": unit, "quota": quota, "deadline_minutes": minutes}


def demo_plan(hospital: str, name: str, icu: bool) -> dict[str, Any]:
    """A Plan Blanc in three levels for one demo hospital."""
    er, surgery = f"{hospital}-emergency", f"{hospital}-surgery"
    level1 = [_request(EMERGENCY_NURSE, er, 2, 45), _request(NURSING_ASSISTANT, er, 1, 60)]
    level2 = [
        _request(EMERGENCY_PHYSICIAN, er, 2, 30),
        _request(EMERGENCY_NURSE, er, 3, 30),
        _request(SURGEON, surgery, 1, 60),
        _request(ANAESTHETIST, surgery, 1, 60),
    ]
    if icu:
        icu_unit = f"{hospital}-icu"
        level1.append(_request(ICU_NURSE, icu_unit, 2, 60))
        level2 += [_request(ICU_NURSE, icu_unit, 6, 60), _request(INTENSIVIST, icu_unit, 1, 45)]
    level3 = [{"role": "*", "quota": 40, "deadline_minutes": 120}]
    return {
        "id": f"plan-blanc-{hospital}",
        "name": f"Plan blanc {name}",
        "hospital": hospital,
        "description": "Plan de démonstration : afflux de victimes, trois niveaux.",
        "channels": ["sms", "voice", "email"],
        "wait_minutes": 10,
        "cycles": 2,
        "levels": [
            {"level": 1, "name": "Afflux modéré", "requests": level1},
            {"level": 2, "name": "Afflux massif", "requests": level2},
            {"level": 3, "name": "Rappel général", "requests": level3},
        ],
    }


def seed_demo(platform: Platform) -> str:
    """Save the demo plans and rebuild the directory; return a line saying so."""
    service = platform.parts.get("mobilization")
    if not isinstance(service, MobilizationService):
        service = MobilizationService(platform, Options(worker=False))
    saved = 0
    for hospital, name, icu in DEMO_HOSPITALS:
        plan = parse_plan(demo_plan(hospital, name, icu))
        try:
            current = service.plan(plan.id)
        except NotFound:
            current = None
        if current is None or plan_to_dict(current) != plan_to_dict(plan):
            service.save_plan(plan)
        saved += 1
    entries = service.sync_directory()
    return f"{saved} plans, {entries} people in the directory"
