"""MSH-18 character sets (HL7 table 0211) and the Python codecs that read them.

A receiver must read MSH-18 before it can decode the message, so the MSH segment is
read as bytes first (its delimiters and the charset names are ASCII in every
character set HL7 allows on an 8-bit stream). UTF-16 and UTF-32 are refused: their
bytes collide with MLLP's framing characters (HL7 v2.x section 2.15.9.18 allows them
only on transports that do not frame by byte value).
"""

from __future__ import annotations

#: HL7 table 0211 value -> Python codec (first repetition of MSH-18: the default set).
CODECS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859_2",
    "8859/3": "iso8859_3",
    "8859/4": "iso8859_4",
    "8859/5": "iso8859_5",
    "8859/6": "iso8859_6",
    "8859/7": "iso8859_7",
    "8859/8": "iso8859_8",
    "8859/9": "iso8859_9",
    "8859/15": "iso8859_15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ISO IR14": "iso2022_jp",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_1",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
}

#: Table 0211 values known to HL7 but refused here, with why.
REFUSED: dict[str, str] = {
    "UNICODE": "UCS-2 collides with MLLP framing",
    "UNICODE UTF-16": "UTF-16 collides with MLLP framing",
    "UNICODE UTF-32": "UTF-32 collides with MLLP framing",
    "CNS 11643-1992": "no decoder for CNS 11643",
}


def codec_for(msh18: str, default: str) -> str | None:
    """The codec for MSH-18 (its first repetition); ``default`` when it is empty.

    None means the value is not one the gateway can decode.
    """
    name = msh18.split("~", 1)[0].strip().upper()
    if not name:
        return CODECS.get(default.upper(), default)
    return CODECS.get(name)
