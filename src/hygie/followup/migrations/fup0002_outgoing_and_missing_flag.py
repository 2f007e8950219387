"""follow-up: outgoing messages awaiting hand-over, missing-answer flag of a session

Revision ID: fup0002
Revises: fup0001
Create Date: 2026-11-24 09:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fup0002"
down_revision: str | Sequence[str] | None = "fup0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "followup_outgoing",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("enrollment_id", sa.String(length=40), nullable=True),
        sa.Column("owner", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("about", sa.String(length=80), nullable=True),
        sa.Column("recipient_ref", sa.String(length=80), nullable=True),
        sa.Column("awaits", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_followup_outgoing")),
    )
    with op.batch_alter_table("followup_outgoing", schema=None) as batch_op:
        batch_op.create_index(
            "ix_followup_outgoing_enrollment", ["enrollment_id", "state"], unique=False
        )
        batch_op.create_index("ix_followup_outgoing_state", ["state", "created_ms"], unique=False)
    with op.batch_alter_table("followup_session", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("missing_alerted", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("followup_session", schema=None) as batch_op:
        batch_op.drop_column("missing_alerted")
    with op.batch_alter_table("followup_outgoing", schema=None) as batch_op:
        batch_op.drop_index("ix_followup_outgoing_state")
        batch_op.drop_index("ix_followup_outgoing_enrollment")
    op.drop_table("followup_outgoing")
