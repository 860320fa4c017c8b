"""workflow starts: the outbox that makes a recorded process always get its workflow

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow_starts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workflow_type", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_starts")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_workflow_starts_workflow_id")),
    )
    # The starter looks only at what is still pending.
    op.create_index(
        "ix_workflow_starts_pending",
        "workflow_starts",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("started_at IS NULL"),
        sqlite_where=sa.text("started_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_starts_pending", table_name="workflow_starts")
    op.drop_table("workflow_starts")
