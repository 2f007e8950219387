"""Settling what the outbox learns after sending: receipts, and parts left in doubt.

``apply_receipts`` applies the stored delivery receipts to their parts and messages (a
message is delivered when all its parts are, failed when one failed).
``settle_in_doubt`` takes back the messages of a dispatcher that died or whose link
broke mid-send (the reasoning is in ``outbox.py``). Both are methods of the outbox,
kept here to keep each module to one idea.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, update

from hygie.channels import tables as t
from hygie.channels.model import Channel, Status
from hygie.channels.receipts import FINAL_STATES
from hygie.channels.references import user_ref
from hygie.channels.transactions import chunks as _chunks
from hygie.channels.transactions import lock_messages
from hygie.platform import write_transaction

#: A part's outcome from its receipt, executed once per part of a batch.
_PART_STATUS = (
    update(t.sms_part)
    .where(t.sms_part.c.message_id == bindparam("b_mid"), t.sms_part.c.part == bindparam("b_part"))
    .values(status=bindparam("b_status"), error=bindparam("b_err"))
)


class ReceiptSettlement:
    """Receipt and in-doubt settlement; mixed into ``Outbox``."""

    engine: Any
    settings: Any
    clock: Any

    def set_status(self, conn: Connection, changes: Sequence[tuple[str, Status, str | None]],
                   now: int | None = None) -> list[str]:
        raise NotImplementedError

    def apply_receipts(self, limit: int = 5000, since_id: int = 0) -> tuple[int, int]:
        """Apply stored delivery receipts to their parts and messages.

        Returns (receipts applied, highest receipt id looked at). Receipts whose part is
        not known yet (the receipt overtook our record of the submit_sm_resp, or the
        part is in doubt) stay pending for a later pass.
        """
        now = self.clock()
        pending_first = select(t.receipt.c.id).where(
            t.receipt.c.applied.is_(False), t.receipt.c.id > since_id).limit(1)
        with self.engine.connect() as conn:  # most passes find none: no write lock for them
            conn.execution_options(sqlite_begin="")
            if conn.execute(pending_first).first() is None:
                return 0, since_id
        with write_transaction(self.engine) as conn:
            pending = conn.execute(select(t.receipt).where(
                t.receipt.c.applied.is_(False), t.receipt.c.id > since_id)
                .order_by(t.receipt.c.id).limit(limit)).all()
            if not pending:
                return 0, since_id
            last = pending[-1].id
            from hygie.channels.receipts import DeliveryReceipt

            by_smsc: dict[str, list[Any]] = {}

            def load(ids: Sequence[str]) -> None:
                for chunk in _chunks(sorted(set(ids) - set(by_smsc)), 500):
                    for p in conn.execute(select(t.sms_part).where(
                            t.sms_part.c.smsc_id.in_(chunk))):
                        by_smsc.setdefault(p.smsc_id, []).append(p)

            load([r.smsc_id for r in pending])  # the id as the submit_sm_resp gave it
            parts: dict[int, list[Any]] = {r.id: by_smsc[r.smsc_id] for r in pending
                                           if r.smsc_id in by_smsc}
            # Vendors that spell the id otherwise in receipts (decimal for hex...).
            others = {r.id: DeliveryReceipt(r.smsc_id, r.state).id_candidates()[1:]
                      for r in pending if r.id not in parts}
            if others:
                load([c for cands in others.values() for c in cands])
                for r in pending:
                    for cand in others.get(r.id, ()):
                        if cand in by_smsc:
                            parts[r.id] = by_smsc[cand]
                            break
            applied, part_updates, touched = [], [], set()
            for r in pending:
                found = parts.get(r.id)
                if not found:
                    continue
                applied.append(r.id)
                status = FINAL_STATES.get(r.state)
                if status is None:
                    continue
                for p in found:
                    part_updates.append({"b_mid": p.message_id, "b_part": p.part,
                                         "b_status": "delivered" if status is Status.DELIVERED
                                         else "failed",
                                         "b_err": None if status is Status.DELIVERED
                                         else f"{r.state} {r.error or ''}".strip()})
                    touched.add(p.message_id)
            # Messages before their parts, in id order (transactions.py): replies to
            # these messages may be moving them in another transaction right now.
            lock_messages(conn, touched)
            if part_updates:
                # One prepared statement for all (an IN over pairs compiles anew each
                # time, which cost more than the updates themselves); key order.
                part_updates.sort(key=lambda u: (u["b_mid"], u["b_part"]))
                conn.execute(_PART_STATUS, part_updates)
            for chunk in _chunks(applied, 500):
                conn.execute(update(t.receipt).where(t.receipt.c.id.in_(chunk))
                             .values(applied=True))
            if touched:
                self._settle_messages(conn, sorted(touched), now)
        return len(applied), last

    def _settle_messages(self, conn: Connection, ids: Sequence[str], now: int) -> None:
        """A message is delivered when all its parts are, failed when one failed."""
        changes: list[tuple[str, Status, str | None]] = []
        for chunk in _chunks(list(ids), 500):
            totals = dict(conn.execute(select(t.message.c.id, t.message.c.parts)
                                       .where(t.message.c.id.in_(chunk))).all())
            states: dict[str, list[tuple[str, str | None]]] = {}
            for mid, status, err in conn.execute(
                    select(t.sms_part.c.message_id, t.sms_part.c.status, t.sms_part.c.error)
                    .where(t.sms_part.c.message_id.in_(chunk))):
                states.setdefault(mid, []).append((status, err))
            for mid, rows in states.items():
                failed = [e for s, e in rows if s == "failed"]
                if failed:
                    changes.append((mid, Status.FAILED, failed[0] or "not delivered"))
                elif sum(1 for s, _e in rows if s == "delivered") >= totals.get(mid, 1):
                    changes.append((mid, Status.DELIVERED, None))
        self.set_status(conn, changes, now)

    def settle_in_doubt(self, receipts_since_ms: int | None = None) -> int:
        """Take back messages whose worker died or whose link broke mid-send.

        Each part that may have been written is looked up among the delivery receipts
        by (recipient, user_message_reference): found, it was accepted and is not sent
        again; not found after ``in_doubt_grace_s``, it is sent again. The grace counts
        from ``receipts_since_ms`` when that is later (the SMSC keeps the receipts of a
        session that died and delivers them on the next bind: pass the time of that
        bind, or None while unbound). Returns how many messages went back to the
        queue or moved on.
        """
        now = self.clock()
        grace = int(self.settings.in_doubt_grace_s * 1000)
        receipts_from = now if receipts_since_ms is None else receipts_since_ms
        moved = 0
        expired = (t.message.c.status == Status.SENDING,
                   or_(t.message.c.lease_ms.is_(None), t.message.c.lease_ms <= now))
        with self.engine.connect() as conn:  # mostly none: no write lock to find that out
            conn.execution_options(sqlite_begin="")
            if conn.execute(select(t.message.c.id).where(*expired).limit(1)).first() is None:
                return 0
        with write_transaction(self.engine) as conn:
            stale = conn.execute(select(t.message).where(*expired)
                .limit(1000).with_for_update(skip_locked=True)).all()
            if not stale:
                return 0
            ids = [r.id for r in stale]
            known: dict[str, dict[int, Any]] = {}
            for chunk in _chunks(ids, 500):
                for p in conn.execute(select(t.sms_part).where(
                        t.sms_part.c.message_id.in_(chunk))):
                    known.setdefault(p.message_id, {})[p.part] = p
            requeue, submitted, new_parts = [], [], []
            for r in stale:
                if r.channel != Channel.SMS:
                    # A call or an e-mail whose worker died: an e-mail may have been
                    # accepted (its Message-ID lets the receiver drop a copy); a call
                    # without a recorded key press did not give its answer.
                    requeue.append(r.id)
                    continue
                parts = known.get(r.id, {})
                # Parts with no row at all were maybe written by a worker that died.
                lease_start = (r.lease_ms or now) - int(self.settings.lease_s * 1000)
                for n in range(1, r.parts + 1):
                    if n not in parts:
                        row = {"message_id": r.id, "part": n, "status": "in_doubt",
                               "smsc_id": None, "user_ref": user_ref(r.id, n),
                               "recipient": r.recipient, "sent_ms": lease_start,
                               "error": None}
                        new_parts.append(row)
                        parts[n] = _Obj(row)
                unresolved = False
                for n, p in parts.items():
                    if p.status != "in_doubt":
                        continue
                    proof = conn.execute(select(t.receipt.c.smsc_id).where(
                        t.receipt.c.recipient == r.recipient,
                        t.receipt.c.user_ref == user_ref(r.id, n),
                        t.receipt.c.received_ms >= p.sent_ms - 60_000).limit(1)).scalar()
                    if proof is not None:
                        self._resolve_part(conn, r.id, n, "submitted", proof, new_parts)
                        parts[n] = _Obj({"status": "submitted"})
                    elif now - max(p.sent_ms, receipts_from) >= grace:
                        self._resolve_part(conn, r.id, n, None, None, new_parts)
                        parts[n] = _Obj({"status": "retry"})
                    else:
                        unresolved = True
                if unresolved:
                    continue
                if all(p.status in ("submitted", "delivered") for p in parts.values()):
                    submitted.append(r.id)
                else:
                    requeue.append(r.id)
            if new_parts:
                rows = [p for p in new_parts if p.get("status") != "dropped"]
                if rows:
                    conn.execute(insert(t.sms_part), rows)
            if requeue:
                conn.execute(update(t.message).where(t.message.c.id.in_(requeue))
                             .values(status=Status.QUEUED, next_attempt_ms=now, lease_ms=None,
                                     worker=None, updated_ms=now))
                moved += len(requeue)
            if submitted:
                moved += len(self.set_status(
                    conn, [(mid, Status.SUBMITTED, "settled by a delivery receipt")
                           for mid in submitted], now))
        if submitted:
            self.apply_receipts()
        return moved

    def _resolve_part(self, conn: Connection, mid: str, part: int, status: str | None,
                      smsc_id: str | None, new_parts: list[dict[str, Any]]) -> None:
        for row in new_parts:
            if row["message_id"] == mid and row["part"] == part:
                if status is None:
                    row["status"] = "dropped"
                else:
                    row.update(status=status, smsc_id=smsc_id)
                return
        where = and_(t.sms_part.c.message_id == mid, t.sms_part.c.part == part)
        if status is None:
            conn.execute(delete(t.sms_part).where(where))
        else:
            conn.execute(update(t.sms_part).where(where).values(status=status, smsc_id=smsc_id))


class _Obj:
    """Attribute access over a dict (a part row built here, not read back)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
