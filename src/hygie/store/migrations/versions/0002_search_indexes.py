"""search indexes end with res_pk

The search indexes of the idx_* tables end with ``res_pk``, so that a search reads
the matching resources from the index alone and in ``pk`` order (a page of a common
code stops after its first rows instead of collecting them all), and idx_date gains
one led by ``res_pk`` to walk a wide date range in ``pk`` order. See
store/search/compile.py.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_idx_string_res_type_param_value"), table_name="idx_string")
    op.create_index(
        op.f("ix_idx_string_res_type_param_value_res_pk"),
        "idx_string",
        ["res_type", "param", "value", "res_pk"],
    )
    op.drop_index(op.f("ix_idx_token_res_type_param_code_system"), table_name="idx_token")
    op.create_index(
        op.f("ix_idx_token_res_type_param_code_res_pk_system"),
        "idx_token",
        ["res_type", "param", "code", "res_pk", "system"],
    )
    op.drop_index(op.f("ix_idx_date_res_type_param_low"), table_name="idx_date")
    op.drop_index(op.f("ix_idx_date_res_type_param_high"), table_name="idx_date")
    op.create_index(
        op.f("ix_idx_date_res_type_param_low_high_res_pk"),
        "idx_date",
        ["res_type", "param", "low", "high", "res_pk"],
    )
    op.create_index(
        op.f("ix_idx_date_res_type_param_high_low_res_pk"),
        "idx_date",
        ["res_type", "param", "high", "low", "res_pk"],
    )
    op.create_index(
        op.f("ix_idx_date_res_type_param_res_pk_low_high"),
        "idx_date",
        ["res_type", "param", "res_pk", "low", "high"],
    )
    op.drop_index(op.f("ix_idx_number_res_type_param_low"), table_name="idx_number")
    op.create_index(
        op.f("ix_idx_number_res_type_param_low_high_res_pk"),
        "idx_number",
        ["res_type", "param", "low", "high", "res_pk"],
    )
    op.drop_index(op.f("ix_idx_quantity_res_type_param_code_low"), table_name="idx_quantity")
    op.create_index(
        op.f("ix_idx_quantity_res_type_param_code_low_high_res_pk"),
        "idx_quantity",
        ["res_type", "param", "code", "low", "high", "res_pk"],
    )
    op.drop_index(
        op.f("ix_idx_reference_res_type_param_target_id_target_type"), table_name="idx_reference"
    )
    op.create_index(
        op.f("ix_idx_reference_res_type_param_target_id_target_type_res_pk"),
        "idx_reference",
        ["res_type", "param", "target_id", "target_type", "res_pk"],
    )
    op.drop_index(op.f("ix_idx_uri_res_type_param_value"), table_name="idx_uri")
    op.create_index(
        op.f("ix_idx_uri_res_type_param_value_res_pk"),
        "idx_uri",
        ["res_type", "param", "value", "res_pk"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_idx_string_res_type_param_value_res_pk"), table_name="idx_string")
    op.create_index(
        op.f("ix_idx_string_res_type_param_value"), "idx_string", ["res_type", "param", "value"]
    )
    op.drop_index(op.f("ix_idx_token_res_type_param_code_res_pk_system"), table_name="idx_token")
    op.create_index(
        op.f("ix_idx_token_res_type_param_code_system"),
        "idx_token",
        ["res_type", "param", "code", "system"],
    )
    op.drop_index(op.f("ix_idx_date_res_type_param_low_high_res_pk"), table_name="idx_date")
    op.drop_index(op.f("ix_idx_date_res_type_param_high_low_res_pk"), table_name="idx_date")
    op.drop_index(op.f("ix_idx_date_res_type_param_res_pk_low_high"), table_name="idx_date")
    op.create_index(
        op.f("ix_idx_date_res_type_param_low"), "idx_date", ["res_type", "param", "low"]
    )
    op.create_index(
        op.f("ix_idx_date_res_type_param_high"), "idx_date", ["res_type", "param", "high"]
    )
    op.drop_index(op.f("ix_idx_number_res_type_param_low_high_res_pk"), table_name="idx_number")
    op.create_index(
        op.f("ix_idx_number_res_type_param_low"), "idx_number", ["res_type", "param", "low"]
    )
    op.drop_index(
        op.f("ix_idx_quantity_res_type_param_code_low_high_res_pk"), table_name="idx_quantity"
    )
    op.create_index(
        op.f("ix_idx_quantity_res_type_param_code_low"),
        "idx_quantity",
        ["res_type", "param", "code", "low"],
    )
    op.drop_index(
        op.f("ix_idx_reference_res_type_param_target_id_target_type_res_pk"),
        table_name="idx_reference",
    )
    op.create_index(
        op.f("ix_idx_reference_res_type_param_target_id_target_type"),
        "idx_reference",
        ["res_type", "param", "target_id", "target_type"],
    )
    op.drop_index(op.f("ix_idx_uri_res_type_param_value_res_pk"), table_name="idx_uri")
    op.create_index(
        op.f("ix_idx_uri_res_type_param_value"), "idx_uri", ["res_type", "param", "value"]
    )
