"""devices tables

Revision ID: dev0001
Revises: 0001
Create Date: 2026-11-24 07:02:51.022557
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dev0001"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("devices",)
depends_on: str | Sequence[str] | None = "0001"


def upgrade() -> None:
    op.create_table(
        "devices_bed",
        sa.Column("bed_key", sa.String(length=300), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=100), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bed_key", name=op.f("pk_devices_bed")),
    )
    op.create_table(
        "devices_bed_value",
        sa.Column("bed_key", sa.String(length=300), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=False),
        sa.Column("abnormal", sa.Boolean(), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("bed_key", "metric", name=op.f("pk_devices_bed_value")),
    )
    op.create_table(
        "devices_message",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=400), nullable=False),
        sa.Column("control_id", sa.String(length=200), nullable=False),
        sa.Column("codec", sa.String(length=40), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.BigInteger(), nullable=True),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices_message")),
        sa.UniqueConstraint("sender", "control_id", name="uq_devices_message_sender_control"),
    )
    with op.batch_alter_table("devices_message", schema=None) as batch_op:
        batch_op.create_index("ix_devices_message_status_id", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("devices_message", schema=None) as batch_op:
        batch_op.drop_index("ix_devices_message_status_id")

    op.drop_table("devices_message")
    op.drop_table("devices_bed_value")
    op.drop_table("devices_bed")
