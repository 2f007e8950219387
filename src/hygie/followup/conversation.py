"""One session of questions over SMS, as a state machine with no I/O.

A session asks the protocol's questions one per message. Each reply is read for the
question waiting (:func:`hygie.followup.understanding.understand`):

- understood: the value is kept, the rules on that question are run, and the next
  question whose ``enableWhen`` holds is asked; after the last one the session is
  completed and the patient thanked;
- unclear: the question is asked again once, with how to answer; a second unclear
  reply hands the session over to a person (an UNCLEAR alert), and the patient is told
  that someone will call;
- a message that reads like distress ("j'étouffe") raises an emergency whatever the
  question, tells the patient to call 15, and hands the session over.

Silence is handled by the session's one timer (:func:`arm_timer`): the question is sent
again once after ``reminder_after_min``; a MISSING alert is raised ``missing_after_min``
after the start if the session is not complete; the session is closed as *missed*
``expire_after_min`` after its start. A reply to a missed session, before the next one
starts, takes it up again (``late``).

The functions here take a :class:`SessionState` and return :class:`Effects` (messages
to send, resources for the store, alerts to raise); ``engine.py`` loads and writes them
inside one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hygie.followup.fhir import observation_resource, response_resource
from hygie.followup.model import AlertKind, Level, Protocol, Question, Rule, SessionStatus
from hygie.followup.outgoing import Outgoing
from hygie.followup.schedule import local_text
from hygie.followup.understanding import SKIP, UNCLEAR, VALUE, distress, understand

_HINT = {
    ("fr", "boolean"): "Répondez OUI ou NON.",
    ("en", "boolean"): "Please answer YES or NO.",
    ("fr", "decimal"): "Répondez par un nombre, par exemple 37,8.",
    ("en", "decimal"): "Please answer with a number, for example 37.8.",
    ("fr", "integer"): "Répondez par un nombre, par exemple 96.",
    ("en", "integer"): "Please answer with a number, for example 96.",
}
_TEXTS = {
    "fr": {
        "first": "Suivi Hygie, questionnaire de {time}. ",
        "unclear": "Je n'ai pas compris votre réponse. ",
        "reminder": "Rappel : ",
        "thanks": "Merci, vos réponses sont transmises à l'équipe soignante. "
        "En cas d'urgence appelez le 15.",
        "handover": "Merci. Un soignant va vous recontacter. En cas d'urgence appelez le 15.",
        "distress": "Si vous avez du mal à respirer ou une douleur dans la poitrine, appelez "
        "le 15 maintenant. L'équipe soignante est prévenue.",
    },
    "en": {
        "first": "Hygie follow-up, {time} questionnaire. ",
        "unclear": "Sorry, I did not understand your answer. ",
        "reminder": "Reminder: ",
        "thanks": "Thank you, your answers have been sent to the care team. "
        "In an emergency call 15.",
        "handover": "Thank you. A nurse will call you back. In an emergency call 15.",
        "distress": "If you have trouble breathing or chest pain, call 15 now. "
        "The care team has been told.",
    },
}


def texts(language: str) -> dict[str, str]:
    return _TEXTS.get(language, _TEXTS["fr"])


@dataclass
class SessionState:
    """A session as loaded from ``followup_session`` (mutable while it is processed)."""

    id: str
    enrollment_id: str
    due_ms: int
    status: SessionStatus
    position: int
    attempt: int
    reminded: bool
    missing_alerted: bool
    asked_ms: int | None
    timer_ms: int | None
    timer_kind: str | None
    answers: dict[str, Any]
    level: int
    late: bool
    started_ms: int
    completed_ms: int | None
    rev: int

    @classmethod
    def from_row(cls, row: Any) -> SessionState:
        return cls(
            id=row.id,
            enrollment_id=row.enrollment_id,
            due_ms=row.due_ms,
            status=SessionStatus(row.status),
            position=row.position,
            attempt=row.attempt,
            reminded=bool(row.reminded),
            missing_alerted=bool(row.missing_alerted),
            asked_ms=row.asked_ms,
            timer_ms=row.timer_ms,
            timer_kind=row.timer_kind,
            answers=dict(row.answers or {}),
            level=row.level,
            late=bool(row.late),
            started_ms=row.started_ms,
            completed_ms=row.completed_ms,
            rev=row.rev,
        )

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "enrollment_id": self.enrollment_id,
            "due_ms": self.due_ms,
            "status": str(self.status),
            "position": self.position,
            "attempt": self.attempt,
            "reminded": self.reminded,
            "missing_alerted": self.missing_alerted,
            "message_id": None,
            "asked_ms": self.asked_ms,
            "timer_ms": self.timer_ms,
            "timer_kind": self.timer_kind,
            "answers": self.answers,
            "level": self.level,
            "late": self.late,
            "started_ms": self.started_ms,
            "completed_ms": self.completed_ms,
            "rev": self.rev,
        }


@dataclass(frozen=True)
class Patient:
    """What a session needs of its enrollment."""

    enrollment_id: str
    patient_id: str
    phone: str
    language: str


@dataclass
class Effects:
    """What processing a session step asks for, written by the engine in one transaction."""

    messages: list[Outgoing] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    #: (kind, level, reasons) of alerts to raise or raise higher.
    alerts: list[tuple[AlertKind, Level, list[str]]] = field(default_factory=list)
    outcome: str = "value"
    link_id: str | None = None


def owner_of(enrollment_id: str) -> str:
    """The channels owner of an enrollment's conversation."""
    return f"followup:{enrollment_id}"


