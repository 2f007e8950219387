"""channels tables

Revision ID: chn0001
Revises: 0001
Create Date: 2026-11-24 07:20:59.162332
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "chn0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("channels",)
depends_on: str | Sequence[str] | None = "0001"


def upgrade() -> None:
    op.create_table(
        "channels_conversation",
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "address", name=op.f("pk_channels_conversation")),
    )
    op.create_table(
        "channels_inbound",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("handled", sa.Boolean(), nullable=False),
        sa.Column("handled_ms", sa.BigInteger(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels_inbound")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_channels_inbound_dedupe_key")),
    )
    with op.batch_alter_table("channels_inbound", schema=None) as batch_op:
        batch_op.create_index(
            "ix_channels_inbound_pending", ["handled", "received_ms"], unique=False
        )
        batch_op.create_index("ix_channels_inbound_received", ["received_ms"], unique=False)
    op.create_table(
        "channels_message",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("expected_answers", sa.JSON(), nullable=True),
        sa.Column("about", sa.String(length=128), nullable=True),
        sa.Column("recipient_ref", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=True),
        sa.Column("lease_ms", sa.BigInteger(), nullable=True),
        sa.Column("worker", sa.String(length=64), nullable=True),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.String(length=200), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("fhir_status", sa.String(length=12), nullable=True),
        sa.Column("fhir_request_id", sa.String(length=64), nullable=True),
        sa.Column("fhir_communication_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels_message")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_channels_message_idempotency_key")),
    )
    with op.batch_alter_table("channels_message", schema=None) as batch_op:
        batch_op.create_index("ix_channels_message_owner", ["owner", "created_ms"], unique=False)
        batch_op.create_index(
            "ix_channels_message_queue", ["status", "next_attempt_ms"], unique=False
        )
        batch_op.create_index(
            "ix_channels_message_recipient", ["recipient", "created_ms"], unique=False
        )
        batch_op.create_index("ix_channels_message_updated", ["updated_ms"], unique=False)
    op.create_table(
        "channels_mo_part",
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("ref", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sender", "ref", "seq", name=op.f("pk_channels_mo_part")),
    )
    op.create_table(
        "channels_optout",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("keyword", sa.String(length=32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_channels_optout")),
    )
    op.create_table(
        "channels_receipt",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("smsc_id", sa.String(length=80), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("error", sa.String(length=80), nullable=True),
        sa.Column("user_ref", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels_receipt")),
    )
    with op.batch_alter_table("channels_receipt", schema=None) as batch_op:
        batch_op.create_index("ix_channels_receipt_doubt", ["recipient", "user_ref"], unique=False)
        batch_op.create_index("ix_channels_receipt_pending", ["applied", "id"], unique=False)
        batch_op.create_index("ix_channels_receipt_smsc", ["smsc_id"], unique=False)
    op.create_table(
        "channels_secret",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_channels_secret")),
    )
    op.create_table(
        "channels_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["channels_message.id"],
            name=op.f("fk_channels_event_message_id_channels_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels_event")),
    )
    with op.batch_alter_table("channels_event", schema=None) as batch_op:
        batch_op.create_index("ix_channels_event_message", ["message_id", "id"], unique=False)
    op.create_table(
        "channels_sms_part",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("smsc_id", sa.String(length=80), nullable=True),
        sa.Column("user_ref", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["channels_message.id"],
            name=op.f("fk_channels_sms_part_message_id_channels_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "part", name=op.f("pk_channels_sms_part")),
    )
    with op.batch_alter_table("channels_sms_part", schema=None) as batch_op:
        batch_op.create_index(
            "ix_channels_sms_part_doubt", ["status", "recipient", "user_ref"], unique=False
        )
        batch_op.create_index("ix_channels_sms_part_smsc", ["smsc_id"], unique=False)


def downgrade() -> None:
    op.drop_table("channels_sms_part")
    op.drop_table("channels_event")
    op.drop_table("channels_secret")
    op.drop_table("channels_receipt")
    op.drop_table("channels_optout")
    op.drop_table("channels_mo_part")
    op.drop_table("channels_message")
    op.drop_table("channels_inbound")
    op.drop_table("channels_conversation")
