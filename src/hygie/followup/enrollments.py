"""Enrolling a patient, and its inputs: mobile numbers, per-patient overrides, and
enrollment rows read back as :class:`~hygie.followup.model.Enrollment`."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import phonenumbers
from sqlalchemy import insert, select

from hygie.followup import conversation as cv
from hygie.followup import tables as t
from hygie.followup.errors import (
    Conflict,
    ConsentMissing,
    InvalidInput,
    InvalidPhone,
    InvalidProtocol,
    NotFound,
)
from hygie.followup.fhir import consent_resource, project
from hygie.followup.model import (
    LANGUAGES,
    Enrollment,
    EnrollmentRequest,
    EnrollmentStatus,
    Level,
    Overrides,
    Protocol,
    Rule,
)
from hygie.followup.outgoing import Outgoing, queue
from hygie.followup.protocols import read_days, read_rules, read_times
from hygie.followup.schedule import end_of_followup_ms, local_instant_ms, next_session_ms
from hygie.store.outcomes import FhirError

if TYPE_CHECKING:
    from hygie.followup.engine import FollowupService


def mobile_number(raw: str, region: str = "FR") -> str:
    """The E.164 form of a mobile number; raises InvalidPhone for anything else."""
    text = (raw or "").strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {text[:30]!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid phone number")
    kind = phonenumbers.number_type(number)
    if kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidPhone("not a mobile number: SMS cannot reach it")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def overrides_of(raw: Any) -> Overrides:
    return overrides_from_json(raw or {}, None)


def overrides_from_json(raw: Any, protocol: Protocol | None) -> Overrides:
    """Per-patient overrides from their JSON form (checked against the protocol)."""
    if not isinstance(raw, dict):
        raise InvalidInput("overrides: must be an object")
    times = read_times(raw["times"], "overrides.times") if raw.get("times") else None
    on_days = read_days(raw.get("on_days"), "overrides.on_days")
    rules = ()
    if raw.get("rules"):
        questions = protocol.questions if protocol is not None else ()
        if protocol is None:  # trusted (read back from the table)
            rules = tuple(
                Rule(r["item"], r["op"], r["value"], Level(r["level"]), r["label"])
                for r in raw["rules"]
            )
        else:
            rules = read_rules(raw["rules"], questions, "overrides.rules")
    removed = tuple((str(r["item"]), int(r["level"])) for r in raw.get("removed", []))
    return Overrides(times=times, on_days=on_days, rules=rules, removed=removed)


def enrollment_of(row: Any) -> Enrollment:
    return Enrollment(
        id=row.id,
        patient_id=row.patient_id,
        patient_name=row.patient_name,
        phone=row.phone,
        language=row.language,
        protocol_id=row.protocol_id,
        start=row.start_date,
        end=row.end_date,
        status=EnrollmentStatus(row.status),
        consent_id=row.consent_id,
        team=row.team_id,
        hospital=row.hospital,
        overrides=overrides_of(row.overrides),
        next_due_ms=row.next_due_ms,
        created_ms=row.created_ms,
        created_by=row.created_by,
        ended_ms=row.ended_ms,
        end_reason=row.end_reason,
    )


def enroll(
    service: FollowupService, request: EnrollmentRequest, by: str | None = None
) -> Enrollment:
    """Start following a patient: checks, Consent, schedule, welcome SMS (one commit)."""
    if request.consent is not True:
        raise ConsentMissing("the patient's consent is needed to follow them by SMS")
    if request.consent_method not in ("oral", "written"):
        raise InvalidInput("consent_method: oral or written")
    if request.language not in LANGUAGES:
        raise InvalidInput(f"language: one of {', '.join(LANGUAGES)}")
    protocol = service.protocol(request.protocol_id)
    if not protocol.active:
        raise Conflict(f"protocol {protocol.id!r} is retired")
    phone = mobile_number(request.phone)
    try:
        start = date.fromisoformat(request.start)
        end = (
            date.fromisoformat(request.end)
            if request.end
            else start + timedelta(days=protocol.schedule.days - 1)
        )
    except ValueError as exc:
        raise InvalidInput("start and end are dates (YYYY-MM-DD)") from exc
    if end < start or (end - start).days > 365:
        raise InvalidInput("the end must be after the start, within a year")
    overrides = request.overrides
    for rule in overrides.rules:
        if protocol.question(rule.item) is None:
            raise InvalidProtocol(f"overrides.rules: no question {rule.item!r}")
    try:
        patient = service.repository.read("Patient", request.patient_id).resource
    except FhirError as exc:
        raise NotFound(f"no patient {request.patient_id!r} in the record") from exc
    if service.channels.is_opted_out(phone):
        raise Conflict("this number said STOP; it must send START before being followed")
    now = service.clock()
    end_ms = end_of_followup_ms(end)
    if end_ms <= now:
        raise InvalidInput("this follow-up would end before it starts")
    times = overrides.times or protocol.schedule.times
    on_days = overrides.on_days if overrides.on_days is not None else protocol.schedule.on_days
    first_due = next_session_ms(
        max(now, local_instant_ms(start, "00:00")) - 1, start, end, times, on_days
    )
    name = (patient.get("name") or [{}])[0]
    patient_name = (
        " ".join([*name.get("given", [])[:1], name.get("family", "")]).strip() or request.patient_id
    )
    hospital = (patient.get("managingOrganization") or {}).get("reference", "")
    hospital = hospital.split("/", 1)[1] if hospital.startswith("Organization/") else None
    enrollment_id = uuid.uuid4().hex[:16]
    consent_id = f"fupc-{enrollment_id}"
    row = {
        "id": enrollment_id,
        "patient_id": request.patient_id,
        "patient_name": patient_name[:200],
        "phone": phone,
        "language": request.language,
        "protocol_id": protocol.id,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "status": EnrollmentStatus.ACTIVE,
        "consent_id": consent_id,
        "team_id": request.team or service.options.default_team,
        "hospital": hospital,
        "overrides": overrides.as_json() or None,
        "next_due_ms": first_due,
        "end_ms": end_ms,
        "current_session": None,
        "created_ms": now,
        "created_by": by,
    }
    lang = request.language
    welcome = (
        f"Bonjour, l'équipe soignante vous suit à domicile ({protocol.title}) jusqu'au "
        f"{end.strftime('%d/%m/%Y')}. Vous recevrez des questions par SMS. En cas "
        f"d'urgence appelez le 15. Répondez STOP pour ne plus recevoir de messages."
        if lang == "fr"
        else f"Hello, the care team follows you at home ({protocol.title}) until "
        f"{end.isoformat()}. You will receive questions by SMS. In an emergency call "
        f"15. Reply STOP to end the messages."
    )
    with service.writing() as conn:
        taken = conn.scalar(
            select(t.enrollment.c.id)
            .where(
                t.enrollment.c.patient_id == request.patient_id,
                t.enrollment.c.protocol_id == protocol.id,
                t.enrollment.c.status == EnrollmentStatus.ACTIVE,
            )
            .limit(1)
        )
        if taken is not None:
            raise Conflict("this patient is already followed with this protocol")
        conn.execute(insert(t.enrollment).values(**row))
        project(
            conn,
            [
                consent_resource(
                    consent_id,
                    request.patient_id,
                    start.isoformat(),
                    end.isoformat(),
                    request.consent_method,
                    now,
                    hospital,
                )
            ],
            now,
        )
        queue(
            conn,
            [
                Outgoing(
                    key=f"followup:{enrollment_id}:welcome",
                    owner=cv.owner_of(enrollment_id),
                    recipient=phone,
                    text=welcome,
                    enrollment_id=enrollment_id,
                    about=f"Patient/{request.patient_id}",
                    recipient_ref=f"Patient/{request.patient_id}",
                    # A reply is welcome: a STOP sent back to this first message
                    # must reach the follow-up (the number's conversation is ours).
                    awaits=True,
                )
            ],
            now,
        )
    service.after_commit()
    return service.enrollment(enrollment_id)
