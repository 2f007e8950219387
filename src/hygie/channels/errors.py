"""Errors raised by the channels package.

The tree, grouped by what the caller can do about it::

    ChannelError
    ├── InvalidMessage        the message cannot be sent as described: fix it
    │   └── InvalidAddress    the recipient is not a phone number / e-mail address
    ├── IdempotencyConflict   the key was used for a different message
    ├── MessageNotFound       no message has this id
    ├── AnswerLinkError       an e-mail answer link is not valid
    │   ├── AnswerLinkExpired     ... because it is past its expiry
    │   └── AlreadyAnswered       ... because the message has its answer already
    ├── PeerUnavailable       the transport's peer cannot be reached now: try later
    └── ConfigurationError    a setting or a system tool is missing

``api.py`` turns each of them into RFC 9457 problem+json; transports never raise for
a peer's refusal, they return a ``Receipt`` that says so.
"""

from __future__ import annotations


class ChannelError(Exception):
    """Base of every error of the channels package."""


class InvalidMessage(ChannelError, ValueError):
    """The message cannot be sent as described (empty text, unknown channel, too long)."""


class InvalidAddress(InvalidMessage):
    """The recipient is not a valid address for the channel."""


class IdempotencyConflict(ChannelError):
    """The idempotency key already names a different message; use a new key."""


class MessageNotFound(ChannelError, LookupError):
    """No message in the outbox has this id."""


class AnswerLinkError(ChannelError):
    """An e-mail answer link was altered, or names no message that awaits an answer."""


class AnswerLinkExpired(AnswerLinkError):
    """The answer link is past its expiry; the owner must send a new message."""


class AlreadyAnswered(AnswerLinkError):
    """The message already has its answer; the first answer is kept."""


class PeerUnavailable(ChannelError, ConnectionError):
    """The peer (SMSC, SMTP server, SIP trunk) cannot be reached now; the outbox retries."""


class ConfigurationError(ChannelError, RuntimeError):
    """A setting or a system tool the transport needs is missing; the message names it."""
