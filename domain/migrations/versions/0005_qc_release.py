"""QC lot release: inspection plans, inspections, results, dispositions, nonconformances

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inspection_plans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_inspection_plans_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_plans")),
        sa.UniqueConstraint("product_id", "version", name=op.f("uq_inspection_plans_product_id_version")),
    )
    with op.batch_alter_table("inspection_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inspection_plans_product_id"), ["product_id"], unique=False)

    op.create_table(
        "inspection_characteristics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("numeric", "pass_fail", name="characteristickind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "sample_size >= 1", name=op.f("ck_inspection_characteristics_sample_size_positive")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["inspection_plans.id"],
            name=op.f("fk_inspection_characteristics_plan_id_inspection_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_characteristics")),
        sa.UniqueConstraint("plan_id", "name", name=op.f("uq_inspection_characteristics_plan_id_name")),
    )
    with op.batch_alter_table("inspection_characteristics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inspection_characteristics_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "inspections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "awaiting_results",
                "awaiting_release",
                "awaiting_concession",
                "released",
                "rejected",
                name="inspectionstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("initiated_by", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_inspections_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["inspection_plans.id"], name=op.f("fk_inspections_plan_id_inspection_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspections")),
    )
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.create_index("ix_inspections_lot_status", ["lot_id", "status"], unique=False)

    op.create_table(
        "inspection_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("inspection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("characteristic_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(value IS NULL) <> (passed IS NULL)", name=op.f("ck_inspection_results_value_or_passed")
        ),
        sa.ForeignKeyConstraint(
            ["characteristic_id"],
            ["inspection_characteristics.id"],
            name=op.f("fk_inspection_results_characteristic_id_inspection_characteristics"),
        ),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            name=op.f("fk_inspection_results_inspection_id_inspections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_results")),
    )
    with op.batch_alter_table("inspection_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inspection_results_inspection", ["inspection_id", "characteristic_id"], unique=False
        )

    op.create_table(
        "lot_dispositions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("inspection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "released", "concession", "rejected", name="dispositionoutcome", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("unrestricted", sa.BigInteger(), nullable=False),
        sa.Column("blocked", sa.BigInteger(), nullable=False),
        sa.Column("scrap", sa.BigInteger(), nullable=False),
        sa.Column("sample", sa.BigInteger(), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "approval_signature_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "unrestricted >= 0 AND blocked >= 0 AND scrap >= 0 AND sample >= 0",
            name=op.f("ck_lot_dispositions_quantities_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["approval_signature_id"],
            ["signatures.id"],
            name=op.f("fk_lot_dispositions_approval_signature_id_signatures"),
        ),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], name=op.f("fk_lot_dispositions_inspection_id_inspections")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_lot_dispositions_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["signature_id"], ["signatures.id"], name=op.f("fk_lot_dispositions_signature_id_signatures")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_dispositions")),
        sa.UniqueConstraint("inspection_id", name=op.f("uq_lot_dispositions_inspection_id")),
    )
    with op.batch_alter_table("lot_dispositions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lot_dispositions_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "nonconformances",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("inspection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "closed", name="nonconformancestatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "disposition",
            sa.Enum(
                "released", "concession", "rejected", name="dispositionoutcome", native_enum=False, length=32
            ),
            nullable=True,
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("capa_requested", sa.Boolean(), nullable=False),
        sa.Column("capa_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], name=op.f("fk_nonconformances_inspection_id_inspections")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_nonconformances_lot_id_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nonconformances")),
    )
    with op.batch_alter_table("nonconformances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nonconformances_lot_id"), ["lot_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nonconformances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nonconformances_lot_id"))

    op.drop_table("nonconformances")
    with op.batch_alter_table("lot_dispositions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lot_dispositions_lot_id"))

    op.drop_table("lot_dispositions")
    with op.batch_alter_table("inspection_results", schema=None) as batch_op:
        batch_op.drop_index("ix_inspection_results_inspection")

    op.drop_table("inspection_results")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_index("ix_inspections_lot_status")

    op.drop_table("inspections")
    with op.batch_alter_table("inspection_characteristics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspection_characteristics_plan_id"))

    op.drop_table("inspection_characteristics")
    with op.batch_alter_table("inspection_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspection_plans_product_id"))

    op.drop_table("inspection_plans")
