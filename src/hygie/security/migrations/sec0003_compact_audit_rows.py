"""audit: a FHIR interaction's record kept as its facts, one column each

Revision ID: sec0003
Revises: sec0002
Create Date: 2026-12-01 10:00:00

Rows written before keep their AuditEvent JSON in ``event`` and their hash; the new
columns stay NULL on them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sec0003"
down_revision: str | Sequence[str] | None = "sec0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FACTS = (
    ("verb", sa.String(length=1)),
    ("who", sa.String(length=200)),
    ("client", sa.String(length=64)),
    ("roles", sa.String(length=200)),
    ("address", sa.String(length=64)),
    ("entity", sa.Text()),
    ("query", sa.Text()),
    ("patient", sa.String(length=64)),
    ("detail", sa.Text()),
    ("purpose", sa.String(length=8)),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("event", existing_type=sa.LargeBinary(), nullable=True)
        for name, type_ in _FACTS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.create_index("ix_audit_log_patient", ["patient", "seq"], unique=False,
                              sqlite_where=sa.text("patient IS NOT NULL"),
                              postgresql_where=sa.text("patient IS NOT NULL"))


def downgrade() -> None:
    compact = op.get_bind().execute(
        sa.text("SELECT count(*) FROM audit_log WHERE event IS NULL")).scalar_one()
    if compact:
        # their hash covers the facts, not a JSON the old code could check
        raise RuntimeError(f"{compact} audit records are kept as facts: the trail cannot "
                           "go back to the previous schema and still verify")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_patient",
                            sqlite_where=sa.text("patient IS NOT NULL"),
                            postgresql_where=sa.text("patient IS NOT NULL"))
        for name, _type in reversed(_FACTS):
            batch_op.drop_column(name)
        batch_op.alter_column("event", existing_type=sa.LargeBinary(), nullable=False)
