"""The follow-up service of one platform: what routes, pages, commands and tests call.

``FollowupService`` ties the modules together inside transactions and knows nothing of
HTTP. Enrolling writes the enrollment, its Consent and its welcome SMS in one commit.
Answers come from the channels package as batches (``register_batch_handler``); a
batch is read, understood, checked against the rules and written in one transaction,
together with the next questions and the alerts it raises. A background worker
(``start_worker``) does the rest on each pass (:meth:`run_once`): it starts the sessions
that are due (in chunks, so that the first questions of a morning wave leave while the
rest are still being prepared), fires session timers (reminders, missing answers,
closing), escalates alerts nobody acknowledged, ends follow-ups past their end date,
reads home-device readings, hands messages to the channels outbox and writes pending
FHIR resources to the store. Everything it does is a row first, so a restart resumes
where it was and sends nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import Connection, bindparam, func, insert, select, update

from hygie.channels import Answer, Channels, channels_for
from hygie.followup import alerts as al
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
from hygie.followup.fhir import (
    consent_resource,
    flush_projection,
    project,
    response_resource,
)
from hygie.followup.model import (
    LANGUAGES,
    Alert,
    AlertEvent,
    AlertKind,
    AlertStatus,
    Enrollment,
    EnrollmentRequest,
    EnrollmentStatus,
    Level,
    Overrides,
    Protocol,
    SessionStatus,
    SessionView,
)
from hygie.followup.outgoing import Outgoing, cancel_pending, hand_over, queue
from hygie.followup.protocols import (
    covid19_definition,
    effective_rules,
    parse_protocol,
    protocol_definition,
    read_days,
    read_rules,
    read_times,
)
from hygie.followup.schedule import end_of_followup_ms, local_instant_ms, next_session_ms
from hygie.followup.team import TeamDirectory
from hygie.followup.transactions import chunks, insert_rows, now_ms, writing
from hygie.platform import Platform
from hygie.store.outcomes import FhirError

log = logging.getLogger("hygie.followup")

OWNER_PREFIX = "followup:"


@dataclass(frozen=True)
class Options:
    """The service's settings (``[followup]`` in hygie.toml, ``settings.extra``)."""

    #: Whether the background worker starts with the service.
    worker: bool = True
    #: Seconds between two passes of the worker when there was nothing to do.
    worker_interval_s: float = 2.0
    #: CareTeam told of alerts of enrollments that name none.
    default_team: str | None = None
    #: Sessions started per transaction (a morning wave is cut into such chunks).
    dispatch_chunk: int = 2000
    #: Whether home-device readings in the store are read and checked.
    device_readings: bool = True

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> Options:
        raw = extra.get("followup", {}) if isinstance(extra, dict) else {}
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


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


def _overrides(raw: Any) -> Overrides:
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
            from hygie.followup.model import Rule

            rules = tuple(
                Rule(r["item"], r["op"], r["value"], Level(r["level"]), r["label"])
                for r in raw["rules"]
            )
        else:
            rules = read_rules(raw["rules"], questions, "overrides.rules")
    removed = tuple((str(r["item"]), int(r["level"])) for r in raw.get("removed", []))
    return Overrides(times=times, on_days=on_days, rules=rules, removed=removed)


def _enrollment(row: Any) -> Enrollment:
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
        overrides=_overrides(row.overrides),
        next_due_ms=row.next_due_ms,
        created_ms=row.created_ms,
        created_by=row.created_by,
        ended_ms=row.ended_ms,
        end_reason=row.end_reason,
    )


def _patient(row: Any) -> cv.Patient:
    return cv.Patient(row.id, row.patient_id, row.phone, row.language)


_SESSION_UPDATE = (
    update(t.session)
    .where(t.session.c.id == bindparam("b_id"))
    .values(
        {
            c: bindparam(f"b_{c}")
            for c in (
                "status",
                "position",
                "attempt",
                "reminded",
                "missing_alerted",
                "asked_ms",
                "timer_ms",
                "timer_kind",
                "answers",
                "level",
                "late",
                "completed_ms",
                "rev",
            )
        }
    )
)


