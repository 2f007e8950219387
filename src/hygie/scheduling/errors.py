"""Errors of the scheduling service; ``api.py`` turns them into RFC 9457 problem+json.

Exception tree::

    SchedulingError                  base; ``status``, ``slug`` and ``title`` pick the answer
     +-- InvalidInput                 the request is malformed or inconsistent (400)
     +-- NotFound                     no such agenda, slot, booking or file (404)
     +-- SlotUnavailable              the slot was taken, held or closed meanwhile (409)
     +-- ArrivalCapReached            the site's arrival cap forbids this time (409)
     +-- InvalidState                 the booking or file is not in a state that allows it (409)
     +-- VerificationFailed           wrong, expired or exhausted SMS code or token (403)
     +-- TooManyRequests              a rate limit was passed; ``retry_after`` seconds (429)
     +-- PayloadTooLarge              an upload is over its limit (413)
"""

from __future__ import annotations


class SchedulingError(Exception):
    """Base of the service's errors: what happened, and how HTTP should say it."""

    status = 400
    slug = "error"
    title = "Scheduling error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(SchedulingError):
    """The request is malformed or inconsistent; ``detail`` names the field."""

    status, slug, title = 400, "invalid-input", "Invalid input"


class NotFound(SchedulingError):
    """The agenda, slot, booking or file does not exist (or the link is wrong)."""

    status, slug, title = 404, "not-found", "Not found"


class SlotUnavailable(SchedulingError):
    """The slot is no longer free: someone else booked it, it is held or closed."""

    status, slug, title = 409, "slot-unavailable", "Slot unavailable"


class ArrivalCapReached(SchedulingError):
    """Booking this slot would put more people on site than the cap allows."""

    status, slug, title = 409, "arrival-cap", "Arrival cap reached"


class InvalidState(SchedulingError):
    """The booking or file is in a state that does not allow this action."""

    status, slug, title = 409, "invalid-state", "Invalid state"


class VerificationFailed(SchedulingError):
    """The SMS code or the verification token is wrong, expired or used up."""

    status, slug, title = 403, "verification-failed", "Verification failed"


class TooManyRequests(SchedulingError):
    """A rate limit was passed; retry after ``retry_after`` seconds."""

    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PayloadTooLarge(SchedulingError):
    """An uploaded document is larger than the configured limit."""

    status, slug, title = 413, "payload-too-large", "Payload too large"
