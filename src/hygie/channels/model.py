"""Data types of the channels package: what services hand in, and what they get back.

A service describes a message with :class:`OutboundMessage` and enqueues it in the
outbox; the outbox keeps a :class:`MessageRecord` with a status timeline. A transport
(SMPP, SMTP, SIP) implements the :class:`Sender` seam: one method, ``send(message) ->
Receipt``. What people send back (an SMS reply, DTMF digits, a click on an e-mail link)
reaches the owner of the conversation as an :class:`Answer`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Channel(enum.StrEnum):
    """How a message travels."""

    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"


class Status(enum.StrEnum):
    """Where a message stands.

    ``SENDING`` is internal: a worker holds the message and may have written it on the
    wire. The other values form the public timeline (queued, submitted, delivered,
    failed, answered); ``failed`` and ``answered`` are final.
    """

    QUEUED = "queued"
    SENDING = "sending"
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    FAILED = "failed"
    ANSWERED = "answered"


#: Receipt detail of a call that was picked up (by a person or a voicemail).
CALL_CONNECTED = "call connected"

#: Statuses a message never leaves.
FINAL_STATUSES = frozenset({Status.FAILED, Status.ANSWERED})


@dataclass(frozen=True)
class OutboundMessage:
    """A message a service wants sent.

    ``idempotency_key`` makes enqueueing safe to repeat: the same key always names the
    same message, so a service that crashes and enqueues again sends nothing twice.
    ``owner`` names the conversation (``"followup:<enrollment id>"``): answers go to the
    handler registered for its prefix. ``expected_answers`` lists the replies the
    owner understands (``["1", "2"]`` or ``["OUI", "NON"]``); ``None`` means no answer
    is awaited, an empty list means any free text is awaited.
    """

    idempotency_key: str
    owner: str
    channel: Channel
    recipient: str
    text: str
    subject: str | None = None
    html: str | None = None
    expected_answers: Sequence[str] | None = None
    #: FHIR reference of the person concerned (``Patient/123``), for the FHIR mirror.
    about: str | None = None
    #: FHIR reference of the person addressed (``Practitioner/9``, ``Patient/123``).
    recipient_ref: str | None = None
    #: Seconds after enqueueing beyond which the message is no longer worth sending.
    ttl_s: int | None = None

    @property
    def awaits_answer(self) -> bool:
        return self.expected_answers is not None


@dataclass(frozen=True)
class Envelope:
    """What a transport receives: the message and its outbox identity.

    ``message_id`` is the outbox's id; ``attempt`` counts tries (1 for the first);
    ``answer_url`` is set for e-mails that await an answer (a signed, expiring link).
    ``done_parts`` lists SMS parts already accepted by the SMSC in an earlier try, so
    that a retry sends only the missing ones.
    """

    message_id: str
    message: OutboundMessage
    attempt: int = 1
    answer_url: str | None = None
    done_parts: frozenset[int] = frozenset()


@dataclass(frozen=True)
class PartOutcome:
    """What happened to one SMS part (1-based ``part``) in one try."""

    part: int
    #: ``accepted`` (the SMSC gave an id), ``rejected`` (final error), ``retry``
    #: (throttled or never written) or ``in_doubt`` (written, no answer: the link broke).
    outcome: str
    smsc_id: str | None = None
    user_ref: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Receipt:
    """What a transport says after one try to send a message.

    ``status`` is one of ``submitted``, ``delivered``, ``failed``, ``answered`` or
    ``queued`` (try again later: ``retry_after_s``; ``peer_down`` when it was not
    the message's fault). ``digits`` holds the DTMF keys of
    an answered call. ``parts`` is filled by SMS transports, one entry per part tried.
    """

    status: Status
    provider_ref: str | None = None
    error: str | None = None
    retry_after_s: float | None = None
    digits: str | None = None
    parts: tuple[PartOutcome, ...] = ()
    total_parts: int = 1
    detail: str | None = None
    #: The peer could not be reached at all (link down, connection refused): the try
    #: says nothing about the message, so it does not count against ``max_attempts``
    #: (an outage of the SMSC or of the mail server fails nothing; ``ttl_s`` bounds it).
    peer_down: bool = False


@runtime_checkable
class Sender(Protocol):
    """The transport seam: one method. Implementations: SMPP, SMTP, SIP."""

    def send(self, envelope: Envelope) -> Receipt:
        """Try once to send this message; never raise for a peer's refusal."""
        ...


@runtime_checkable
class BatchSender(Sender, Protocol):
    """A transport that can pipeline many messages in one call (SMPP's window)."""

    def send_many(self, envelopes: Sequence[Envelope]) -> list[Receipt]:
        """``send`` for each envelope, in order, overlapping their round trips."""
        ...


@dataclass(frozen=True)
class Event:
    """One step of a message's timeline (UTC milliseconds since the epoch)."""

    status: str
    at_ms: int
    detail: str | None = None


@dataclass(frozen=True)
class MessageRecord:
    """A message as the outbox keeps it."""

    id: str
    idempotency_key: str
    owner: str
    channel: Channel
    recipient: str
    text: str
    status: Status
    attempts: int
    created_ms: int
    updated_ms: int
    subject: str | None = None
    expected_answers: tuple[str, ...] | None = None
    answer: str | None = None
    error: str | None = None
    provider_ref: str | None = None
    parts: int = 1
    about: str | None = None
    recipient_ref: str | None = None
    timeline: tuple[Event, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Answer:
    """Something a person sent back, routed to the owner of the conversation.

    ``value`` is the matched expected answer (normalised, e.g. ``"OUI"``) or ``None``
    when the text matched none of them; ``text`` is what was received as is.
    ``message_id`` is the outbound message answered, when known.
    """

    id: str
    owner: str
    channel: Channel
    sender: str
    text: str
    value: str | None
    received_ms: int
    message_id: str | None = None
