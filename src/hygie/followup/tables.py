"""Tables of remote follow-up (SQLAlchemy Core, in the platform's shared metadata).

Clinical facts (Questionnaire, QuestionnaireResponse, Observation, Flag, Consent) live
in the FHIR store; these tables hold what runs the conversations, so that a restart
loses nothing and repeats nothing:

- ``followup_protocol``: each protocol's definition (its Questionnaire, schedule,
  thresholds and delays), as last saved.
- ``followup_enrollment``: one row per patient followed; ``next_due_ms`` is the timer
  of the next session and ``end_ms`` the end of the follow-up.
- ``followup_session``: one row per session asked; ``position`` and ``attempt`` say
  which question waits for its answer, ``timer_ms`` when the session's next reminder,
  missing-answer alert or closing is due.
- ``followup_answer``: every answer taken, keyed by the channels answer id (an answer
  handed over twice after a crash is processed once).
- ``followup_alert`` and ``followup_alert_event``: alerts, their escalation timer and
  their history (raised, notified, escalated, acknowledged, called, resolved).
- ``followup_projection``: FHIR resources written in the same transaction as the
  state they describe, waiting to be put in the store (in batches).
- ``followup_cursor``: where the scan of home-device readings stands.

Times are UTC milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
)

from hygie.store.schema import metadata

_pk_int = BigInteger().with_variant(Integer, "sqlite")

protocol = Table(
    "followup_protocol",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("updated_by", String(128), nullable=True),
)

enrollment = Table(
    "followup_enrollment",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("patient_name", String(200), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("language", String(8), nullable=False),
    Column("protocol_id", String(64), nullable=False),
    Column("start_date", String(10), nullable=False),
    Column("end_date", String(10), nullable=False),
    Column("status", String(12), nullable=False),
    Column("consent_id", String(64), nullable=False),
    Column("team_id", String(64), nullable=True),
    Column("hospital", String(64), nullable=True),
    Column("overrides", JSON, nullable=True),
    Column("next_due_ms", BigInteger, nullable=True),
    Column("end_ms", BigInteger, nullable=False),
    Column("current_session", String(64), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("created_by", String(128), nullable=True),
    Column("ended_ms", BigInteger, nullable=True),
    Column("end_reason", String(300), nullable=True),
    Index("ix_followup_enrollment_due", "status", "next_due_ms"),
    Index("ix_followup_enrollment_end", "status", "end_ms"),
    Index("ix_followup_enrollment_patient", "patient_id"),
    Index("ix_followup_enrollment_phone", "phone", "status"),
)

session = Table(
    "followup_session",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("enrollment_id", String(40), nullable=False),
    Column("due_ms", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),
    Column("position", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("reminded", Boolean, nullable=False),
    Column("missing_alerted", Boolean, nullable=False, server_default=false()),
    Column("message_id", String(32), nullable=True),
    Column("asked_ms", BigInteger, nullable=True),
    Column("timer_ms", BigInteger, nullable=True),
    Column("timer_kind", String(12), nullable=True),
    Column("answers", JSON, nullable=False),
    Column("level", Integer, nullable=False),
    Column("late", Boolean, nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    Column("completed_ms", BigInteger, nullable=True),
    Column("rev", Integer, nullable=False),
    Index("ix_followup_session_timer", "status", "timer_ms"),
    Index("ix_followup_session_enrollment", "enrollment_id", "due_ms"),
)

answer = Table(
    "followup_answer",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("enrollment_id", String(40), nullable=False),
    Column("session_id", String(64), nullable=True),
    Column("link_id", String(64), nullable=True),
    Column("text", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Index("ix_followup_answer_enrollment", "enrollment_id", "received_ms"),
)

alert = Table(
    "followup_alert",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("enrollment_id", String(40), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("session_id", String(64), nullable=True),
    Column("hospital", String(64), nullable=True),
    Column("kind", String(12), nullable=False),
    Column("level", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("status", String(12), nullable=False),
    Column("raised_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("escalate_at_ms", BigInteger, nullable=True),
    Column("escalations", Integer, nullable=False),
    Column("acknowledged_ms", BigInteger, nullable=True),
    Column("acknowledged_by", String(128), nullable=True),
    Column("resolved_ms", BigInteger, nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Column("comment", Text, nullable=True),
    Index("ix_followup_alert_escalation", "status", "escalate_at_ms"),
    Index("ix_followup_alert_board", "status", "level", "raised_ms"),
    Index("ix_followup_alert_enrollment", "enrollment_id", "raised_ms"),
)

alert_event = Table(
    "followup_alert_event",
    metadata,
    Column("id", _pk_int, primary_key=True, autoincrement=True),
    Column("alert_id", String(80), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("actor", String(128), nullable=True),
    Column("detail", String(500), nullable=True),
    Index("ix_followup_alert_event_alert", "alert_id", "id"),
)

projection = Table(
    "followup_projection",
    metadata,
    Column("seq", _pk_int, primary_key=True, autoincrement=True),
    Column("res_type", String(40), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

cursor = Table(
    "followup_cursor",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: Messages decided in a follow-up transaction and not yet handed to the channels
#: outbox (``state`` pending), then ``handed``. The key is the channels idempotency key
#: (``channels.get_by_key`` finds the message), so a hand-over repeated after a crash
#: sends nothing twice.
outgoing = Table(
    "followup_outgoing",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("enrollment_id", String(40), nullable=True),
    Column("owner", String(80), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("text", Text, nullable=False),
    Column("subject", String(200), nullable=True),
    Column("about", String(80), nullable=True),
    Column("recipient_ref", String(80), nullable=True),
    Column("awaits", Boolean, nullable=False),
    Column("state", String(10), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_followup_outgoing_state", "state", "created_ms"),
    Index("ix_followup_outgoing_enrollment", "enrollment_id", "state"),
)
