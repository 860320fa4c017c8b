"""delivery receipts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "delivery_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider_id", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_receipts")),
    )
    with op.batch_alter_table("delivery_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_receipts_pending", ["provider_id", "applied"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("delivery_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_receipts_pending")

    op.drop_table("delivery_receipts")
