"""The receipt check: what the gateway reads of a message before committing it.

At receipt only the MSH segment is read; the full parse (``pcd01.py``, with the ``hl7``
library) runs in the mapper, after the raw message is committed. This is hand-written
for two reasons. MSH-18 names the character set the rest of the message must be
decoded with, so the header has to be read from the bytes before any library can
decode the message. And the full parse of a 10-OBX message costs about 1 ms with the
library, a fifth of what acknowledging 5,000 messages a second on two cores allows
(bench/devices_mllp.py prints that ceiling); splitting one segment costs microseconds.

What is checked here is what HL7 v2 answers with AR/CR (message type, event, version,
processing id, acknowledgment types, character set, control id): the header. Content
errors (PID, OBR, OBX) are found by the mapper and answered AE in the application
acknowledgment (HL7 v2.x section 2.9.3, enhanced mode).
"""

from __future__ import annotations

from hygie.devices.charsets import REFUSED, codec_for
from hygie.devices.errors import (
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_PROCESSING_ID,
    UNSUPPORTED_VERSION_ID,
    MessageRejected,
)
from hygie.devices.model import ACK_TYPES, Header

#: Versions whose ORU^R01 carries what PCD-01 needs (PCD-01 itself is on 2.6).
SUPPORTED_VERSIONS = frozenset(
    {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.9"}
)
_PROCESSING_IDS = frozenset({"P", "D", "T"})


def _field(fields: list[str], n: int) -> str:
    """MSH-n from the list split on the field separator (MSH-1 is the separator)."""
    return fields[n - 1] if len(fields) >= n else ""


def _header(fields: list[str], sep: str, codec: str, charset: str) -> Header:
    f = fields + [""] * (16 - len(fields))
    return Header(
        sep, f[1], f[2], f[3], f[4], f[5], f[8], f[9], f[10], f[11], f[14], f[15], charset, codec
    )


def _reject(
    text: str, field: int, code: int, header: Header | None, component: int = 0
) -> MessageRejected:
    exc = MessageRejected(
        text, segment="MSH", field=field, code=code, reject=True, component=component
    )
    exc.header = header  # type: ignore[attr-defined]
    return exc


def read_header(frame: bytes, default_charset: str = "ASCII") -> tuple[Header, str]:
    """Read and check the MSH segment of ``frame``; return it with the decoded message.

    Raises ``MessageRejected`` (``reject=True``) naming the faulty MSH field; its
    ``header`` attribute holds what could be read, so that the NAK can echo MSH-10.
    """
    if len(frame) < 8 or frame[:3] != b"MSH":
        raise _reject(
            "the message does not start with an MSH segment", 0, REQUIRED_FIELD_MISSING, None
        )
    sep_byte = frame[3:4]
    sep = sep_byte.decode("latin-1")
    end = frame.find(b"\r")
    if end < 0:
        end = frame.find(b"\n")
    line = frame[:end] if end >= 0 else frame
    raw_fields = line.split(sep_byte)
    encoding = raw_fields[1].decode("latin-1")
    rep_sep = encoding[1] if len(encoding) > 1 else "~"
    charset_field = raw_fields[17].decode("latin-1") if len(raw_fields) > 17 else ""
    charset_field = charset_field.split(rep_sep, 1)[0].strip()
    codec = codec_for(charset_field, default_charset)
    if len(encoding) < 4 or sep.isalnum() or sep in encoding or codec is None:
        partial = _header(
            [f.decode("latin-1") for f in raw_fields], sep, codec or "ascii", charset_field
        )
        if codec is None:
            why = REFUSED.get(charset_field.upper(), "not in HL7 table 0211")
            raise _reject(
                f"character set {charset_field!r} is not supported ({why})",
                18,
                TABLE_VALUE_NOT_FOUND,
                partial,
            )
        raise _reject(
            "MSH-2 must hold the four encoding characters", 2, TABLE_VALUE_NOT_FOUND, partial
        )
    try:
        text = frame.decode(codec)
    except UnicodeDecodeError as exc:
        partial = _header([f.decode("latin-1") for f in raw_fields], sep, codec, charset_field)
        named = charset_field or f"{default_charset} (MSH-18 empty)"
        raise _reject(
            f"the message is not valid {named}: byte {exc.start} "
            f"(0x{frame[exc.start]:02x}) cannot be decoded",
            18,
            TABLE_VALUE_NOT_FOUND,
            partial,
        ) from exc
    text_end = text.find("\r")
    if text_end < 0:
        text_end = text.find("\n")
    header = _header(
        (text[:text_end] if text_end >= 0 else text).split(sep), sep, codec, charset_field
    )
    comp = encoding[0]
    control_id = header.control_id
    if not control_id:
        raise _reject("MSH-10 (message control id) is empty", 10, REQUIRED_FIELD_MISSING, header)
    if len(control_id) > 199:
        raise _reject("MSH-10 is longer than 199 characters", 10, TABLE_VALUE_NOT_FOUND, header)
    type_parts = header.message_type.split(comp)
    if type_parts[0] != "ORU":
        raise _reject(
            f"message type {type_parts[0]!r} is not supported (only ORU)",
            9,
            UNSUPPORTED_MESSAGE_TYPE,
            header,
            component=1,
        )
    if len(type_parts) < 2 or type_parts[1] != "R01":
        event = type_parts[1] if len(type_parts) > 1 else ""
        raise _reject(
            f"event {event!r} is not supported (only R01)",
            9,
            UNSUPPORTED_EVENT_CODE,
            header,
            component=2,
        )
    if header.processing_id.split(comp)[0] not in _PROCESSING_IDS:
        raise _reject(
            f"processing id {header.processing_id!r} is not P, D or T",
            11,
            UNSUPPORTED_PROCESSING_ID,
            header,
        )
    if header.version.split(comp)[0] not in SUPPORTED_VERSIONS:
        raise _reject(
            f"version {header.version!r} is not supported (2.3 to 2.9)",
            12,
            UNSUPPORTED_VERSION_ID,
            header,
        )
    for number, value in ((15, header.accept_ack), (16, header.application_ack)):
        if value and value not in ACK_TYPES:
            raise _reject(
                f"MSH-{number} {value!r} is not AL, NE, ER or SU",
                number,
                TABLE_VALUE_NOT_FOUND,
                header,
            )
    return header, text
