"""Messages of follow-up: decided in the conversation's transaction, then handed over.

A question, a reminder or an alert notification is first a ``followup_outgoing`` row,
written in the same transaction as the state that asks for it (the session moved to
question 3, the alert was raised): the message exists exactly when its cause was
committed. :func:`hand_over` then passes pending rows to the platform's channels
outbox (``enqueue_many``, the row's key as idempotency key) and records the outbox id.
A crash between the two leaves the rows pending; the next hand-over enqueues them
again under the same keys, and the outbox returns the messages it already has, so
nothing is sent twice and nothing is lost.

The outbox lives in the same database, so a transaction opened by
:func:`handing_over` (``FollowupService.writing``) puts its messages straight into it
before it commits: the rows are written as handed, and the answers of a batch cost no
second and third transaction. Should the outbox refuse them (a bad number among them),
they are left pending for :func:`hand_over`, which tries them one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from hygie.channels import Channel, ChannelError, Channels, OutboundMessage, Status
from hygie.followup import tables as t
from hygie.followup.transactions import chunks, insert_rows, writing

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


#: ``Connection.info`` key of the messages a :func:`handing_over` transaction collects.
_COLLECTED = "hygie.followup.outgoing"


def queue(conn: Connection, messages: list[Outgoing], now: int) -> None:
    """Write messages in the caller's transaction: handed to the outbox at its end when
    it was opened by :func:`handing_over`, else by the next :func:`hand_over`."""
    if not messages:
        return
    collected: list[Outgoing] | None = conn.info.get(_COLLECTED)
    state = PENDING if collected is None else HANDED
    if collected is not None:
        collected.extend(messages)
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
                "state": state,
                "created_ms": now,
            }
            for m in messages
        ],
    )


def cancel_pending(conn: Connection, enrollment_id: str) -> None:
    """Drop what an enrollment has not handed over yet (it ended, or the patient said
    STOP), this transaction's messages included; what the outbox already has is called
    back with ``channels.cancel``."""
    conn.execute(
        update(t.outgoing)
        .where(t.outgoing.c.enrollment_id == enrollment_id, t.outgoing.c.state == PENDING)
        .values(state=CANCELLED)
    )
    collected: list[Outgoing] | None = conn.info.get(_COLLECTED)
    if collected:
        dropped = [m.key for m in collected if m.enrollment_id == enrollment_id]
        if dropped:
            collected[:] = [m for m in collected if m.enrollment_id != enrollment_id]
            for part in chunks(dropped):
                conn.execute(
                    update(t.outgoing).where(t.outgoing.c.key.in_(part)).values(state=CANCELLED)
                )


@contextmanager
def handing_over(conn: Connection, channels: Channels, opted_out: list[str]) -> Iterator[None]:
    """Within the block, messages queued on ``conn`` go to the channels outbox at its
    end, in the same transaction (``conn`` must be a write transaction on the
    outbox's database). Enrollments whose question failed at once because the number
    said STOP (to another service) are added to ``opted_out``, for the caller to end
    them once committed."""
    collected: list[Outgoing] = []
    conn.info[_COLLECTED] = collected
    try:
        yield
        if collected:
            opted_out.extend(_enqueue_collected(conn, channels, collected))
    finally:
        conn.info.pop(_COLLECTED, None)


def _enqueue_collected(conn: Connection, channels: Channels, messages: list[Outgoing]
                       ) -> list[str]:
    try:
        results = channels.enqueue_in(conn, [_outbound(m) for m in messages])
    except ChannelError as exc:
        # Nothing was written by the outbox: back to pending, tried one by one.
        log.warning("follow-up messages left for the hand-over: %s", type(exc).__name__)
        for part in chunks([m.key for m in messages]):
            conn.execute(update(t.outgoing).where(t.outgoing.c.key.in_(part))
                         .values(state=PENDING))
        return []
    return [m.enrollment_id for m, (_mid, error) in zip(messages, results, strict=True)
            if error and "opted out" in error and m.awaits and m.enrollment_id]


def _outbound(m: Any) -> OutboundMessage:
    """The outbox's message for an :class:`Outgoing` or a ``followup_outgoing`` row."""
    return OutboundMessage(
        idempotency_key=m.key,
        owner=m.owner,
        channel=Channel(m.channel),
        recipient=m.recipient,
        text=m.text,
        subject=m.subject,
        expected_answers=[] if m.awaits else None,
        about=m.about,
        recipient_ref=m.recipient_ref,
        ttl_s=QUESTION_TTL_S if m.awaits else None,
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
        ids = channels.enqueue_many([_outbound(r) for r in rows])
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
                channels.enqueue(_outbound(r))
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
