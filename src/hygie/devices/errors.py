"""Errors of the biomedical gateway.

::

    DevicesError
    ├── MessageRejected      an HL7 v2 message the gateway refuses: becomes a NAK
    │                        (AR/CR or AE/CE) whose ERR segment says where and why
    └── PayloadRejected      an MQTT payload that does not follow docs/devices.md

``MessageRejected`` carries the HL7 error location (ERR-2, an ERL: segment, its
sequence in the message, field, repetition, component) and the HL7 error code of
table 0357, so that ``acks.py`` is the only place that writes ERR segments.
"""

from __future__ import annotations

#: HL7 table 0357 (message error condition codes) as used here.
SEGMENT_SEQUENCE_ERROR = 100
REQUIRED_FIELD_MISSING = 101
DATA_TYPE_ERROR = 102
TABLE_VALUE_NOT_FOUND = 103
UNSUPPORTED_MESSAGE_TYPE = 200
UNSUPPORTED_EVENT_CODE = 201
UNSUPPORTED_PROCESSING_ID = 202
UNSUPPORTED_VERSION_ID = 203
APPLICATION_INTERNAL_ERROR = 207

ERROR_NAMES = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}


class DevicesError(Exception):
    """Base class of the gateway's errors."""


class MessageRejected(DevicesError):
    """An HL7 v2 message the gateway refuses; see the module docstring.

    ``reject`` is True for what HL7 answers with AR/CR (the message header itself is
    unacceptable: type, version, processing id, encoding), False for AE/CE (the content
    has an error).
    """

    def __init__(
        self,
        text: str,
        *,
        segment: str,
        field: int = 0,
        sequence: int = 1,
        repetition: int = 1,
        component: int = 0,
        code: int = DATA_TYPE_ERROR,
        reject: bool = False,
    ) -> None:
        super().__init__(text)
        self.text = text
        self.segment = segment
        self.sequence = sequence
        self.field = field
        self.repetition = repetition
        self.component = component
        self.code = code
        self.reject = reject

    @property
    def location(self) -> str:
        """Where, as people write it: ``OBX[3]-5.1``."""
        where = f"{self.segment}[{self.sequence}]"
        if self.field:
            where += f"-{self.field}"
            if self.component:
                where += f".{self.component}"
        return where

    def as_dict(self) -> dict[str, object]:
        """The error as kept in the journal (to answer a resent message the same way)."""
        return {
            "text": self.text,
            "segment": self.segment,
            "sequence": self.sequence,
            "field": self.field,
            "repetition": self.repetition,
            "component": self.component,
            "code": self.code,
            "reject": self.reject,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> MessageRejected:
        return cls(
            str(data["text"]),
            segment=str(data["segment"]),
            sequence=int(data.get("sequence", 1)),  # type: ignore[call-overload]
            field=int(data.get("field", 0)),  # type: ignore[call-overload]
            repetition=int(data.get("repetition", 1)),  # type: ignore[call-overload]
            component=int(data.get("component", 0)),  # type: ignore[call-overload]
            code=int(data.get("code", DATA_TYPE_ERROR)),  # type: ignore[call-overload]
            reject=bool(data.get("reject", False)),
        )


class PayloadRejected(DevicesError):
    """An MQTT payload that is not the documented JSON; ``path`` names the member."""

    def __init__(self, text: str, path: str = "") -> None:
        super().__init__(f"{path}: {text}" if path else text)
        self.path = path