def enabled(question: Question, answers: dict[str, Any]) -> bool:
    if question.enable_when is None:
        return True
    other, wanted = question.enable_when
    return other in answers and answers[other] is wanted


def next_position(protocol: Protocol, answers: dict[str, Any], start: int) -> int | None:
    """The first question from ``start`` that is enabled and not answered yet."""
    for i in range(start, len(protocol.questions)):
        q = protocol.questions[i]
        if q.link_id not in answers and enabled(q, answers):
            return i
    return None


def question_text(protocol: Protocol, state: SessionState, language: str, prefix: str = "") -> str:
    q = protocol.questions[state.position]
    shown = [i for i, other in enumerate(protocol.questions) if other.enable_when is None]
    total = len(shown)
    number = sum(1 for i in shown if i <= state.position)
    head = ""
    if state.position == next_position(protocol, {}, 0) and not state.answers and not prefix:
        head = texts(language)["first"].format(
            title=protocol.title, time=local_text(state.due_ms, "%H:%M")
        )
    counter = f"({number}/{total}) " if q.enable_when is None and total > 1 else ""
    return f"{head}{prefix}{counter}{q.wording(language)}"


def ask(
    protocol: Protocol,
    state: SessionState,
    patient: Patient,
    now: int,
    kind: str = "q",
    prefix: str = "",
) -> Outgoing:
    """The message asking the session's current question (the key names the question,
    its attempt and whether it is a reminder, so that asking twice sends once)."""
    return Outgoing(
        key=f"followup:{state.id}:{state.position}:{state.attempt}:{kind}",
        owner=owner_of(patient.enrollment_id),
        recipient=patient.phone,
        text=question_text(protocol, state, patient.language, prefix),
        enrollment_id=patient.enrollment_id,
        about=f"Patient/{patient.patient_id}",
        recipient_ref=f"Patient/{patient.patient_id}",
        awaits=True,
    )


def tell(patient: Patient, key: str, text: str) -> Outgoing:
    """A message that awaits no answer (thanks, hand-over, emergency advice)."""
    return Outgoing(
        key=key,
        owner=owner_of(patient.enrollment_id),
        recipient=patient.phone,
        text=text,
        enrollment_id=patient.enrollment_id,
        about=f"Patient/{patient.patient_id}",
        recipient_ref=f"Patient/{patient.patient_id}",
    )


def arm_timer(state: SessionState, protocol: Protocol) -> None:
    """Set the session's next timer (reminder, missing-answer alert, or closing)."""
    if state.status is not SessionStatus.IN_PROGRESS:
        state.timer_ms = state.timer_kind = None
        return
    timing = protocol.timing
    base = state.asked_ms if state.late and state.asked_ms else state.started_ms
    candidates = [(base + timing.expire_after_min * 60_000, "expire")]
    if not state.missing_alerted and not state.late:
        candidates.append((state.started_ms + timing.missing_after_min * 60_000, "missing"))
    if not state.reminded and state.asked_ms is not None:
        candidates.append((state.asked_ms + timing.reminder_after_min * 60_000, "reminder"))
    state.timer_ms, state.timer_kind = min(candidates)


def start(protocol: Protocol, state: SessionState, patient: Patient, now: int) -> Effects:
    """Ask the first question of a new session."""
    effects = Effects()
    first = next_position(protocol, state.answers, 0)
    if first is None:  # every question answered beforehand (home devices)
        return complete(protocol, state, patient, now, effects)
    state.position, state.attempt, state.asked_ms, state.reminded = first, 0, now, False
    effects.messages.append(ask(protocol, state, patient, now))
    arm_timer(state, protocol)
    return effects


def matching_rules(rules: tuple[Rule, ...], link_id: str, value: Any) -> list[Rule]:
    if value is None:
        return []
    return [r for r in rules if r.item == link_id and r.matches(value)]


def complete(
    protocol: Protocol, state: SessionState, patient: Patient, now: int, effects: Effects
) -> Effects:
    state.status = SessionStatus.COMPLETED
    state.completed_ms = now
    arm_timer(state, protocol)
    effects.messages.append(
        tell(patient, f"followup:{state.id}:thanks", texts(patient.language)["thanks"])
    )
    effects.resources.append(
        response_resource(
            state.id,
            patient.patient_id,
            protocol,
            state.answers,
            "completed",
            now,
            patient.language,
        )
    )
    return effects


