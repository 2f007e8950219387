"""SMPP v3.4 PDUs on the hot path, encoded and decoded from their fixed layout.

submit_sm goes out for every SMS part, and deliver_sm (with its deliver_sm_resp) comes
in for every receipt and every reply: together they are nearly all the traffic of a
session. smpplib's generic codec walks every optional parameter of each command and
costs more than the rest of the send path, so these four are read and written here
from the layouts of SMPP v3.4 §4.4 and §4.6; every other PDU (bind, enquire_link,
unbind, generic_nack) is smpplib's. ``tests/channels/test_smpp_codec.py`` checks each of
them byte for byte against smpplib.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

#: esm_class message type of an SMSC delivery receipt (SMPP v3.4 §5.2.12).
ESM_DELIVERY_RECEIPT = 0x04
HEADER = struct.Struct(">IIII")
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005


def encode_submit_sm(sequence: int, *, src_ton: int, src_npi: int, src: str, ton: int,
                     npi: int, dest: str, esm: int, coding: int, payload: bytes,
                     user_ref: int) -> bytes:
    """One submit_sm PDU (SMPP v3.4 §4.4.1) with ``registered_delivery`` 1 and the
    ``user_message_reference`` TLV (§5.3.2.17), byte for byte what smpplib writes.

    """
    body = b"".join((
        b"\0",  # service_type
        bytes((src_ton, src_npi)), src.encode("ascii"), b"\0",
        bytes((ton, npi)), dest.encode("ascii"), b"\0",
        bytes((esm, 0, 0)),  # esm_class, protocol_id, priority_flag
        b"\0\0",  # schedule_delivery_time, validity_period
        bytes((1, 0, coding, 0, len(payload))), payload,
        b"\x02\x04\x00\x02", user_ref.to_bytes(2, "big"),
    ))
    return HEADER.pack(16 + len(body), 0x00000004, 0, sequence) + body


def encode_deliver_sm_resp(sequence: int, status: int) -> bytes:
    """A deliver_sm_resp (§4.6.2): the header and an empty message_id, as smpplib
    writes it."""
    return HEADER.pack(17, 0x80000005, status, sequence) + b"\0"


@dataclass(frozen=True)
class IncomingPdu:
    """A deliver_sm as the sink sees it (decoded fields only)."""

    source_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None
    message_state: int | None
    network_error_code: bytes | None
    user_message_reference: int | None

    @property
    def is_receipt(self) -> bool:
        return self.esm_class & 0x3C == ESM_DELIVERY_RECEIPT


def incoming_from_smpplib(p: Any) -> IncomingPdu:
    payload = p.short_message or getattr(p, "message_payload", None) or b""
    return IncomingPdu(
        source_addr=text_of(p.source_addr), esm_class=int(p.esm_class or 0),
        data_coding=int(p.data_coding or 0), short_message=payload,
        receipted_message_id=text_of(getattr(p, "receipted_message_id", None)) or None,
        message_state=getattr(p, "message_state", None),
        network_error_code=getattr(p, "network_error_code", None),
        user_message_reference=getattr(p, "user_message_reference", None))


def _cstring(raw: bytes, pos: int) -> tuple[bytes, int]:
    end = raw.index(b"\0", pos)
    return raw[pos:end], end + 1


def decode_deliver_sm(raw: bytes) -> IncomingPdu | None:
    """The fields of a deliver_sm (§4.6.1) the sink needs, read from its fixed layout
    and its TLVs (receipted_message_id, message_state, network_error_code,
    user_message_reference, message_payload); None when the PDU is malformed, and
    smpplib then decodes it."""
    try:
        pos = 16
        _service, pos = _cstring(raw, pos)
        pos += 2
        source, pos = _cstring(raw, pos)
        pos += 2
        _dest, pos = _cstring(raw, pos)
        esm_class = raw[pos]
        pos += 3
        _sched, pos = _cstring(raw, pos)
        _valid, pos = _cstring(raw, pos)
        data_coding = raw[pos + 2]
        sm_length = raw[pos + 4]
        pos += 5
        short_message = raw[pos:pos + sm_length]
        if len(short_message) != sm_length:
            return None
        pos += sm_length
        receipted = state = user_ref = None
        error: bytes | None = None
        while pos + 4 <= len(raw):
            tag = int.from_bytes(raw[pos:pos + 2], "big")
            size = int.from_bytes(raw[pos + 2:pos + 4], "big")
            value = raw[pos + 4:pos + 4 + size]
            if len(value) != size:
                return None
            pos += 4 + size
            if tag == 0x001E:
                receipted = value.split(b"\0", 1)[0].decode("latin-1")
            elif tag == 0x0427 and size == 1:
                state = value[0]
            elif tag == 0x0423:
                error = value
            elif tag == 0x0204 and size == 2:
                user_ref = int.from_bytes(value, "big")
            elif tag == 0x0424 and not short_message:
                short_message = value
        if pos != len(raw):
            return None
    except (IndexError, ValueError):
        return None
    return IncomingPdu(source.decode("latin-1"), esm_class, data_coding, short_message,
                       receipted or None, state, error, user_ref)


def text_of(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
