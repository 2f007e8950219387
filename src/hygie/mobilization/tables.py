"""Tables of the mobilization service (SQLAlchemy Core, in the platform's shared metadata).

The people themselves are FHIR resources in the store (Practitioner, PractitionerRole);
what a campaign needs while it runs, and must find again after a restart, lives here:

- ``mobilization_staff``: the staff directory, one row per PractitionerRole (a person
  with two roles has two rows), read from the store: role, unit, hospital, skills,
  mobile phone, e-mail, availability.
- ``mobilization_plan``: named plans (levels of requests, templates, channel sequence,
  wave size, wait time, cycles) as a checked JSON definition.
- ``mobilization_campaign``: one launch of a plan level, real alert or exercise, with
  the plan as it was at launch (later edits of the plan never change a running
  campaign).
- ``mobilization_request``: "role x unit x quota x deadline" of one campaign.
- ``mobilization_contact``: one person sought for one request: where they stand
  (waiting, pending, silent, confirmed, declined, released, exhausted), the attempts
  made and the channel of each, the answer time-out (``due_ms``: the persisted timer),
  the answer and the expected arrival.
- ``mobilization_outgoing``: every message the service decided to send, keyed by its
  idempotency key, written in the same transaction as the decision and handed to the
  channels outbox afterwards (``message_id`` once handed over): a crash between the
  two sends nothing twice, since the channels outbox is idempotent on that key.
- ``mobilization_answer``: answers already applied, by the channels' answer id (the
  channels hand an answer again after a crash).
- ``mobilization_journal``: what happened in a campaign, in order; the board's live
  feed reads it by id, and it is the campaign's record.

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
    String,
    Table,
    Text,
)

from hygie.store.schema import metadata

_pk_int = BigInteger().with_variant(Integer, "sqlite")

staff = Table(
    "mobilization_staff",
    metadata,
    Column("id", String(64), primary_key=True),  # the PractitionerRole id
    Column("practitioner_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role_code", String(64), nullable=False),
    Column("role_label", String(200), nullable=False),
    Column("unit_id", String(64), nullable=True),
    Column("unit_label", String(200), nullable=True),
    Column("hospital_id", String(64), nullable=True),
    Column("hospital_label", String(200), nullable=True),
    Column("skills", JSON, nullable=False),
    Column("phone", String(32), nullable=True),
    Column("email", String(320), nullable=True),
    #: False when the role is inactive or a ``notAvailable`` period covers today.
    Column("available", Boolean, nullable=False),
    #: PractitionerRole.availableTime (weekly working hours), to know who is on duty.
    Column("hours", JSON, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Index("ix_mobilization_staff_role", "role_code", "unit_id"),
    Index("ix_mobilization_staff_hospital", "hospital_id"),
)

plan = Table(
    "mobilization_plan",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("hospital_id", String(64), nullable=True),
    Column("definition", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

campaign = Table(
    "mobilization_campaign",
    metadata,
    Column("id", String(32), primary_key=True),
    #: Set by a client that may send its launch twice (a double click, a retry).
    Column("launch_key", String(200), nullable=True, unique=True),
    Column("plan_id", String(64), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("plan_name", String(200), nullable=False),
    Column("level", Integer, nullable=False),
    Column("level_name", String(200), nullable=False),
    Column("exercise", Boolean, nullable=False),
    Column("status", String(12), nullable=False),  # active, closed
    #: The plan's definition at launch (templates, channels, wait time, cycles).
    Column("definition", JSON, nullable=False),
    Column("launched_by", String(200), nullable=False),
    Column("launched_by_ref", String(128), nullable=True),
    Column("launched_ms", BigInteger, nullable=False),
    Column("note", String(500), nullable=True),
    Column("closed_by", String(200), nullable=True),
    Column("closed_ms", BigInteger, nullable=True),
    Column("updated_ms", BigInteger, nullable=False),
    #: Whether the launch and the close are in the store as AuditEvents (the worker
    #: writes those still missing, so a crash right after a launch loses no record).
    Column("launch_audited", Boolean, nullable=False, default=False),
    Column("close_audited", Boolean, nullable=False, default=False),
    Index("ix_mobilization_campaign_status", "status", "launched_ms"),
)

request = Table(
    "mobilization_request",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "campaign_id",
        String(32),
        ForeignKey("mobilization_campaign.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    Column("role_code", String(64), nullable=False),
    Column("role_label", String(200), nullable=False),
    Column("unit_id", String(64), nullable=True),
    Column("unit_label", String(200), nullable=False),
    Column("skill", String(200), nullable=True),
    Column("quota", Integer, nullable=False),
    Column("deadline_ms", BigInteger, nullable=False),
    #: open (seeking), met (quota reached), exhausted (nobody left to ask), closed.
    Column("status", String(12), nullable=False),
    Column("met_ms", BigInteger, nullable=True),
    #: Set once the passing of the deadline was written to the journal.
    Column("deadline_noted", Boolean, nullable=False, default=False),
    Index("ix_mobilization_request_campaign", "campaign_id", "position"),
)

contact = Table(
    "mobilization_contact",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "campaign_id",
        String(32),
        ForeignKey("mobilization_campaign.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "request_id",
        String(40),
        ForeignKey("mobilization_request.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("staff_id", String(64), nullable=False),
    Column("practitioner_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("unit_label", String(200), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("email", String(320), nullable=True),
    #: Order in which the request's people are asked (off duty first).
    Column("rank", Integer, nullable=False),
    #: waiting, pending, silent, confirmed, declined, released, exhausted.
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("channel", String(8), nullable=True),
    #: When the current attempt times out (pending only): the persisted timer.
    Column("due_ms", BigInteger, nullable=True),
    Column("contacted_ms", BigInteger, nullable=True),
    Column("answered_ms", BigInteger, nullable=True),
    Column("answer", String(500), nullable=True),
    Column("answer_channel", String(8), nullable=True),
    Column("eta_ms", BigInteger, nullable=True),
    Column("stood_down_ms", BigInteger, nullable=True),
    Column("clarified", Boolean, nullable=False, default=False),
    Column("updated_ms", BigInteger, nullable=False),
    Index("ix_mobilization_contact_request", "request_id", "state", "attempts", "rank"),
    Index("ix_mobilization_contact_due", "campaign_id", "state", "due_ms"),
    Index("ix_mobilization_contact_campaign", "campaign_id", "state"),
)

outgoing = Table(
    "mobilization_outgoing",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("campaign_id", String(32), nullable=False),
    Column("contact_id", String(40), nullable=False),
    #: alert, confirmation, clarification, standdown, closing.
    Column("kind", String(16), nullable=False),
    #: The contact's attempt an alert belongs to (None for other kinds).
    Column("attempt", Integer, nullable=True),
    Column("channel", String(8), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("recipient_ref", String(128), nullable=True),
    Column("subject", String(300), nullable=True),
    Column("text", Text, nullable=False),
    Column("expected", JSON, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    #: The channels outbox id once handed over (None: still to hand over).
    Column("message_id", String(32), nullable=True),
    #: cancelled before it was handed over (its contact no longer needs it).
    Column("cancelled", Boolean, nullable=False, default=False),
    Column("ttl_s", Integer, nullable=True),
    #: Why the channels refused it (a bad address): the person is moved on at once.
    Column("error", String(300), nullable=True),
    Index("ix_mobilization_outgoing_pending", "message_id", "cancelled", "created_ms"),
    Index("ix_mobilization_outgoing_contact", "contact_id", "attempt"),
)

answer = Table(
    "mobilization_answer",
    metadata,
    Column("id", String(40), primary_key=True),  # the channels' answer id
    Column("campaign_id", String(32), nullable=False),
    Column("contact_id", String(40), nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("channel", String(8), nullable=False),
    Column("text", String(500), nullable=False),
    #: yes, no, unknown.
    Column("meaning", String(8), nullable=False),
    Column("eta_minutes", Integer, nullable=True),
    Index("ix_mobilization_answer_contact", "contact_id"),
)

journal = Table(
    "mobilization_journal",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("campaign_id", String(32), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    #: launch, wave, timeout, answer, met, exhausted, deadline, standdown, closed...
    Column("kind", String(16), nullable=False),
    Column("request_id", String(40), nullable=True),
    Column("contact_id", String(40), nullable=True),
    Column("detail", JSON, nullable=False),
    Index("ix_mobilization_journal_campaign", "campaign_id", "id"),
)
