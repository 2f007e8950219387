"""The PDUs of the hot path, read and written from their layout, agree with smpplib."""

from __future__ import annotations

import pytest
from smpplib.smpp import make_pdu, parse_pdu

from hygie.channels.pdus import encode_deliver_sm_resp, encode_submit_sm
from hygie.channels.segments import plan_sms
from hygie.channels.smpp import _Sequences


@pytest.mark.parametrize(("text", "src"), [
    ("Bonjour", (5, 0, "HYGIE")),
    ("Êtes-vous disponible ?", (1, 1, "33612000000")),
    ("x" * 400, (5, 0, "CHU-EXEMPLE")),
])
def test_submit_sm_matches_smpplib(text: str, src: tuple[int, int, str]) -> None:
    seq = _Sequences()
    plan = plan_sms(text, concat_ref=9)
    for n, payload in enumerate(plan.parts, start=1):
        pdu = make_pdu("submit_sm", client=seq, source_addr_ton=src[0], source_addr_npi=src[1],
                       source_addr=src[2], dest_addr_ton=1, dest_addr_npi=1,
                       destination_addr="33612345678", esm_class=plan.esm_class,
                       data_coding=plan.data_coding, short_message=payload,
                       registered_delivery=1, user_message_reference=1000 + n)
        mine = encode_submit_sm(pdu.sequence, src_ton=src[0], src_npi=src[1], src=src[2],
                                ton=1, npi=1, dest="33612345678", esm=plan.esm_class,
                                coding=plan.data_coding, payload=payload, user_ref=1000 + n)
        assert mine == pdu.generate()
        back = parse_pdu(mine, client=seq, allow_unknown_opt_params=True)
        assert back.short_message == payload and back.user_message_reference == 1000 + n


@pytest.mark.parametrize("status", [0, 0x64])
def test_deliver_sm_resp_matches_smpplib(status: int) -> None:
    seq = _Sequences()
    pdu = make_pdu("deliver_sm_resp", client=seq, status=status)
    assert encode_deliver_sm_resp(pdu.sequence, status) == pdu.generate()


def _deliver(seq: _Sequences, **fields: object) -> bytes:
    base: dict[str, object] = {"source_addr_ton": 1, "source_addr_npi": 1,
                               "source_addr": "33612345678", "dest_addr_ton": 5,
                               "destination_addr": "HYGIE"}
    return make_pdu("deliver_sm", client=seq, **{**base, **fields}).generate()


@pytest.mark.parametrize("fields", [
    {"esm_class": 4, "short_message": b"id:1a stat:DELIVRD", "receipted_message_id": "1a",
     "message_state": 2, "user_message_reference": 77},
    {"esm_class": 4, "short_message": b"id:2b stat:UNDELIV err:034",
     "receipted_message_id": "2b", "message_state": 5, "network_error_code": b"\x03\x00\x22"},
    {"esm_class": 0, "short_message": "oui".encode("gsm03.38")},
    {"esm_class": 0x40, "data_coding": 8,
     "short_message": bytes((5, 0, 3, 1, 2, 1)) + "ça va".encode("utf-16-be")},
    {"esm_class": 0, "short_message": b"", "message_payload": b"a long reply " * 10},
])
def test_deliver_sm_decoding_matches_smpplib(fields: dict[str, object]) -> None:
    from hygie.channels.pdus import decode_deliver_sm, incoming_from_smpplib

    seq = _Sequences()
    raw = _deliver(seq, **fields)
    mine = decode_deliver_sm(raw)
    theirs = incoming_from_smpplib(parse_pdu(raw, client=seq, allow_unknown_opt_params=True))
    assert mine == theirs


def test_malformed_deliver_sm_is_left_to_smpplib() -> None:
    from hygie.channels.pdus import decode_deliver_sm

    raw = _deliver(_Sequences(), esm_class=0, short_message=b"hello")
    assert decode_deliver_sm(raw[:-2]) is None
    assert decode_deliver_sm(raw[:20]) is None
