"""Errors raised by remote follow-up; ``api.py`` turns each into RFC 9457 problem+json.

The tree, grouped by what the caller can do about it::

    FollowupError
    ├── InvalidInput          the request is malformed or a value is out of bounds (422)
    │   ├── InvalidProtocol   a protocol definition is not usable (names the field)
    │   └── InvalidPhone      not a mobile number that can receive SMS
    ├── NotFound              no such enrollment, alert, protocol or patient (404)
    ├── Conflict              the state forbids it: already followed, already ended,
    │                         alert already resolved, number opted out (409)
    └── ConsentMissing        no recorded consent: enrollment refused (422)
"""

from __future__ import annotations


class FollowupError(Exception):
    """Base of every error of the follow-up service."""

    status = 400
    slug = "error"
    title = "Follow-up error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(FollowupError, ValueError):
    """The request is malformed or a value is out of its bounds; the detail says which."""

    status = 422
    slug = "invalid"
    title = "Invalid input"


class InvalidProtocol(InvalidInput):
    """A protocol definition cannot be used (unknown question type, rule on a missing
    question, bad schedule); the detail names the field."""

    slug = "invalid-protocol"
    title = "Invalid protocol"


class InvalidPhone(InvalidInput):
    """The number is not a mobile number that can receive SMS (landline, malformed)."""

    slug = "invalid-phone"
    title = "Invalid mobile number"


class ConsentMissing(InvalidInput):
    """The patient's consent was not given: nobody is followed without it."""

    slug = "consent-missing"
    title = "Consent missing"


class NotFound(FollowupError, LookupError):
    """No enrollment, alert, protocol or patient has this id."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(FollowupError):
    """The current state forbids the action (already followed, already ended...)."""

    status = 409
    slug = "conflict"
    title = "Conflict"
