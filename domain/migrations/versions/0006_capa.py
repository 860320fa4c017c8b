"""capa: CAPA records and their actions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "capas",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "recall",
                "nonconformance",
                "complaint",
                "audit_finding",
                name="capasource",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source_reference", sa.String(length=64), nullable=False),
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "investigation",
                "plan_approval",
                "implementation",
                "effectiveness_pending",
                "effectiveness_check",
                "closure_approval",
                "closed",
                name="capastatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("initiated_by", sa.String(length=64), nullable=False),
        sa.Column("initiated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column(
            "investigation_method",
            sa.Enum(
                "5-why",
                "fishbone",
                "fault-tree",
                "other",
                name="investigationmethod",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("root_causes", sa.JSON(), nullable=False),
        sa.Column("investigation_summary", sa.Text(), nullable=True),
        sa.Column("investigation_cycle", sa.Integer(), nullable=False),
        sa.Column("investigated_by", sa.String(length=64), nullable=True),
        sa.Column("investigated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("plan_submitted_by", sa.String(length=64), nullable=True),
        sa.Column("plan_submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_rejection_reason", sa.Text(), nullable=True),
        sa.Column("effectiveness_criteria", sa.Text(), nullable=True),
        sa.Column("effectiveness_period_days", sa.Integer(), nullable=True),
        sa.Column("effectiveness_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "effectiveness_result",
            sa.Enum("effective", "ineffective", name="effectivenessresult", native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column("effectiveness_summary", sa.Text(), nullable=True),
        sa.Column("effectiveness_checked_by", sa.String(length=64), nullable=True),
        sa.Column("effectiveness_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("effectiveness_history", sa.JSON(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("workflow_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["recall_id"], ["recalls.id"], name=op.f("fk_capas_recall_id_recalls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_capas")),
        sa.UniqueConstraint("reference", name=op.f("uq_capas_reference")),
    )
    op.create_index(op.f("ix_capas_owner"), "capas", ["owner"], unique=False)
    op.create_index(op.f("ix_capas_recall_id"), "capas", ["recall_id"], unique=False)
    op.create_index("ix_capas_status", "capas", ["status"], unique=False)
    op.create_table(
        "capa_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("capa_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("corrective", "preventive", name="actionkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "proposed",
                "open",
                "completed",
                "withdrawn",
                name="actionstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=64), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("escalation_step", sa.Integer(), nullable=False),
        sa.Column("last_nudged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["capa_id"], ["capas.id"], name=op.f("fk_capa_actions_capa_id_capas")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_capa_actions")),
    )
    op.create_index("ix_capa_actions_capa_status", "capa_actions", ["capa_id", "status"], unique=False)
    op.create_index(op.f("ix_capa_actions_owner"), "capa_actions", ["owner"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_capa_actions_owner"), table_name="capa_actions")
    op.drop_index("ix_capa_actions_capa_status", table_name="capa_actions")
    op.drop_table("capa_actions")
    op.drop_index("ix_capas_status", table_name="capas")
    op.drop_index(op.f("ix_capas_recall_id"), table_name="capas")
    op.drop_index(op.f("ix_capas_owner"), table_name="capas")
    op.drop_table("capas")
