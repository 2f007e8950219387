"""Delivery receipts: TLVs and the vendors' variants of the Appendix B text."""

from __future__ import annotations

import pytest

from hygie.channels.model import Status
from hygie.channels.receipts import format_receipt_text, parse_receipt_text, read_receipt


def test_appendix_b_text() -> None:
    text = format_receipt_text("a1b2", "DELIVRD", "2611241010", "2611241011", "Bonjour")
    r = read_receipt(text.encode())
    assert r is not None
    assert (r.message_id, r.state, r.status, r.error) == ("a1b2", "DELIVRD", Status.DELIVERED,
                                                           None)


@pytest.mark.parametrize(("text", "state", "status", "error"), [
    ("id:123 sub:001 dlvrd:000 submit date:2611241010 done date:2611241011 stat:UNDELIV "
     "err:034 text:x", "UNDELIV", Status.FAILED, "034"),
    ("ID:123 SUB:001 DLVRD:001 SUBMIT DATE:261124101000 DONE DATE:261124101100 STAT:DELIVRD "
     "ERR:000 TEXT:", "DELIVRD", Status.DELIVERED, None),
    ("id:123 submit_date:2611241010 done_date:2611241011 stat:EXPIRED err:0",
     "EXPIRED", Status.FAILED, None),
    ("id:123 stat:ENROUTE", "ENROUTE", None, None),
    ("id:123 stat:REJECTD err:0x0b", "REJECTD", Status.FAILED, "0x0b"),
    ("id:123 stat:delivered", "DELIVRD", Status.DELIVERED, None),
])
def test_vendor_text_variants(text: str, state: str, status: Status | None,
                              error: str | None) -> None:
    r = read_receipt(text)
    assert r is not None
    assert (r.message_id, r.state, r.status, r.error) == ("123", state, status, error)


def test_tlvs_win_over_the_text() -> None:
    r = read_receipt(b"id:999 stat:UNDELIV", receipted_message_id="abc", message_state=2,
                     user_message_reference=77)
    assert r is not None
    assert (r.message_id, r.state, r.user_ref) == ("abc", "DELIVRD", 77)
    r = read_receipt(b"", receipted_message_id="abc", message_state=5,
                     network_error_code=b"\x03\x00\x22")
    assert r is not None and r.status is Status.FAILED and r.error == "030022"


def test_decimal_and_hex_spellings_of_the_id() -> None:
    r = read_receipt("id:4026531840 stat:DELIVRD")
    assert r is not None and "f0000000" in r.id_candidates()
    r = read_receipt("id:0000ff stat:DELIVRD")
    assert r is not None and {"0000ff", "255", "ff"} <= set(r.id_candidates())


def test_no_id_means_no_receipt_and_text_keeps_spaces() -> None:
    assert read_receipt("stat:DELIVRD") is None
    assert parse_receipt_text("id:1 text:deux mots")["text"] == "deux mots"
