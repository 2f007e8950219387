"""SMS and e-mails to patients: queued in the booking's own transaction, then handed
to the platform's channels.

``queue`` writes the message in the same transaction as what caused it (a booking, a
verification request, a reminder job), so a message exists exactly when its cause was
committed. ``hand_over`` is the one delivery step: it passes queued messages to the
``channels`` package's durable outbox (its public ``OutboundMessage`` and
``channels_for``), which speaks SMPP and SMTP and tracks delivery receipts, and records
the id it gives. A message that the outbox refuses stays queued and is tried again on
the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, insert, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.transactions import writing

if TYPE_CHECKING:
    from hygie.platform import Platform

log = logging.getLogger("hygie.scheduling")


@dataclass(frozen=True)
class Message:
    id: int
    channel: str
    recipient: str
    subject: str | None
    body: str
    purpose: str


#: Takes a queued message, returns the reference under which the transport keeps it.
Transport = Callable[[Message], str]


_INSERT = insert(t.message)


def queue(conn: Connection, channel: str, recipient: str, body: str, purpose: str, now: int,
          subject: str | None = None) -> None:
    """Queue one SMS (``channel="sms"``) or e-mail in the caller's transaction."""
    conn.execute(_INSERT, {"channel": channel, "recipient": recipient, "subject": subject,
                           "body": body, "purpose": purpose, "created_utc": now,
                           "status": "queued"})


def channels_transport(platform: Platform) -> Transport:
    """Hand messages to the platform's channels outbox (``hygie.channels``).

    The idempotency key is the message's id here, so a hand-over repeated after a
    crash (enqueued there, not yet marked here) sends nothing twice.
    """
    from hygie.channels import Channel, OutboundMessage, channels_for

    channels = channels_for(platform)

    def send(message: Message) -> str:
        record = channels.enqueue(OutboundMessage(
            idempotency_key=f"scheduling:message:{message.id}", owner="scheduling",
            channel=Channel(message.channel), recipient=message.recipient, text=message.body,
            subject=message.subject))
        return str(record.id)

    return send


def hand_over(engine: Engine, transport: Transport, limit: int = 500) -> int:
    """Pass queued messages to ``transport``; returns how many left. Failures stay queued."""
    with engine.connect() as conn:
        rows = conn.execute(select(t.message).where(t.message.c.status == "queued")
                            .order_by(t.message.c.id).limit(limit)).all()
    sent = 0
    for r in rows:
        message = Message(r.id, r.channel, r.recipient, r.subject, r.body, r.purpose)
        try:
            reference = transport(message)
        except Exception as exc:  # a transport failure must not stop the others
            log.warning("message %s not handed over: %s", r.id, type(exc).__name__)
            continue
        with writing(engine) as conn:
            conn.execute(update(t.message).where(t.message.c.id == r.id)
                         .values(status="handed", reference=reference[:100]))
        sent += 1
    return sent


def messages_to(conn: Connection, recipient: str, limit: int = 20) -> list[Message]:
    """The latest messages queued for one recipient, newest first (staff view)."""
    rows = conn.execute(select(t.message).where(t.message.c.recipient == recipient)
                        .order_by(t.message.c.id.desc()).limit(limit))
    return [Message(r.id, r.channel, r.recipient, r.subject, r.body, r.purpose) for r in rows]
