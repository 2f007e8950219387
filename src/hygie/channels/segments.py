"""Splitting an SMS text into parts: encoding choice, part sizes and the UDH.

The GSM 03.38 alphabet (3GPP TS 23.038 §6.2.1) holds é, è, ù, à and É but not ç, ê, â,
î, ô or û: a French text with any of those goes as UCS-2 (data_coding 8), otherwise as
GSM-7 (data_coding 0). Limits (3GPP TS 23.040 §9.2.3.24.1): one part carries 160
septets or 70 UCS-2 units; a concatenated part spends 6 octets on its user data header
(IEI 0x00, 8-bit reference), leaving 153 septets or 67 units.

Why not ``smpplib.gsm.make_parts``: it may cut an escape sequence (``€`` is two
septets: 0x1B 0x65) across two parts, encodes ``` ` ``` wrongly, and splits UTF-16
surrogate pairs. The characters themselves come from the ``gsm0338`` codec; only the
cutting is done here. In SMPP the septets travel unpacked, one per octet.
"""

from __future__ import annotations

from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

from hygie.channels.errors import InvalidMessage

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67
#: A concatenated message has at most 255 parts (the header counts them in one octet).
MAX_PARTS = 255
#: SMPP data_coding values (SMPP v3.4 §5.2.19).
DATA_CODING_GSM7 = 0x00
DATA_CODING_UCS2 = 0x08
#: esm_class bit telling that short_message starts with a user data header (§5.2.12).
ESM_UDHI = 0x40
_ESCAPE = 0x1B


@dataclass(frozen=True)
class SmsPlan:
    """How a text travels: its encoding and each part's short_message (UDH included)."""

    encoding: str
    data_coding: int
    parts: tuple[bytes, ...]
    #: Septets (GSM-7) or 16-bit units (UCS-2) of the whole text.
    units: int

    @property
    def esm_class(self) -> int:
        return ESM_UDHI if len(self.parts) > 1 else 0


def _septet_table() -> tuple[frozenset[str], dict[int, str]]:
    """Every GSM 03.38 character and its septets (as Latin-1 characters), read off the
    codec's own decoding of each septet and escape pair, so that ``str.translate``
    does in C what the codec does one character at a time."""
    table: dict[int, str] = {}
    for code in range(0x80):
        for septets in (bytes((code,)), bytes((_ESCAPE, code))):
            try:
                char = septets.decode("gsm03.38")
            except UnicodeError:
                continue
            if len(char) != 1 or ord(char) in table:
                continue
            try:
                if char.encode("gsm03.38") == septets:
                    table[ord(char)] = septets.decode("latin-1")
            except UnicodeError:
                continue
    return frozenset(chr(c) for c in table), table


_GSM_CHARS, _SEPTETS = _septet_table()


def encode_gsm7(text: str) -> bytes | None:
    """The text as unpacked GSM-7 septets, or None when a character is not in GSM 03.38."""
    if _GSM_CHARS.issuperset(text):
        return text.translate(_SEPTETS).encode("latin-1")
    try:  # a character the table does not hold: the codec has the last word
        return text.encode("gsm03.38")
    except UnicodeError:
        return None


def _cut(units: bytes, size: int, step: int, keep_with_next: set[int] | None,
         pair_lead: bool) -> list[bytes]:
    """Cut ``units`` (of ``step`` octets each) into chunks of at most ``size`` units,
    never ending a chunk on an escape septet or a UTF-16 high surrogate."""
    chunks: list[bytes] = []
    start = 0
    n = len(units) // step
    while start < n:
        end = min(start + size, n)
        if end < n:
            last = units[(end - 1) * step:end * step]
            escape = keep_with_next is not None and last[0] in keep_with_next
            high_surrogate = pair_lead and 0xD8 <= last[0] <= 0xDB
            if escape or high_surrogate:
                end -= 1
        chunks.append(units[start * step:end * step])
        start = end
    return chunks


def plan_sms(text: str, concat_ref: int = 0, max_parts: int = MAX_PARTS) -> SmsPlan:
    """Encode ``text`` and split it into parts.

    ``concat_ref`` is the 8-bit reference shared by the parts of one message; derive it
    from the message id so that a retry of a missing part carries the same one.
    """
    if not text:
        raise InvalidMessage("an SMS needs a text")
    septets = encode_gsm7(text)
    if septets is not None:
        encoding, coding, data, step = "gsm7", DATA_CODING_GSM7, septets, 1
        single, part = GSM7_SINGLE, GSM7_PART
    else:
        encoding, coding, data, step = "ucs2", DATA_CODING_UCS2, text.encode("utf-16-be"), 2
        single, part = UCS2_SINGLE, UCS2_PART
    units = len(data) // step
    if units <= single:
        return SmsPlan(encoding, coding, (data,), units)
    chunks = _cut(data, part, step, {_ESCAPE} if step == 1 else None, pair_lead=step == 2)
    if len(chunks) > max_parts:
        raise InvalidMessage(f"the text needs {len(chunks)} SMS parts; at most {max_parts}")
    ref = concat_ref & 0xFF
    total = len(chunks)
    parts = tuple(bytes((0x05, 0x00, 0x03, ref, total, i)) + chunk
                  for i, chunk in enumerate(chunks, start=1))
    return SmsPlan(encoding, coding, parts, units)


def count_parts(text: str) -> int:
    """How many SMS parts ``text`` takes (what an operator bills)."""
    return len(plan_sms(text).parts)


@dataclass(frozen=True)
class UserData:
    """A received short_message: its text, and its place in a concatenated message."""

    text: str
    ref: int | None = None
    total: int = 1
    seq: int = 1


def decode_user_data(payload: bytes, data_coding: int, has_udh: bool) -> UserData:
    """Decode a deliver_sm short_message (UDH with 8- or 16-bit reference, 23.040
    §9.2.3.24.1 and .8). Unknown codings are read as Latin-1, which never fails."""
    ref: int | None = None
    total = seq = 1
    body = payload
    if has_udh and payload:
        udhl = payload[0]
        header, body = payload[1:1 + udhl], payload[1 + udhl:]
        i = 0
        while i + 1 < len(header):
            iei, length = header[i], header[i + 1]
            value = header[i + 2:i + 2 + length]
            if iei == 0x00 and length == 3:
                ref, total, seq = value[0], value[1], value[2]
            elif iei == 0x08 and length == 4:
                ref, total, seq = (value[0] << 8) | value[1], value[2], value[3]
            i += 2 + length
    coding = data_coding & 0x0F if data_coding < 0xC0 else data_coding
    if coding == DATA_CODING_UCS2:
        text = body[: len(body) // 2 * 2].decode("utf-16-be", errors="replace")
    elif coding in (0x00, 0x01):
        try:
            text = body.decode("gsm03.38")
        except UnicodeError:
            text = body.decode("latin-1")
    else:
        text = body.decode("latin-1")
    return UserData(text, ref, total, seq)
