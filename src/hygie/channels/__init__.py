"""Talking to people: SMS over SMPP, e-mail over SMTP, phone calls over SIP with DTMF.

What other packages may use; the modules behind these names are free to change.
A service enqueues :class:`OutboundMessage` through :func:`channels_for` and
registers a handler for the answers of its conversations; docs/channels.md tells how.
"""

from hygie.channels.errors import (
    AlreadyAnswered,
    AnswerLinkError,
    AnswerLinkExpired,
    ChannelError,
    ConfigurationError,
    IdempotencyConflict,
    InvalidAddress,
    InvalidMessage,
    MessageNotFound,
    PeerUnavailable,
)
from hygie.channels.model import (
    Answer,
    BatchSender,
    Channel,
    Envelope,
    Event,
    MessageRecord,
    OutboundMessage,
    PartOutcome,
    Receipt,
    Sender,
    Status,
)
from hygie.channels.segments import count_parts
from hygie.channels.service import Channels, channels_for
from hygie.channels.settings import ChannelSettings, channel_settings

__all__ = [
    "AlreadyAnswered",
    "Answer",
    "AnswerLinkError",
    "AnswerLinkExpired",
    "BatchSender",
    "Channel",
    "ChannelError",
    "ChannelSettings",
    "Channels",
    "ConfigurationError",
    "Envelope",
    "Event",
    "IdempotencyConflict",
    "InvalidAddress",
    "InvalidMessage",
    "MessageNotFound",
    "MessageRecord",
    "OutboundMessage",
    "PartOutcome",
    "PeerUnavailable",
    "Receipt",
    "Sender",
    "Status",
    "channel_settings",
    "channels_for",
    "count_parts",
]
