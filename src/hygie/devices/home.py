"""The JSON payload home devices publish over MQTT, and its check.

Topic ``hygie/devices/<device id>/observations``, QoS 1. One payload per measurement
session (docs/devices.md gives the full description)::

    {
      "id": "7d0c2f9e-3b1a-4f7e-9d55-0c1e2a3b4c5d",
      "device": {"id": "OXY-000042", "type": "pulse-oximeter"},
      "patient": {"system": "https://hygie.example/fhir/sid/ipp", "value": "0000000042"},
      "time": "2026-03-21T08:15:00+01:00",
      "measurements": [
        {"metric": "spo2", "value": 96, "unit": "%"},
        {"metric": "pulse", "value": 72, "unit": "/min"}
      ]
    }

``id`` makes a resent payload (QoS 1 is at-least-once) recognisable: the pair
(device id, id) is stored once. ``patient.system`` defaults to the IPP system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from hygie.devices.errors import PayloadRejected
from hygie.devices.model import PatientId, Reading
from hygie.devices.terminology import METRICS_BY_KEY, UnknownUnit, to_ucum

#: Device kinds and their IEEE 11073-20601 specialization codes (MDC_DEV_SPEC_PROFILE_*).
DEVICE_TYPES = {
    "pulse-oximeter": ("528388", "MDC_DEV_SPEC_PROFILE_PULS_OXIM"),
    "blood-pressure": ("528391", "MDC_DEV_SPEC_PROFILE_BP"),
    "thermometer": ("528392", "MDC_DEV_SPEC_PROFILE_TEMP"),
}
#: Metrics each kind may report.
ALLOWED = {
    "pulse-oximeter": {"spo2", "pulse"},
    "blood-pressure": {"nibp_sys", "nibp_dia", "nibp_mean", "pulse"},
    "thermometer": {"temp"},
}
_DEVICE_ID = re.compile(r"^[A-Za-z0-9\-.]{1,40}$")
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9\-._:]{1,100}$")
#: Units accepted per metric, besides the metric's own UCUM unit.
_OTHER_UNITS = {"temp": {"[degF]"}}


@dataclass(frozen=True)
class HomeReport:
    """A checked payload."""

    message_id: str
    device_id: str
    device_type: str
    patient: PatientId
    patient_system: str
    time: str
    readings: tuple[Reading, ...]


def _get(data: dict[str, object], key: str, kind: type, path: str) -> object:
    if key not in data:
        raise PayloadRejected("is required", f"{path}{key}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PayloadRejected(f"must be a {kind.__name__}", f"{path}{key}")
    return value


def parse_payload(raw: bytes, default_system: str) -> HomeReport:
    """Check a payload against the documented format; ``PayloadRejected`` says where."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadRejected(f"not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise PayloadRejected("the payload must be a JSON object")
    message_id = str(_get(data, "id", str, ""))
    if not _MESSAGE_ID.match(message_id):
        raise PayloadRejected("must be 1-100 letters, digits or - . _ :", "id")
    device = _get(data, "device", dict, "")
    device_id = str(_get(device, "id", str, "device."))  # type: ignore[arg-type]
    if not _DEVICE_ID.match(device_id):
        raise PayloadRejected("must be 1-40 letters, digits, - or .", "device.id")
    kind = str(_get(device, "type", str, "device."))  # type: ignore[arg-type]
    if kind not in DEVICE_TYPES:
        raise PayloadRejected(f"must be one of {sorted(DEVICE_TYPES)}", "device.type")
    patient = _get(data, "patient", dict, "")
    value = str(_get(patient, "value", str, "patient."))  # type: ignore[arg-type]
    system = str(patient.get("system") or default_system)  # type: ignore[attr-defined]
    if not value.strip():
        raise PayloadRejected("is empty", "patient.value")
    when_text = str(_get(data, "time", str, ""))
    try:
        when = datetime.fromisoformat(when_text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadRejected("is not an ISO 8601 date-time", "time") from exc
    if when.tzinfo is None:
        raise PayloadRejected("needs a UTC offset (Z or +01:00)", "time")
    time = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    items = _get(data, "measurements", list, "")
    if not items or len(items) > 20:  # type: ignore[arg-type]
        raise PayloadRejected("must hold 1 to 20 measurements", "measurements")
    readings = []
    for i, item in enumerate(items):  # type: ignore[arg-type]
        path = f"measurements[{i}]."
        if not isinstance(item, dict):
            raise PayloadRejected("must be an object", path[:-1])
        key = str(_get(item, "metric", str, path))
        if key not in ALLOWED[kind]:
            raise PayloadRejected(f"a {kind} reports {sorted(ALLOWED[kind])}", path + "metric")
        number = _get(item, "value", (int, float), path)  # type: ignore[arg-type]
        metric = METRICS_BY_KEY[key]
        unit_text = str(item.get("unit") or metric.ucum)
        try:
            unit = to_ucum(unit_text, "", "UCUM")
        except UnknownUnit as exc:
            raise PayloadRejected(str(exc), path + "unit") from exc
        if unit != metric.ucum and unit not in _OTHER_UNITS.get(key, set()):
            raise PayloadRejected(f"must be {metric.ucum}", path + "unit")
        readings.append(
            Reading(
                obx=i + 1,
                path=(1, 1, 1, i + 1),
                code=str(metric.mdc),
                mnemonic=metric.mnemonic,
                value_type="NM",
                value=float(number),
                unit=unit,  # type: ignore[arg-type]
                status="final",
                time=time,
                eui64=device_id,
            )
        )
    return HomeReport(message_id, device_id, kind, PatientId(value), system, time, tuple(readings))
