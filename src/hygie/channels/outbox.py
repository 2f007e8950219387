"""The durable outbox: every message is a row before anything is sent.

Life of a message::

    enqueue ──> queued ──claim──> sending ──record──> submitted ──receipt──> delivered
                  ^                  │                    │                     │
                  └──── retry ───────┘                    └──── answer ────> answered
                                     └──> failed (refused, expired, too many tries)

Guarantees, and how they hold:

- *Nothing twice from the outbox*: ``enqueue`` is keyed by the idempotency key (a
  second call returns the first message); ``claim`` moves rows from ``queued`` to
  ``sending`` under a lease in one transaction (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two workers never hold one message.
- *Nothing lost*: a worker that dies leaves its messages in ``sending``; once the lease
  has passed, :meth:`Outbox.settle_in_doubt` takes them back.
- *No duplicate after a crash*: an SMS part written on the wire whose submit_sm_resp
  was never committed is *in doubt*. Each part carries a ``user_message_reference``
  derived from the message id; a delivery receipt from the SMSC that echoes it (with
  the recipient) proves the part was accepted, and it is not sent again. A part in
  doubt with no such receipt after ``in_doubt_grace_s`` is sent again.

All times are UTC milliseconds. Nothing here knows HTTP or a transport.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from hygie.channels import tables as t
from hygie.channels.addresses import normalize_address
from hygie.channels.errors import IdempotencyConflict, InvalidMessage, MessageNotFound
from hygie.channels.model import (
    CALL_CONNECTED,
    Channel,
    Envelope,
    Event,
    MessageRecord,
    OutboundMessage,
    Receipt,
    Status,
)
from hygie.channels.references import new_id
from hygie.channels.segments import plan_sms
from hygie.channels.settings import ChannelSettings
from hygie.channels.settlement import ReceiptSettlement
from hygie.channels.transactions import chunks as _chunks
from hygie.channels.transactions import lock_messages, now_ms
from hygie.platform import insert_many, write_transaction

#: Statuses a message may move to from each status (anything else is ignored, so a
#: late receipt never takes an answered message back to "delivered").
_FORWARD: dict[str, set[str]] = {
    Status.QUEUED: {Status.SENDING, Status.FAILED},
    Status.SENDING: {Status.QUEUED, Status.SUBMITTED, Status.DELIVERED, Status.FAILED,
                     Status.ANSWERED},
    Status.SUBMITTED: {Status.DELIVERED, Status.FAILED, Status.ANSWERED},
    Status.DELIVERED: {Status.ANSWERED, Status.FAILED},
    Status.FAILED: set(),
    Status.ANSWERED: set(),
}
_MAX_TEXT = 20_000


def _fingerprint(message: OutboundMessage, recipient: str) -> tuple[Any, ...]:
    return (message.owner, str(message.channel), recipient, message.text,
            message.subject, message.html)


class Outbox(ReceiptSettlement):
    """Enqueue, claim, record: the outbox of one database.

    ``clock`` returns UTC milliseconds (tests pass their own).
    """

    def __init__(self, engine: Engine, settings: ChannelSettings | None = None,
                 clock: Any = now_ms) -> None:
        self.engine = engine
        self.settings = settings or ChannelSettings()
        self.clock = clock

    # --- enqueue ---------------------------------------------------------------
    def _row(self, message: OutboundMessage, now: int,
             optouts: set[str]) -> tuple[dict[str, Any], str | None]:
        if not message.idempotency_key or len(message.idempotency_key) > 200:
            raise InvalidMessage("idempotency_key: 1 to 200 characters")
        if not message.owner or len(message.owner) > 200:
            raise InvalidMessage("owner: 1 to 200 characters")
        if not message.text or len(message.text) > _MAX_TEXT:
            raise InvalidMessage(f"text: 1 to {_MAX_TEXT} characters")
        channel = Channel(message.channel)
        recipient = normalize_address(channel, message.recipient, self.settings.phone_region)
        parts = 1
        if channel is Channel.SMS:
            parts = len(plan_sms(message.text, max_parts=self.settings.max_sms_parts).parts)
        if channel is Channel.EMAIL and not message.subject:
            raise InvalidMessage("an e-mail needs a subject")
        error = None
        status = Status.QUEUED
        if channel is Channel.SMS and recipient in optouts:
            status, error = Status.FAILED, "opted out (STOP)"
        row = {
            "id": new_id(), "idempotency_key": message.idempotency_key, "owner": message.owner,
            "channel": str(channel), "recipient": recipient, "subject": message.subject,
            "body": message.text, "html": message.html,
            "expected_answers": (list(message.expected_answers)
                                 if message.expected_answers is not None else None),
            "about": message.about, "recipient_ref": message.recipient_ref,
            "status": str(status), "attempts": 0, "next_attempt_ms": now,
            "expires_ms": now + message.ttl_s * 1000 if message.ttl_s else None,
            "parts": parts, "error": error, "created_ms": now, "updated_ms": now,
        }
        return row, error

    def enqueue(self, message: OutboundMessage) -> MessageRecord:
        """Persist a message (once per idempotency key) and return its record."""
        return self.get(self.enqueue_many([message])[0])

    def enqueue_many(self, messages: Sequence[OutboundMessage]) -> list[str]:
        """Persist messages in one transaction; return their ids in order.

        A key already used for the same message returns that message's id; a key
        used for a different message raises IdempotencyConflict (nothing is written).
        """
        with write_transaction(self.engine) as conn:
            return [mid for mid, _error in self.enqueue_in(conn, messages)]

    def enqueue_in(self, conn: Connection, messages: Sequence[OutboundMessage]
                   ) -> list[tuple[str, str | None]]:
        """Persist messages inside the caller's write transaction on this outbox's
        database; return ``(id, error)`` in order, ``error`` being why a message
        failed at once (its number said STOP), or None.

        The messages then exist exactly when the caller's own change commits (a
        service's transactional outbox, with no hand-over afterwards). Every message
        is checked before anything is written: an InvalidMessage or
        IdempotencyConflict leaves the transaction as it was.
        """
        now = self.clock()
        keys = [m.idempotency_key for m in messages]
        if len(set(keys)) != len(keys):
            raise IdempotencyConflict("the same idempotency key twice in one call")
        existing: dict[str, Any] = {}
        for chunk in _chunks(keys, 500):
            for row in conn.execute(select(t.message).where(
                    t.message.c.idempotency_key.in_(chunk))):
                existing[row.idempotency_key] = row
        numbers = [m.recipient for m in messages if Channel(m.channel) is Channel.SMS]
        optouts = self._optouts(conn, numbers) if numbers else set()
        rows, events, conversations = [], [], {}
        out: list[tuple[str, str | None]] = []
        for m in messages:
            row, error = self._row(m, now, optouts)
            old = existing.get(m.idempotency_key)
            if old is not None:
                same = (old.owner, old.channel, old.recipient, old.body, old.subject,
                        old.html) == _fingerprint(m, row["recipient"])
                if not same:
                    raise IdempotencyConflict(
                        f"idempotency key {m.idempotency_key!r} names another message")
                out.append((old.id, old.error if old.status == Status.FAILED else None))
                continue
            rows.append(row)
            out.append((row["id"], error))
            events.append({"message_id": row["id"], "status": Status.QUEUED, "at_ms": now,
                           "detail": None})
            if error:
                events.append({"message_id": row["id"], "status": Status.FAILED,
                               "at_ms": now, "detail": error})
            elif m.awaits_answer and row["channel"] != Channel.EMAIL:
                conversations[(row["channel"], row["recipient"])] = (m.owner, row["id"])
        if rows:
            # Key order: two waves sharing keys wait on the unique index in one order.
            rows.sort(key=lambda r: r["idempotency_key"])
            insert_many(conn, t.message, rows)
            insert_many(conn, t.event, events)
        if conversations:
            self._own_conversations(conn, conversations, now)
        return out

    def _optouts(self, conn: Connection, raw_numbers: Iterable[str]) -> set[str]:
        numbers = set()
        for raw in raw_numbers:
            try:
                numbers.add(normalize_address(Channel.SMS, raw, self.settings.phone_region))
            except InvalidMessage:
                continue
        found: set[str] = set()
        for chunk in _chunks(sorted(numbers), 500):
            found.update(conn.scalars(select(t.optout.c.address).where(
                t.optout.c.address.in_(chunk))))
        return found

    def _own_conversations(self, conn: Connection,
                           owners: dict[tuple[str, str], tuple[str, str]], now: int) -> None:
        """The latest message awaiting an answer owns the conversation with an address
        (SMS and calls share the phone number's conversation)."""
        addresses = sorted({addr for _ch, addr in owners})
        for chunk in _chunks(addresses, 500):
            # Locked in address order before the delete, which meets rows in plan order.
            conn.execute(select(t.conversation.c.address).where(
                t.conversation.c.address.in_(chunk)).order_by(t.conversation.c.address)
                .with_for_update())
            conn.execute(delete(t.conversation).where(t.conversation.c.address.in_(chunk)))
        latest: dict[str, tuple[str, str]] = {}
        for (_channel, address), value in owners.items():
            latest[address] = value
        conn.execute(insert(t.conversation), [
            {"channel": "phone", "address": a, "owner": latest[a][0],
             "message_id": latest[a][1], "updated_ms": now} for a in sorted(latest)])

    # --- reading ---------------------------------------------------------------
    def get(self, message_id: str) -> MessageRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.message).where(t.message.c.id == message_id)).first()
            if row is None:
                raise MessageNotFound(message_id)
            events = conn.execute(select(t.event).where(t.event.c.message_id == message_id)
                                  .order_by(t.event.c.id)).all()
        return _record(row, events)

    def get_by_key(self, idempotency_key: str) -> MessageRecord:
        with self.engine.connect() as conn:
            mid = conn.scalar(select(t.message.c.id).where(
                t.message.c.idempotency_key == idempotency_key))
        if mid is None:
            raise MessageNotFound(idempotency_key)
        return self.get(mid)

    def find(self, *, owner_prefix: str | None = None, status: str | None = None,
             channel: str | None = None, recipient: str | None = None,
             before_ms: int | None = None, limit: int = 50) -> list[MessageRecord]:
        """Newest first, without timelines."""
        q = select(t.message).order_by(t.message.c.created_ms.desc(), t.message.c.id.desc())
        if owner_prefix:
            q = q.where(t.message.c.owner.startswith(owner_prefix, autoescape=True))
        if status:
            q = q.where(t.message.c.status == status)
        if channel:
            q = q.where(t.message.c.channel == channel)
        if recipient:
            q = q.where(t.message.c.recipient == recipient)
        if before_ms is not None:
            q = q.where(t.message.c.created_ms < before_ms)
        with self.engine.connect() as conn:
            rows = conn.execute(q.limit(max(1, min(limit, 1000)))).all()
        return [_record(r, ()) for r in rows]

    def counts(self) -> dict[str, int]:
        """Messages by status."""
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return {s: n for s, n in conn.execute(
                select(t.message.c.status, func.count()).group_by(t.message.c.status))}

    # --- cancelling ------------------------------------------------------------
    def cancel(self, owner: str, reason: str) -> list[str]:
        """Move the queued messages of ``owner`` to ``failed`` (``reason`` as error)."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            # Rows a dispatcher is claiming are locked: skip them, they are on their way.
            ids = list(conn.scalars(select(t.message.c.id).where(
                t.message.c.owner == owner, t.message.c.status == Status.QUEUED)
                .with_for_update(skip_locked=True)))
            if not ids:
                return []
            return self._set_status(conn, [(mid, Status.FAILED, reason) for mid in ids],
                                    dict.fromkeys(ids, str(Status.QUEUED)), now)

    def cancel_ids(self, message_ids: Sequence[str], reason: str) -> list[str]:
        """Move those of these messages still queued to ``failed``, in one transaction."""
        now = self.clock()
        with write_transaction(self.engine) as conn:
            ids: list[str] = []
            for chunk in _chunks(sorted(set(message_ids)), 500):
                ids += conn.scalars(select(t.message.c.id).where(
                    t.message.c.id.in_(chunk), t.message.c.status == Status.QUEUED)
                    .with_for_update(skip_locked=True))
            if not ids:
                return []
            return self._set_status(conn, [(mid, Status.FAILED, reason) for mid in ids],
                                    dict.fromkeys(ids, str(Status.QUEUED)), now)

    def statuses(self, message_ids: Sequence[str]) -> dict[str, tuple[Status, str | None]]:
        """The status and error of each of these messages (unknown ids are left out)."""
        out: dict[str, tuple[Status, str | None]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(message_ids)), 500):
                for mid, status, error in conn.execute(select(
                        t.message.c.id, t.message.c.status, t.message.c.error).where(
                        t.message.c.id.in_(chunk))):
                    out[mid] = (Status(status), error)
        return out

    # --- claiming --------------------------------------------------------------
    def claim(self, channel: Channel, worker: str, limit: int,
              answer_url: Any = None) -> list[Envelope]:
        """Take up to ``limit`` due messages of a channel for this worker, under a lease.

        Messages past their expiry fail here instead of being sent; opted-out numbers
        are checked again (a STOP may have come after enqueueing).
        """
        now = self.clock()
        lease = now + int(self.settings.lease_s * 1000)
        if self.engine.dialect.name == "sqlite" and not self._any_due(channel, now):
            return []
        with write_transaction(self.engine) as conn:
            q = (select(t.message).where(
                t.message.c.status == Status.QUEUED, t.message.c.channel == str(channel),
                t.message.c.next_attempt_ms <= now)
                 .order_by(t.message.c.next_attempt_ms).limit(limit)
                 .with_for_update(skip_locked=True))
            rows = conn.execute(q).all()
            if not rows:
                return []
            optouts: set[str] = set()
            if channel is Channel.SMS:
                for chunk in _chunks(sorted({r.recipient for r in rows}), 500):
                    optouts.update(conn.scalars(select(t.optout.c.address).where(
                        t.optout.c.address.in_(chunk))))
            take, fail = [], []
            for r in rows:
                if r.expires_ms is not None and r.expires_ms <= now:
                    fail.append((r.id, "expired before it could be sent"))
                elif r.recipient in optouts:
                    fail.append((r.id, "opted out (STOP)"))
                else:
                    take.append(r)
            if fail:
                self._set_status(conn, [(mid, Status.FAILED, err) for mid, err in fail],
                                 {r.id: r.status for r in rows}, now)
            for chunk in _chunks([r.id for r in take], 500):
                conn.execute(update(t.message).where(t.message.c.id.in_(chunk))
                             .values(status=Status.SENDING, lease_ms=lease, worker=worker,
                                     attempts=t.message.c.attempts + 1, updated_ms=now))
            done: dict[str, set[int]] = {}
            if channel is Channel.SMS and take:
                retried = [r.id for r in take if r.attempts > 0]
                for chunk in _chunks(retried, 500):
                    for mid, part in conn.execute(select(t.sms_part.c.message_id,
                                                         t.sms_part.c.part).where(
                            t.sms_part.c.message_id.in_(chunk),
                            t.sms_part.c.status.in_(["submitted", "delivered"]))):
                        done.setdefault(mid, set()).add(part)
        return [Envelope(r.id, _outbound(r), r.attempts + 1,
                         answer_url(r.id) if answer_url and r.expected_answers is not None
                         and r.channel == Channel.EMAIL else None,
                         frozenset(done.get(r.id, ()))) for r in take]

    def _any_due(self, channel: Channel, now: int) -> bool:
        """Whether a message of ``channel`` is due, read without a transaction.

        SQLite has one writer at a time: an idle dispatcher polling several times a
        second must not take the write lock from the store's writers just to find
        nothing. A message queued right after this look waits for the next poll.
        """
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="")
            return conn.execute(select(t.message.c.id).where(
                t.message.c.status == Status.QUEUED, t.message.c.channel == str(channel),
                t.message.c.next_attempt_ms <= now).limit(1)).first() is not None

    # --- recording -------------------------------------------------------------
    def record(self, results: Sequence[tuple[Envelope, Receipt]]) -> None:
        """Write what transports said about claimed messages, in one transaction."""
        if not results:
            return
        now = self.clock()
        with write_transaction(self.engine) as conn:
            # The transport's order is not the lock order: lock the whole batch first
            # (a reply or a receipt may be moving some of these messages right now).
            current = lock_messages(conn, [env.message_id for env, _r in results],
                                    t.message.c.status, t.message.c.attempts,
                                    t.message.c.recipient, t.message.c.parts)
            part_rows: list[dict[str, Any]] = []
            changes: list[tuple[str, Status, str | None]] = []
            retries: list[dict[str, Any]] = []
            outages: list[dict[str, Any]] = []
            refs: list[dict[str, Any]] = []
            answers: list[tuple[Envelope, Receipt]] = []
            for env, receipt in results:
                row = current.get(env.message_id)
                if row is None or row.status != Status.SENDING or row.attempts != env.attempt:
                    continue  # our lease passed and the message was taken back
                status = receipt.status
                if receipt.detail == CALL_CONNECTED:
                    changes.append((env.message_id, Status.DELIVERED, "appel décroché"))
                if receipt.parts:
                    status = self._sms_outcome(env, receipt, row, part_rows, now)
                if receipt.provider_ref:
                    refs.append({"b_id": env.message_id, "b_ref": receipt.provider_ref[:200]})
                if status is Status.QUEUED and receipt.peer_down:
                    outages.append({"b_id": env.message_id, "b_next": now + int(
                        self.settings.retry_base_s * 1000),
                                    "b_err": (receipt.error or "")[:300] or None})
                elif status is Status.QUEUED:
                    if row.attempts >= self.settings.max_attempts:
                        changes.append((env.message_id, Status.FAILED,
                                        f"gave up after {row.attempts} tries: {receipt.error}"))
                    else:
                        delay = receipt.retry_after_s
                        if delay is None:
                            delay = min(self.settings.retry_max_s,
                                        self.settings.retry_base_s * 2 ** (row.attempts - 1))
                        retries.append({"b_id": env.message_id, "b_next": now + int(delay * 1000),
                                        "b_err": (receipt.error or "")[:300] or None})
                elif status is Status.SENDING:
                    pass  # parts in doubt: settle_in_doubt decides
                elif status is Status.ANSWERED:
                    answers.append((env, receipt))  # store_answer moves it, once
                else:
                    why = receipt.error or next((p.error for p in receipt.parts if p.error),
                                                None)
                    changes.append((env.message_id, status, why or receipt.detail))
            if part_rows:
                insert_many(conn, t.sms_part, part_rows)
            if refs:
                conn.execute(update(t.message).where(t.message.c.id == bindparam("b_id"))
                             .values(provider_ref=bindparam("b_ref")), refs)
            if retries:
                conn.execute(update(t.message).where(t.message.c.id == bindparam("b_id"))
                             .values(status=Status.QUEUED, next_attempt_ms=bindparam("b_next"),
                                     error=bindparam("b_err"), lease_ms=None, worker=None,
                                     updated_ms=now), retries)
            if outages:  # back to the queue without spending a try
                conn.execute(update(t.message).where(t.message.c.id == bindparam("b_id"))
                             .values(status=Status.QUEUED, next_attempt_ms=bindparam("b_next"),
                                     error=bindparam("b_err"), lease_ms=None, worker=None,
                                     attempts=t.message.c.attempts - 1, updated_ms=now),
                             outages)
            doubt = [env.message_id for env, r in results if r.parts and any(
                p.outcome == "in_doubt" for p in r.parts)]
            if doubt:
                conn.execute(update(t.message).where(t.message.c.id.in_(doubt))
                             .values(lease_ms=now, worker=None))
            self._set_status(conn, changes, {k: v.status for k, v in current.items()}, now)
            for env, receipt in answers:
                from hygie.channels.inbox import store_answer

                store_answer(conn, env.message_id, env.message.owner,
                             Channel(env.message.channel), env.message.recipient,
                             receipt.digits or "", env.message.expected_answers,
                             f"dtmf:{env.message_id}", now)

    def _sms_outcome(self, env: Envelope, receipt: Receipt, row: Any,
                     part_rows: list[dict[str, Any]], now: int) -> Status:
        """Part rows for one SMS try, and the message status they give."""
        outcomes = {p.part: p for p in receipt.parts}
        for p in receipt.parts:
            if p.outcome in ("accepted", "rejected", "in_doubt"):
                part_rows.append({
                    "message_id": env.message_id, "part": p.part,
                    "status": {"accepted": "submitted", "rejected": "failed",
                               "in_doubt": "in_doubt"}[p.outcome],
                    "smsc_id": p.smsc_id, "user_ref": p.user_ref, "recipient": row.recipient,
                    "sent_ms": now, "error": (p.error or "")[:300] or None})
        if any(p.outcome == "rejected" for p in receipt.parts):
            return Status.FAILED
        if any(p.outcome == "in_doubt" for p in receipt.parts):
            return Status.SENDING
        if any(p.outcome == "retry" for p in receipt.parts):
            return Status.QUEUED
        done = set(env.done_parts) | {n for n, p in outcomes.items() if p.outcome == "accepted"}
        return Status.SUBMITTED if len(done) >= row.parts else Status.QUEUED

    def _set_status(self, conn: Connection, changes: Sequence[tuple[str, Status, str | None]],
                    current: dict[str, str], now: int) -> list[str]:
        """Move messages forward and write their timeline; return the ids moved."""
        moved, events = [], []
        final: dict[str, tuple[str, str | None]] = {}
        for mid, status, detail in changes:
            old = current.get(mid)
            if old is None or status not in _FORWARD.get(old, set()):
                continue
            current[mid] = status
            moved.append(mid)
            error = ((detail or "")[:300] or None) if status is Status.FAILED else None
            final[mid] = (str(status), error)
            events.append({"message_id": mid, "status": str(status), "at_ms": now,
                           "detail": (detail or "")[:300] or None})
        # One UPDATE per (status, error): a batch mostly moves together.
        groups: dict[tuple[str, str | None], list[str]] = {}
        for mid, key in final.items():
            groups.setdefault(key, []).append(mid)
        for (status, error), ids in groups.items():
            for chunk in _chunks(ids, 500):
                conn.execute(update(t.message).where(t.message.c.id.in_(chunk))
                             .values(status=status, error=error, lease_ms=None, worker=None,
                                     updated_ms=now))
        if events:
            insert_many(conn, t.event, events)
        return moved

    def set_status(self, conn: Connection, changes: Sequence[tuple[str, Status, str | None]],
                   now: int | None = None) -> list[str]:
        """Move messages forward (used by receipts and answers); return those moved.

        The caller has locked these messages already (``lock_messages``); locking them
        again here costs nothing and reads their status as it is now.
        """
        current = {mid: row.status for mid, row in lock_messages(
            conn, [c[0] for c in changes], t.message.c.status).items()}
        return self._set_status(conn, changes, current, now or self.clock())

    # --- delivery receipts -----------------------------------------------------
def _outbound(r: Any) -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=r.idempotency_key, owner=r.owner, channel=Channel(r.channel),
        recipient=r.recipient, text=r.body, subject=r.subject, html=r.html,
        expected_answers=tuple(r.expected_answers) if r.expected_answers is not None else None,
        about=r.about, recipient_ref=r.recipient_ref)


def _record(r: Any, events: Iterable[Any]) -> MessageRecord:
    return MessageRecord(
        id=r.id, idempotency_key=r.idempotency_key, owner=r.owner, channel=Channel(r.channel),
        recipient=r.recipient, text=r.body, status=Status(r.status), attempts=r.attempts,
        created_ms=r.created_ms, updated_ms=r.updated_ms, subject=r.subject,
        expected_answers=tuple(r.expected_answers) if r.expected_answers is not None else None,
        answer=r.answer, error=r.error, provider_ref=r.provider_ref, parts=r.parts,
        about=r.about, recipient_ref=r.recipient_ref,
        timeline=tuple(Event(e.status, e.at_ms, e.detail) for e in events))
