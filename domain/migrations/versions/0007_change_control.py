"""change control: change requests, affected products, impact, approvals, tasks; controlled documents

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

Only the change-control tables (domain/changes/models.py); written by hand from Alembic's
autogenerate output against a store at the previous head.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(*values: str, name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    op.create_table(
        "change_requests",
        sa.Column("id", ID, nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column(
            "kind",
            _enum("design", "process", "supplier", "labelling", "document", name="changekind"),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "status",
            _enum(
                "impact_assessment",
                "awaiting_approval",
                "returned",
                "implementing",
                "verifying",
                "awaiting_effective",
                "closed",
                "withdrawn",
                name="changestatus",
            ),
            nullable=False,
        ),
        sa.Column("initiated_by", sa.String(length=64), nullable=False),
        sa.Column("initiated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocks_release", sa.Boolean(), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=True),
        sa.Column("became_effective_on", sa.Date(), nullable=True),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("returned_reasons", sa.JSON(), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closure_note", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_change_requests_reference")),
    )
    op.create_index(op.f("ix_change_requests_status"), "change_requests", ["status"], unique=False)

    op.create_table(
        "documents",
        sa.Column("id", ID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("code", name=op.f("uq_documents_code")),
    )

    op.create_table(
        "change_approvals",
        sa.Column("id", ID, nullable=False),
        sa.Column("change_id", ID, nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column(
            "requirement", _enum("required", "optional", "comment_only", name="requirement"), nullable=False
        ),
        sa.Column("task_id", ID, nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("printed_name", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("signature_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["change_id"], ["change_requests.id"], name=op.f("fk_change_approvals_change_id_change_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_approvals")),
        sa.UniqueConstraint(
            "change_id", "round", "role", name=op.f("uq_change_approvals_change_id_round_role")
        ),
        sa.UniqueConstraint("task_id", name=op.f("uq_change_approvals_task_id")),
    )
    op.create_index(op.f("ix_change_approvals_change_id"), "change_approvals", ["change_id"], unique=False)

    op.create_table(
        "change_impacts",
        sa.Column("change_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("lots_in_stock", sa.Integer(), nullable=False),
        sa.Column("units_on_hand", sa.BigInteger(), nullable=False),
        sa.Column("lots_delivered", sa.Integer(), nullable=False),
        sa.Column("units_delivered", sa.BigInteger(), nullable=False),
        sa.Column("consignees", sa.Integer(), nullable=False),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("risk_assessment", sa.Text(), nullable=True),
        sa.Column("risk_rating", _enum("low", "medium", "high", name="riskrating"), nullable=True),
        sa.Column("assessed_by", sa.String(length=64), nullable=True),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["change_id"], ["change_requests.id"], name=op.f("fk_change_impacts_change_id_change_requests")
        ),
        sa.PrimaryKeyConstraint("change_id", name=op.f("pk_change_impacts")),
    )

    op.create_table(
        "change_products",
        sa.Column("change_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["change_id"], ["change_requests.id"], name=op.f("fk_change_products_change_id_change_requests")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_change_products_product_id_products")
        ),
        sa.PrimaryKeyConstraint("change_id", "product_id", name=op.f("pk_change_products")),
    )
    op.create_index(
        "ix_change_products_product", "change_products", ["product_id", "change_id"], unique=False
    )

    op.create_table(
        "change_tasks",
        sa.Column("id", ID, nullable=False),
        sa.Column("change_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status", _enum("planned", "open", "done", "cancelled", name="changetaskstatus"), nullable=False
        ),
        sa.Column("inbox_task_id", ID, nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("overdue_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["change_id"], ["change_requests.id"], name=op.f("fk_change_tasks_change_id_change_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_tasks")),
        sa.UniqueConstraint("change_id", "seq", name=op.f("uq_change_tasks_change_id_seq")),
    )
    op.create_index(op.f("ix_change_tasks_change_id"), "change_tasks", ["change_id"], unique=False)

    op.create_table(
        "document_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("document_id", ID, nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            _enum("draft", "effective", "superseded", "withdrawn", name="documentstatus"),
            nullable=False,
        ),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("change_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "effective_to IS NULL OR (effective_from IS NOT NULL AND effective_to >= effective_from)",
            name=op.f("ck_document_versions_effective_period"),
        ),
        sa.ForeignKeyConstraint(
            ["change_id"], ["change_requests.id"], name=op.f("fk_document_versions_change_id_change_requests")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_document_versions_document_id_documents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_versions")),
        sa.UniqueConstraint("document_id", "version", name=op.f("uq_document_versions_document_id_version")),
    )
    op.create_index(op.f("ix_document_versions_change_id"), "document_versions", ["change_id"], unique=False)
    op.create_index(
        "ix_document_versions_in_force", "document_versions", ["document_id", "effective_from"], unique=False
    )

    op.create_table(
        "change_impact_lots",
        sa.Column("change_id", ID, nullable=False),
        sa.Column("lot_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("blocked", sa.BigInteger(), nullable=False),
        sa.Column("shipped", sa.BigInteger(), nullable=False),
        sa.Column("consignees", sa.Integer(), nullable=False),
        sa.Column("first_shipped_on", sa.Date(), nullable=True),
        sa.Column("last_shipped_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["change_requests.id"],
            name=op.f("fk_change_impact_lots_change_id_change_requests"),
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_change_impact_lots_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_change_impact_lots_product_id_products")
        ),
        sa.PrimaryKeyConstraint("change_id", "lot_id", name=op.f("pk_change_impact_lots")),
    )


def downgrade() -> None:
    op.drop_table("change_impact_lots")
    op.drop_index("ix_document_versions_in_force", table_name="document_versions")
    op.drop_index(op.f("ix_document_versions_change_id"), table_name="document_versions")
    op.drop_table("document_versions")
    op.drop_index(op.f("ix_change_tasks_change_id"), table_name="change_tasks")
    op.drop_table("change_tasks")
    op.drop_index("ix_change_products_product", table_name="change_products")
    op.drop_table("change_products")
    op.drop_table("change_impacts")
    op.drop_index(op.f("ix_change_approvals_change_id"), table_name="change_approvals")
    op.drop_table("change_approvals")
    op.drop_table("documents")
    op.drop_index(op.f("ix_change_requests_status"), table_name="change_requests")
    op.drop_table("change_requests")
