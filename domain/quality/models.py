"""Tables for QC lot release: inspection plans (versioned, per product), inspections, results,
dispositions and nonconformances."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from domain.audit import Audited
from domain.models import Base, BigId, UtcDateTime, _enum, utcnow
from domain.quality.payloads import (
    CharacteristicKind,
    DispositionOutcome,
    InspectionStatus,
    NonconformanceStatus,
)


class InspectionPlan(Audited, Base):
    """What to inspect on a product's lots. A new version per change; an inspection keeps its version."""

    __tablename__ = "inspection_plans"
    __table_args__ = (UniqueConstraint("product_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    characteristics: Mapped[list[InspectionCharacteristic]] = relationship(
        back_populates="plan", order_by="InspectionCharacteristic.position"
    )


class InspectionCharacteristic(Audited, Base):
    """One characteristic of a plan: measured against limits (either may be open) or pass/fail."""

    __tablename__ = "inspection_characteristics"
    __table_args__ = (
        UniqueConstraint("plan_id", "name"),
        CheckConstraint("sample_size >= 1", name="sample_size_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("inspection_plans.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[CharacteristicKind] = mapped_column(_enum(CharacteristicKind))
    lower: Mapped[float | None] = mapped_column(Float, nullable=True)
    upper: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sample_size: Mapped[int] = mapped_column(Integer, default=1)

    plan: Mapped[InspectionPlan] = relationship(back_populates="characteristics")


class Inspection(Audited, Base):
    """One lot's inspection against one plan version, from quarantine to the signed decision."""

    # The record its tasks and signatures name (record_type "lot_release", record_id: this id).
    __audit_type__ = "lot_release"

    __tablename__ = "inspections"
    __table_args__ = (Index("ix_inspections_lot_status", "lot_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("inspection_plans.id"))
    plan_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[InspectionStatus] = mapped_column(
        _enum(InspectionStatus), default=InspectionStatus.awaiting_results
    )
    initiated_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    workflow_id: Mapped[str] = mapped_column(String(64))
    # The last automatic evaluation, as the workflow stored it (the API recomputes it live).
    evaluation: Mapped[dict] = mapped_column(JSON, default=dict)
    evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class InspectionResult(Audited, Base):
    """One observation for one sample of one characteristic: who recorded it and when. Append-only."""

    __tablename__ = "inspection_results"
    __table_args__ = (
        Index("ix_inspection_results_inspection", "inspection_id", "characteristic_id"),
        CheckConstraint("(value IS NULL) <> (passed IS NULL)", name="value_or_passed"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"))
    characteristic_id: Mapped[int] = mapped_column(ForeignKey("inspection_characteristics.id"))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    unit: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Disposition(Audited, Base):
    """The signed decision on a lot and how its on-hand quantity was split (ISO 13485 8.2.6, 8.3)."""

    __audit_type__ = "lot_disposition"
    __audit_reason__ = "justification"

    __tablename__ = "lot_dispositions"
    __table_args__ = (
        CheckConstraint(
            "unrestricted >= 0 AND blocked >= 0 AND scrap >= 0 AND sample >= 0",
            name="quantities_not_negative",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), unique=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    outcome: Mapped[DispositionOutcome] = mapped_column(_enum(DispositionOutcome))
    unrestricted: Mapped[int] = mapped_column(BigInteger, default=0)
    blocked: Mapped[int] = mapped_column(BigInteger, default=0)
    scrap: Mapped[int] = mapped_column(BigInteger, default=0)
    sample: Mapped[int] = mapped_column(BigInteger, default=0)
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    signature_id: Mapped[int] = mapped_column(ForeignKey("signatures.id"))
    # A concession's second signature (QA management's approval or refusal).
    approval_signature_id: Mapped[int | None] = mapped_column(ForeignKey("signatures.id"), nullable=True)
    justification: Mapped[str | None] = mapped_column(Text, nullable=True)


class Nonconformance(Audited, Base):
    """Nonconforming product identified, segregated and dispositioned (ISO 13485 8.3)."""

    __tablename__ = "nonconformances"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    inspection_id: Mapped[int | None] = mapped_column(ForeignKey("inspections.id"), nullable=True)
    description: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    opened_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[NonconformanceStatus] = mapped_column(
        _enum(NonconformanceStatus), default=NonconformanceStatus.open
    )
    disposition: Mapped[DispositionOutcome | None] = mapped_column(_enum(DispositionOutcome), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The rejecting releaser asked for a CAPA; the CAPA process links it here when it opens one.
    capa_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    capa_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
