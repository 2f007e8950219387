"""Reading SMPP delivery receipts (SMPP v3.4 §2.11 and Appendix B).

A receipt is a deliver_sm with esm_class message type 0x04. Its state may be given
twice: in TLVs (``receipted_message_id`` 0x001E, ``message_state`` 0x0427,
``network_error_code`` 0x0423) and in the short_message text, whose Appendix B layout
vendors vary (``id:`` in decimal while the submit_sm_resp gave hex, upper-case keys,
``submit_date``, dates with seconds, a missing ``text:``). TLVs win when present; the
text fills what they lack. smpplib decodes the PDU; the receipt text has no library,
so it is parsed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hygie.channels.model import Status

#: message_state TLV values (SMPP v3.4 §5.2.28) to the receipt text's stat words.
MESSAGE_STATES = {
    1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
    6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD",
}
_STAT_ALIASES = {
    "DELIVERED": "DELIVRD", "UNDELIVERABLE": "UNDELIV", "ACCEPTED": "ACCEPTD",
    "REJECTED": "REJECTD", "DELIVR": "DELIVRD", "FAILED": "UNDELIV",
}
#: Receipt states that end the life of a part, and the status they give.
FINAL_STATES = {
    "DELIVRD": Status.DELIVERED, "EXPIRED": Status.FAILED, "DELETED": Status.FAILED,
    "UNDELIV": Status.FAILED, "REJECTD": Status.FAILED, "UNKNOWN": Status.FAILED,
}
_FIELD = re.compile(
    r"(?P<key>id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err|text)\s*:\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DeliveryReceipt:
    """What one receipt says about one submitted part."""

    message_id: str
    state: str
    error: str | None = None
    #: user_message_reference echoed by the SMSC, when it does (TLV 0x0204).
    user_ref: int | None = None

    @property
    def status(self) -> Status | None:
        """The part's status this receipt gives, or None for an intermediate state."""
        return FINAL_STATES.get(self.state)

    def id_candidates(self) -> list[str]:
        """Spellings of the id to look up: as given, and hex/decimal converted
        (vendors report in decimal an id the submit_sm_resp gave in hex, and back)."""
        raw = self.message_id.strip()
        out = [raw]
        if raw.lower() != raw:
            out.append(raw.lower())
        if raw.isdigit():
            out.append(format(int(raw), "x"))
            out.append(format(int(raw), "X"))
        elif re.fullmatch(r"[0-9a-fA-F]+", raw):
            out.append(str(int(raw, 16)))
        stripped = raw.lstrip("0")
        if stripped and stripped != raw:
            out.append(stripped)
        return list(dict.fromkeys(out))


def parse_receipt_text(text: str) -> dict[str, str]:
    """The ``key:value`` fields of an Appendix B receipt text, keys in lower case
    with ``_`` for spaces. Unknown layouts give what could be read."""
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        key = m.group("key").lower().replace(" ", "_")
        value = text[m.end():end].strip()
        if key == "text":
            fields[key] = text[m.end():].strip()
            break
        fields[key] = value
    return fields


def _normal_state(word: str) -> str:
    word = word.strip().upper()
    return _STAT_ALIASES.get(word, word)


def read_receipt(short_message: bytes | str | None, *, receipted_message_id: str | None = None,
                 message_state: int | None = None, network_error_code: bytes | None = None,
                 user_message_reference: int | None = None) -> DeliveryReceipt | None:
    """Combine TLVs and text into one receipt; None when neither names a message."""
    if receipted_message_id and message_state in MESSAGE_STATES and (
            message_state == 2 or network_error_code):
        # Everything is in the TLVs: the text need not be read (the common case).
        error = network_error_code.hex() if network_error_code else None
        if error is not None and error.strip("0") == "":
            error = None
        return DeliveryReceipt(receipted_message_id.strip(), MESSAGE_STATES[message_state],
                               error, user_message_reference)
    text = short_message.decode("latin-1") if isinstance(short_message, bytes) else (
        short_message or "")
    fields = parse_receipt_text(text)
    message_id = (receipted_message_id or "").strip()
    if not message_id:
        words = fields.get("id", "").split()
        message_id = words[0] if words else ""
    if not message_id:
        return None
    if message_state is not None and message_state in MESSAGE_STATES:
        state = MESSAGE_STATES[message_state]
    else:
        words = fields.get("stat", "").split()
        state = _normal_state(words[0]) if words else "UNKNOWN"
    error = fields.get("err")
    if network_error_code:
        error = network_error_code.hex()
    if error is not None and error.strip("0") == "":
        error = None
    return DeliveryReceipt(message_id, state, error, user_message_reference)


def format_receipt_text(message_id: str, state: str, submitted: str, done: str,
                        text: str = "", err: str = "000") -> str:
    """An Appendix B receipt text, as the loopback SMSC writes it."""
    dlvrd = "001" if state == "DELIVRD" else "000"
    return (f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{submitted} "
            f"done date:{done} stat:{state} err:{err} text:{text[:20]}")
