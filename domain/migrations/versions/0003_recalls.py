"""recalls tasks signatures

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "recalls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "awaiting_approval",
                "rejected",
                "awaiting_fsca_report",
                "notifying",
                "in_progress",
                "completed",
                "closed",
                "cancelled",
                name="recallstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("hazard", sa.Text(), nullable=False),
        sa.Column("nmpa_level", sa.Integer(), nullable=True),
        sa.Column("fda_class_proposed", sa.String(length=3), nullable=True),
        sa.Column("fda_class_assigned", sa.String(length=3), nullable=True),
        sa.Column("jurisdictions", sa.JSON(), nullable=False),
        sa.Column("depth", sa.String(length=16), nullable=False),
        sa.Column("required_actions", sa.JSON(), nullable=False),
        sa.Column("initiated_by", sa.String(length=64), nullable=False),
        sa.Column("initiated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("coordinator", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notify_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notification_completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadlines", sa.JSON(), nullable=False),
        sa.Column("scope_version", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closure_justification", sa.Text(), nullable=True),
        sa.Column("last_signalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recalls")),
        sa.UniqueConstraint("reference", name=op.f("uq_recalls_reference")),
    )
    op.create_table(
        "signatures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("signer", sa.String(length=64), nullable=False),
        sa.Column("printed_name", sa.String(length=255), nullable=False),
        sa.Column(
            "meaning",
            sa.Enum(
                "authored",
                "reviewed",
                "approved",
                "released",
                "rejected",
                "closed",
                "cancelled",
                "overridden",
                name="signaturemeaning",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_type", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("auth_method", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signatures")),
        sa.UniqueConstraint("task_id", name=op.f("uq_signatures_task_id")),
    )
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.create_index("ix_signatures_record", ["record_type", "record_id"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("business_key", sa.String(length=128), nullable=False),
        sa.Column("process", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("record_type", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("candidate_roles", sa.JSON(), nullable=False),
        sa.Column("excluded_users", sa.JSON(), nullable=False),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "open", "completed", "rejected", "cancelled", name="taskstatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("follow_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("workflow_id", sa.String(length=128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("escalated_to", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("business_key", name=op.f("uq_tasks_business_key")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_assignee"), ["assignee"], unique=False)
        batch_op.create_index("ix_tasks_record", ["record_type", "record_id"], unique=False)
        batch_op.create_index("ix_tasks_status_due", ["status", "due_at"], unique=False)

    op.create_table(
        "notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("consignee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "channel", sa.Enum("email", "sms", name="channel", native_enum=False, length=32), nullable=False
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "planned",
                "sending",
                "sent",
                "failed",
                "delivered",
                "opened",
                "acknowledged",
                name="noticestate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consignee_id"], ["consignees.id"], name=op.f("fk_notices_consignee_id_consignees")
        ),
        sa.ForeignKeyConstraint(["recall_id"], ["recalls.id"], name=op.f("fk_notices_recall_id_recalls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint(
            "recall_id",
            "consignee_id",
            "channel",
            "attempt",
            name=op.f("uq_notices_recall_id_consignee_id_channel_attempt"),
        ),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index("ix_notices_provider", ["provider_id"], unique=False)

    op.create_table(
        "recall_consignees",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("consignee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "planned",
                "sent",
                "delivered",
                "opened",
                "acknowledged",
                "unreachable",
                name="consigneestate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reply_code", sa.String(length=8), nullable=False),
        sa.Column("units_shipped", sa.BigInteger(), nullable=False),
        sa.Column("first_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("last_attempt", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consignee_id"], ["consignees.id"], name=op.f("fk_recall_consignees_consignee_id_consignees")
        ),
        sa.ForeignKeyConstraint(
            ["recall_id"], ["recalls.id"], name=op.f("fk_recall_consignees_recall_id_recalls")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_consignees")),
        sa.UniqueConstraint(
            "recall_id", "consignee_id", name=op.f("uq_recall_consignees_recall_id_consignee_id")
        ),
        sa.UniqueConstraint(
            "recall_id", "reply_code", name=op.f("uq_recall_consignees_recall_id_reply_code")
        ),
    )
    with op.batch_alter_table("recall_consignees", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recall_consignees_consignee_id"), ["consignee_id"], unique=False)
        batch_op.create_index("ix_recall_consignees_state", ["recall_id", "state"], unique=False)

    op.create_table(
        "recall_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("mailed_to", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recall_id"], ["recalls.id"], name=op.f("fk_recall_reports_recall_id_recalls")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_reports")),
        sa.UniqueConstraint(
            "recall_id", "kind", "sequence", name=op.f("uq_recall_reports_recall_id_kind_sequence")
        ),
    )
    op.create_table(
        "responses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("consignee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_and_understood", sa.Boolean(), nullable=False),
        sa.Column("actions_completed", sa.Boolean(), nullable=False),
        sa.Column("forwarded_to_sub_accounts", sa.Boolean(), nullable=False),
        sa.Column("no_affected_stock", sa.Boolean(), nullable=False),
        sa.Column("quantities_reported", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("role", sa.String(length=255), nullable=True),
        sa.Column("site", sa.String(length=255), nullable=True),
        sa.Column("contact", sa.String(length=255), nullable=True),
        sa.Column("sub_consignees", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consignee_id"], ["consignees.id"], name=op.f("fk_responses_consignee_id_consignees")
        ),
        sa.ForeignKeyConstraint(["recall_id"], ["recalls.id"], name=op.f("fk_responses_recall_id_recalls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
        sa.UniqueConstraint("recall_id", "consignee_id", name=op.f("uq_responses_recall_id_consignee_id")),
    )
    op.create_table(
        "notice_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("consignee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("notice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consignee_id"], ["consignees.id"], name=op.f("fk_notice_events_consignee_id_consignees")
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notices.id"], name=op.f("fk_notice_events_notice_id_notices")
        ),
        sa.ForeignKeyConstraint(
            ["recall_id"], ["recalls.id"], name=op.f("fk_notice_events_recall_id_recalls")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_events")),
    )
    with op.batch_alter_table("notice_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notice_events_recall_consignee", ["recall_id", "consignee_id"], unique=False
        )

    op.create_table(
        "recall_exposures",
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("consignee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("first_shipped_on", sa.Date(), nullable=True),
        sa.Column("last_shipped_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consignee_id"], ["consignees.id"], name=op.f("fk_recall_exposures_consignee_id_consignees")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_recall_exposures_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["recall_id"], ["recalls.id"], name=op.f("fk_recall_exposures_recall_id_recalls")
        ),
        sa.PrimaryKeyConstraint("recall_id", "consignee_id", "lot_id", name=op.f("pk_recall_exposures")),
    )
    with op.batch_alter_table("recall_exposures", schema=None) as batch_op:
        batch_op.create_index("ix_recall_exposures_consignee", ["recall_id", "consignee_id"], unique=False)

    op.create_table(
        "recall_lots",
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("path", sa.JSON(), nullable=False),
        sa.Column("units_on_hand", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_recall_lots_lot_id_lots")),
        sa.ForeignKeyConstraint(["recall_id"], ["recalls.id"], name=op.f("fk_recall_lots_recall_id_recalls")),
        sa.PrimaryKeyConstraint("recall_id", "lot_id", name=op.f("pk_recall_lots")),
    )
    op.create_table(
        "recall_suspects",
        sa.Column("recall_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_recall_suspects_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["recall_id"], ["recalls.id"], name=op.f("fk_recall_suspects_recall_id_recalls")
        ),
        sa.PrimaryKeyConstraint("recall_id", "lot_id", name=op.f("pk_recall_suspects")),
    )
    op.create_table(
        "response_quantities",
        sa.Column("response_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("returned", sa.BigInteger(), nullable=False),
        sa.Column("corrected", sa.BigInteger(), nullable=False),
        sa.Column("destroyed", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "on_hand >= 0 AND returned >= 0 AND corrected >= 0 AND destroyed >= 0 AND used >= 0",
            name=op.f("ck_response_quantities_quantities_not_negative"),
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_response_quantities_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["response_id"], ["responses.id"], name=op.f("fk_response_quantities_response_id_responses")
        ),
        sa.PrimaryKeyConstraint("response_id", "lot_id", name=op.f("pk_response_quantities")),
    )


def downgrade() -> None:

    op.drop_table("response_quantities")
    op.drop_table("recall_suspects")
    op.drop_table("recall_lots")
    with op.batch_alter_table("recall_exposures", schema=None) as batch_op:
        batch_op.drop_index("ix_recall_exposures_consignee")

    op.drop_table("recall_exposures")
    with op.batch_alter_table("notice_events", schema=None) as batch_op:
        batch_op.drop_index("ix_notice_events_recall_consignee")

    op.drop_table("notice_events")
    op.drop_table("responses")
    op.drop_table("recall_reports")
    with op.batch_alter_table("recall_consignees", schema=None) as batch_op:
        batch_op.drop_index("ix_recall_consignees_state")
        batch_op.drop_index(batch_op.f("ix_recall_consignees_consignee_id"))

    op.drop_table("recall_consignees")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_provider")

    op.drop_table("notices")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_status_due")
        batch_op.drop_index("ix_tasks_record")
        batch_op.drop_index(batch_op.f("ix_tasks_assignee"))

    op.drop_table("tasks")
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.drop_index("ix_signatures_record")

    op.drop_table("signatures")
    op.drop_table("recalls")
