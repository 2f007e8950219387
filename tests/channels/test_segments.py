"""SMS encoding choice and part sizes (3GPP TS 23.038 / 23.040)."""

from __future__ import annotations

import pytest

from hygie.channels import count_parts
from hygie.channels.errors import InvalidMessage
from hygie.channels.segments import (
    DATA_CODING_GSM7,
    DATA_CODING_UCS2,
    ESM_UDHI,
    decode_user_data,
    encode_gsm7,
    plan_sms,
)


@pytest.mark.parametrize(("text", "encoding", "parts"), [
    ("a" * 160, "gsm7", 1),
    ("a" * 161, "gsm7", 2),
    ("a" * 306, "gsm7", 2),
    ("a" * 307, "gsm7", 3),
    ("é" * 160, "gsm7", 1),          # é è ù à are in GSM 03.38
    ("Rendez-vous à 14h, répondez OUI ou NON", "gsm7", 1),
    ("ç" * 70, "ucs2", 1),           # ç is not: the whole text goes as UCS-2
    ("ç" * 71, "ucs2", 2),
    ("ç" * 134, "ucs2", 2),
    ("ç" * 135, "ucs2", 3),
    ("Êtes-vous disponible ? " * 3, "ucs2", 1),
    ("€" * 80, "gsm7", 1),           # € takes two septets (escape + 0x65)
    ("€" * 81, "gsm7", 2),
])
def test_encoding_and_part_counts(text: str, encoding: str, parts: int) -> None:
    plan = plan_sms(text, concat_ref=7)
    assert plan.encoding == encoding
    assert len(plan.parts) == parts == count_parts(text)
    assert plan.data_coding == (DATA_CODING_GSM7 if encoding == "gsm7" else DATA_CODING_UCS2)


def test_concatenated_parts_carry_a_udh_and_sizes() -> None:
    plan = plan_sms("b" * 400, concat_ref=0x2A)
    assert plan.esm_class == ESM_UDHI
    assert [len(p) for p in plan.parts] == [6 + 153, 6 + 153, 6 + 94]
    for i, part in enumerate(plan.parts, start=1):
        assert part[:6] == bytes((5, 0, 3, 0x2A, 3, i))
    ucs = plan_sms("ç" * 140, concat_ref=1)
    assert [len(p) for p in ucs.parts] == [6 + 134, 6 + 134, 6 + 12]


def test_an_escape_sequence_is_never_cut() -> None:
    text = "a" * 152 + "€" + "b" * 10
    plan = plan_sms(text)
    first, second = (decode_user_data(p, 0, True) for p in plan.parts)
    assert first.text == "a" * 152 and second.text == "€" + "b" * 10
    assert "".join(decode_user_data(p, 0, True).text for p in plan.parts) == text


def test_a_surrogate_pair_is_never_cut() -> None:
    text = "ç" * 66 + "😀" + "d" * 10  # the pair would straddle units 67 and 68
    parts = plan_sms(text).parts
    assert "".join(decode_user_data(p, 8, True).text for p in parts) == text


def test_limits_and_empty_text() -> None:
    with pytest.raises(InvalidMessage):
        plan_sms("")
    with pytest.raises(InvalidMessage):
        plan_sms("x" * 2000, max_parts=10)


def test_decode_16_bit_reference_header() -> None:
    payload = bytes((6, 8, 4, 0x12, 0x34, 2, 1)) + "salut".encode("gsm03.38")
    data = decode_user_data(payload, 0, True)
    assert (data.text, data.ref, data.total, data.seq) == ("salut", 0x1234, 2, 1)


def test_fast_gsm7_encoding_agrees_with_the_codec_on_every_bmp_character() -> None:
    def codec(text: str) -> bytes | None:
        try:
            return text.encode("gsm03.38")
        except UnicodeError:
            return None

    for code in range(0x10000):
        if 0xD800 <= code < 0xE000:
            continue
        char = chr(code)
        assert encode_gsm7(char) == codec(char), hex(code)
    text = "Température ? 37,5 € {ok} [é] ~ | ^ \\ ç"
    assert encode_gsm7(text) is None
    assert encode_gsm7(text[:-2]) == codec(text[:-2])