def hand_over(
    protocol: Protocol,
    state: SessionState,
    patient: Patient,
    now: int,
    effects: Effects,
    why: str,
) -> None:
    state.status = SessionStatus.HANDED_OVER
    arm_timer(state, protocol)
    text = texts(patient.language)["distress" if why == "distress" else "handover"]
    effects.messages.append(tell(patient, f"followup:{state.id}:{why}", text))
    effects.resources.append(
        response_resource(
            state.id,
            patient.patient_id,
            protocol,
            state.answers,
            "in-progress",
            now,
            patient.language,
        )
    )


def take_answer(
    protocol: Protocol,
    rules: tuple[Rule, ...],
    state: SessionState | None,
    patient: Patient,
    text: str,
    now: int,
) -> Effects:
    """Process one reply of the patient; ``state`` is changed in place."""
    effects = Effects()
    phrase = distress(text)
    if phrase is not None:
        effects.alerts.append(
            (AlertKind.DISTRESS, Level.EMERGENCY, [f"Message de détresse : « {text[:160]} »"])
        )
        effects.outcome = "distress"
        if state is not None and state.status in (SessionStatus.IN_PROGRESS, SessionStatus.MISSED):
            hand_over(protocol, state, patient, now, effects, "distress")
        else:
            key = f"followup:{patient.enrollment_id}:distress:{now}"
            effects.messages.append(tell(patient, key, texts(patient.language)["distress"]))
        return effects
    if state is None or state.status not in (SessionStatus.IN_PROGRESS, SessionStatus.MISSED):
        effects.outcome = "unsolicited"
        return effects
    if state.status is SessionStatus.MISSED:
        state.status = SessionStatus.IN_PROGRESS
        state.late = True
        state.reminded = True
    question = protocol.questions[state.position]
    effects.link_id = question.link_id
    reading = understand(question, text)
    if reading.outcome == UNCLEAR:
        effects.outcome = "unclear"
        if state.attempt == 0:
            state.attempt = 1
            state.asked_ms = now
            prefix = texts(patient.language)["unclear"]
            hint = _HINT.get((patient.language, question.kind)) or _HINT[("fr", question.kind)]
            message = ask(protocol, state, patient, now, "again", prefix)
            message = Outgoing(**{**message.__dict__, "text": f"{message.text} {hint}"})
            effects.messages.append(message)
            arm_timer(state, protocol)
            return effects
        effects.alerts.append(
            (
                AlertKind.UNCLEAR,
                protocol.timing.unclear_level,
                [f"Réponse non comprise à la question « {question.link_id} » : « {text[:160]} »"],
            )
        )
        hand_over(protocol, state, patient, now, effects, "handover")
        return effects
    value = reading.value if reading.outcome == VALUE else None
    effects.outcome = "value" if reading.outcome == VALUE else SKIP
    state.answers[question.link_id] = value
    matched = matching_rules(rules, question.link_id, value)
    if matched:
        level = max(r.level for r in matched)
        effects.alerts.append((AlertKind.CLINICAL, level, [r.label for r in matched]))
        state.level = max(state.level, int(level))
    if value is not None and question.kind != "boolean":
        obs = observation_resource(state.id, patient.patient_id, question, float(value), now)
        if obs is not None:
            effects.resources.append(obs)
    following = next_position(protocol, state.answers, state.position + 1)
    if following is None:
        return complete(protocol, state, patient, now, effects)
    state.position, state.attempt, state.asked_ms, state.reminded = following, 0, now, False
    effects.messages.append(ask(protocol, state, patient, now))
    if len(state.answers) == 1:
        # The response enters the record as in-progress with its first answer; the
        # others reach it when the session completes, stops or is handed over (the
        # service's tables have each answer at once: one store write per session
        # instead of one per reply).
        effects.resources.append(
            response_resource(
                state.id,
                patient.patient_id,
                protocol,
                state.answers,
                "in-progress",
                now,
                patient.language,
            )
        )
    arm_timer(state, protocol)
    return effects


def fire_timer(protocol: Protocol, state: SessionState, patient: Patient, now: int) -> Effects:
    """Do what the session's due timer says: remind, alert, or close as missed."""
    effects = Effects()
    kind = state.timer_kind
    if kind == "reminder":
        state.reminded = True
        effects.messages.append(
            ask(protocol, state, patient, now, "reminder", texts(patient.language)["reminder"])
        )
    elif kind == "missing":
        state.missing_alerted = True
        answered = sum(1 for v in state.answers if v)
        when = local_text(state.due_ms, "%d/%m %H:%M")
        reason = (
            f"Pas de réponse au questionnaire du {when}"
            if not state.answers
            else f"Réponses incomplètes au questionnaire du {when} ({answered} reçues)"
        )
        effects.alerts.append((AlertKind.MISSING, protocol.timing.missing_level, [reason]))
        effects.outcome = "missing"
    elif kind == "expire":
        state.status = SessionStatus.MISSED
        if state.answers:
            effects.resources.append(
                response_resource(
                    state.id,
                    patient.patient_id,
                    protocol,
                    state.answers,
                    "stopped",
                    now,
                    patient.language,
                )
            )
    arm_timer(state, protocol)
    return effects
