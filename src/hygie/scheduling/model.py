"""Data types of the scheduling service: what the engine takes and returns.

Instants are ``int`` seconds since the epoch, UTC, everywhere; ``Europe/Paris`` (or
the agenda's zone) appears only when expanding opening rules and when showing times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

#: The zone times are shown in, and the default zone of agendas.
PARIS = ZoneInfo("Europe/Paris")


class SlotStatus(StrEnum):
    FREE = "free"
    BOOKED = "booked"
    HELD = "held"
    BLOCKED = "blocked"


class BookingStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"


class PreadmissionStatus(StrEnum):
    INVITED = "invited"
    SUBMITTED = "submitted"
    VALIDATED = "validated"
    REJECTED = "rejected"


@dataclass(frozen=True)
class AppointmentType:
    """Something that can be booked, and how long it lasts."""

    code: str
    label: str
    duration_min: int
    #: Whether booking it invites the patient to an online pre-admission.
    preadmission: bool = False


@dataclass(frozen=True)
class Agenda:
    """The calendar of a practitioner (``PractitionerRole/...``) or of a service at a site."""

    id: str
    kind: str
    actor_ref: str
    display: str
    site_id: str
    site_name: str
    service_code: str
    service_label: str
    timezone: str = "Europe/Paris"
    public_holidays: bool = True
    active: bool = True


@dataclass(frozen=True)
class OpeningRule:
    """Open on these ISO weekdays (1 = Monday) from ``start`` to ``end`` local time."""

    agenda_id: str
    weekdays: tuple[int, ...]
    start_local: str
    end_local: str
    type_code: str
    valid_from: date
    valid_to: date | None = None
    id: int | None = None


@dataclass(frozen=True)
class Closure:
    """A closure (holiday, works, absence) of one agenda, or of a whole site."""

    start_utc: int
    end_utc: int
    reason: str
    agenda_id: str | None = None
    site_id: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """A slot an opening rule produces, before it is stored."""

    agenda_id: str
    type_code: str
    start_utc: int
    end_utc: int


@dataclass(frozen=True)
class SlotView:
    """A stored slot as search and pages show it."""

    id: int
    agenda_id: str
    agenda_display: str
    site_id: str
    site_name: str
    service_code: str
    service_label: str
    type_code: str
    start_utc: int
    end_utc: int
    status: str

    @property
    def start_local(self) -> datetime:
        return to_local(self.start_utc)


@dataclass(frozen=True)
class Patient:
    """Who a booking is for, as the person typed it (checked, normalised)."""

    family: str
    given: str
    birth_date: str
    phone: str | None = None
    email: str | None = None
    patient_ref: str | None = None


@dataclass(frozen=True)
class Booking:
    """An appointment as the service keeps it; its FHIR Appointment has the same id."""

    id: str
    slot_id: int
    agenda_id: str
    site_id: str
    type_code: str
    start_utc: int
    end_utc: int
    status: str
    patient: Patient
    source: str
    revision: int = 1
    #: The secret of the patient's cancel/move link; only known right after booking.
    manage_secret: str | None = field(default=None, compare=False)


def to_local(instant: int, zone: ZoneInfo = PARIS) -> datetime:
    """An instant (epoch seconds) as an aware datetime in ``zone``."""
    return datetime.fromtimestamp(instant, UTC).astimezone(zone)


def utc_iso(instant: int) -> str:
    """An instant as a FHIR ``instant`` in UTC (``2021-03-28T07:00:00Z``)."""
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
