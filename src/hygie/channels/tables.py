"""Tables of the channels package (SQLAlchemy Core, in the platform's shared metadata).

- ``channels_message``: the durable outbox, one row per message, unique by
  idempotency key; ``status`` with ``next_attempt_ms`` is the work queue, ``lease_ms``
  and ``worker`` say who holds a message being sent.
- ``channels_event``: each message's status timeline.
- ``channels_sms_part``: each SMS part tried: the SMSC's id once accepted (what
  delivery receipts name), or ``in_doubt`` when it was written but never answered.
- ``channels_receipt``: every delivery receipt received, committed before the
  deliver_sm_resp, then applied to its part (or kept to settle a part in doubt).
- ``channels_inbound``: everything received (SMS replies, DTMF digits, answer-link
  clicks, STOP), with the owner it was routed to and whether its handler took it.
- ``channels_mo_part``: parts of a concatenated reply waiting for their siblings.
- ``channels_conversation``: who owns the conversation with an address.
- ``channels_optout``: addresses that said STOP, honoured by every sender.

Times are UTC milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from hygie.store.schema import metadata

_pk_int = BigInteger().with_variant(Integer, "sqlite")

message = Table(
    "channels_message",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("owner", String(200), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", String(300), nullable=True),
    Column("body", Text, nullable=False),
    Column("html", Text, nullable=True),
    Column("expected_answers", JSON, nullable=True),
    Column("about", String(128), nullable=True),
    Column("recipient_ref", String(128), nullable=True),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=True),
    Column("lease_ms", BigInteger, nullable=True),
    Column("worker", String(64), nullable=True),
    Column("parts", Integer, nullable=False, default=1),
    Column("provider_ref", String(200), nullable=True),
    Column("error", String(300), nullable=True),
    Column("answer", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    #: Status last written to the FHIR mirror, and the resources written.
    Column("fhir_status", String(12), nullable=True),
    Column("fhir_request_id", String(64), nullable=True),
    Column("fhir_communication_id", String(64), nullable=True),
    Index("ix_channels_message_queue", "status", "next_attempt_ms"),
    Index("ix_channels_message_owner", "owner", "created_ms"),
    Index("ix_channels_message_recipient", "recipient", "created_ms"),
    Index("ix_channels_message_updated", "updated_ms"),
)

event = Table(
    "channels_event",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("message_id", String(32), ForeignKey("channels_message.id", ondelete="CASCADE"),
           nullable=False),
    Column("status", String(12), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("detail", String(300), nullable=True),
    Index("ix_channels_event_message", "message_id", "id"),
)

sms_part = Table(
    "channels_sms_part",
    metadata,
    Column("message_id", String(32), ForeignKey("channels_message.id", ondelete="CASCADE"),
           primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("status", String(12), nullable=False),
    Column("smsc_id", String(80), nullable=True),
    Column("user_ref", Integer, nullable=True),
    Column("recipient", String(320), nullable=False),
    Column("sent_ms", BigInteger, nullable=False),
    Column("error", String(300), nullable=True),
    Index("ix_channels_sms_part_smsc", "smsc_id"),
    Index("ix_channels_sms_part_doubt", "status", "recipient", "user_ref"),
)

receipt = Table(
    "channels_receipt",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("smsc_id", String(80), nullable=False),
    Column("state", String(12), nullable=False),
    Column("error", String(80), nullable=True),
    Column("user_ref", Integer, nullable=True),
    Column("recipient", String(320), nullable=True),
    Column("received_ms", BigInteger, nullable=False),
    Column("applied", Boolean, nullable=False, default=False),
    Index("ix_channels_receipt_pending", "applied", "id"),
    Index("ix_channels_receipt_smsc", "smsc_id"),
    Index("ix_channels_receipt_doubt", "recipient", "user_ref"),
)

inbound = Table(
    "channels_inbound",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("channel", String(8), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("text", Text, nullable=False),
    Column("value", String(200), nullable=True),
    Column("kind", String(12), nullable=False),
    Column("owner", String(200), nullable=True),
    Column("message_id", String(32), nullable=True),
    Column("received_ms", BigInteger, nullable=False),
    Column("handled", Boolean, nullable=False, default=False),
    Column("handled_ms", BigInteger, nullable=True),
    Column("dedupe_key", String(200), nullable=True, unique=True),
    Index("ix_channels_inbound_pending", "handled", "received_ms"),
    Index("ix_channels_inbound_received", "received_ms"),
)

mo_part = Table(
    "channels_mo_part",
    metadata,
    Column("sender", String(320), primary_key=True),
    Column("ref", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("total", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
)

conversation = Table(
    "channels_conversation",
    metadata,
    Column("channel", String(8), primary_key=True),
    Column("address", String(320), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("message_id", String(32), nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

optout = Table(
    "channels_optout",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("keyword", String(32), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)

#: Secret of the e-mail answer links (one row, made on first use).
secret = Table(
    "channels_secret",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)
