"""Messages of follow-up: decided in the conversation's transaction, then handed over.

A question, a reminder or an alert notification is first a ``followup_outgoing`` row,
written in the same transaction as the state that asks for it (the session moved to
question 3, the alert was raised): the message exists exactly when its cause was
committed. :func:`hand_over` then passes pending rows to the platform's channels
outbox (``enqueue_many``, the row's key as idempotency key) and records the outbox id.
A crash between the two leaves the rows pending; the next hand-over enqueues them
again under the same keys, and the outbox returns the messages it already has, so
nothing is sent twice and nothing is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from hygie.channels import Channel, ChannelError, Channels, OutboundMessage, Status
from hygie.followup import tables as t
from hygie.followup.transactions import insert_rows, writing

log = logging.getLogger("hygie.followup")

PENDING, HANDED, CANCELLED = "pending", "handed", "cancelled"
#: A question not sent within this time is not worth sending any more (seconds).
QUESTION_TTL_S = 6 * 3600


@dataclass(frozen=True)
class Outgoing:
    """One message to send. ``awaits``: the patient's reply is expected (a question)."""

    key: str
    owner: str
    recipient: str
    text: str
    channel: str = "sms"
    enrollment_id: str | None = None
    subject: str | None = None
    about: str | None = None
    recipient_ref: str | None = None
    awaits: bool = False


def queue(conn: Connection, messages: list[Outgoing], now: int) -> None:
    """Write messages in the caller's transaction (sent by the next hand-over)."""
    if not messages:
        return
    insert_rows(
        conn,
        t.outgoing,
        [
            {
                "key": m.key,
                "enrollment_id": m.enrollment_id,
                "owner": m.owner,
                "channel": m.channel,
                "recipient": m.recipient,
                "text": m.text,
                "subject": m.subject,
                "about": m.about,
                "recipient_ref": m.recipient_ref,
                "awaits": m.awaits,
                "state": PENDING,
                "created_ms": now,
            }
            for m in messages
        ],
    )


def cancel_pending(conn: Connection, enrollment_id: str) -> None:
    """Drop what an enrollment has not handed over yet (it ended, or the patient said
    STOP); what the outbox already has is called back with ``channels.cancel``."""
    conn.execute(
        update(t.outgoing)
        .where(t.outgoing.c.enrollment_id == enrollment_id, t.outgoing.c.state == PENDING)
        .values(state=CANCELLED)
    )


def _message(row: Any) -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=row.key,
        owner=row.owner,
        channel=Channel(row.channel),
        recipient=row.recipient,
        text=row.text,
        subject=row.subject,
        expected_answers=[] if row.awaits else None,
        about=row.about,
        recipient_ref=row.recipient_ref,
        ttl_s=QUESTION_TTL_S if row.awaits else None,
    )


def hand_over(
    engine: Engine, channels: Channels, limit: int = 2000, opted_out: list[str] | None = None
) -> int:
    """Pass pending messages to the channels outbox, oldest first; returns how many.

    A question the outbox fails at once because its number said STOP (to another
    service's message, so the STOP never reached this conversation) puts its
    enrollment's id in ``opted_out``, for the caller to end that follow-up.

    Messages go in one ``enqueue_many`` per batch; when the outbox refuses the batch
    (a bad address in it), they are retried one by one so that one bad row cannot
    hold the others back, and the bad one is marked cancelled with the reason logged.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.outgoing)
            .where(t.outgoing.c.state == PENDING)
            .order_by(t.outgoing.c.created_ms, t.outgoing.c.key)
            .limit(limit)
        ).all()
    if not rows:
        return 0
    done: list[str] = []
    refused: list[str] = []
    try:
        ids = channels.enqueue_many([_message(r) for r in rows])
        done = [r.key for r in rows]
        if opted_out is not None:
            asked = {
                mid: r.enrollment_id
                for r, mid in zip(rows, ids, strict=True)
                if r.awaits and r.enrollment_id
            }
            for mid, (status, error) in channels.statuses(list(asked)).items():
                if status is Status.FAILED and "opted out" in (error or ""):
                    opted_out.append(asked[mid])
    except ChannelError:
        for r in rows:
            try:
                channels.enqueue(_message(r))
                done.append(r.key)
            except ChannelError as exc:
                log.warning("follow-up message refused by the outbox: %s", type(exc).__name__)
                refused.append(r.key)
    with writing(engine) as conn:
        for state, keys in ((HANDED, done), (CANCELLED, refused)):
            for i in range(0, len(keys), 500):
                conn.execute(
                    update(t.outgoing)
                    .where(t.outgoing.c.key.in_(keys[i : i + 500]), t.outgoing.c.state == PENDING)
                    .values(state=state)
                )
    return len(done)
