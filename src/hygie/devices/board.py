"""The ICU board's data: beds, their patient, and the latest value of each metric.

Read from the mapper's board tables (one row per bed, one per bed and metric); the
patient's name comes from the store. Values older than ``stale_after_s`` are marked
stale, so a monitor that stopped sending does not show a reassuring old value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from hygie.devices.tables import bed, bed_value
from hygie.devices.terminology import BOARD_KEYS, METRICS_BY_KEY
from hygie.store.model import now_us
from hygie.store.outcomes import FhirError
from hygie.store.repository import Repository

PARIS = ZoneInfo("Europe/Paris")


@dataclass
class BedView:
    key: str
    label: str
    unit: str
    patient: str
    patient_id: str
    provisional: bool
    device_id: str
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "patient": self.patient,
            "patientId": self.patient_id,
            "provisional": self.provisional,
            "device": self.device_id,
            "values": self.values,
        }


def _patient_label(repository: Repository, patient_id: str) -> str:
    try:
        patient = repository.read("Patient", patient_id).resource
    except FhirError:
        return patient_id
    name = (patient.get("name") or [{}])[0]
    text = " ".join([*(name.get("given") or []), (name.get("family") or "").upper()]).strip()
    ident = (patient.get("identifier") or [{}])[0].get("value", "")
    return f"{text} ({ident})" if text else ident or patient_id


def board_state(
    engine: Engine, repository: Repository, stale_after_s: int = 120, unit: str | None = None
) -> list[BedView]:
    """Beds (optionally of one unit) with their latest values, ordered by unit and label."""
    query = select(bed).order_by(bed.c.unit, bed.c.label)
    if unit:
        query = query.where(bed.c.unit == unit)
    with engine.connect() as conn:
        beds = conn.execute(query).all()
        values = conn.execute(select(bed_value)).all()
    now = now_us()
    by_bed: dict[str, list[Any]] = {}
    for v in values:
        by_bed.setdefault(v.bed_key, []).append(v)
    views = []
    for b in beds:
        view = BedView(
            b.bed_key,
            b.label,
            b.unit,
            _patient_label(repository, b.patient_id),
            b.patient_id,
            bool(b.provisional),
            b.device_id,
        )
        for v in by_bed.get(b.bed_key, []):
            if v.metric not in BOARD_KEYS:
                continue
            metric = METRICS_BY_KEY[v.metric]
            when = datetime.fromtimestamp(v.observed_at / 1e6, UTC).astimezone(PARIS)
            view.values[v.metric] = {
                "value": v.value,
                "unit": v.unit,
                "label": metric.label,
                "abnormal": bool(v.abnormal),
                "time": when.strftime("%H:%M:%S"),
                "stale": (now - v.observed_at) > stale_after_s * 1_000_000,
                "observation": v.observation_id,
            }
        views.append(view)
    return views


#: How people write the UCUM units of the board.
_UNIT_DISPLAY = {"Cel": "°C", "[degF]": "°F", "mm[Hg]": "mmHg", "cm[H2O]": "cmH₂O"}


def columns() -> list[dict[str, str]]:
    """The board's columns: metric key, label, unit as shown."""
    return [
        {
            "key": k,
            "label": METRICS_BY_KEY[k].label,
            "unit": _UNIT_DISPLAY.get(METRICS_BY_KEY[k].ucum, METRICS_BY_KEY[k].ucum),
        }
        for k in BOARD_KEYS
    ]
