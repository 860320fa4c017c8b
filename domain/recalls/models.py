"""Tables for recalls: the record, its frozen scope (versioned), notices and their events, responses,
and the reports generated from them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, BigId, UtcDateTime, _enum, utcnow
from domain.recalls.payloads import Channel, ConsigneeState, NoticeState, RecallStatus


class Recall(Base):
    """One recall (召回 / FSCA): why, how serious, where, and how far it reaches."""

    __tablename__ = "recalls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[RecallStatus] = mapped_column(_enum(RecallStatus), default=RecallStatus.awaiting_approval)
    reason: Mapped[str] = mapped_column(Text)
    hazard: Mapped[str] = mapped_column(Text)
    nmpa_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fda_class_proposed: Mapped[str | None] = mapped_column(String(3), nullable=True)
    fda_class_assigned: Mapped[str | None] = mapped_column(String(3), nullable=True)
    # EU vigilance: the serious incident category behind the FSCA and when the maker became aware of it.
    eu_incident: Mapped[str | None] = mapped_column(String(40), nullable=True)
    eu_aware_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    jurisdictions: Mapped[list[str]] = mapped_column(JSON, default=list)
    depth: Mapped[str] = mapped_column(String(16), default="user")  # wholesale | retail | user
    required_actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    initiated_by: Mapped[str] = mapped_column(String(64))
    initiated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    coordinator: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    notify_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    notification_completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deadlines: Mapped[list[dict]] = mapped_column(JSON, default=list)  # the computed schedule, as data
    scope_version: Mapped[int] = mapped_column(Integer, default=0)
    workflow_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closure_justification: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_signalled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RecallSuspect(Base):
    """A lot QA named as suspect, and the scope version it was added in."""

    __tablename__ = "recall_suspects"

    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    serial: Mapped[str | None] = mapped_column(String(20), nullable=True)


class RecallLot(Base):
    """An affected lot in the frozen scope (forward trace of the suspects)."""

    __tablename__ = "recall_lots"

    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    depth: Mapped[int] = mapped_column(Integer)
    path: Mapped[list[str]] = mapped_column(JSON, default=list)
    units_on_hand: Mapped[int] = mapped_column(BigInteger, default=0)


class RecallExposure(Base):
    """Shipped quantity of one affected lot to one consignee: the basis of notices and reconciliation."""

    __tablename__ = "recall_exposures"
    __table_args__ = (Index("ix_recall_exposures_consignee", "recall_id", "consignee_id"),)

    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"), primary_key=True)
    consignee_id: Mapped[int] = mapped_column(ForeignKey("consignees.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(BigInteger)
    first_shipped_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    last_shipped_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class RecallConsignee(Base):
    """One consignee of one recall: its receipt state, its acknowledgement code, whether it is overdue."""

    __tablename__ = "recall_consignees"
    __table_args__ = (
        UniqueConstraint("recall_id", "consignee_id"),
        UniqueConstraint("recall_id", "reply_code"),
        Index("ix_recall_consignees_state", "recall_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"))
    consignee_id: Mapped[int] = mapped_column(ForeignKey("consignees.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[ConsigneeState] = mapped_column(_enum(ConsigneeState), default=ConsigneeState.planned)
    reply_code: Mapped[str] = mapped_column(String(8))
    units_shipped: Mapped[int] = mapped_column(BigInteger, default=0)
    first_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    responded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    last_attempt: Mapped[int] = mapped_column(Integer, default=0)


class Notice(Base):
    """One notice: per consignee, per channel, per attempt. The unique key makes sending idempotent."""

    __tablename__ = "notices"
    __table_args__ = (
        UniqueConstraint("recall_id", "consignee_id", "channel", "attempt"),
        Index("ix_notices_provider", "provider_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"))
    consignee_id: Mapped[int] = mapped_column(ForeignKey("consignees.id"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    attempt: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(255))
    state: Mapped[NoticeState] = mapped_column(_enum(NoticeState), default=NoticeState.planned)
    provider_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    planned_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class NoticeEvent(Base):
    """A receipt fact about a notice: sent, delivered, failed, opened, replied, acknowledged."""

    __tablename__ = "notice_events"
    __table_args__ = (Index("ix_notice_events_recall_consignee", "recall_id", "consignee_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"))
    consignee_id: Mapped[int] = mapped_column(ForeignKey("consignees.id"))
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(8), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class Response(Base):
    """A consignee's acknowledgement of a recall; recorded once (a repeat changes nothing)."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("recall_id", "consignee_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"))
    consignee_id: Mapped[int] = mapped_column(ForeignKey("consignees.id"))
    channel: Mapped[str] = mapped_column(String(8))  # web | sms
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    received_and_understood: Mapped[bool] = mapped_column(Boolean, default=True)
    actions_completed: Mapped[bool] = mapped_column(Boolean, default=False)
    forwarded_to_sub_accounts: Mapped[bool] = mapped_column(Boolean, default=False)
    no_affected_stock: Mapped[bool] = mapped_column(Boolean, default=False)
    quantities_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    role: Mapped[str | None] = mapped_column(String(255), nullable=True)
    site: Mapped[str | None] = mapped_column(String(255), nullable=True)
    contact: Mapped[str | None] = mapped_column(String(255), nullable=True)
    sub_consignees: Mapped[list[str]] = mapped_column(JSON, default=list)


class ResponseQuantity(Base):
    """Quantities a consignee reports per lot: on hand, returned, corrected, destroyed, used."""

    __tablename__ = "response_quantities"
    __table_args__ = (
        CheckConstraint(
            "on_hand >= 0 AND returned >= 0 AND corrected >= 0 AND destroyed >= 0 AND used >= 0",
            name="quantities_not_negative",
        ),
    )

    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(BigInteger, default=0)
    returned: Mapped[int] = mapped_column(BigInteger, default=0)
    corrected: Mapped[int] = mapped_column(BigInteger, default=0)
    destroyed: Mapped[int] = mapped_column(BigInteger, default=0)
    used: Mapped[int] = mapped_column(BigInteger, default=0)


class RecallReport(Base):
    """A report rendered from the records (progress, CN event report and plan, US 806, summary)."""

    __tablename__ = "recall_reports"
    __table_args__ = (UniqueConstraint("recall_id", "kind", "sequence"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"))
    kind: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    title: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    mailed_to: Mapped[list[str]] = mapped_column(JSON, default=list)


class DeliveryReceipt(Base):
    """A provider's delivery status for a message (Twilio status callback), stored as it arrives.

    A callback can overtake the sender's own record of the message id; it waits here, unapplied, until
    the notice with that id is recorded, so no receipt is ever lost.
    """

    __tablename__ = "delivery_receipts"
    __table_args__ = (Index("ix_delivery_receipts_pending", "provider_id", "applied"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(8), default="sms")
    status: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
