"""The receipt check (MSH) and the acknowledgments it leads to, without a network."""

from __future__ import annotations

import pytest

from hygie.devices.acks import build_ack
from hygie.devices.errors import MessageRejected
from hygie.devices.receipt import read_header
from tests.devices.conftest import Ack
from tests.devices.corpus import monitor, msh, replace_segment


def test_header_fields_and_modes() -> None:
    header, text = read_header(monitor("C1").encode())
    assert header.control_id == "C1"
    assert header.sender == "ICU-GW^0012A1FFFE000A01^EUI-64|ch-jeanne-sorel"
    assert header.codec == "utf-8"
    assert header.enhanced and not header.wants_commit_ack(True)
    assert header.wants_application_ack(True) and header.wants_application_ack(False)
    assert text.startswith("MSH|")
    original, _ = read_header(monitor("C2", accept="", app="").encode())
    assert not original.enhanced and original.wants_application_ack(True)
    commit_only, _ = read_header(monitor("C3", accept="AL", app="NE").encode())
    assert commit_only.wants_commit_ack(True) and not commit_only.wants_application_ack(False)
    errors_only, _ = read_header(monitor("C4", accept="AL", app="ER").encode())
    assert errors_only.wants_application_ack(False)
    assert not errors_only.wants_application_ack(True)


@pytest.mark.parametrize(
    ("header", "field", "code"),
    [
        (msh("X1", kind="ADT^A01^ADT_A01"), 9, "200"),
        (msh("X2", kind="ORU^R30"), 9, "201"),
        (msh("X3", version="2.1"), 12, "203"),
        (msh(""), 10, "101"),
        (msh("X5", accept="MAYBE"), 15, "103"),
        (msh("X6", charset="UNICODE UTF-16"), 18, "103"),
        (msh("X7", charset="EBCDIC"), 18, "103"),
    ],
)
def test_header_rejections_name_the_msh_field(header: str, field: int, code: str) -> None:
    message = replace_segment(monitor("X"), "MSH", header)
    with pytest.raises(MessageRejected) as caught:
        read_header(message.encode())
    exc = caught.value
    assert (exc.segment, exc.field, exc.reject) == ("MSH", field, True)
    ack = Ack.parse(build_ack(exc.header, "AR", exc))  # type: ignore[attr-defined]
    assert ack.code == "AR"
    err = ack.err
    assert err is not None
    if field == 12:  # a version before 2.5 gets ERR-1 (ELD), as that version defines it
        assert err[1].split("^")[:3] == ["MSH", "1", "12"]
        assert err[1].split("^")[3].split("&")[0] == code
        return
    assert err[2].split("^")[:3] == ["MSH", "1", str(field)]
    assert err[3].split("^")[0] == code
    assert err[4] == "E"


def test_msa2_echoes_msh10_and_ack_keeps_charset() -> None:
    message = monitor("LAT-1", charset="8859/1", family="HÉLÈNE").encode("latin-1")
    header, text = read_header(message)
    assert "HÉLÈNE" in text
    raw = build_ack(
        header,
        "AE",
        MessageRejected("valeur erronée", segment="OBX", sequence=3, field=5, code=102),
    )
    ack = Ack.parse(raw, "latin-1")
    assert ack.control_id == "LAT-1"
    assert ack.segment("MSH")[17] == "8859/1"
    assert ack.err is not None and ack.err[8] == "valeur erronée"
    assert ack.err[2] == "OBX^3^5^1"


def test_undecodable_bytes_are_refused_not_guessed() -> None:
    # MSH-18 empty means ASCII (HL7 v2 2.15.18): a Latin-1 byte is an error at MSH-18
    bad = monitor("NA-1", charset="", family="H\xc9L\xc8NE").encode("latin-1")
    with pytest.raises(MessageRejected) as caught:
        read_header(bad)
    assert caught.value.field == 18
    assert "cannot be decoded" in caught.value.text
    utf8_bad = monitor("NA-2").encode() + b"\xff\xfe"
    with pytest.raises(MessageRejected):
        read_header(utf8_bad)


def test_not_hl7_at_all() -> None:
    with pytest.raises(MessageRejected) as caught:
        read_header(b"GET / HTTP/1.1\r\n\r\n")
    assert caught.value.header is None  # type: ignore[attr-defined]
    ack = Ack.parse(build_ack(None, "AR", caught.value))
    assert ack.code == "AR" and ack.control_id == ""


def test_error_text_with_delimiters_is_escaped() -> None:
    header, _ = read_header(monitor("ESC").encode())
    raw = build_ack(header, "AE", MessageRejected("a|b^c&d~e\\f", segment="PID", field=3))
    ack = Ack.parse(raw)
    assert ack.err is not None
    assert ack.err[8] == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"


def test_older_versions_get_err1() -> None:
    header, _ = read_header(
        replace_segment(monitor("OLD"), "MSH", msh("OLD", version="2.3")).encode()
    )
    ack = Ack.parse(build_ack(header, "AE", MessageRejected("x", segment="PID", field=3, code=101)))
    assert ack.err is not None and ack.err[1].startswith("PID^1^3^101&")
