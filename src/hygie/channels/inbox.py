"""What people send back, and who gets it.

Every inbound item (an SMS reply, the DTMF digits of a call, the click of an e-mail
answer link) is committed in ``channels_inbound`` before it is acknowledged, with the
owner it is routed to:

- an SMS from a number goes to the owner of that number's conversation (the latest
  message to it that awaits an answer, ``channels_conversation``), and answers that
  message;
- digits and answer links name their message, hence its owner;
- ``STOP`` (and the other opt-out words of the settings) records an opt-out honoured by
  every sender of the platform, whoever owns the conversation; ``START`` lifts it.

Services register a handler per owner prefix (``"followup:"``) in a :class:`Router`.
The dispatcher hands each pending item to its handler and marks it handled only when
the handler returned, so an item survives a restart until someone took it (handlers
must be idempotent: the same :class:`Answer` id may come twice after a crash).
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hygie.channels import tables as t
from hygie.channels.model import Answer, Channel, Status
from hygie.channels.references import new_id
from hygie.channels.settings import ChannelSettings
from hygie.channels.transactions import lock_messages, now_ms
from hygie.platform import insert_many, write_transaction

log = logging.getLogger("hygie.channels")

Handler = Callable[[Answer], None]
#: Takes every pending answer of its owners at once (in the order received). One that
#: returns True has marked them handled itself, inside its own transaction
#: (``Inbox.mark_handled``): one write transaction less per batch.
BatchHandler = Callable[[Sequence[Answer]], bool | None]
_ANSWERABLE = (Status.SENDING, Status.SUBMITTED, Status.DELIVERED)


def normalize_reply(text: str) -> str:
    """Upper case, no accents, no surrounding punctuation: how replies are compared."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return folded.strip().strip(".!?,;:'\"()").strip().upper()


def match_answer(text: str, expected: Sequence[str] | None) -> str | None:
    """The expected answer ``text`` means (whole text, else its first word), or None."""
    if not expected:
        return None
    options = {normalize_reply(e): e for e in expected}
    reply = normalize_reply(text)
    if reply in options:
        return options[reply]
    first = reply.split()[0] if reply.split() else ""
    return options.get(normalize_reply(first))


