"""Remote follow-up of patients at home by SMS conversation, with alerts to clinicians.

What other packages may use; the modules behind these names are free to change.
"""

from hygie.followup.engine import FollowupService, Options
from hygie.followup.errors import (
    Conflict,
    ConsentMissing,
    FollowupError,
    InvalidInput,
    InvalidPhone,
    InvalidProtocol,
    NotFound,
)
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
from hygie.followup.protocols import covid19_protocol, parse_protocol

__all__ = [
    "Alert",
    "AlertKind",
    "AlertStatus",
    "Conflict",
    "ConsentMissing",
    "Enrollment",
    "EnrollmentRequest",
    "EnrollmentStatus",
    "FollowupError",
    "FollowupService",
    "InvalidInput",
    "InvalidPhone",
    "InvalidProtocol",
    "Level",
    "NotFound",
    "Options",
    "Overrides",
    "Protocol",
    "Rule",
    "Schedule",
    "SessionStatus",
    "Timing",
    "covid19_protocol",
    "parse_protocol",
]
