"""Tables of the biomedical gateway (SQLAlchemy Core, in the platform's shared metadata).

- ``devices_message``: the journal. Every message is committed here, raw, before it
  is acknowledged; the mapper turns pending rows into FHIR resources in the store and
  records the outcome (``stored`` or ``rejected`` with the error, so that a resent
  message is answered the way the first one was). (sender, control id) is unique: a
  repeated MSH-10 from the same sender is acknowledged and stored once.
- ``devices_bed`` and ``devices_bed_value``: what the ICU board shows, the latest value
  of each metric per bed, kept by the mapper alongside the Observations it writes. The
  clinical data itself lives in the store; these rows only say where to look.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from hygie.store.schema import metadata

_pk_int = BigInteger().with_variant(Integer, "sqlite")

message = Table(
    "devices_message",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    #: ``hl7`` (MLLP) or ``mqtt``.
    Column("channel", String(8), nullable=False),
    #: HL7: MSH-3|MSH-4; MQTT: the device id.
    Column("sender", String(400), nullable=False),
    #: HL7: MSH-10; MQTT: the payload's ``id``.
    Column("control_id", String(200), nullable=False),
    #: Python codec the raw bytes decode with (from MSH-18).
    Column("codec", String(40), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    #: Microseconds since the epoch, UTC.
    Column("received_at", BigInteger, nullable=False),
    #: pending, stored or rejected.
    Column("status", String(12), nullable=False),
    #: For a rejected message: the error as JSON (text, segment, field, code).
    Column("error", Text, nullable=True),
    Column("processed_at", BigInteger, nullable=True),
    #: Observations written for the message.
    Column("observations", Integer, nullable=False, default=0),
    UniqueConstraint("sender", "control_id", name="uq_devices_message_sender_control"),
    Index("ix_devices_message_status_id", "status", "id"),
)

bed = Table(
    "devices_bed",
    metadata,
    #: ``facility/unit/room/bed`` from PV1-3, or ``device/<EUI-64>`` without a bed.
    Column("bed_key", String(300), primary_key=True),
    Column("label", String(200), nullable=False),
    Column("unit", String(100), nullable=False, default=""),
    #: Location id in the store when the territory has that bed, else empty.
    Column("location_id", String(64), nullable=False, default=""),
    Column("patient_id", String(64), nullable=False),
    #: The patient was created by the gateway and awaits identity matching.
    Column("provisional", Boolean, nullable=False, default=False),
    Column("device_id", String(64), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

bed_value = Table(
    "devices_bed_value",
    metadata,
    Column("bed_key", String(300), primary_key=True),
    #: Metric key of ``terminology.METRICS`` (hr, spo2, ...).
    Column("metric", String(20), primary_key=True),
    Column("value", Float, nullable=False),
    Column("unit", String(20), nullable=False),
    #: Effective time of the observation, microseconds since the epoch, UTC.
    Column("observed_at", BigInteger, nullable=False),
    #: The device flagged it abnormal (OBX-8) or it is outside the usual range.
    Column("abnormal", Boolean, nullable=False, default=False),
    Column("observation_id", String(64), nullable=False),
)
