"""Data types of the mobilization service: staff, plans, campaigns and where each person
stands.

A *plan* (Plan Blanc of a hospital, ICU surge...) has *levels*; a level is a set of
*requests* "role x unit x quota x deadline" ("6 ICU nurses within 60 minutes"). A
*campaign* is one launch of one level, as a real alert or as an exercise. For each
request, the matching people of the staff directory become *contacts*, asked in waves
over a sequence of channels until the quota is met.

Life of a contact::

    waiting ──wave──> pending ──yes──> confirmed
                        │  └───no───> declined
                        └─time-out──> silent ──next wave, next channel──> pending
    (any not yet answered) ──quota met / campaign closed──> released
    silent with every attempt used ──> exhausted

Times are UTC milliseconds; pages show them in Europe/Paris.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ContactState(enum.StrEnum):
    """Where one person stands in a campaign."""

    WAITING = "waiting"
    PENDING = "pending"
    SILENT = "silent"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    RELEASED = "released"
    EXHAUSTED = "exhausted"


#: States of a contact who was asked and has not answered yet.
UNANSWERED = (ContactState.PENDING, ContactState.SILENT)


class RequestStatus(enum.StrEnum):
    """Where one request of a campaign stands."""

    OPEN = "open"
    MET = "met"
    EXHAUSTED = "exhausted"
    CLOSED = "closed"


class CampaignStatus(enum.StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class Meaning(enum.StrEnum):
    """What an answer says."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


#: Channels a plan may use, in the words of ``hygie.channels.Channel``.
CHANNELS = ("sms", "voice", "email")

#: Role code meaning "any role" in a request.
ANY_ROLE = "*"


@dataclass(frozen=True)
class Staff:
    """One entry of the staff directory: a PractitionerRole and its person."""

    id: str
    practitioner_id: str
    name: str
    role_code: str
    role_label: str
    unit_id: str | None = None
    unit_label: str | None = None
    hospital_id: str | None = None
    hospital_label: str | None = None
    skills: tuple[str, ...] = ()
    phone: str | None = None
    email: str | None = None
    available: bool = True
    #: PractitionerRole.availableTime entries (weekly working hours).
    hours: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class RequestSpec:
    """ "``quota`` people of ``role`` in ``unit`` within ``deadline_minutes``".

    ``role`` is a role code of the directory (a SNOMED CT code for the territory's
    roles) or ``"*"``; ``unit`` a Location id, or None for any unit of the plan's
    hospital; ``skill``, when given, must be among the person's skills.
    """

    role: str
    quota: int
    deadline_minutes: int
    unit: str | None = None
    skill: str | None = None


@dataclass(frozen=True)
class Level:
    number: int
    name: str
    requests: tuple[RequestSpec, ...]


@dataclass(frozen=True)
class Templates:
    """Message texts; ``{plan}``, ``{level}``, ``{role}``, ``{unit}``, ``{hospital}``,
    ``{deadline}`` (HH:MM, Paris), ``{quota}`` and, in confirmations, ``{eta}`` are
    replaced. Exercises get ``EXERCICE`` around every text whatever the template says."""

    alert: str = (
        "{plan} : renfort demandé, {role}, {unit}, avant {deadline}. "
        "Pouvez-vous venir ? Répondez 1 ou OUI suivi du délai en minutes "
        "(ex : OUI 20), 2 ou NON sinon."
    )
    voice: str = (
        "{plan}. Renfort demandé : {role}, {unit}, avant {deadline}. "
        "Tapez 1 si vous venez. Tapez 2 si vous ne pouvez pas venir."
    )
    email_subject: str = "{plan} : rappel de personnel ({role})"
    email: str = (
        "Bonjour,\n\nLe {plan} est déclenché ({level}). Renfort demandé : "
        "{role}, {unit}, avant {deadline}.\n\nMerci de dire si vous pouvez venir, "
        "et dans quel délai, avec le lien ci-dessous."
    )
    confirmation: str = "Merci. Vous êtes attendu(e) : {unit}, arrivée prévue {eta}."
    clarification: str = (
        "Réponse non comprise. Répondez 1 ou OUI suivi du délai en "
        "minutes (ex : OUI 20) si vous venez, 2 ou NON sinon."
    )
    standdown: str = (
        "{plan} : le besoin en {role} ({unit}) est couvert. Merci, vous n'avez pas à venir."
    )
    closing: str = "{plan} : fin de la mobilisation. Vous n'avez pas à vous déplacer. Merci."

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Plan:
    """A named plan: its levels and how people are asked.

    ``channels`` is the sequence tried for each person (``sms``, ``voice``,
    ``email``); one *cycle* goes through it once, and ``cycles`` says how many times.
    ``wait_s`` is how long a person has to answer one attempt before the service
    moves on; ``wave_size`` caps how many people one request asks at once (0: as many
    as answers are still needed).
    """

    id: str
    name: str
    levels: tuple[Level, ...]
    channels: tuple[str, ...] = ("sms", "voice", "email")
    wait_s: float = 600.0
    wave_size: int = 0
    cycles: int = 1
    templates: Templates = field(default_factory=Templates)
    hospital: str | None = None
    description: str = ""
    version: int = 0

    def level(self, number: int) -> Level:
        for level in self.levels:
            if level.number == number:
                return level
        raise KeyError(number)

    @property
    def max_attempts(self) -> int:
        return len(self.channels) * self.cycles


@dataclass(frozen=True)
class RequestBoard:
    """One request on the live board."""

    id: str
    role_label: str
    unit_id: str | None
    unit_label: str
    quota: int
    deadline_ms: int
    status: str
    confirmed: int
    declined: int
    pending: int
    silent: int
    waiting: int
    released: int
    exhausted: int
    on_time: int
    late: int

    @property
    def needed(self) -> int:
        return max(0, self.quota - self.confirmed)


@dataclass(frozen=True)
class Arrival:
    """A confirmed person expected on site (``eta_ms`` None: no delay given)."""

    contact_id: str
    name: str
    request_id: str
    unit_label: str
    role_label: str
    eta_ms: int | None
    answered_ms: int


@dataclass(frozen=True)
class Campaign:
    """A campaign as lists and the board show it."""

    id: str
    plan_id: str
    plan_name: str
    level: int
    level_name: str
    exercise: bool
    status: str
    launched_by: str
    launched_ms: int
    closed_ms: int | None = None
    closed_by: str | None = None
    note: str | None = None
