"""Remote follow-up of patients at home by SMS conversation, with alerts to clinicians.

What other packages may use; the modules behind these names are free to change.
"""

from hygie.followup.model import (
    Alert,
    AlertKind,
    AlertStatus,
    Enrollment,
    EnrollmentRequest,
    EnrollmentStatus,
    Level,
    Overrides,
    Protocol,
    Rule,
    Schedule,
    SessionStatus,
    Timing,
)

__all__ = [
    "Alert",
    "AlertKind",
    "AlertStatus",
    "Enrollment",
    "EnrollmentRequest",
    "EnrollmentStatus",
    "Level",
    "Overrides",
    "Protocol",
    "Rule",
    "Schedule",
    "SessionStatus",
    "Timing",
]
