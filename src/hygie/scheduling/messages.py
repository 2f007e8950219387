"""SMS and e-mails to patients: queued in the booking's own transaction, then handed
to the platform's channels.

``queue`` writes the message in the same transaction as what caused it (a booking, a
verification request, a reminder job), so a message exists exactly when its cause was
committed. ``hand_over`` is the one delivery step: it passes queued messages to the
``channels`` package's durable outbox, which speaks SMPP and SMTP, and records the
reference it gives. While that package is not installed the messages stay queued, and
they leave on the first pass after it is.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.transactions import writing

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


def queue(conn: Connection, channel: str, recipient: str, body: str, purpose: str, now: int,
          subject: str | None = None) -> int:
    """Queue one SMS (``channel="sms"``) or e-mail in the caller's transaction."""
    return int(conn.execute(insert(t.message).values(
        channel=channel, recipient=recipient, subject=subject, body=body, purpose=purpose,
        created_utc=now, status="queued")).inserted_primary_key[0])


def channels_transport() -> Transport | None:
    """The channels package's enqueue function, or None while it is not installed."""
    try:
        channels = importlib.import_module("hygie.channels")
    except ImportError:
        return None
    enqueue = getattr(channels, "enqueue", None)
    if enqueue is None:
        return None

    def send(message: Message) -> str:
        kwargs = {"subject": message.subject} if message.channel == "email" else {}
        return str(enqueue(message.channel, message.recipient, message.body, **kwargs))

    return send


def hand_over(engine: Engine, transport: Transport | None, limit: int = 500) -> int:
    """Pass queued messages to ``transport``; returns how many left. Failures stay queued."""
    if transport is None:
        return 0
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
