"""Errors raised by the tracing engine; ``api.py`` turns each into problem+json.

::

    TracingError                      base: status 400 unless a subclass says otherwise
    ├── InvalidRequest                malformed field, wrong size, bad base64      400
    ├── CaptchaError                  captcha unknown, expired, used or wrong      403
    ├── RateLimited                   too many requests from one client            429
    ├── TimeOutOfTolerance            request time too far from the server's       400
    ├── EpochMismatch                 EBID does not belong to the claimed epoch    400
    ├── BadMac                        MAC does not verify under the user's K_A     401
    ├── UnknownUser                   no registration behind this EBID             404
    ├── ReplayedRequest               request time not newer than the last one     409
    ├── TooSoon                       status asked again before the minimal gap    429
    ├── SubmissionCodeError           positive-declaration code unknown/used/expired 403
    └── MissingExtra                  numpy/captcha not installed: pip install 'hygie[tracing]' 503
"""

from __future__ import annotations


class TracingError(Exception):
    """Base of every tracing error; ``status`` is the HTTP status the edge answers."""

    status = 400
    title = "Invalid tracing request"
    slug = "invalid-request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(TracingError):
    """A field is missing, has the wrong type or size, or is not valid base64."""


class CaptchaError(TracingError):
    """The captcha is unknown, expired, already used, or the answer is wrong: get a new one."""

    status = 403
    title = "Captcha not solved"
    slug = "captcha"


class RateLimited(TracingError):
    """This client sent too many requests of this kind in the window: wait and retry."""

    status = 429
    title = "Too many requests"
    slug = "rate-limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TimeOutOfTolerance(TracingError):
    """The request's time differs from the server's by more than the tolerance: fix the clock."""

    title = "Time out of tolerance"
    slug = "time-tolerance"


class EpochMismatch(TracingError):
    """The EBID decrypts to another epoch than the one claimed, or was not issued today."""

    title = "EBID does not match the epoch"
    slug = "epoch-mismatch"


class BadMac(TracingError):
    """The MAC does not verify under the registration's K_A."""

    status = 401
    title = "Bad MAC"
    slug = "bad-mac"


class UnknownUser(TracingError):
    """No registration matches this EBID (never registered, or unregistered)."""

    status = 404
    title = "Unknown registration"
    slug = "unknown-user"


class ReplayedRequest(TracingError):
    """The request's time is not newer than the last accepted one: it is a replay."""

    status = 409
    title = "Replayed request"
    slug = "replay"


class TooSoon(TracingError):
    """A status request came before the minimal number of epochs since the previous one."""

    status = 429
    title = "Status requested too soon"
    slug = "too-soon"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SubmissionCodeError(TracingError):
    """The positive-declaration code is unknown, expired or already used."""

    status = 403
    title = "Submission code refused"
    slug = "submission-code"


class MissingExtra(TracingError):
    """The optional dependencies of the service are absent: install ``hygie[tracing]``."""

    status = 503
    title = "Tracing service not installed"
    slug = "missing-extra"
