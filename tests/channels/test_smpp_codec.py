"""The one PDU encoded by hand (submit_sm) is byte for byte smpplib's."""

from __future__ import annotations

import pytest
from smpplib.smpp import make_pdu, parse_pdu

from hygie.channels.segments import plan_sms
from hygie.channels.smpp import _Sequences, encode_deliver_sm_resp, encode_submit_sm


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
