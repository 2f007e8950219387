"""HL7 v2 acknowledgments: ACK^R01 with MSA, and ERR when something is wrong.

Original mode answers AA / AE / AR once the message is processed; enhanced mode
answers CA / CE / CR when the message is committed to safe storage (accept
acknowledgment, MSH-15) and AA / AE / AR once it is processed (application
acknowledgment, MSH-16) (HL7 v2.x section 2.9). MSA-2 echoes MSH-10. The ERR segment
follows the version of the message: ERR-2 (ERL), ERR-3 (table 0357), ERR-4 and ERR-8
from v2.5 on; ERR-1 (ELD) before.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import time
from datetime import UTC, datetime

from hygie.devices.errors import ERROR_NAMES, MessageRejected
from hygie.devices.model import Header

_COUNTER = itertools.count(1)
_PREFIX = f"{os.getpid() % 100000:05d}"

_DEFAULT = Header("|", "^~\\&", "", "", "", "", "", "", "P", "2.6", "", "", "", "ascii")


def _escape(text: str, header: Header) -> str:
    """Escape delimiters in free text (HL7 v2.x section 2.7): \\F\\ \\S\\ \\T\\ \\R\\ \\E\\."""
    comp, rep, esc, sub = (header.encoding + "^~\\&")[:4]
    out = text.replace(esc, f"{esc}E{esc}")
    for char, code in ((header.field_sep, "F"), (comp, "S"), (sub, "T"), (rep, "R")):
        out = out.replace(char, f"{esc}{code}{esc}")
    return out.replace("\r", " ").replace("\n", " ")


def _version_at_least_25(version: str) -> bool:
    try:
        major, minor = ([*version.split("^")[0].split("."), "0"])[:2]
        return (int(major), int(minor)) >= (2, 5)
    except ValueError:
        return True


def err_segment(error: MessageRejected, header: Header) -> str:
    """The ERR segment naming the faulty segment and field of ``error``."""
    sep = header.field_sep
    comp = (header.encoding or "^")[0]
    sub = (header.encoding + "^~\\&")[3]
    name = ERROR_NAMES.get(error.code, "Error")
    text = _escape(error.text, header)
    if _version_at_least_25(header.version or "2.6"):
        location = comp.join(
            str(x)
            for x in (
                error.segment,
                error.sequence,
                error.field or "",
                error.repetition if error.field else "",
                error.component or "",
            )
        ).rstrip(comp)
        code = comp.join((str(error.code), name, "HL70357"))
        return sep.join(("ERR", "", location, code, "E", "", "", "", text))
    eld = comp.join(
        (
            error.segment,
            str(error.sequence),
            str(error.field or ""),
            sub.join((str(error.code), name, "HL70357")),
        )
    )
    return sep.join(("ERR", eld))


@functools.lru_cache(maxsize=4)
def _timestamp(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y%m%d%H%M%S") + "+0000"


def build_ack(
    header: Header | None, code: str, error: MessageRejected | None = None, text: str = ""
) -> bytes:
    """An ACK for ``header``'s message with MSA-1 ``code`` (AA, AE, AR, CA, CE, CR).

    Encoded in the character set of the message (MSH-18 is echoed), so a sender using
    ISO 8859 or UTF-8 can read the error text.
    """
    h = header or _DEFAULT
    sep = h.field_sep or "|"
    encoding = h.encoding
    if len(encoding) < 4 or not h.field_sep:
        encoding = "^~\\&"
        h = dataclasses.replace(h, field_sep=sep, encoding=encoding)
    comp = encoding[0]
    now = _timestamp(int(time.time()))
    control = f"A{_PREFIX}{int(time.time()):x}{next(_COUNTER):06d}"
    version = h.version or "2.6"
    msh = sep.join(
        (
            "MSH",
            encoding,
            h.receiving_application or "HYGIE",
            h.receiving_facility or "HYGIE",
            h.sending_application,
            h.sending_facility,
            now,
            "",
            comp.join(("ACK", "R01", "ACK")),
            control,
            h.processing_id or "P",
            version,
            "",
            "",
            "",
            "",
            "",
            h.charset,
        )
    ).rstrip(sep)
    msa_text = _escape(text or (error.text if error else ""), h)
    msa = sep.join(("MSA", code, h.control_id, msa_text)).rstrip(sep)
    segments = [msh, msa]
    if error is not None:
        segments.append(err_segment(error, h))
    return ("\r".join(segments) + "\r").encode(h.codec or "ascii", errors="replace")


def ack_codes(header: Header, commit: bool) -> tuple[str, str, str]:
    """(accepted, error, rejected) MSA-1 codes for a commit or an application ack."""
    if commit:
        return "CA", "CE", "CR"
    return "AA", "AE", "AR"
