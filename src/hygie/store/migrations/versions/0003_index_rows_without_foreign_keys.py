"""index rows without foreign keys

The ``idx_*`` tables lose their foreign key to ``resource.pk``. Their rows are written
only by the repository, with the pk of the resource row it writes in the same
transaction, and a resource row is never removed (a delete keeps it, marked), so the
key checked nothing that could happen; checking it cost PostgreSQL a trigger call per
index row, about 20 per resource and a third of the database's time in a bulk write.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "idx_string",
    "idx_token",
    "idx_date",
    "idx_number",
    "idx_quantity",
    "idx_reference",
    "idx_uri",
)


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"fk_{table}_res_pk_resource"), type_="foreignkey")


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                op.f(f"fk_{table}_res_pk_resource"),
                "resource",
                ["res_pk"],
                ["pk"],
                ondelete="CASCADE",
            )
