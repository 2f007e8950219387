"""The follow-up service of one platform: what routes, pages, commands and tests call.

``FollowupService`` holds what the parts share (the platform, its store and channels,
the protocols, the teams, the clock) and knows nothing of HTTP. Enrolling
(``enrollments.py``) writes the enrollment, its Consent and its welcome SMS in one
commit. Answers come from the channels package in batches (``register_batch_handler``)
and each batch is one transaction (``sessions.take_answers``), together with the next
questions and the alerts it raises. A background worker (``start_worker``) does the
rest on each pass (:meth:`run_once`): it starts the sessions that are due in chunks, so
that the first questions of a morning wave leave while the rest are still being
prepared (``sessions.start_due``), fires session timers (reminders, missing answers,
closing), escalates alerts nobody acknowledged, ends follow-ups past their end date,
reads home-device readings, hands messages to the channels outbox and writes pending
FHIR resources to the store. Everything it does is a row first, so a restart resumes
where it was and sends nothing twice. Reads for pages are in ``views.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hygie.channels import Answer, Channels, channels_for
from hygie.followup import alerts as al
from hygie.followup import conversation as cv
from hygie.followup import tables as t
from hygie.followup import views
from hygie.followup.enrollments import (
    enroll,
    enrollment_of,
    overrides_from_json,
)
from hygie.followup.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from hygie.followup.fhir import (
    consent_resource,
    flush_projection,
    project,
    response_resource,
)
from hygie.followup.model import (
    Alert,
    AlertKind,
    Enrollment,
    EnrollmentRequest,
    EnrollmentStatus,
    Level,
    Protocol,
    SessionStatus,
    SessionView,
)
from hygie.followup.outgoing import cancel_pending, hand_over, handing_over
from hygie.followup.protocols import (
    covid19_definition,
    parse_protocol,
    protocol_definition,
)
from hygie.followup.schedule import next_session_ms
from hygie.followup.sessions import (
    OWNER_PREFIX,
    SESSION_UPDATE,
    fire_due,
    session_params,
    start_due,
    take_answers,
)
from hygie.followup.team import TeamDirectory
from hygie.followup.transactions import chunks, now_ms, writing
from hygie.platform import Platform

log = logging.getLogger("hygie.followup")


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

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A follow-up write transaction whose messages go into the channels outbox
        before it commits (one transaction where a separate hand-over took two more);
        follow-ups whose question met a STOP said elsewhere are ended after it."""
        channels = self.channels
        opted: list[str] = []
        with writing(self.engine) as conn:
            if channels.outbox.engine is not self.engine:  # another database: hand over
                yield conn
                return
            with handing_over(conn, channels, opted):
                yield conn
        if opted:
            self.stop_opted_out(sorted(set(opted)))

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
        return enroll(self, request, by)

    def after_commit(self) -> None:
        """Hand messages over and write resources right away (the worker retries)."""
        try:
            self.flush()
            self.hand_over_pending()
        except Exception as exc:  # left pending for the worker's next pass
            log.warning("follow-up hand-over deferred: %s", type(exc).__name__)

    def enrollment(self, enrollment_id: str) -> Enrollment:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.enrollment).where(t.enrollment.c.id == enrollment_id)
            ).first()
        if row is None:
            raise NotFound(f"no enrollment {enrollment_id!r}")
        return enrollment_of(row)

    def enrollments(
        self, status: str | None = None, patient_id: str | None = None, limit: int = 200
    ) -> list[Enrollment]:
        q = select(t.enrollment).order_by(t.enrollment.c.created_ms.desc()).limit(limit)
        if status:
            q = q.where(t.enrollment.c.status == status)
        if patient_id:
            q = q.where(t.enrollment.c.patient_id == patient_id)
        with self.engine.connect() as conn:
            return [enrollment_of(r) for r in conn.execute(q)]

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
            self.close_enrollment(
                conn,
                row,
                EnrollmentStatus.ENDED,
                (reason or "fin du suivi") + (f" ({by})" if by else ""),
                now,
            )
        self.cancel_outbox([enrollment_id], "follow-up ended")
        self.after_commit()
        return self.enrollment(enrollment_id)

    def close_enrollment(
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
                conn.execute(SESSION_UPDATE, [session_params(state)])
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

    def cancel_outbox(self, enrollment_ids: Sequence[str], reason: str) -> None:
        for eid in enrollment_ids:
            try:
                self.channels.cancel(cv.owner_of(eid), reason)
            except Exception as exc:  # the messages then fail on their own (opt-out, ttl)
                log.warning("follow-up messages not called back: %s", type(exc).__name__)

    # --- answers -----------------------------------------------------------------------

    def on_answers(self, answers: Sequence[Answer]) -> bool:
        """Process a batch of replies (the channels batch handler): one transaction,
        which marks them handled too (True)."""
        return take_answers(self, answers)

    # --- background work ---------------------------------------------------------------

    def hand_over_pending(self, limit: int = 2000) -> int:
        """Hand pending messages to the outbox; end the follow-ups whose number said
        STOP elsewhere (their questions failed at once)."""
        opted: list[str] = []
        handed = hand_over(self.engine, self.channels, limit, opted_out=opted)
        if opted:
            self.stop_opted_out(sorted(set(opted)))
        return handed

    def stop_opted_out(self, enrollment_ids: list[str]) -> None:
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
                    self.close_enrollment(
                        conn, row, EnrollmentStatus.STOPPED, "le numéro a répondu STOP", now
                    )
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
        self.cancel_outbox(stopped, "opted out (STOP)")

    def dispatch_due(self, limit: int | None = None) -> int:
        """Start the sessions that are due, one chunk per transaction, handing each
        chunk's first questions to the outbox before preparing the next; returns how
        many sessions were started."""
        chunk = limit or self.options.dispatch_chunk
        total = 0
        while not self._stop.is_set():
            started = start_due(self, chunk)
            if started < 0:
                break
            total += started
            self.hand_over_pending(limit=chunk + 100)
        return total

    def fire_timers(self, limit: int = 500) -> int:
        """Reminders, missing-answer alerts and closings that are due, ``limit`` sessions
        per transaction (a morning wave's reminders come due together), each batch's
        messages handed over before the next; returns how many."""
        total = 0
        while not self._stop.is_set():
            fired = fire_due(self, limit)
            total += fired
            if fired < limit:
                break
            self.hand_over_pending(limit=2 * limit)
        return total

    def escalate(self) -> int:
        with self.writing() as conn:
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
                self.close_enrollment(
                    conn, row, EnrollmentStatus.ENDED, "date de fin atteinte", now
                )
        self.cancel_outbox([r.id for r in rows], "follow-up ended")
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
        out["handed"] = self.hand_over_pending()
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
        """Alerts by severity, then oldest first (``"active"``: open or acknowledged)."""
        return views.alerts(self.engine, status, limit, enrollment_id)

    def alert(self, alert_id: str) -> Alert:
        """One alert with its history."""
        return views.alert(self.engine, alert_id)

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
        self.after_commit()
        return self.alert(alert_id)

    def record_call(self, alert_id: str, actor: str, detail: str | None = None) -> Alert:
        with writing(self.engine) as conn:
            al.record_call(conn, alert_id, actor, self.clock(), detail)
        return self.alert(alert_id)

    def counts(self) -> dict[str, int]:
        """Open alerts per level and active enrollments."""
        return views.counts(self.engine)

    # --- timeline ----------------------------------------------------------------------

    def sessions(self, enrollment_id: str, limit: int = 200) -> list[SessionView]:
        return views.sessions(self.engine, enrollment_id, limit)

    def answers(self, enrollment_id: str, limit: int = 200) -> list[dict[str, Any]]:
        return views.answers(self.engine, enrollment_id, limit)

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
