"""PCD-01 reports as FHIR R4 resources: Device, Observation, and provisional Patient.

Ids are derived from the message (sender, MSH-10, OBX sequence) and from the device's
EUI-64, so that mapping the same message twice, after a crash between the store's
commit and the journal's, writes nothing new (the mapper checks before writing).

- Device: one per level of the 11073 containment tree (MDS from the EUI-64; VMD and
  channel rows, OBX-11 = X, as Devices whose ``parent`` is the level above), with the
  patient and the bed (PV1-3) on the MDS.
- Observation: one per metric, coded with MDC and, for the common vitals, LOINC;
  ``valueQuantity`` in UCUM, ``valueSampledData`` for a waveform (NA), facets as
  ``component``, OBX-7 as ``referenceRange``, OBX-8 as ``interpretation``.
- Patient: when PID-3 is unknown, a provisional Patient tagged for identity matching,
  with a Flag saying so (http://hl7.org/fhir/R4/flag.html).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from hygie.devices.model import Bed, DeviceNode, PatientId, Reading, Report
from hygie.devices.terminology import (
    LOINC_SYSTEM,
    MDC_SYSTEM,
    UCUM_SYSTEM,
    VITAL_SIGNS,
    metric_for,
)

Json = dict[str, Any]

HYGIE_BASE = "https://hygie.example/fhir"
#: Local CodeSystem of the gateway (the provisional-identity tag and flag).
DEVICES_CODES = f"{HYGIE_BASE}/CodeSystem/devices"
#: Identifier system of Observations made from an HL7 v2 message (sender|MSH-10|OBX).
OBX_IDENTIFIER = f"{HYGIE_BASE}/sid/hl7v2-obx"
#: Identifier system of Observations made from an MQTT payload (device|id|index).
MQTT_IDENTIFIER = f"{HYGIE_BASE}/sid/mqtt-measurement"
#: IEEE 11073 MDC_ATTR_SYS_ID (the EUI-64 system identifier), as an OID URN.
EUI64_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
PROVISIONAL_TAG = {
    "system": DEVICES_CODES,
    "code": "provisional",
    "display": "Identité provisoire créée par la passerelle biomédicale",
}
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_FLAGS = {"H", "L", "HH", "LL", "A", "AA", "N", "<", ">"}
_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)?\s*(-|<|>|<=|>=)?\s*([+-]?\d+(?:\.\d+)?)?\s*$")


def short_hash(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def observation_id(sender: str, control_id: str, index: int) -> str:
    return f"hl7-{short_hash(sender, control_id)[:32]}-{index}"


def mds_id(eui64: str) -> str:
    return f"eui64-{eui64.lower()}"


def node_id(eui64: str, path: tuple[int, ...]) -> str:
    trimmed = list(path)
    while len(trimmed) > 1 and trimmed[-1] == 0:
        trimmed.pop()
    if len(trimmed) <= 1:
        return mds_id(eui64)
    return f"{mds_id(eui64)}-" + "-".join(str(p) for p in trimmed[1:])


def provisional_patient_id(system: str, value: str) -> str:
    return f"prov-{short_hash(system, value)[:32]}"


def number(value: float) -> int | float:
    """JSON number for a decimal: integral values without a trailing ``.0``."""
    return int(value) if value.is_integer() and abs(value) < 1e15 else value


def quantity(value: float, unit: str | None) -> Json:
    out: Json = {"value": number(value)}
    if unit:
        out.update({"unit": unit, "system": UCUM_SYSTEM, "code": unit})
    return out


def mdc_concept(code: str, mnemonic: str) -> Json:
    coding: Json = {"system": MDC_SYSTEM, "code": code}
    if mnemonic:
        coding["display"] = mnemonic
    concept: Json = {"coding": [coding]}
    metric = metric_for(code, mnemonic)
    if metric is not None:
        concept["coding"] += [
            {"system": LOINC_SYSTEM, "code": c, "display": d} for c, d in metric.loinc
        ]
        concept["text"] = metric.label
    elif mnemonic:
        concept["text"] = mnemonic
    return concept


def device_resources(report: Report, patient_id: str, location_id: str | None) -> list[Json]:
    """Devices of the report: every MDS seen, and each VMD or channel row (OBX-11 = X)."""
    devices: dict[str, Json] = {}
    euis = {r.eui64 for r in report.readings} | {n.eui64 for n in report.devices}
    explicit = {node_id(n.eui64, n.path): n for n in report.devices}
    for eui in sorted(euis):
        did = mds_id(eui)
        node = explicit.get(did)
        devices[did] = _mds(eui, node, patient_id, location_id)
    for nid, node in explicit.items():
        if nid in devices:
            continue
        devices[nid] = {
            "resourceType": "Device",
            "id": nid,
            "status": "active",
            "type": mdc_concept(node.code, node.mnemonic),
            "parent": {"reference": f"Device/{_parent_id(node, explicit)}"},
        }
    return list(devices.values())


def _mds(eui: str, node: DeviceNode | None, patient_id: str, location_id: str | None) -> Json:
    body: Json = {
        "resourceType": "Device",
        "id": mds_id(eui),
        "status": "active",
        "identifier": [{"type": {"text": "EUI-64"}, "system": EUI64_SYSTEM, "value": eui}],
        "deviceName": [
            {
                "name": f"{node.mnemonic if node and node.mnemonic else 'Appareil'} {eui}",
                "type": "user-friendly-name",
            }
        ],
        "patient": {"reference": f"Patient/{patient_id}"},
    }
    if node is not None:
        body["type"] = mdc_concept(node.code, node.mnemonic)
    if location_id:
        body["location"] = {"reference": f"Location/{location_id}"}
    return body


def _parent_id(node: DeviceNode, explicit: dict[str, DeviceNode]) -> str:
    """The nearest level above ``node`` that the message named (VMD, else the MDS)."""
    path = ([*list(node.path[:4]), 0, 0, 0, 0])[:4]
    last = max((i for i, p in enumerate(path) if p), default=0)
    for level in range(last - 1, 0, -1):
        candidate = node_id(node.eui64, tuple(path[: level + 1] + [0] * (3 - level)))
        if candidate in explicit:
            return candidate
    return mds_id(node.eui64)


def reading_device(reading: Reading, explicit: set[str]) -> str:
    """The deepest device level above a metric that the message named (else the MDS)."""
    path = list(reading.path[:4]) + [0] * (4 - len(reading.path[:4]))
    for depth in (3, 2):
        candidate = node_id(reading.eui64, (*path[:depth], *([0] * (4 - depth))))
        if candidate in explicit:
            return candidate
    return mds_id(reading.eui64)


def reference_range(text: str) -> list[Json]:
    """OBX-7 (``low-high``, ``>low``, ``<high``) as Observation.referenceRange."""
    match = _RANGE.match(text) if text else None
    if not match or not any(match.groups()):
        return []
    low, op, high = match.groups()
    out: Json = {}
    if op in ("-", None) and low and high:
        out = {"low": {"value": number(float(low))}, "high": {"value": number(float(high))}}
    elif op in (">", ">=") and (high or low):
        out = {"low": {"value": number(float(high or low))}}
    elif op in ("<", "<=") and (high or low):
        out = {"high": {"value": number(float(high or low))}}
    return [out] if out else []


def observation_resource(
    reading: Reading, *, res_id: str, identifier: Json, patient_id: str, device_id: str
) -> Json:
    """The Observation of one reading."""
    metric = metric_for(reading.code, reading.mnemonic)
    body: Json = {
        "resourceType": "Observation",
        "id": res_id,
        "identifier": [identifier],
        "status": reading.status,
    }
    if metric is not None and metric.vital:
        body["category"] = [VITAL_SIGNS]
    body.update(
        {
            "code": mdc_concept(reading.code, reading.mnemonic),
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": reading.time,
            "device": {"reference": f"Device/{device_id}"},
        }
    )
    body.update(_value(reading.value_type, reading.value, reading.unit, reading.period_ms))
    flags = [f for f in reading.flags if f in _FLAGS]
    if flags:
        body["interpretation"] = [
            {"coding": [{"system": _INTERPRETATION, "code": f}]} for f in flags
        ]
    ranges = reference_range(reading.reference_range)
    if ranges:
        unit = reading.unit
        for r in ranges:
            for bound in r.values():
                if unit:
                    bound.update({"unit": unit, "system": UCUM_SYSTEM, "code": unit})
        body["referenceRange"] = ranges
    if reading.facets:
        body["component"] = [
            {
                "code": mdc_concept(code, mnemonic),
                **_value(
                    "NM"
                    if isinstance(value, float)
                    else "ST"
                    if isinstance(value, str)
                    else "NA"
                    if isinstance(value, list)
                    else "CWE",
                    value,
                    unit,
                    None,
                    facet=True,
                ),
            }
            for code, mnemonic, value, unit in reading.facets
        ]
    return body


def _value(
    value_type: str, value: Any, unit: str | None, period_ms: float | None, facet: bool = False
) -> Json:
    if value_type == "NM":
        return {"valueQuantity": quantity(value, unit)}
    if value_type == "NA":
        if facet or period_ms is None:
            return {"valueString": " ".join(str(number(v)) for v in value)}
        origin: Json = {"value": 0}
        if unit:
            origin.update({"unit": unit, "system": UCUM_SYSTEM, "code": unit})
        return {
            "valueSampledData": {
                "origin": origin,
                "period": number(round(period_ms, 6)),
                "dimensions": 1,
                "data": " ".join(str(number(v)) for v in value),
            }
        }
    if value_type in ("ST", "TX"):
        return {"valueString": value}
    if not value["code"]:
        return {"valueCodeableConcept": {"text": value.get("display") or ""}}
    coding: Json = {"code": value["code"]}
    if value.get("display"):
        coding["display"] = value["display"]
    if value.get("system") == "MDC":
        coding["system"] = MDC_SYSTEM
    return {
        "valueCodeableConcept": {"coding": [coding], "text": value.get("display") or value["code"]}
    }


def provisional_patient(
    patient_id: str, identifier: PatientId, system: str, name: tuple[str, str]
) -> Json:
    body: Json = {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"tag": [PROVISIONAL_TAG]},
        "identifier": [{"system": system, "value": identifier.value}],
        "active": True,
    }
    family, given = name
    if family or given:
        entry: Json = {"use": "temp"}
        if family:
            entry["family"] = family
        if given:
            entry["given"] = [given]
        body["name"] = [entry]
    return body


def provisional_flag(patient_id: str, when: str) -> Json:
    return {
        "resourceType": "Flag",
        "id": f"{patient_id}-flag",
        "status": "active",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "admin",
                        "display": "Administrative",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": DEVICES_CODES,
                    "code": "provisional-identity",
                    "display": "Provisional identity",
                }
            ],
            "text": "Identité provisoire créée par la passerelle biomédicale : "
            "à rapprocher du dossier du patient",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": when},
    }


def bed_label(bed: Bed | None, eui64: str) -> tuple[str, str]:
    """(board key, label) of where a report comes from: its bed, else its device."""
    if bed is None:
        return f"device/{eui64}", f"Appareil {eui64}"
    return bed.key, bed.label or bed.key
