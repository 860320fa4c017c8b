"""task inbox: claims, delegation, out-of-office deputies, reminder digests

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23

Tasks already carried candidate roles, assignee, due and follow-up dates, priority, status and their
record; this adds who claimed or delegated a task and why, the person a deputy stands in for, the
out-of-office periods (``task_absences``) and the digests sent (``task_digests``, one per person per
period).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("delegated_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("delegation_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("deputy_for", sa.String(length=64), nullable=True))

    op.create_table(
        "task_absences",
        sa.Column("id", _ID, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("deputy", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_task_absences_period")),
        sa.CheckConstraint("deputy <> username", name=op.f("ck_task_absences_not_self")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_absences")),
    )
    with op.batch_alter_table("task_absences", schema=None) as batch_op:
        batch_op.create_index("ix_task_absences_user", ["username", "ends_at"], unique=False)
        batch_op.create_index("ix_task_absences_deputy", ["deputy", "ends_at"], unique=False)

    op.create_table(
        "task_digests",
        sa.Column("id", _ID, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("task_ids", sa.JSON(), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_digests")),
        sa.UniqueConstraint("username", "period_start", name=op.f("uq_task_digests_username_period_start")),
    )


def downgrade() -> None:
    op.drop_table("task_digests")
    with op.batch_alter_table("task_absences", schema=None) as batch_op:
        batch_op.drop_index("ix_task_absences_deputy")
        batch_op.drop_index("ix_task_absences_user")
    op.drop_table("task_absences")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("deputy_for")
        batch_op.drop_column("delegation_reason")
        batch_op.drop_column("delegated_by")
        batch_op.drop_column("claimed_at")
