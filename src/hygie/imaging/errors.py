"""Errors of the imaging service; ``api.py`` turns them into problem+json (RFC 9457).

Exception tree::

    ImagingError                 base: ``status``, ``title`` and a ``slug`` for the type URI
     +-- InvalidRequest          the request is malformed (400)
     +-- NotFound                no such study, series, instance, frame or reading (404)
     +-- NotAcceptable           no representation matches the Accept header (406)
     +-- UnsupportedMediaType    the body is not of a type the route takes (415)
     +-- PayloadTooLarge         the body passes ``imaging_max_upload_bytes`` (413)
     +-- Conflict                the instance clashes with what is stored (409)
     +-- NotAVolume              the series is not a regular stack of slices (422)
     +-- MissingExtra            an optional dependency is not installed (501)
     +-- StoredFileUnreadable    a stored file does not open: altered or misplaced (500)
"""

from __future__ import annotations


class ImagingError(Exception):
    """Base of the service's errors; ``detail`` says what to change."""

    status = 400
    title = "Imaging request failed"
    slug = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(ImagingError):
    """Raised when a parameter or body is malformed; the detail names it."""

    status, title, slug = 400, "Invalid request", "invalid"


class NotFound(ImagingError):
    """Raised when the study, series, instance or frame asked for is not stored."""

    status, title, slug = 404, "Not found", "not-found"


class NotAcceptable(ImagingError):
    """Raised when the Accept header names no media type the route can produce."""

    status, title, slug = 406, "Not acceptable", "not-acceptable"


class UnsupportedMediaType(ImagingError):
    """Raised when the request body's Content-Type is not one the route takes."""

    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class PayloadTooLarge(ImagingError):
    """Raised when a body passes the configured limit; send it in smaller parts."""

    status, title, slug = 413, "Payload too large", "too-large"


class Conflict(ImagingError):
    """Raised when an instance's identifiers clash with the stored ones (PS3.18 10.5)."""

    status, title, slug = 409, "Conflict", "conflict"


class NotAVolume(ImagingError):
    """Raised when a series cannot be assembled into a regular volume (quantification,
    viewer); the detail says which geometry check failed."""

    status, title, slug = 422, "Not a volume", "not-a-volume"


class MissingExtra(ImagingError):
    """Raised when an optional dependency is missing; install ``hygie[imaging]``."""

    status, title, slug = 501, "Optional dependency missing", "missing-extra"


class StoredFileUnreadable(ImagingError):
    """Raised when a stored file fails to open (sealed file altered or moved): restore it
    from a backup; the index still knows which instance it was."""

    status, title, slug = 500, "Stored file unreadable", "stored-file-unreadable"
