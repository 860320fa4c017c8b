"""Tables for change control: the request, the products it affects, its computed impact, approvals per
role and round, implementation tasks, and controlled documents with dated versions."""

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

from domain.audit import Audited
from domain.changes.payloads import (
    ChangeKind,
    ChangeStatus,
    ChangeTaskStatus,
    DocumentStatus,
    Requirement,
    RiskRating,
)
from domain.models import Base, BigId, UtcDateTime, _enum, utcnow


class ChangeRequest(Audited, Base):
    """A change request (CHG-YYYY-NNNN): what changes, why, whether it blocks release, when effective."""

    __audit_type__ = "change"  # the record type its tasks and signatures name
    __audit_ignore__ = ("updated_at",)
    __audit_reason__ = "closure_note"

    __tablename__ = "change_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[ChangeKind] = mapped_column(_enum(ChangeKind))
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[ChangeStatus] = mapped_column(
        _enum(ChangeStatus), default=ChangeStatus.impact_assessment, index=True
    )
    initiated_by: Mapped[str] = mapped_column(String(64))
    initiated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # While the change is open, new lots of its products may not be released (QC release asks).
    blocks_release: Mapped[bool] = mapped_column(Boolean, default=False)
    effective_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # planned
    became_effective_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # actual
    round: Mapped[int] = mapped_column(Integer, default=0)  # approval round
    returned_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)  # of the last rejection
    workflow_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closure_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ChangeProduct(Audited, Base):
    """A product the change affects."""

    __tablename__ = "change_products"
    __table_args__ = (Index("ix_change_products_product", "product_id", "change_id"),)

    change_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)


class ChangeImpact(Audited, Base):
    """The impact of a change, recomputed from the store each round, with the assessor's risk part."""

    __tablename__ = "change_impacts"

    change_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    products: Mapped[list[str]] = mapped_column(JSON, default=list)  # codes at computation
    lots_in_stock: Mapped[int] = mapped_column(Integer, default=0)
    units_on_hand: Mapped[int] = mapped_column(BigInteger, default=0)
    lots_delivered: Mapped[int] = mapped_column(Integer, default=0)
    units_delivered: Mapped[int] = mapped_column(BigInteger, default=0)
    consignees: Mapped[int] = mapped_column(Integer, default=0)
    documents: Mapped[list[dict]] = mapped_column(JSON, default=list)
    risk_assessment: Mapped[str | None] = mapped_column(Text, nullable=True)
    risk_rating: Mapped[RiskRating | None] = mapped_column(_enum(RiskRating), nullable=True)
    assessed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assessed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ChangeImpactLot(Base):
    """One lot of an affected product: what is on hand and what was already delivered, to how many."""

    __tablename__ = "change_impact_lots"

    change_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    on_hand: Mapped[int] = mapped_column(BigInteger, default=0)
    blocked: Mapped[int] = mapped_column(BigInteger, default=0)
    shipped: Mapped[int] = mapped_column(BigInteger, default=0)
    consignees: Mapped[int] = mapped_column(Integer, default=0)
    first_shipped_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    last_shipped_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class ChangeApproval(Audited, Base):
    """One role's part in one approval round, its task and its decision."""

    __tablename__ = "change_approvals"
    __audit_reason__ = "comment"
    __table_args__ = (UniqueConstraint("change_id", "round", "role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))
    requirement: Mapped[Requirement] = mapped_column(_enum(Requirement))
    task_id: Mapped[int | None] = mapped_column(BigId, nullable=True, unique=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)  # approved | rejected | reviewed
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    printed_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    signature_id: Mapped[int | None] = mapped_column(BigId, nullable=True)


class ChangeTask(Audited, Base):
    """An implementation (or rework) task: an owner, a due date, and whether and when it was done."""

    __tablename__ = "change_tasks"
    __table_args__ = (UniqueConstraint("change_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("change_requests.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="implementation")  # implementation | rework
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(64))
    due_on: Mapped[date] = mapped_column(Date)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[ChangeTaskStatus] = mapped_column(
        _enum(ChangeTaskStatus), default=ChangeTaskStatus.planned
    )
    inbox_task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    overdue_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Document(Audited, Base):
    """A controlled document (SOP, drawing, label artwork, specification)."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DocumentVersion(Audited, Base):
    """A version of a document, in force from ``effective_from`` until the day ``effective_to`` (excluded)."""

    __tablename__ = "document_versions"
    __table_args__ = (
        UniqueConstraint("document_id", "version"),
        CheckConstraint(
            "effective_to IS NULL OR (effective_from IS NOT NULL AND effective_to >= effective_from)",
            name="effective_period",
        ),
        Index("ix_document_versions_in_force", "document_id", "effective_from"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    version: Mapped[str] = mapped_column(String(32))
    status: Mapped[DocumentStatus] = mapped_column(_enum(DocumentStatus), default=DocumentStatus.draft)
    effective_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    effective_to: Mapped[date | None] = mapped_column(Date, nullable=True)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("change_requests.id"), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
