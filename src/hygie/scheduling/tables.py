"""Tables of the scheduling service (SQLAlchemy Core, in the platform's shared metadata).

Operational data that FHIR does not model well lives here; the clinical facts go to
the store (Schedule, Appointment, Patient, QuestionnaireResponse, Coverage, Consent,
DocumentReference, Encounter). Every instant is an integer number of seconds since
the epoch, UTC; local wall times (opening hours) are kept as ``HH:MM`` text with the
time zone they are meant in, so that daylight-saving changes are applied when slots
are generated, never baked in.

- ``sched_appointment_type``: what can be booked and for how long.
- ``sched_agenda``: a practitioner's or a service's calendar at one site.
- ``sched_rule``: weekly opening rules of an agenda (local times, one type each).
- ``sched_closure``: holidays and closures of an agenda or of a whole site.
- ``sched_site_cap``: the arrival cap of a site (N people in any window of W minutes).
- ``sched_slot``: the slots generated from the rules, with their status. The
  conditional update ``free -> booked`` on one row is what makes double booking
  impossible; a partial unique index on live bookings backs it up.
- ``sched_booking``: one row per appointment booked, moved or cancelled, with the
  revision last written to the store as an Appointment (outbox of the projection).
- ``sched_waitlist``: people waiting for a slot, and the offer made to them.
- ``sched_verification``: SMS codes that prove a mobile number (hashes only).
- ``sched_job``: persisted timers (reminders, expiry of offers): a restart loses none.
- ``sched_message``: SMS and e-mails handed to the delivery step.
- ``sched_preadmission`` and ``sched_upload``: online pre-admission files and their
  uploaded documents until staff validate them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from hygie.store.schema import metadata

_pk_int = BigInteger().with_variant(Integer, "sqlite")

appointment_type = Table(
    "sched_appointment_type",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("label", String(200), nullable=False),
    Column("duration_min", Integer, nullable=False),
    Column("preadmission", Boolean, nullable=False, default=False),
)

agenda = Table(
    "sched_agenda",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # practitioner | service
    Column("actor_ref", String(200), nullable=False),
    Column("display", String(200), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("site_name", String(200), nullable=False),
    Column("service_code", String(64), nullable=False),
    Column("service_label", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("public_holidays", Boolean, nullable=False, default=True),
    Column("active", Boolean, nullable=False, default=True),
    Index("ix_sched_agenda_site", "site_id"),
)

rule = Table(
    "sched_rule",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("agenda_id", String(64), nullable=False),
    Column("weekdays", String(20), nullable=False),  # ISO weekdays, "1,2,4"
    Column("start_local", String(5), nullable=False),
    Column("end_local", String(5), nullable=False),
    Column("type_code", String(64), nullable=False),
    Column("valid_from", String(10), nullable=False),
    Column("valid_to", String(10), nullable=True),
    Index("ix_sched_rule_agenda", "agenda_id"),
)

closure = Table(
    "sched_closure",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("agenda_id", String(64), nullable=True),
    Column("site_id", String(64), nullable=True),
    Column("start_utc", BigInteger, nullable=False),
    Column("end_utc", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
)

site_cap = Table(
    "sched_site_cap",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("max_arrivals", Integer, nullable=False),
    Column("window_min", Integer, nullable=False, default=15),
)

slot = Table(
    "sched_slot",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("agenda_id", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("service_code", String(64), nullable=False),
    Column("type_code", String(64), nullable=False),
    Column("start_utc", BigInteger, nullable=False),
    Column("end_utc", BigInteger, nullable=False),
    # free | booked | held (offered to the waiting list) | blocked (closure)
    Column("status", String(8), nullable=False),
    Column("hold_until", BigInteger, nullable=True),
    Column("hold_entry", BigInteger, nullable=True),
    UniqueConstraint("agenda_id", "start_utc", name="uq_sched_slot_agenda_start"),
    Index("ix_sched_slot_type_start", "type_code", "start_utc"),
    Index("ix_sched_slot_service_start", "service_code", "start_utc"),
    Index("ix_sched_slot_site_start", "site_id", "start_utc"),
)

booking = Table(
    "sched_booking",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("slot_id", BigInteger, nullable=False),
    Column("agenda_id", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("type_code", String(64), nullable=False),
    Column("start_utc", BigInteger, nullable=False),
    Column("end_utc", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),  # booked | cancelled
    Column("family", String(100), nullable=False),
    Column("given", String(100), nullable=False),
    Column("birth_date", String(10), nullable=False),
    Column("phone", String(20), nullable=True),
    Column("email", String(200), nullable=True),
    Column("patient_ref", String(100), nullable=True),
    Column("manage_token", String(64), nullable=False),  # sha256 of the link's secret
    Column("source", String(8), nullable=False),  # public | staff | waitlist
    Column("created_utc", BigInteger, nullable=False),
    Column("updated_utc", BigInteger, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("projected_revision", Integer, nullable=False),
    Index("ix_sched_booking_site_start", "site_id", "start_utc"),
    Index("ix_sched_booking_agenda_start", "agenda_id", "start_utc"),
    Index("ix_sched_booking_manage", "manage_token", unique=True),
    Index("ix_sched_booking_pending", "projected_revision", "revision"),
    Index("ix_sched_booking_phone", "phone", "birth_date"),
    Index(
        "uq_sched_booking_live_slot",
        "slot_id",
        unique=True,
        sqlite_where=text("status = 'booked'"),
        postgresql_where=text("status = 'booked'"),
    ),
)

waitlist = Table(
    "sched_waitlist",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("type_code", String(64), nullable=False),
    Column("site_id", String(64), nullable=True),
    Column("service_code", String(64), nullable=True),
    Column("earliest_utc", BigInteger, nullable=False),
    Column("latest_utc", BigInteger, nullable=False),
    Column("family", String(100), nullable=False),
    Column("given", String(100), nullable=False),
    Column("birth_date", String(10), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("email", String(200), nullable=True),
    # waiting | offered | booked | expired | withdrawn
    Column("status", String(10), nullable=False),
    Column("created_utc", BigInteger, nullable=False),
    Column("offer_slot", BigInteger, nullable=True),
    Column("offer_token", String(64), nullable=True),
    Column("offer_until", BigInteger, nullable=True),
    Index("ix_sched_waitlist_type", "type_code", "status", "created_utc"),
    Index("ix_sched_waitlist_offer", "offer_token", unique=True),
)

verification = Table(
    "sched_verification",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_utc", BigInteger, nullable=False),
    Column("expires_utc", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("token_hash", String(64), nullable=True),
    Column("token_expires_utc", BigInteger, nullable=True),
    #: The network address that asked for the code (rate limit across numbers).
    Column("client", String(64), nullable=True),
    Index("ix_sched_verification_phone", "phone", "created_utc"),
    Index("ix_sched_verification_client", "client", "created_utc"),
    Index("ix_sched_verification_token", "token_hash", unique=True),
)

job = Table(
    "sched_job",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("due_utc", BigInteger, nullable=False),
    Column("booking_id", String(32), nullable=True),
    Column("payload", Text, nullable=False),
    Column("status", String(10), nullable=False),  # due | done | cancelled | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(500), nullable=True),
    Index("ix_sched_job_due", "status", "due_utc"),
    Index("ix_sched_job_booking", "booking_id"),
)

message = Table(
    "sched_message",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("channel", String(8), nullable=False),  # sms | email
    Column("recipient", String(200), nullable=False),
    Column("subject", String(200), nullable=True),
    Column("body", Text, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("created_utc", BigInteger, nullable=False),
    # queued (waiting for a transport) | handed (accepted by the channels outbox)
    Column("status", String(8), nullable=False),
    Column("reference", String(100), nullable=True),
    Index("ix_sched_message_status", "status", "id"),
    Index("ix_sched_message_recipient", "recipient", "id"),
)

preadmission = Table(
    "sched_preadmission",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token", String(64), nullable=False),  # sha256 of the link's secret
    Column("booking_id", String(32), nullable=True),
    Column("site_id", String(64), nullable=False),
    Column("planned_start_utc", BigInteger, nullable=False),
    Column("family", String(100), nullable=False),
    Column("given", String(100), nullable=False),
    Column("birth_date", String(10), nullable=False),
    Column("phone", String(20), nullable=True),
    # invited | submitted | validated | rejected
    Column("status", String(10), nullable=False),
    Column("answers", Text, nullable=True),
    Column("response_id", String(64), nullable=True),
    Column("patient_ref", String(100), nullable=True),
    Column("encounter_ref", String(100), nullable=True),
    Column("review_note", String(1000), nullable=True),
    Column("created_utc", BigInteger, nullable=False),
    Column("updated_utc", BigInteger, nullable=False),
    Index("ix_sched_preadmission_token", "token", unique=True),
    Index("ix_sched_preadmission_status", "status", "planned_start_utc"),
)

upload = Table(
    "sched_upload",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("preadmission_id", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", String(200), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_utc", BigInteger, nullable=False),
    Index("ix_sched_upload_file", "preadmission_id"),
)
