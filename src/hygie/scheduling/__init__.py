"""Appointments and online pre-admission: agendas, slots, bookings, waiting list,
reminders, and pre-admission files that become FHIR resources once validated.

What the platform's assembly (``app.py``, ``cli.py``) and operators' scripts may use;
the modules behind these names are free to change.
"""

from hygie.scheduling.engine import Options, SchedulingService
from hygie.scheduling.errors import (
    ArrivalCapReached,
    InvalidInput,
    InvalidState,
    NotFound,
    PayloadTooLarge,
    SchedulingError,
    SlotUnavailable,
    TooManyRequests,
    VerificationFailed,
)
from hygie.scheduling.model import (
    Agenda,
    AppointmentType,
    Booking,
    Closure,
    OpeningRule,
    Patient,
    SlotView,
)

__all__ = [
    "Agenda",
    "AppointmentType",
    "ArrivalCapReached",
    "Booking",
    "Closure",
    "InvalidInput",
    "InvalidState",
    "NotFound",
    "OpeningRule",
    "Options",
    "Patient",
    "PayloadTooLarge",
    "SchedulingError",
    "SchedulingService",
    "SlotUnavailable",
    "SlotView",
    "TooManyRequests",
    "VerificationFailed",
]
