"""The channels package as one object per platform: what services call.

``channels_for(platform)`` returns the platform's :class:`Channels` (built once, kept
in ``platform.parts["channels"]``): enqueue messages, read them, register the handler
of a conversation owner, make answer links. Sending happens in the dispatcher
(``worker.py``), inside ``hygie serve`` or ``hygie channels worker``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from hygie.channels.answers import AnswerLinks
from hygie.channels.errors import AlreadyAnswered, AnswerLinkError, InvalidMessage
from hygie.channels.inbox import Answer, BatchHandler, Handler, InboundRecord, Inbox, Router
from hygie.channels.model import Channel, MessageRecord, OutboundMessage, Status
from hygie.channels.outbox import Outbox
from hygie.channels.settings import ChannelSettings, channel_settings
from hygie.platform import Platform


class Channels:
    """Outbox, inbox and answer links of one platform."""

    def __init__(self, platform: Platform, settings: ChannelSettings | None = None) -> None:
        self.platform = platform
        self.settings = settings or channel_settings(platform.settings)
        self.router = Router()
        self.outbox = Outbox(platform.engine, self.settings)
        self.inbox = Inbox(platform.engine, self.settings, self.router)
        self.links = AnswerLinks(platform.engine, platform.settings.base_url,
                                 self.settings.answer_link_ttl_s)

    # --- sending ---------------------------------------------------------------
    def enqueue(self, message: OutboundMessage) -> MessageRecord:
        """Queue one message (idempotent on its key); the dispatcher sends it."""
        return self.outbox.enqueue(message)

    def enqueue_many(self, messages: Sequence[OutboundMessage]) -> list[str]:
        """Queue many messages in one transaction (a mobilization wave)."""
        return self.outbox.enqueue_many(messages)

    def enqueue_in(self, conn: Connection, messages: Sequence[OutboundMessage]
                   ) -> list[tuple[str, str | None]]:
        """Queue messages inside the caller's write transaction on the platform's
        database (``platform.write_transaction``): they exist exactly when the caller's
        change commits. Returns ``(id, error)`` in order; ``error`` says why a message
        failed at once (its number said STOP)."""
        return self.outbox.enqueue_in(conn, messages)

    def get(self, message_id: str) -> MessageRecord:
        return self.outbox.get(message_id)

    def get_by_key(self, idempotency_key: str) -> MessageRecord:
        return self.outbox.get_by_key(idempotency_key)

    def find(self, **filters: object) -> list[MessageRecord]:
        return self.outbox.find(**filters)  # type: ignore[arg-type]

    # --- answers ---------------------------------------------------------------
    def register_handler(self, owner_prefix: str, handler: Handler) -> None:
        """Receive the answers of every conversation whose owner starts with the prefix.

        Pending answers (received while no handler was registered, or before a
        restart) are handed over by the dispatcher's next pass.
        """
        self.router.register(owner_prefix, handler)

    def register_batch_handler(self, owner_prefix: str, handler: BatchHandler) -> None:
        """Like :meth:`register_handler`, but the handler takes every pending answer of
        its owners at once (a list, in the order received): a service that hears from
        thousands of people processes them in a few transactions. If it raises, the
        whole batch stays pending and comes again. If it returns True, it has marked
        them handled itself (:meth:`mark_handled`, in its own transaction)."""
        self.router.register(owner_prefix, handler, batch=True)

    def mark_handled(self, conn: Connection, answers: Sequence[Answer]) -> None:
        """Mark answers handled inside the caller's write transaction: a batch handler
        that does so in the transaction recording what they changed returns True, and
        the dispatcher spends no transaction of its own on them."""
        self.inbox.mark_handled(conn, [a.id for a in answers])

    def deliver_answers(self, limit: int = 500) -> int:
        """Hand pending answers to the handlers registered in this process; return how
        many were taken. The dispatcher does this on every pass; a service running its
        own worker process (without a dispatcher) calls it to receive its answers."""
        return self.inbox.deliver_pending(limit)

    def is_opted_out(self, address: str) -> bool:
        """Whether this phone number said STOP (and not START since)."""
        from hygie.channels.addresses import normalize_address

        return self.inbox.is_opted_out(normalize_address(Channel.SMS, address,
                                                         self.settings.phone_region))

    # --- cancelling --------------------------------------------------------------
    def cancel(self, owner: str, reason: str) -> list[str]:
        """Fail the messages of ``owner`` (exact) still waiting in the queue, with
        ``reason``; return their ids. Messages a dispatcher already holds are on their
        way and are not called back."""
        return self.outbox.cancel(owner, reason)

    def cancel_messages(self, message_ids: Sequence[str], reason: str) -> list[str]:
        """Fail those of these messages still waiting in the queue (one transaction,
        for a service calling back many at once); return their ids."""
        return self.outbox.cancel_ids(message_ids, reason)

    def statuses(self, message_ids: Sequence[str]) -> dict[str, tuple[Status, str | None]]:
        """``{id: (status, error)}`` of these messages, read in bulk (a service watching
        thousands of messages for failures); unknown ids are left out."""
        return self.outbox.statuses(message_ids)

    def answer_url(self, message_id: str) -> str:
        return self.links.url(message_id)

    def message_for_link(self, token: str) -> MessageRecord:
        """The message an answer link names (raises AnswerLinkError and subclasses)."""
        record = self.outbox.get(self.links.verify(token))
        if record.expected_answers is None:
            raise AnswerLinkError("this message awaits no answer")
        return record

    def answer_by_link(self, token: str, value: str) -> MessageRecord:
        """Record the answer chosen on an answer page; the first answer is kept."""
        record = self.message_for_link(token)
        value = value.strip()
        if not value:
            raise InvalidMessage("an answer is needed")
        if record.expected_answers and value not in record.expected_answers:
            raise InvalidMessage("this answer is not one of those proposed")
        if record.status is Status.ANSWERED:
            raise AlreadyAnswered("this message has its answer already")
        if self.inbox.answer(record.id, value, Channel.EMAIL,
                             dedupe_key=f"link:{record.id}") is None:
            raise AlreadyAnswered("this message has its answer already")
        return self.outbox.get(record.id)

    def recent_inbound(self, limit: int = 100) -> list[InboundRecord]:
        return self.inbox.recent(limit)


def channels_for(platform: Platform) -> Channels:
    """The platform's one :class:`Channels`, built on first use."""
    found = platform.parts.get("channels")
    if found is None:
        found = platform.parts.setdefault("channels", Channels(platform))
    return found  # type: ignore[no-any-return]