def _session_params(state: cv.SessionState) -> dict[str, Any]:
    row = state.as_row()
    return {
        "b_id": state.id,
        **{
            f"b_{k}": row[k]
            for k in (
                "status",
                "position",
                "attempt",
                "reminded",
                "missing_alerted",
                "asked_ms",
                "timer_ms",
                "timer_kind",
                "answers",
                "level",
                "late",
                "completed_ms",
            )
        },
        "b_rev": state.rev + 1,
    }


class FollowupService:
    """Remote follow-up on one platform's database, store and channels."""

    def __init__(self, platform: Platform, options: Options | None = None) -> None:
        self.platform = platform
        self.engine = platform.engine
        self.options = options or Options.from_extra(platform.settings.extra)
        self.base_url = platform.settings.base_url.rstrip("/")
        self.clock = now_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._teams: TeamDirectory | None = None
        self._protocols: dict[str, Protocol] = {}
        self._protocols_key: tuple[Any, ...] = ()
        self._registered = False

    @classmethod
    def for_platform(cls, platform: Platform) -> FollowupService:
        """The platform's one service (built on first use, handler registered, default
        protocol installed, worker started)."""
        service = platform.parts.get("followup")
        if service is None:
            service = cls(platform)
            platform.parts["followup"] = service
            service.install_protocols()
            service.register()
            if service.options.worker:
                service.start_worker()
        return service  # type: ignore[no-any-return]

    # --- parts -------------------------------------------------------------------------

    @property
    def repository(self) -> Any:
        store = self.platform.parts.get("store")
        if store is None:
            from hygie.store.server import open_store

            store = open_store(self.platform)
        return store.repository

    @property
    def channels(self) -> Channels:
        return channels_for(self.platform)

    @property
    def notifier(self) -> al.Notifier:
        if self._teams is None:
            self._teams = TeamDirectory(self.repository)
        return al.Notifier(self._teams, self.base_url, self.options.default_team)

    def register(self) -> None:
        """Receive the answers of every follow-up conversation (in batches)."""
        if not self._registered:
            self.channels.register_batch_handler(OWNER_PREFIX, self.on_answers)
            self._registered = True

    # --- protocols ---------------------------------------------------------------------

    def install_protocols(self) -> None:
        """Save the shipped COVID-19 protocol unless it exists (edits are kept)."""
        with self.engine.connect() as conn:
            present = conn.scalar(select(t.protocol.c.id).where(t.protocol.c.id == "covid19"))
        if present is None:
            self.save_protocol(covid19_definition(), by="hygie", only_if_missing=True)

    def save_protocol(
        self,
        definition: Any,
        by: str | None = None,
        active: bool = True,
        only_if_missing: bool = False,
    ) -> Protocol:
        """Create or edit a protocol (its version goes up); its Questionnaire goes to the
        store. Running sessions keep the questions they were started with."""
        draft = parse_protocol(definition)
        now = self.clock()
        with writing(self.engine) as conn:
            row = conn.execute(
                select(t.protocol).where(t.protocol.c.id == draft.id).with_for_update()
            ).first()
            if row is not None and only_if_missing:  # saved meanwhile by another process
                return parse_protocol(row.definition, row.version, row.active)
            version = (row.version + 1) if row is not None else 1
            protocol = parse_protocol(definition, version=version, active=active)
            values = {
                "title": protocol.title,
                "version": version,
                "definition": protocol_definition(protocol),
                "active": active,
                "updated_ms": now,
                "updated_by": by,
            }
            if row is None:
                conn.execute(insert(t.protocol).values(id=protocol.id, **values))
            else:
                conn.execute(
                    update(t.protocol).where(t.protocol.c.id == protocol.id).values(**values)
                )
            project(conn, [protocol.questionnaire], now)
        self._protocols_key = ()
        return protocol

    def protocol_map(self) -> dict[str, Protocol]:
        """Every protocol by id, reparsed only when one changed."""
        with self.engine.connect() as conn:
            key = tuple(
                conn.execute(
                    select(t.protocol.c.id, t.protocol.c.version, t.protocol.c.active).order_by(
                        t.protocol.c.id
                    )
                ).all()
            )
            if key != self._protocols_key:
                rows = conn.execute(select(t.protocol)).all()
                self._protocols = {
                    r.id: parse_protocol(r.definition, r.version, r.active) for r in rows
                }
                self._protocols_key = key
        return self._protocols

    def protocols(self) -> list[Protocol]:
        return sorted(self.protocol_map().values(), key=lambda p: p.title)

    def protocol(self, protocol_id: str) -> Protocol:
        found = self.protocol_map().get(protocol_id)
        if found is None:
            raise NotFound(f"no protocol {protocol_id!r}")
        return found

    # --- enrollment --------------------------------------------------------------------

    def enroll(self, request: EnrollmentRequest, by: str | None = None) -> Enrollment:
        """Start following a patient: checks, Consent, schedule, welcome SMS (one commit)."""
        if request.consent is not True:
            raise ConsentMissing("the patient's consent is needed to follow them by SMS")
        if request.consent_method not in ("oral", "written"):
            raise InvalidInput("consent_method: oral or written")
        if request.language not in LANGUAGES:
            raise InvalidInput(f"language: one of {', '.join(LANGUAGES)}")
        protocol = self.protocol(request.protocol_id)
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
            patient = self.repository.read("Patient", request.patient_id).resource
        except FhirError as exc:
            raise NotFound(f"no patient {request.patient_id!r} in the record") from exc
        if self.channels.is_opted_out(phone):
            raise Conflict("this number said STOP; it must send START before being followed")
        now = self.clock()
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
            " ".join([*name.get("given", [])[:1], name.get("family", "")]).strip()
            or request.patient_id
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
            "team_id": request.team or self.options.default_team,
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
        with writing(self.engine) as conn:
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
        self._after_commit()
        return self.enrollment(enrollment_id)

    def _after_commit(self) -> None:
        """Hand messages over and write resources right away (the worker retries)."""
        try:
            self.flush()
            self._hand_over()
        except Exception as exc:  # left pending for the worker's next pass
            log.warning("follow-up hand-over deferred: %s", type(exc).__name__)

    def enrollment(self, enrollment_id: str) -> Enrollment:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.enrollment).where(t.enrollment.c.id == enrollment_id)
            ).first()
        if row is None:
            raise NotFound(f"no enrollment {enrollment_id!r}")
        return _enrollment(row)

    def enrollments(
        self, status: str | None = None, patient_id: str | None = None, limit: int = 200
    ) -> list[Enrollment]:
        q = select(t.enrollment).order_by(t.enrollment.c.created_ms.desc()).limit(limit)
        if status:
            q = q.where(t.enrollment.c.status == status)
        if patient_id:
            q = q.where(t.enrollment.c.patient_id == patient_id)
        with self.engine.connect() as conn:
            return [_enrollment(r) for r in conn.execute(q)]

    def end(self, enrollment_id: str, by: str | None, reason: str = "") -> Enrollment:
        """End a follow-up: no more questions; what is still queued is called back."""
        now = self.clock()
        with writing(self.engine) as conn:
            row = conn.execute(
                select(t.enrollment).where(t.enrollment.c.id == enrollment_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no enrollment {enrollment_id!r}")
            if row.status != EnrollmentStatus.ACTIVE:
                raise Conflict("this follow-up has ended already")
            self._end(
                conn,
                row,
                EnrollmentStatus.ENDED,
                (reason or "fin du suivi") + (f" ({by})" if by else ""),
                now,
            )
        self._cancel_outbox([enrollment_id], "follow-up ended")
        self._after_commit()
        return self.enrollment(enrollment_id)

    def _end(
        self, conn: Connection, row: Any, status: EnrollmentStatus, reason: str, now: int
    ) -> None:
        conn.execute(
            update(t.enrollment)
            .where(t.enrollment.c.id == row.id)
            .values(status=status, ended_ms=now, end_reason=reason[:300], next_due_ms=None)
        )
        cancel_pending(conn, row.id)
        if row.current_session:
            session = conn.execute(
                select(t.session).where(t.session.c.id == row.current_session).with_for_update()
            ).first()
            if session is not None and session.status in (
                SessionStatus.IN_PROGRESS,
                SessionStatus.MISSED,
            ):
                state = cv.SessionState.from_row(session)
                state.status = SessionStatus.CANCELLED
                state.timer_ms = state.timer_kind = None
                conn.execute(_SESSION_UPDATE, [_session_params(state)])
                protocol = self.protocol_map().get(row.protocol_id)
                if state.answers and protocol is not None:
                    project(
                        conn,
                        [
                            response_resource(
                                state.id,
                                row.patient_id,
                                protocol,
                                state.answers,
                                "stopped",
                                now,
                                row.language,
                            )
                        ],
                        now,
                    )
        if status is EnrollmentStatus.STOPPED:
            project(
                conn,
                [
                    consent_resource(
                        row.consent_id,
                        row.patient_id,
                        row.start_date,
                        row.end_date,
                        "oral",
                        row.created_ms,
                        row.hospital,
                        active=False,
                    )
                ],
                now,
            )

    def _cancel_outbox(self, enrollment_ids: Sequence[str], reason: str) -> None:
        for eid in enrollment_ids:
            try:
                self.channels.cancel(cv.owner_of(eid), reason)
            except Exception as exc:  # the messages then fail on their own (opt-out, ttl)
                log.warning("follow-up messages not called back: %s", type(exc).__name__)

    # --- answers -----------------------------------------------------------------------

    def on_answers(self, answers: Sequence[Answer]) -> None:
        """Process a batch of replies (the channels batch handler): one transaction."""
        mine = [a for a in answers if a.owner.startswith(OWNER_PREFIX)]
        if not mine:
            return
        protocols = self.protocol_map()
        notifier = self.notifier
        stopped: list[str] = []
        with writing(self.engine) as conn:
            ids = [a.id for a in mine]
            known: set[str] = set()
            for part in chunks(ids):
                known.update(conn.scalars(select(t.answer.c.id).where(t.answer.c.id.in_(part))))
            eids = sorted({a.owner[len(OWNER_PREFIX) :] for a in mine})
            enrollments: dict[str, Any] = {}
            for part in chunks(eids):
                for row in conn.execute(
                    select(t.enrollment).where(t.enrollment.c.id.in_(part)).with_for_update()
                ):
                    enrollments[row.id] = row
            sids = sorted({r.current_session for r in enrollments.values() if r.current_session})
            sessions: dict[str, cv.SessionState] = {}
            for part in chunks(sids):
                for row in conn.execute(
                    select(t.session).where(t.session.c.id.in_(part)).with_for_update()
                ):
                    sessions[row.id] = cv.SessionState.from_row(row)
            answer_rows: list[dict[str, Any]] = []
            dirty: dict[str, cv.SessionState] = {}
            messages: list[Outgoing] = []
            resources: list[dict[str, Any]] = []
            raised: list[al.AlertRequest] = []
            for a in mine:
                if a.id in known:
                    continue
                known.add(a.id)
                eid = a.owner[len(OWNER_PREFIX) :]
                e = enrollments.get(eid)
                row = {
                    "id": a.id,
                    "enrollment_id": eid,
                    "session_id": None,
                    "link_id": None,
                    "text": a.text[:2000],
                    "outcome": "ignored",
                    "received_ms": a.received_ms,
                }
                answer_rows.append(row)
                if e is None or e.status != EnrollmentStatus.ACTIVE or eid in stopped:
                    continue
                protocol = protocols.get(e.protocol_id)
                if protocol is None:
                    continue
                if a.value == "STOP":
                    row["outcome"] = "stop"
                    self._end(
                        conn,
                        e,
                        EnrollmentStatus.STOPPED,
                        "le patient a répondu STOP",
                        a.received_ms,
                    )
                    al.raise_alert(
                        conn,
                        notifier,
                        protocol,
                        e,
                        None,
                        AlertKind.STOPPED,
                        Level.WARNING,
                        ["Le patient a répondu STOP : plus aucun message ne lui est envoyé"],
                        self.clock(),
                    )
                    stopped.append(eid)
                    continue
                state = sessions.get(e.current_session) if e.current_session else None
                now = self.clock()
                if e.overrides:
                    overrides = _overrides(e.overrides)
                    rules = effective_rules(protocol, overrides.rules, overrides.removed)
                else:
                    rules = protocol.rules
                effects = cv.take_answer(protocol, rules, state, _patient(e), a.text, now)
                row["outcome"] = effects.outcome
                row["link_id"] = effects.link_id
                if state is not None:
                    row["session_id"] = state.id
                    if effects.outcome != "unsolicited":
                        dirty[state.id] = state
                messages.extend(effects.messages)
                resources.extend(effects.resources)
                raised.extend(
                    al.AlertRequest(
                        protocol, e, state.id if state is not None else None, k, lv, why
                    )
                    for k, lv, why in effects.alerts
                )
            al.raise_alerts(conn, notifier, raised, self.clock())
            if answer_rows:
                insert_rows(conn, t.answer, answer_rows)
            if dirty:
                conn.execute(_SESSION_UPDATE, [_session_params(s) for s in dirty.values()])
            now = self.clock()
            queue(conn, messages, now)
            project(conn, resources, now)
        if stopped:
            self._cancel_outbox(stopped, "opted out (STOP)")
        try:
            self._hand_over()
        except Exception as exc:  # the worker hands them over on its next pass
            log.warning("follow-up hand-over deferred: %s", type(exc).__name__)

    # --- background work ---------------------------------------------------------------

    def _hand_over(self, limit: int = 2000) -> int:
        """Hand pending messages to the outbox; end the follow-ups whose number said
        STOP elsewhere (their questions failed at once)."""
        opted: list[str] = []
        handed = hand_over(self.engine, self.channels, limit, opted_out=opted)
        if opted:
            self._stop_opted_out(sorted(set(opted)))
        return handed

    def _stop_opted_out(self, enrollment_ids: list[str]) -> None:
        now = self.clock()
        protocols = self.protocol_map()
        stopped = []
        with writing(self.engine) as conn:
            for part in chunks(enrollment_ids):
                rows = conn.execute(
                    select(t.enrollment)
                    .where(
                        t.enrollment.c.id.in_(part),
                        t.enrollment.c.status == EnrollmentStatus.ACTIVE,
                    )
                    .with_for_update()
                ).all()
                for row in rows:
                    self._end(conn, row, EnrollmentStatus.STOPPED, "le numéro a répondu STOP", now)
                    protocol = protocols.get(row.protocol_id)
                    if protocol is not None:
                        al.raise_alert(
                            conn,
                            self.notifier,
                            protocol,
                            row,
                            None,
                            AlertKind.STOPPED,
                            Level.WARNING,
                            [
                                "Le numéro du patient a répondu STOP : plus aucun "
                                "message ne lui est envoyé"
                            ],
                            now,
                        )
                    stopped.append(row.id)
        self._cancel_outbox(stopped, "opted out (STOP)")

    def dispatch_due(self, limit: int | None = None) -> int:
        """Start the sessions that are due, one chunk per transaction, handing each
        chunk's first questions to the outbox before preparing the next; returns how
        many sessions were started."""
        chunk = limit or self.options.dispatch_chunk
        total = 0
        while not self._stop.is_set():
            started = self._dispatch_chunk(chunk)
            if started < 0:
                break
            total += started
            self._hand_over(limit=chunk + 100)
        return total

    def _dispatch_chunk(self, chunk: int) -> int:
        """One chunk of due sessions; -1 when nothing was due."""
        now = self.clock()
        protocols = self.protocol_map()
        with writing(self.engine) as conn:
            q = (
                select(t.enrollment)
                .where(
                    t.enrollment.c.status == EnrollmentStatus.ACTIVE,
                    t.enrollment.c.next_due_ms <= now,
                )
                .order_by(t.enrollment.c.next_due_ms)
                .limit(chunk)
            )
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            rows = conn.execute(q).all()
            if not rows:
                return -1
            previous = [r.current_session for r in rows if r.current_session]
            for part in chunks(previous):
                conn.execute(
                    update(t.session)
                    .where(
                        t.session.c.id.in_(part), t.session.c.status == SessionStatus.IN_PROGRESS
                    )
                    .values(status=SessionStatus.MISSED, timer_ms=None, timer_kind=None)
                )
            sessions, moves, messages = [], [], []
            started = 0
            for e in rows:
                protocol = protocols.get(e.protocol_id)
                overrides = _overrides(e.overrides)
                due = e.next_due_ms
                if protocol is None:
                    moves.append({"id": e.id, "due": due, "next": None, "started": False})
                    continue
                start, end = date.fromisoformat(e.start_date), date.fromisoformat(e.end_date)
                times = overrides.times or protocol.schedule.times
                on_days = (
                    overrides.on_days
                    if overrides.on_days is not None
                    else protocol.schedule.on_days
                )
                following = next_session_ms(max(due, now), start, end, times, on_days)
                if now - due > protocol.timing.expire_after_min * 60_000 or due >= e.end_ms:
                    # The server was down past this session's window: do not send it late.
                    moves.append({"id": e.id, "due": due, "next": following, "started": False})
                    continue
                state = cv.SessionState(
                    id=f"{e.id}-{due}",
                    enrollment_id=e.id,
                    due_ms=due,
                    status=SessionStatus.IN_PROGRESS,
                    position=0,
                    attempt=0,
                    reminded=False,
                    missing_alerted=False,
                    asked_ms=None,
                    timer_ms=None,
                    timer_kind=None,
                    answers={},
                    level=0,
                    late=False,
                    started_ms=now,
                    completed_ms=None,
                    rev=0,
                )
                effects = cv.start(protocol, state, _patient(e), now)
                messages.extend(effects.messages)
                sessions.append(state.as_row())
                moves.append({"id": e.id, "due": due, "next": following, "started": True})
                started += 1
            if sessions:
                insert_rows(conn, t.session, sessions)
            # Most of a wave shares its due time and its next one: one UPDATE per pair.
            groups: dict[tuple[int, int | None, bool], list[str]] = {}
            for move in moves:
                groups.setdefault((move["due"], move["next"], move["started"]), []).append(
                    move["id"]
                )
            for (due, following, began), ids in groups.items():
                values: dict[str, Any] = {"next_due_ms": following}
                if began:
                    values["current_session"] = t.enrollment.c.id + f"-{due}"
                for part in chunks(ids):
                    conn.execute(
                        update(t.enrollment).where(t.enrollment.c.id.in_(part)).values(**values)
                    )
            queue(conn, messages, now)
        return started

    def fire_timers(self, limit: int = 500) -> int:
        """Reminders, missing-answer alerts and closings that are due; returns how many."""
        now = self.clock()
        protocols = self.protocol_map()
        notifier = self.notifier
        with writing(self.engine) as conn:
            rows = conn.execute(
                select(t.session)
                .where(t.session.c.status == SessionStatus.IN_PROGRESS, t.session.c.timer_ms <= now)
                .order_by(t.session.c.timer_ms)
                .limit(limit)
                .with_for_update()
            ).all()
            if not rows:
                return 0
            eids = sorted({r.enrollment_id for r in rows})
            enrollments = {}
            for part in chunks(eids):
                for e in conn.execute(select(t.enrollment).where(t.enrollment.c.id.in_(part))):
                    enrollments[e.id] = e
            updates, messages, resources = [], [], []
            raised: list[al.AlertRequest] = []
            for row in rows:
                state = cv.SessionState.from_row(row)
                e = enrollments.get(row.enrollment_id)
                protocol = protocols.get(e.protocol_id) if e is not None else None
                if e is None or protocol is None or e.status != EnrollmentStatus.ACTIVE:
                    state.status = SessionStatus.CANCELLED
                    state.timer_ms = state.timer_kind = None
                    updates.append(_session_params(state))
                    continue
                effects = cv.fire_timer(protocol, state, _patient(e), now)
                messages.extend(effects.messages)
                resources.extend(effects.resources)
                raised.extend(
                    al.AlertRequest(protocol, e, state.id, k, lv, why)
                    for k, lv, why in effects.alerts
                )
                updates.append(_session_params(state))
            al.raise_alerts(conn, notifier, raised, now)
            conn.execute(_SESSION_UPDATE, updates)
            queue(conn, messages, now)
            project(conn, resources, now)
        return len(rows)

    def escalate(self) -> int:
        with writing(self.engine) as conn:
            return al.escalate_due(conn, self.notifier, self.protocol_map(), self.clock())

    def end_due(self, limit: int = 500) -> int:
        """End the follow-ups whose end date has passed."""
        now = self.clock()
        with writing(self.engine) as conn:
            rows = conn.execute(
                select(t.enrollment)
                .where(
                    t.enrollment.c.status == EnrollmentStatus.ACTIVE, t.enrollment.c.end_ms <= now
                )
                .limit(limit)
                .with_for_update()
            ).all()
            for row in rows:
                self._end(conn, row, EnrollmentStatus.ENDED, "date de fin atteinte", now)
        self._cancel_outbox([r.id for r in rows], "follow-up ended")
        return len(rows)

    def read_devices(self) -> int:
        """Check home-device readings that reached the store since the last pass."""
        if not self.options.device_readings:
            return 0
        from hygie.followup.readings import scan_readings

        return scan_readings(self)

    def flush(self) -> int:
        total = 0
        while True:
            n = flush_projection(self.engine, self.repository)
            total += n
            if n == 0 or self._stop.is_set():
                return total

    def run_once(self) -> dict[str, int]:
        """One pass of background work; returns what each step did."""
        out = {
            "ended": self.end_due(),
            "dispatched": self.dispatch_due(),
            "timers": self.fire_timers(),
            "escalated": self.escalate(),
            "readings": self.read_devices(),
        }
        out["handed"] = self._hand_over()
        out["projected"] = self.flush()
        return out

    def start_worker(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="followup-worker", daemon=True)
        self._thread.start()
        self.platform.closers.append(self.stop_worker)

    def stop_worker(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = any(self.run_once().values())
            except Exception as exc:  # the next pass retries
                log.error("follow-up worker pass failed: %s", type(exc).__name__)
            if not busy:
                self._stop.wait(self.options.worker_interval_s)

    # --- alerts ------------------------------------------------------------------------

    def alerts(
        self, status: str | None = "active", limit: int = 500, enrollment_id: str | None = None
    ) -> list[Alert]:
        """Alerts by severity, then oldest first. ``status="active"``: open or
        acknowledged; ``None``: all."""
        q = (
            select(t.alert, t.enrollment.c.patient_name)
            .join(t.enrollment, t.enrollment.c.id == t.alert.c.enrollment_id)
            .order_by(t.alert.c.level.desc(), t.alert.c.raised_ms)
            .limit(limit)
        )
        if status == "active":
            q = q.where(t.alert.c.status != AlertStatus.RESOLVED)
        elif status:
            q = q.where(t.alert.c.status == status)
        if enrollment_id:
            q = q.where(t.alert.c.enrollment_id == enrollment_id)
        with self.engine.connect() as conn:
            return [self._alert(r) for r in conn.execute(q)]

    @staticmethod
    def _alert(r: Any, events: tuple[AlertEvent, ...] = ()) -> Alert:
        return Alert(
            id=r.id,
            enrollment_id=r.enrollment_id,
            patient_id=r.patient_id,
            patient_name=r.patient_name,
            session_id=r.session_id,
            kind=AlertKind(r.kind),
            level=Level(r.level),
            reasons=tuple(r.reasons),
            status=AlertStatus(r.status),
            raised_ms=r.raised_ms,
            updated_ms=r.updated_ms,
            escalations=r.escalations,
            escalate_at_ms=r.escalate_at_ms,
            comment=r.comment,
            events=events,
        )

    def alert(self, alert_id: str) -> Alert:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.alert, t.enrollment.c.patient_name)
                .join(t.enrollment, t.enrollment.c.id == t.alert.c.enrollment_id)
                .where(t.alert.c.id == alert_id)
            ).first()
            if row is None:
                raise NotFound(f"no alert {alert_id!r}")
            events = tuple(
                AlertEvent(e.at_ms, e.kind, e.actor, e.detail)
                for e in conn.execute(
                    select(t.alert_event)
                    .where(t.alert_event.c.alert_id == alert_id)
                    .order_by(t.alert_event.c.id)
                )
            )
        return self._alert(row, events)

    def acknowledge(self, alert_id: str, actor: str) -> Alert:
        with writing(self.engine) as conn:
            al.acknowledge(conn, alert_id, actor, self.clock())
        return self.alert(alert_id)

    def resolve(self, alert_id: str, actor: str, comment: str) -> Alert:
        comment = (comment or "").strip()
        if not comment:
            raise InvalidInput("a comment is needed to resolve an alert")
        if len(comment) > 2000:
            raise InvalidInput("the comment is longer than 2000 characters")
        with writing(self.engine) as conn:
            al.resolve(conn, alert_id, actor, comment, self.clock())
        self._after_commit()
        return self.alert(alert_id)

    def record_call(self, alert_id: str, actor: str, detail: str | None = None) -> Alert:
        with writing(self.engine) as conn:
            al.record_call(conn, alert_id, actor, self.clock(), detail)
        return self.alert(alert_id)

    def counts(self) -> dict[str, int]:
        """Open alerts per level and active enrollments, for the dashboard's header."""
        with self.engine.connect() as conn:
            levels = dict(
                conn.execute(
                    select(t.alert.c.level, func.count())
                    .where(t.alert.c.status == AlertStatus.OPEN)
                    .group_by(t.alert.c.level)
                ).all()
            )
            active = conn.scalar(
                select(func.count())
                .select_from(t.enrollment)
                .where(t.enrollment.c.status == EnrollmentStatus.ACTIVE)
            )
        return {"active": int(active or 0), **{f"level{k}": int(v) for k, v in levels.items()}}

    # --- timeline ----------------------------------------------------------------------

    def sessions(self, enrollment_id: str, limit: int = 200) -> list[SessionView]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.session)
                .where(t.session.c.enrollment_id == enrollment_id)
                .order_by(t.session.c.due_ms.desc())
                .limit(limit)
            ).all()
        return [
            SessionView(
                r.id,
                r.due_ms,
                SessionStatus(r.status),
                dict(r.answers or {}),
                r.level,
                bool(r.late),
                r.started_ms,
                r.completed_ms,
            )
            for r in rows
        ]

    def answers(self, enrollment_id: str, limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.answer)
                .where(t.answer.c.enrollment_id == enrollment_id)
                .order_by(t.answer.c.received_ms.desc())
                .limit(limit)
            ).all()
        return [
            {
                "id": r.id,
                "session": r.session_id,
                "question": r.link_id,
                "text": r.text,
                "outcome": r.outcome,
                "received_ms": r.received_ms,
            }
            for r in rows
        ]

    def series(self, enrollment_id: str) -> dict[str, list[tuple[int, float]]]:
        """Measured values over time per question (answers and home devices), oldest
        first: what the timeline's charts draw."""
        e = self.enrollment(enrollment_id)
        protocol = self.protocol(e.protocol_id)
        out: dict[str, list[tuple[int, float]]] = {}
        for s in sorted(self.sessions(enrollment_id, limit=1000), key=lambda s: s.due_ms):
            for q in protocol.questions:
                value = s.answers.get(q.link_id)
                if (
                    q.kind != "boolean"
                    and isinstance(value, int | float)
                    and not isinstance(value, bool)
                ):
                    out.setdefault(q.link_id, []).append((s.due_ms, float(value)))
        return out

    def update_overrides(self, enrollment_id: str, raw: Any) -> Enrollment:
        """Change a patient's schedule or thresholds; the next session follows them."""
        e = self.enrollment(enrollment_id)
        protocol = self.protocol(e.protocol_id)
        overrides = overrides_from_json(raw, protocol)
        now = self.clock()
        times = overrides.times or protocol.schedule.times
        on_days = overrides.on_days if overrides.on_days is not None else protocol.schedule.on_days
        start, end = date.fromisoformat(e.start), date.fromisoformat(e.end)
        with writing(self.engine) as conn:
            conn.execute(
                update(t.enrollment)
                .where(
                    t.enrollment.c.id == enrollment_id,
                    t.enrollment.c.status == EnrollmentStatus.ACTIVE,
                )
                .values(
                    overrides=overrides.as_json() or None,
                    next_due_ms=next_session_ms(now, start, end, times, on_days),
                )
            )
        return replace(self.enrollment(enrollment_id))


def wait_until(predicate: Any, timeout_s: float = 10.0, step_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or the time is up (for tools and tests)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())
