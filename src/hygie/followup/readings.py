"""Home-device readings (pulse oximeter, thermometer...) count as answers.

The devices gateway writes what home devices publish over MQTT into the store as
Observations on the patient, with a ``device`` reference to ``Device/home-<id>`` and
LOINC codes (docs/devices.md). Follow-up never talks to the gateway: it reads those
Observations from the store, in ``_lastUpdated`` order from where its cursor stands
(``followup_cursor``, committed with what the readings caused, so a restart neither
skips nor repeats one). A reading whose code is the code of a protocol question:

- runs the patient's rules on that question: a crossed threshold raises a DEVICE alert;
- answers that question of the session in progress when it has not been asked yet,
  so the patient is not asked what the device already said.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from hygie.followup import alerts as al
from hygie.followup import conversation as cv
from hygie.followup import tables as t
from hygie.followup.enrollments import overrides_of
from hygie.followup.model import AlertKind, EnrollmentStatus, SessionStatus
from hygie.followup.protocols import effective_rules
from hygie.followup.sessions import SESSION_UPDATE, session_params
from hygie.followup.transactions import writing

if TYPE_CHECKING:
    from hygie.followup.engine import FollowupService

CURSOR = "device-readings"
#: References of the Devices the gateway creates for home devices.
HOME_DEVICE = "Device/home-"
PAGE = 200


def _value(resource: dict[str, Any]) -> float | None:
    quantity = resource.get("valueQuantity") or {}
    value = quantity.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if quantity.get("code") == "[degF]":
            return round((float(value) - 32) * 5 / 9, 1)
        return float(value)
    return None


#: LOINC codes that measure the same thing for a question: a pulse oximeter reports a
#: pulse rate (8889-8) where a question asks a heart rate (8867-4); SpO2 comes as
#: 59408-5 or 2708-6.
SAME = {
    ("http://loinc.org", "8889-8"): ("http://loinc.org", "8867-4"),
    ("http://loinc.org", "8867-4"): ("http://loinc.org", "8889-8"),
    ("http://loinc.org", "2708-6"): ("http://loinc.org", "59408-5"),
    ("http://loinc.org", "59408-5"): ("http://loinc.org", "2708-6"),
}


def _codes(resource: dict[str, Any]) -> set[tuple[str, str]]:
    found = {
        (c.get("system", ""), c.get("code", ""))
        for c in (resource.get("code") or {}).get("coding", [])
    }
    return found | {SAME[c] for c in found if c in SAME}


def scan_readings(service: FollowupService, max_pages: int = 5) -> int:
    """Check readings stored since the cursor; returns how many were home readings."""
    with service.engine.connect() as conn:
        cursor = conn.scalar(select(t.cursor.c.value).where(t.cursor.c.name == CURSOR))
    if cursor is None:  # first start: readings from before follow-up existed are history
        with writing(service.engine) as conn:
            if conn.scalar(select(t.cursor.c.value).where(t.cursor.c.name == CURSOR)) is None:
                conn.execute(insert(t.cursor).values(name=CURSOR, value=service.clock() * 1000))
        return 0
    since = datetime.fromtimestamp(cursor / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = [
        ("_lastUpdated", f"ge{since}"),
        ("device:missing", "false"),
        ("_sort", "_lastUpdated"),
        ("_count", str(PAGE)),
    ]
    found: list[Any] = []
    page = service.repository.search("Observation", query)
    for _ in range(max_pages):
        found.extend(m for m in page.matches if m.last_updated > cursor)
        if not page.next_cursor:
            break
        page = service.repository.search("Observation", query, cursor=page.next_cursor)
    if not found:
        return 0
    newest = max(m.last_updated for m in found)
    home = [
        m.resource
        for m in found
        if str((m.resource.get("device") or {}).get("reference", "")).startswith(HOME_DEVICE)
    ]
    patients = sorted(
        {str((r.get("subject") or {}).get("reference", "")).split("/", 1)[-1] for r in home}
    )
    protocols = service.protocol_map()
    notifier = service.notifier
    now = service.clock()
    with service.writing() as conn:
        enrollments = (
            conn.execute(
                select(t.enrollment).where(
                    t.enrollment.c.patient_id.in_(patients),
                    t.enrollment.c.status == EnrollmentStatus.ACTIVE,
                )
            ).all()
            if patients
            else []
        )
        by_patient: dict[str, list[Any]] = {}
        for e in enrollments:
            by_patient.setdefault(e.patient_id, []).append(e)
        for resource in home:
            pid = str((resource.get("subject") or {}).get("reference", "")).split("/", 1)[-1]
            value = _value(resource)
            if value is None:
                continue
            codes = _codes(resource)
            for e in by_patient.get(pid, []):
                protocol = protocols.get(e.protocol_id)
                if protocol is None:
                    continue
                question = next(
                    (q for q in protocol.questions if q.code and (q.code[0], q.code[1]) in codes),
                    None,
                )
                if question is None:
                    continue
                overrides = overrides_of(e.overrides)
                rules = effective_rules(protocol, overrides.rules, overrides.removed)
                matched = cv.matching_rules(rules, question.link_id, value)
                if matched:
                    level = max(r.level for r in matched)
                    unit = question.unit_display or ""
                    al.raise_alert(
                        conn,
                        notifier,
                        protocol,
                        e,
                        e.current_session,
                        AlertKind.DEVICE,
                        level,
                        [f"{r.label} (appareil : {value:g} {unit})".strip() for r in matched],
                        now,
                    )
                if e.current_session:
                    row = conn.execute(
                        select(t.session)
                        .where(t.session.c.id == e.current_session)
                        .with_for_update()
                    ).first()
                    if row is not None and row.status == SessionStatus.IN_PROGRESS:
                        state = cv.SessionState.from_row(row)
                        index = protocol.questions.index(question)
                        if index > state.position and question.link_id not in state.answers:
                            state.answers[question.link_id] = value
                            conn.execute(SESSION_UPDATE, [session_params(state)])
        conn.execute(update(t.cursor).where(t.cursor.c.name == CURSOR).values(value=newest))
    return len(home)
