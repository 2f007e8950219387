"""Errors of the mobilization service, translated into problem+json by ``api.py`` only.

Exception tree::

    MobilizationError              base of every error raised here
     +-- InvalidInput              a plan, a CSV file or a request body is wrong (422)
     |    +-- InvalidPlan          the plan definition is wrong; names the field
     +-- NotFound                  no such plan, campaign or person (404)
     +-- CampaignClosed            the campaign is closed already (409)
     +-- ConfirmationRequired      a launch or a close without its confirmation (428)
     +-- NotAllowed                the caller's scopes do not allow the action (403)
"""

from __future__ import annotations


class MobilizationError(Exception):
    """Base of the errors of this package."""


class InvalidInput(MobilizationError):
    """Raised for bad input; the message says what is wrong and where."""


class InvalidPlan(InvalidInput):
    """Raised when a plan definition is wrong; the message names the field."""


class NotFound(MobilizationError):
    """Raised when a plan, a campaign or a staff entry does not exist."""


class CampaignClosed(MobilizationError):
    """Raised when acting on a campaign that is closed."""


class ConfirmationRequired(MobilizationError):
    """Raised when a launch or a close arrives without the explicit confirmation."""


class NotAllowed(MobilizationError):
    """Raised when the caller may not do this (``scope`` names what would allow it)."""

    def __init__(self, scope: str, message: str) -> None:
        super().__init__(message)
        self.scope = scope
