"""Data types of remote follow-up: protocols, enrollments, sessions, alerts.

A *protocol* is a FHIR Questionnaire (SDC) plus what the Questionnaire does not say:
when to ask (:class:`Schedule`), which answers are worrying (:class:`Rule`, giving one
of three alert :class:`Level`\\ s) and how long to wait before reminding, alerting and
escalating (:class:`Timing`). An *enrollment* follows one patient with one protocol
between two dates, over SMS; each scheduled occurrence of the questionnaire is a
*session*, asked one question per message. Times are UTC milliseconds; dates and
hours of a schedule are Europe/Paris wall-clock times.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

#: The time zone of schedules and of what pages show.
ZONE = "Europe/Paris"
#: Languages a conversation can be held in (French by default).
LANGUAGES = ("fr", "en")


class Level(enum.IntEnum):
    """Alert levels, from the least to the most urgent."""

    WARNING = 1  #: vigilance (e.g. fever): the nurse looks at it today
    REVIEW = 2  #: clinical review: a clinician calls the patient
    EMERGENCY = 3  #: emergency: call now, the patient is told to call 15

    @property
    def label(self) -> str:
        return {1: "Vigilance", 2: "Avis médical", 3: "Urgence"}[self.value]

    @property
    def label_en(self) -> str:
        return {1: "Warning", 2: "Clinical review", 3: "Emergency"}[self.value]


class AlertKind(enum.StrEnum):
    """What raised an alert."""

    CLINICAL = "clinical"  #: answers crossed a threshold of the protocol
    MISSING = "missing"  #: no answer after the configured delay
    UNCLEAR = "unclear"  #: an answer was not understood twice: a person must read it
    DISTRESS = "distress"  #: a message reads like distress ("j'étouffe")
    STOPPED = "stopped"  #: the patient said STOP: nobody is asking questions any more
    DEVICE = "device"  #: a home device reading crossed a threshold


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"  #: end date reached, or ended by a clinician
    STOPPED = "stopped"  #: the patient said STOP


class SessionStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    MISSED = "missed"  #: not answered in time (a late answer takes it up again)
    HANDED_OVER = "handed_over"  #: an answer was not understood twice
    CANCELLED = "cancelled"  #: the follow-up ended or the patient said STOP


@dataclass(frozen=True)
class Question:
    """One question, read from a Questionnaire item.

    ``kind`` is the item type (``decimal``, ``integer`` or ``boolean``); ``text`` maps a
    language to its wording; ``low``/``high`` bound plausible values (outside them an
    answer is taken as not understood); ``code`` is the (system, code, display) of the
    Observation an answer becomes; ``enable_when`` asks the question only when another
    boolean question had this answer.
    """

    link_id: str
    kind: str
    text: dict[str, str]
    required: bool = True
    unit: str | None = None
    unit_display: str | None = None
    low: float | None = None
    high: float | None = None
    code: tuple[str, str, str] | None = None
    enable_when: tuple[str, bool] | None = None

    def wording(self, language: str) -> str:
        return self.text.get(language) or self.text.get("fr") or next(iter(self.text.values()))


@dataclass(frozen=True)
class Rule:
    """An alert threshold on one question: ``value <op> threshold`` gives ``level``.

    ``op`` is one of ``>=``, ``>``, ``<=``, ``<`` for numbers and ``=`` for yes/no
    questions. ``label`` is shown to clinicians (French) and written in the Flag.
    """

    item: str
    op: str
    value: float | bool
    level: Level
    label: str

    def matches(self, answer: float | bool) -> bool:
        if self.op == "=":
            return answer is self.value or answer == self.value
        if isinstance(answer, bool) or isinstance(self.value, bool):
            return False
        return {
            ">=": answer >= self.value,
            ">": answer > self.value,
            "<=": answer <= self.value,
            "<": answer < self.value,
        }[self.op]

    def as_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "op": self.op,
            "value": self.value,
            "level": int(self.level),
            "label": self.label,
        }


@dataclass(frozen=True)
class Schedule:
    """When sessions happen: at ``times`` (``"HH:MM"``, Europe/Paris) on every day of
    the follow-up, or only on ``on_days`` (1 is the first day). ``days`` is the default
    length of a follow-up."""

    times: tuple[str, ...]
    days: int = 14
    on_days: tuple[int, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "times": list(self.times),
            "days": self.days,
            "on_days": list(self.on_days) if self.on_days is not None else None,
        }


@dataclass(frozen=True)
class Timing:
    """Delays (minutes) of a protocol.

    A question not answered after ``reminder_after_min`` is sent again once; a session
    without an answer ``missing_after_min`` after its first question raises a MISSING
    alert of ``missing_level``; it is closed as missed ``expire_after_min`` after its
    start (a late answer until the next session takes it up again). An alert not
    acknowledged after ``escalate_after_min[level]`` is escalated, at most
    ``max_escalations`` times.
    """

    reminder_after_min: int = 60
    missing_after_min: int = 120
    missing_level: Level = Level.WARNING
    unclear_level: Level = Level.REVIEW
    expire_after_min: int = 360
    escalate_after_min: dict[int, int] = field(default_factory=lambda: {1: 240, 2: 30, 3: 10})
    max_escalations: int = 2

    def as_json(self) -> dict[str, Any]:
        return {
            "reminder_after_min": self.reminder_after_min,
            "missing_after_min": self.missing_after_min,
            "missing_level": int(self.missing_level),
            "unclear_level": int(self.unclear_level),
            "expire_after_min": self.expire_after_min,
            "escalate_after_min": {str(k): v for k, v in sorted(self.escalate_after_min.items())},
            "max_escalations": self.max_escalations,
        }


@dataclass(frozen=True)
class Protocol:
    """A follow-up protocol: its Questionnaire (FHIR JSON) and what goes with it."""

    id: str
    title: str
    version: int
    questionnaire: dict[str, Any]
    questions: tuple[Question, ...]
    schedule: Schedule
    rules: tuple[Rule, ...]
    timing: Timing
    #: How the team on duty is told of an alert: ``sms`` or ``email``.
    notify: str = "sms"
    active: bool = True

    def question(self, link_id: str) -> Question | None:
        return next((q for q in self.questions if q.link_id == link_id), None)

    @property
    def questionnaire_url(self) -> str:
        return str(self.questionnaire.get("url", ""))


@dataclass(frozen=True)
class Overrides:
    """Per-patient changes to a protocol: another schedule, other thresholds.

    A rule here replaces the protocol's rule on the same item and level; a rule with
    ``off`` removes it.
    """

    times: tuple[str, ...] | None = None
    on_days: tuple[int, ...] | None = None
    rules: tuple[Rule, ...] = ()
    removed: tuple[tuple[str, int], ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.times is not None:
            out["times"] = list(self.times)
        if self.on_days is not None:
            out["on_days"] = list(self.on_days)
        if self.rules:
            out["rules"] = [r.as_json() for r in self.rules]
        if self.removed:
            out["removed"] = [{"item": i, "level": lv} for i, lv in self.removed]
        return out


@dataclass(frozen=True)
class EnrollmentRequest:
    """What a clinician gives to start following a patient.

    ``consent`` must be true: the patient agreed (``consent_method``: ``oral`` or
    ``written``). ``phone`` is checked to be a mobile number. ``end`` defaults to the
    protocol's length; ``team`` names the CareTeam told of alerts.
    """

    patient_id: str
    protocol_id: str
    phone: str
    start: str
    consent: bool
    end: str | None = None
    consent_method: str = "oral"
    language: str = "fr"
    team: str | None = None
    overrides: Overrides = field(default_factory=Overrides)


@dataclass(frozen=True)
class Enrollment:
    """A patient followed with a protocol (the row of ``followup_enrollment``)."""

    id: str
    patient_id: str
    patient_name: str
    phone: str
    language: str
    protocol_id: str
    start: str
    end: str
    status: EnrollmentStatus
    consent_id: str
    team: str | None
    hospital: str | None
    overrides: Overrides
    next_due_ms: int | None
    created_ms: int
    created_by: str | None = None
    ended_ms: int | None = None
    end_reason: str | None = None


@dataclass(frozen=True)
class SessionView:
    """A session as pages and the API show it."""

    id: str
    due_ms: int
    status: SessionStatus
    answers: dict[str, Any]
    level: int
    late: bool
    started_ms: int
    completed_ms: int | None


@dataclass(frozen=True)
class AlertEvent:
    at_ms: int
    kind: str
    actor: str | None
    detail: str | None


@dataclass(frozen=True)
class Alert:
    """An alert raised for an enrollment, and where it stands."""

    id: str
    enrollment_id: str
    patient_id: str
    patient_name: str
    session_id: str | None
    kind: AlertKind
    level: Level
    reasons: tuple[str, ...]
    status: AlertStatus
    raised_ms: int
    updated_ms: int
    escalations: int
    escalate_at_ms: int | None
    comment: str | None = None
    events: tuple[AlertEvent, ...] = ()
