"""Data types of the biomedical gateway: message headers, PCD-01 reports, settings.

A message goes through two stages (docs/devices.md): at receipt only its header is
read (``Header``) and the raw bytes are committed to the journal; the mapper then
parses the whole message into a ``Report`` (``pcd01.py``) and writes FHIR resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hygie.config import Settings

#: Acknowledgment types of MSH-15 and MSH-16 (HL7 table 0155).
ACK_TYPES = frozenset({"AL", "NE", "ER", "SU"})


@dataclass(frozen=True, slots=True)
class Header:
    """What the receipt stage reads of a message: its MSH fields, decoded."""

    field_sep: str
    encoding: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str
    control_id: str
    processing_id: str
    version: str
    accept_ack: str
    application_ack: str
    charset: str
    codec: str

    @property
    def sender(self) -> str:
        """Who sent it (MSH-3 and MSH-4): with MSH-10, the key of duplicate detection."""
        return f"{self.sending_application}|{self.sending_facility}"

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgment mode: MSH-15 or MSH-16 is valued (HL7 v2 2.9.3)."""
        return bool(self.accept_ack or self.application_ack)

    def wants_commit_ack(self, accepted: bool) -> bool:
        """Whether a commit (accept) acknowledgment is due, enhanced mode only."""
        return self.enhanced and _due(self.accept_ack or "NE", accepted)

    def wants_application_ack(self, accepted: bool) -> bool:
        """Whether an application acknowledgment is due (always in original mode)."""
        if not self.enhanced:
            return True
        return _due(self.application_ack or "NE", accepted)


def _due(kind: str, accepted: bool) -> bool:
    return kind == "AL" or (kind == "ER" and not accepted) or (kind == "SU" and accepted)


@dataclass(frozen=True, slots=True)
class PatientId:
    """PID-3: the identifier of the patient the device is attached to."""

    value: str
    authority: str = ""
    type_code: str = ""


@dataclass(frozen=True, slots=True)
class Bed:
    """PV1-3 (PL): point of care, room, bed, facility."""

    point_of_care: str
    room: str = ""
    bed: str = ""
    facility: str = ""

    @property
    def key(self) -> str:
        """The board's key: ``facility/unit/room/bed`` (empty parts kept)."""
        return "/".join((self.facility, self.point_of_care, self.room, self.bed))

    @property
    def label(self) -> str:
        parts = [p for p in (self.point_of_care, self.room, self.bed) if p]
        return " ".join(parts)

    @property
    def location_id(self) -> str:
        """The id a Location of the territory would have (``<facility>-<unit>-<room>-<bed>``)."""
        parts = [p for p in (self.facility, self.point_of_care, self.room, self.bed) if p]
        return "-".join(parts).lower().replace(" ", "-")


@dataclass(frozen=True, slots=True)
class DeviceNode:
    """A level of the 11073 containment tree (MDS, VMD or channel), from an OBX-11=X row."""

    eui64: str
    path: tuple[int, ...]
    code: str
    mnemonic: str


@dataclass(frozen=True, slots=True)
class Reading:
    """One observation of a PCD-01 report (an OBX row with a result)."""

    obx: int
    path: tuple[int, ...]
    code: str
    mnemonic: str
    value_type: str
    value: Any
    unit: str | None
    status: str
    time: str
    eui64: str
    reference_range: str = ""
    flags: tuple[str, ...] = ()
    #: For a waveform (NA): sampling period in milliseconds.
    period_ms: float | None = None
    #: Facets of the metric (OBX rows one level below it): (code, mnemonic, value, unit).
    facets: tuple[tuple[str, str, Any, str | None], ...] = ()


@dataclass(frozen=True)
class Report:
    """A PCD-01 ORU^R01 message, parsed and checked: who, where, what devices, what values."""

    header: Header
    patient: PatientId
    patient_name: tuple[str, str]
    bed: Bed | None
    message_time: str
    devices: tuple[DeviceNode, ...]
    readings: tuple[Reading, ...]


@dataclass(frozen=True)
class DevicesSettings:
    """The gateway's settings, from ``settings.extra`` (``[hygie]`` keys ``devices_*``).

    Every limit the gateway enforces is here (STYLE.md: limits are named settings).
    """

    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_topic: str = "hygie/devices/+/observations"
    mqtt_client_id: str = "hygie-devices-gateway"
    #: Largest MLLP frame accepted, in bytes (a NAK beyond).
    max_message_bytes: int = 1024 * 1024
    #: Largest MQTT payload accepted, in bytes.
    max_payload_bytes: int = 64 * 1024
    #: Character set assumed when MSH-18 is empty (HL7: ASCII).
    default_charset: str = "ASCII"
    #: Identifier system of PID-3 values whose assigning authority is not listed below.
    patient_system: str = "https://hygie.example/fhir/sid/ipp"
    #: PID-3 assigning authority (CX.4) -> identifier system.
    authority_systems: dict[str, str] = field(default_factory=dict)
    #: Time zone of HL7 times that carry no offset.
    local_timezone: str = "Europe/Paris"
    #: Messages the mapper writes to the store in one transaction.
    mapper_batch: int = 10
    #: Messages written to the store per transaction (on SQLite, the longest another
    #: writer of the platform's database may wait for the write lock is one of them).
    messages_per_transaction: int = 5
    #: Pause of the mapper after each of its store transactions on SQLite, in ms, so
    #: that another writer of the platform's database waiting for the lock gets it.
    mapper_yield_ms: float = 2.0
    #: Days a processed message stays in the journal (and a resent copy is recognised).
    journal_retention_days: float = 7.0
    #: PostgreSQL: journal commits wait for the WAL flush (false: they survive a crash
    #: of the gateway but not of the database server, as on SQLite; see journal.py).
    journal_synchronous_commit: bool = True
    #: Above this receipt rate (messages/s) the mapper steps aside: after each batch
    #: it pauses ``mapper_busy_ratio`` times as long as the batch took.
    mapper_throttle_rate: int = 300
    mapper_busy_ratio: float = 3.0
    #: Niceness of the mapper process (the receipt path keeps priority under load).
    mapper_nice: int = 10
    #: Application (MSH-3) and facility (MSH-4) the gateway answers as.
    application: str = "HYGIE"
    facility: str = "HYGIE"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DevicesSettings:
        values: dict[str, Any] = {}
        names = set(cls.__dataclass_fields__)
        for key, raw in settings.extra.items():
            if key.startswith("devices_") and key[8:] in names:
                values[key[8:]] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def journal_dir(settings: Settings) -> Path:
    """Where the gateway keeps local files (its pid and port when listening)."""
    return Path(settings.var_dir) / "devices"
