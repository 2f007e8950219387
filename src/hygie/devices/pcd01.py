"""IHE PCD-01 (Communicate PCD Data, ORU^R01) parsed with the ``hl7`` library and checked.

What is read (IHE PCD TF-2, section 3.1 and appendix B): PID-3 (the patient's
identifier), PID-5 (the name, for a patient the record does not know yet), PV1-3 (the
bed), OBR-3 and OBR-7, and for each OBX: OBX-2 (value type), OBX-3 (the MDC code),
OBX-4 (the position in the 11073 containment tree, ``mds.vmd.channel.metric[.facet]``),
OBX-5, OBX-6 (unit), OBX-7, OBX-8, OBX-11 (``X``: a row that only names a level of the
device hierarchy), OBX-14 and OBX-18 (the device's EUI-64).

Every refusal is a ``MessageRejected`` naming the segment, its sequence and the field,
so that the application acknowledgment's ERR segment points at it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import hl7

from hygie.devices.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    MessageRejected,
)
from hygie.devices.model import Bed, DeviceNode, Header, PatientId, Reading, Report
from hygie.devices.terminology import MDC_ATTR_SAMP_RATE, UnknownUnit, metric_for, to_ucum

_HEX64 = re.compile(r"^[0-9A-Fa-f]{16}$")
_DTM = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?"
    r"([+-]\d{4})?$"
)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
#: OBX-11 (HL7 table 0085) -> Observation.status.
_STATUS = {
    "F": "final",
    "R": "preliminary",
    "P": "preliminary",
    "C": "corrected",
    "A": "amended",
    "D": "entered-in-error",
    "W": "entered-in-error",
    "I": "registered",
    "S": "registered",
    "U": "final",
}
_VALUE_TYPES = frozenset({"NM", "NA", "ST", "TX", "CWE", "CE", "CF", "CNE"})


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def hl7_time(text: str, local_timezone: str, segment: str, sequence: int, field: int) -> str:
    """An HL7 DTM as a FHIR dateTime in UTC (a date alone stays a date).

    Times without an offset are in ``local_timezone`` (devices of a French ICU run on
    Paris time).
    """
    match = _DTM.match(text.strip())
    if not match:
        raise MessageRejected(
            f"{text!r} is not an HL7 date/time (YYYYMMDDHHMMSS[+ZZZZ])",
            segment=segment,
            sequence=sequence,
            field=field,
            code=DATA_TYPE_ERROR,
        )
    year, month, day, hour, minute, second, frac, offset = match.groups()
    try:
        if hour is None:
            return f"{year}-{month or '01'}-{day or '01'}"
        micro = int((frac or "0").ljust(6, "0")[:6])
        naive = datetime(
            int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0), micro
        )
    except ValueError as exc:
        raise MessageRejected(
            f"{text!r} is not a valid date/time ({exc})",
            segment=segment,
            sequence=sequence,
            field=field,
            code=DATA_TYPE_ERROR,
        ) from exc
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        aware = naive.replace(tzinfo=timezone(sign * delta))
    else:
        aware = naive.replace(tzinfo=_zone(local_timezone))
    utc = aware.astimezone(UTC)
    stamp = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        stamp += f".{utc.microsecond // 1000:03d}"
    return stamp + "Z"


class _Segment:
    """One segment of the parsed message with HL7 numbering (``get(3, 1)`` is PID-3.1)."""

    def __init__(
        self, message: hl7.Message, segment: hl7.Segment, name: str, sequence: int
    ) -> None:
        self.message = message
        self.segment = segment
        self.name = name
        self.sequence = sequence
        self.escape = message.esc

    def get(self, field: int, component: int = 1, repetition: int = 1) -> str:
        """A component's text, unescaped ('' when absent); subcomponents are not split.

        Walks the library's containers directly: ``Segment.extract_field`` builds an
        accessor per call and cost a third of the mapper's parsing time.
        """
        try:
            value: Any = self.segment[field]
            if not isinstance(value, str):
                value = value[repetition - 1] if value else ""
            if not isinstance(value, str):
                value = value[component - 1] if len(value) >= component else ""
            elif component != 1:
                value = ""
            if not isinstance(value, str):
                value = value[0] if value else ""
        except IndexError:
            return ""
        text = str(value)
        return self.message.unescape(text) if self.escape in text else text

    def raw(self, field: int) -> str:
        try:
            return str(self.segment[field])
        except IndexError:
            return ""

    def repetitions(self, field: int) -> int:
        try:
            value = self.segment[field]
        except IndexError:
            return 0
        if value and isinstance(value, hl7.Field) and isinstance(value[0], hl7.Repetition):
            return len(value)
        return 1 if str(value) else 0

    def error(
        self,
        text: str,
        field: int,
        code: int = DATA_TYPE_ERROR,
        component: int = 0,
        repetition: int = 1,
    ) -> MessageRejected:
        return MessageRejected(
            text,
            segment=self.name,
            sequence=self.sequence,
            field=field,
            component=component,
            repetition=repetition,
            code=code,
        )

    def require(self, field: int, what: str, component: int = 1) -> str:
        value = self.get(field, component)
        if not value:
            raise self.error(
                f"{self.name}-{field} ({what}) is required",
                field,
                REQUIRED_FIELD_MISSING,
                component if component > 1 else 0,
            )
        return value


def _eui64(seg: _Segment, field: int) -> str:
    """The EUI-64 in an EI field: EI.1 when it is 16 hex digits, or EI.3 typed EUI-64."""
    first, universal, kind = seg.get(field, 1), seg.get(field, 3), seg.get(field, 4)
    if universal and kind.upper() == "EUI-64" and _HEX64.match(universal):
        return universal.upper()
    if first and _HEX64.match(first):
        return first.upper()
    if seg.get(field, 2).upper() == "EUI-64" and first:
        raise seg.error(
            f"{first!r} is not an EUI-64 (16 hexadecimal digits)", field, DATA_TYPE_ERROR, 1
        )
    return ""


def _path(seg: _Segment) -> tuple[int, ...]:
    text = seg.require(4, "observation sub-id: mds.vmd.channel.metric")
    try:
        path = tuple(int(p) for p in text.split("."))
    except ValueError as exc:
        raise seg.error(f"OBX-4 {text!r} is not a dotted list of numbers", 4) from exc
    if not 1 <= len(path) <= 8:
        raise seg.error(f"OBX-4 {text!r} has {len(path)} levels", 4)
    return path


def _number(seg: _Segment, text: str, field: int, component: int = 0) -> float:
    if not _NUMBER.match(text.strip()):
        raise seg.error(f"{text!r} is not a number", field, DATA_TYPE_ERROR, component)
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise seg.error(f"{text!r} is not a finite number", field, DATA_TYPE_ERROR, component)
    return value


def _value(seg: _Segment, value_type: str, comp: str) -> Any:
    raw = seg.raw(5)
    if value_type == "NM":
        return _number(seg, seg.get(5), 5)
    if value_type == "NA":
        parts = raw.split(comp)
        return [_number(seg, p, 5, i + 1) for i, p in enumerate(parts) if p != ""]
    if value_type in ("ST", "TX"):
        return seg.message.unescape(raw)
    return {"code": seg.get(5, 1), "display": seg.get(5, 2), "system": seg.get(5, 3)}


def _unit(seg: _Segment, reading_code: str, mnemonic: str) -> str | None:
    code, text, system = seg.get(6, 1), seg.get(6, 2), seg.get(6, 3)
    if not (code or text):
        metric = metric_for(reading_code, mnemonic)
        if metric is not None:
            return metric.ucum
        return None
    try:
        return to_ucum(code, text, system)
    except UnknownUnit as exc:
        raise seg.error(str(exc), 6, TABLE_VALUE_NOT_FOUND, 1) from exc


def parse_report(header: Header, text: str, local_timezone: str = "Europe/Paris") -> Report:
    """Parse and check a PCD-01 message whose header passed the receipt check."""
    normalized = text.replace("\r\n", "\r").replace("\n", "\r")
    try:
        message = hl7.parse(normalized)
    except Exception as exc:  # the library raises several types on malformed input
        raise MessageRejected(
            f"the message cannot be parsed: {exc}", segment="MSH", code=DATA_TYPE_ERROR
        ) from exc
    comp = (header.encoding or "^")[0]
    counts: dict[str, int] = {}
    pid: _Segment | None = None
    pv1: _Segment | None = None
    obr: _Segment | None = None
    obr_time = ""
    obr_eui = ""
    nodes: dict[tuple[int, ...], DeviceNode] = {}
    rows: list[tuple[_Segment, tuple[int, ...], str, str]] = []
    message_time = hl7_time(
        _Segment(message, message.segment("MSH"), "MSH", 1).require(7, "date/time of message"),
        local_timezone,
        "MSH",
        1,
        7,
    )
    for segment in message:
        name = str(segment[0])
        counts[name] = counts.get(name, 0) + 1
        seg = _Segment(message, segment, name, counts[name])
        if name == "PID":
            if pid is not None:
                raise seg.error(
                    "only one patient per message (a second PID)", 0, SEGMENT_SEQUENCE_ERROR
                )
            if obr is not None:
                raise seg.error("PID must come before the OBR groups", 0, SEGMENT_SEQUENCE_ERROR)
            pid = seg
        elif name == "PV1":
            pv1 = seg
        elif name == "OBR":
            obr = seg
            obr_time = seg.get(7)
            obr_eui = _eui64(seg, 3)
            if obr_time:
                obr_time = hl7_time(obr_time, local_timezone, "OBR", seg.sequence, 7)
        elif name == "OBX":
            if obr is None:
                raise seg.error("OBX before any OBR", 0, SEGMENT_SEQUENCE_ERROR)
            path = _path(seg)
            eui = _eui64(seg, 18) or obr_eui
            if not eui:
                raise seg.error(
                    "no EUI-64 for this observation's device (OBX-18, or OBR-3)",
                    18,
                    REQUIRED_FIELD_MISSING,
                )
            code = seg.require(3, "observation identifier: MDC code")
            status = seg.require(11, "observation result status")
            if status == "X":
                nodes[path] = DeviceNode(eui, path, code, seg.get(3, 2))
            else:
                rows.append((seg, path, eui, obr_time))
    if pid is None:
        raise MessageRejected(
            "the message has no PID segment", segment="PID", code=SEGMENT_SEQUENCE_ERROR
        )
    patient = _patient(pid)
    readings = _readings(rows, nodes, comp, message_time, local_timezone)
    if not readings and not nodes:
        raise MessageRejected(
            "the message carries no OBX segment", segment="OBX", code=SEGMENT_SEQUENCE_ERROR
        )
    return Report(
        header=header,
        patient=patient,
        patient_name=(pid.get(5, 1), pid.get(5, 2)),
        bed=_bed(pv1),
        message_time=message_time,
        devices=tuple(nodes.values()),
        readings=tuple(readings),
    )


def _patient(pid: _Segment) -> PatientId:
    for rep in range(1, max(pid.repetitions(3), 1) + 1):
        value = pid.get(3, 1, rep)
        if value:
            return PatientId(value, pid.get(3, 4, rep), pid.get(3, 5, rep))
    raise pid.error("PID-3 (patient identifier list) is required", 3, REQUIRED_FIELD_MISSING)


def _bed(pv1: _Segment | None) -> Bed | None:
    if pv1 is None or not (pv1.get(3, 1) or pv1.get(3, 3)):
        return None
    return Bed(pv1.get(3, 1), pv1.get(3, 2), pv1.get(3, 3), pv1.get(3, 4))


def _readings(
    rows: list[tuple[_Segment, tuple[int, ...], str, str]],
    nodes: dict[tuple[int, ...], DeviceNode],
    comp: str,
    message_time: str,
    local_timezone: str,
) -> list[Reading]:
    metrics: dict[tuple[int, ...], dict[str, Any]] = {}
    facets: dict[tuple[int, ...], list[tuple[str, str, Any, str | None]]] = {}
    for seg, path, eui, obr_time in rows:
        code, mnemonic = seg.get(3, 1), seg.get(3, 2)
        value_type = seg.get(2)
        if not value_type:
            raise seg.error(
                "OBX-2 (value type) is required for a result", 2, REQUIRED_FIELD_MISSING
            )
        if value_type not in _VALUE_TYPES:
            raise seg.error(f"value type {value_type!r} is not supported", 2, TABLE_VALUE_NOT_FOUND)
        if not seg.raw(5):
            raise seg.error("OBX-5 (observation value) is empty", 5, REQUIRED_FIELD_MISSING)
        value = _value(seg, value_type, comp)
        unit = _unit(seg, code, mnemonic) if value_type in ("NM", "NA") else None
        if len(path) > 4 and path[:4] in metrics:
            facets.setdefault(path[:4], []).append((code, mnemonic, value, unit))
            continue
        status_code = seg.get(11)
        if status_code not in _STATUS:
            raise seg.error(
                f"OBX-11 {status_code!r} is not in HL7 table 0085", 11, TABLE_VALUE_NOT_FOUND
            )
        time_text = seg.get(14)
        when = (
            hl7_time(time_text, local_timezone, "OBX", seg.sequence, 14)
            if time_text
            else obr_time or message_time
        )
        flags = tuple(seg.get(8, 1, r) for r in range(1, seg.repetitions(8) + 1))
        metrics[path] = {
            "obx": seg.sequence,
            "path": path,
            "code": code,
            "mnemonic": mnemonic,
            "value_type": value_type,
            "value": value,
            "unit": unit,
            "status": _STATUS[status_code],
            "time": when,
            "eui64": eui,
            "reference_range": seg.get(7),
            "flags": tuple(f for f in flags if f),
            "segment": seg,
        }
    out: list[Reading] = []
    for path, item in metrics.items():
        seg = item.pop("segment")
        item_facets = facets.get(path, [])
        period = None
        if item["value_type"] == "NA":
            period = _period(seg, item_facets)
        out.append(Reading(**item, period_ms=period, facets=tuple(item_facets)))
    return out


def _period(seg: _Segment, facets: list[tuple[str, str, Any, str | None]]) -> float:
    """The sampling period of a waveform, from its MDC_ATTR_SAMP_RATE facet."""
    for code, mnemonic, value, unit in facets:
        if code == str(MDC_ATTR_SAMP_RATE) or mnemonic == "MDC_ATTR_SAMP_RATE":
            if not isinstance(value, float) or value <= 0:
                break
            if unit in ("/s", "Hz", None):
                return 1000.0 / value
            if unit == "/min":
                return 60000.0 / value
    raise seg.error(
        "a waveform (NA) needs its sample rate: a MDC_ATTR_SAMP_RATE facet row "
        "(OBX-4 one level below the metric)",
        5,
        REQUIRED_FIELD_MISSING,
    )