class Router:
    """Handlers of answers, per owner prefix; the longest matching prefix wins.

    A handler takes one :class:`Answer`; a *batch* handler (``batch=True``) takes the
    list of every pending answer of its owners in one pass, so that a service that
    answers thousands of people can process them in a few transactions.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[Callable[..., None], bool]] = {}
        self._lock = threading.Lock()

    def register(self, prefix: str, handler: Handler | BatchHandler,
                 batch: bool = False) -> None:
        """Send the answers of every owner starting with ``prefix`` to ``handler``."""
        if not prefix:
            raise ValueError("an owner prefix is needed (e.g. 'followup:')")
        with self._lock:
            self._handlers[prefix] = (handler, batch)

    def unregister(self, prefix: str) -> None:
        with self._lock:
            self._handlers.pop(prefix, None)

    def entry_for(self, owner: str) -> tuple[Callable[..., None], bool] | None:
        """The handler of ``owner`` and whether it takes batches, or None."""
        with self._lock:
            best = max((p for p in self._handlers if owner.startswith(p)), key=len,
                       default=None)
            return self._handlers[best] if best is not None else None

    def handler_for(self, owner: str) -> Handler | None:
        entry = self.entry_for(owner)
        return entry[0] if entry is not None and not entry[1] else None

    @property
    def prefixes(self) -> list[str]:
        with self._lock:
            return sorted(self._handlers)


def store_answer(conn: Connection, message_id: str, owner: str, channel: Channel, sender: str,
                 text: str, expected: Sequence[str] | None, dedupe_key: str | None,
                 now: int) -> str | None:
    """Record an answer to a known message; None when this answer was recorded already."""
    value = match_answer(text, expected)
    answer_id = new_id()
    try:
        with conn.begin_nested():
            conn.execute(insert(t.inbound).values(
                id=answer_id, channel=str(channel), sender=sender, text=text, value=value,
                kind="answer", owner=owner, message_id=message_id, received_ms=now,
                handled=False, dedupe_key=dedupe_key))
    except IntegrityError:
        return None
    _mark_answered(conn, [(message_id, value or text)], now)
    return answer_id


def _mark_answered(conn: Connection, answers: Sequence[tuple[str, str]], now: int) -> None:
    """Give each message its first answer and move it to ``answered`` (set-based: a
    wave of replies is a few statements, not a few per reply)."""
    first: dict[str, str] = {}
    for mid, text in answers:
        first.setdefault(mid, text[:2000])
    answerable: list[str] = []
    unanswered: set[str] = set()
    # All of them locked first, in id order (transactions.py): the updates below go
    # by answer text, and a receipt being applied to the same messages goes by outcome.
    for mid, status, answer in lock_messages(conn, first, t.message.c.status,
                                             t.message.c.answer).values():
        if answer is None:
            unanswered.add(mid)
        if status in _ANSWERABLE:
            answerable.append(mid)
    answerable.sort()
    by_text: dict[str, list[str]] = {}
    for mid in sorted(unanswered):
        by_text.setdefault(first[mid], []).append(mid)
    for text, mids in by_text.items():
        for i in range(0, len(mids), 500):
            conn.execute(update(t.message).where(t.message.c.id.in_(mids[i:i + 500]))
                         .values(answer=text))
    for i in range(0, len(answerable), 500):
        conn.execute(update(t.message).where(t.message.c.id.in_(answerable[i:i + 500]))
                     .values(status=Status.ANSWERED, lease_ms=None, worker=None,
                             updated_ms=now))
    if answerable:
        conn.execute(insert(t.event), [{"message_id": mid, "status": Status.ANSWERED,
                                        "at_ms": now, "detail": None} for mid in answerable])


@dataclass(frozen=True)
class InboundRecord:
    """An inbound item as the inbox page shows it."""

    id: str
    channel: str
    sender: str
    text: str
    value: str | None
    kind: str
    owner: str | None
    message_id: str | None
    received_ms: int
    handled: bool


class Inbox:
    """Stores inbound items, routes them, and hands them to their owners' handlers."""

    def __init__(self, engine: Engine, settings: ChannelSettings | None = None,
                 router: Router | None = None, clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.settings = settings or ChannelSettings()
        self.router = router or Router()
        self.clock = clock
        self._optout = {normalize_reply(w) for w in self.settings.optout_keywords.split(",")
                        if w.strip()}
        self._optin = {normalize_reply(w) for w in self.settings.optin_keywords.split(",")
                       if w.strip()}

    def receive_sms(self, items: Sequence[tuple[str, str]]) -> list[str]:
        """Store SMS replies (sender as written, text) in one transaction; return ids."""
        from hygie.channels.inbound_sms import sender_address

        region = self.settings.phone_region
        items = [(sender_address(sender, region), text) for sender, text in items]
        with write_transaction(self.engine) as conn:
            return self.store_sms(conn, items, self.clock())

    def store_sms(self, conn: Connection, items: Sequence[tuple[str, str]],
                  now: int) -> list[str]:
        """Store SMS replies inside the caller's transaction (the SMPP session commits
        them before its deliver_sm_resp)."""
        senders = sorted({s for s, _ in items})
        owners: dict[str, Any] = {}
        for i in range(0, len(senders), 500):
            for row in conn.execute(select(t.conversation).where(
                    t.conversation.c.address.in_(senders[i:i + 500]))):
                owners[row.address] = row
        expected: dict[str, Any] = {}
        mids = sorted({c.message_id for c in owners.values()})
        for i in range(0, len(mids), 500):
            expected.update(dict(conn.execute(select(t.message.c.id,
                                                     t.message.c.expected_answers).where(
                t.message.c.id.in_(mids[i:i + 500]))).all()))
        rows, answered, optouts, optins, ids = [], [], {}, set(), []
        for sender, text in items:
            conv = owners.get(sender)
            word = normalize_reply(text)
            kind, value = "reply", None
            if word in self._optout:
                kind, value = "optout", "STOP"
                optouts[sender] = word
            elif word in self._optin:
                kind, value = "optin", "START"
                optins.add(sender)
                optouts.pop(sender, None)
            elif conv is None:
                kind = "unrouted"
            else:
                value = match_answer(text, expected.get(conv.message_id))
                answered.append((conv.message_id, value or text))
            rid = new_id()
            ids.append(rid)
            rows.append({"id": rid, "channel": Channel.SMS, "sender": sender, "text": text,
                         "value": value, "kind": kind,
                         "owner": conv.owner if conv is not None else None,
                         "message_id": conv.message_id if conv is not None else None,
                         "received_ms": now, "handled": conv is None, "handled_ms": None,
                         "dedupe_key": None})
        if rows:
            insert_many(conn, t.inbound, rows)
        if optins:
            conn.execute(t.optout.delete().where(t.optout.c.address.in_(sorted(optins))))
        if optouts:
            present = set(conn.scalars(select(t.optout.c.address).where(
                t.optout.c.address.in_(sorted(optouts)))))
            new = [{"address": a, "keyword": w[:32], "at_ms": now}
                   for a, w in optouts.items() if a not in present]
            if new:
                conn.execute(insert(t.optout), new)
            log.info("opt-out recorded for %d number(s)", len(new))
        if answered:
            _mark_answered(conn, answered, now)
        return ids

    def answer(self, message_id: str, text: str, channel: Channel,
               dedupe_key: str | None = None) -> str | None:
        """Record the answer to a message (an answer link, digits); None if already."""
        with write_transaction(self.engine) as conn:
            row = lock_messages(conn, [message_id], t.message.c.owner, t.message.c.recipient,
                                t.message.c.expected_answers).get(message_id)
            if row is None:
                return None
            return store_answer(conn, message_id, row.owner, channel, row.recipient, text,
                                row.expected_answers, dedupe_key, self.clock())

    def is_opted_out(self, number: str) -> bool:
        with self.engine.connect() as conn:
            return conn.scalar(select(t.optout.c.address).where(
                t.optout.c.address == number)) is not None

    def deliver_pending(self, limit: int = 500) -> int:
        """Hand pending items to their owners' handlers; return how many were taken.

        Items whose owner has no handler yet stay pending (a service registers its
        handler when it starts); a handler that raises leaves its item pending, and a
        batch handler that raises leaves its whole batch pending.
        """
        prefixes = self.router.prefixes
        if not prefixes:
            return 0
        # Only owners someone handles: items of other owners must not crowd them out.
        owned = or_(*(t.inbound.c.owner.startswith(p, autoescape=True) for p in prefixes))
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.inbound).where(
                t.inbound.c.handled.is_(False), t.inbound.c.owner.is_not(None), owned)
                .order_by(t.inbound.c.received_ms, t.inbound.c.id).limit(limit)).all()
        done: list[str] = []
        batches: dict[int, tuple[Callable[..., None], list[tuple[str, Answer]]]] = {}
        for r in rows:
            entry = self.router.entry_for(r.owner)
            if entry is None:
                continue
            handler, batch = entry
            answer = Answer(id=r.id, owner=r.owner, channel=Channel(r.channel),
                            sender=r.sender, text=r.text, value=r.value,
                            received_ms=r.received_ms, message_id=r.message_id)
            if batch:
                batches.setdefault(id(handler), (handler, []))[1].append((r.id, answer))
                continue
            try:
                handler(answer)
            except Exception:
                log.exception("answer handler for %s failed; the answer stays pending",
                              r.owner.split(":")[0])
                continue
            done.append(r.id)
        taken = 0
        for handler, items in batches.values():
            try:
                marked = handler([answer for _id, answer in items])
            except Exception:
                log.exception("batch answer handler for %s failed; %d answers stay pending",
                              items[0][1].owner.split(":")[0], len(items))
                continue
            if marked is True:
                taken += len(items)
            else:
                done.extend(rid for rid, _answer in items)
        if done:
            with write_transaction(self.engine) as conn:
                self.mark_handled(conn, done)
        return taken + len(done)

    def mark_handled(self, conn: Connection, ids: Sequence[str]) -> None:
        """Mark these inbound items handled inside the caller's transaction (a batch
        handler does it in the transaction that records what the answers changed)."""
        now = self.clock()
        done = sorted(ids)  # two dispatchers marking the same items lock them in one order
        for i in range(0, len(done), 500):
            conn.execute(update(t.inbound).where(t.inbound.c.id.in_(done[i:i + 500]))
                         .values(handled=True, handled_ms=now))

    def recent(self, limit: int = 100, before_ms: int | None = None) -> list[InboundRecord]:
        q = select(t.inbound).order_by(t.inbound.c.received_ms.desc(), t.inbound.c.id.desc())
        if before_ms is not None:
            q = q.where(t.inbound.c.received_ms < before_ms)
        with self.engine.connect() as conn:
            rows = conn.execute(q.limit(max(1, min(limit, 1000)))).all()
        return [InboundRecord(r.id, r.channel, r.sender, r.text, r.value, r.kind, r.owner,
                              r.message_id, r.received_ms, r.handled) for r in rows]
