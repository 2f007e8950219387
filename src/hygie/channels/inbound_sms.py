"""Storing what an SMSC delivers: receipts and replies, committed before the ack.

Replies longer than one SMS come in parts with a user data header; a part is
committed in ``channels_mo_part`` (so it is acknowledged at once) and the reply is
routed when its last sibling has arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select

from hygie.channels import tables as t
from hygie.channels.addresses import normalize_phone
from hygie.channels.errors import InvalidAddress
from hygie.channels.receipts import read_receipt
from hygie.channels.segments import ESM_UDHI, decode_user_data
from hygie.channels.transactions import now_ms
from hygie.platform import insert_many, write_transaction

if TYPE_CHECKING:
    from hygie.channels.inbox import Inbox
    from hygie.channels.smpp import IncomingPdu


def sender_address(raw: str, region: str) -> str:
    """E.164 form of a sender, or what was given when it is not a number."""
    if raw.isdigit() and 10 <= len(raw) <= 15 and raw[0] != "0":
        return "+" + raw  # international form already (the common case, no parsing)
    try:
        return normalize_phone(raw, region)
    except InvalidAddress:
        return raw.strip()[:320] or "unknown"


def store_deliveries(engine: Engine, inbox: Inbox, items: Sequence[IncomingPdu],
                     region: str = "FR") -> None:
    """Commit a batch of deliver_sm: receipts as rows, replies through the inbox."""
    now = now_ms()
    receipts: list[dict[str, Any]] = []
    replies: list[tuple[str, str]] = []
    parts: list[tuple[str, Any]] = []
    for item in items:
        sender = sender_address(item.source_addr, region)
        if item.is_receipt:
            r = read_receipt(item.short_message, receipted_message_id=item.receipted_message_id,
                             message_state=item.message_state,
                             network_error_code=item.network_error_code,
                             user_message_reference=item.user_message_reference)
            if r is not None:
                receipts.append({"smsc_id": r.message_id[:80], "state": r.state[:12],
                                 "error": (r.error or "")[:80] or None, "user_ref": r.user_ref,
                                 "recipient": sender, "received_ms": now, "applied": False})
            continue
        data = decode_user_data(item.short_message, item.data_coding,
                                bool(item.esm_class & ESM_UDHI))
        if data.ref is not None and data.total > 1:
            parts.append((sender, data))
        else:
            replies.append((sender, data.text))
    with write_transaction(engine) as conn:
        if receipts:
            insert_many(conn, t.receipt, receipts)
        for sender, data in parts:
            key = (t.mo_part.c.sender == sender, t.mo_part.c.ref == data.ref)
            conn.execute(delete(t.mo_part).where(*key, t.mo_part.c.seq == data.seq))
            conn.execute(insert(t.mo_part).values(sender=sender, ref=data.ref, seq=data.seq,
                                                  total=data.total, text=data.text,
                                                  received_ms=now))
            got = conn.execute(select(t.mo_part.c.seq, t.mo_part.c.text).where(*key)
                               .order_by(t.mo_part.c.seq)).all()
            if len(got) >= data.total:
                replies.append((sender, "".join(text for _seq, text in got)))
                conn.execute(delete(t.mo_part).where(*key))
        if replies:
            inbox.store_sms(conn, replies, now)
