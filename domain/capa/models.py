"""Tables for CAPA: the record (source, investigation, effectiveness) and its actions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from domain.audit import Audited
from domain.capa.payloads import (
    ActionKind,
    ActionStatus,
    CapaSource,
    CapaStatus,
    EffectivenessResult,
    InvestigationMethod,
)
from domain.models import Base, BigId, UtcDateTime, _enum, utcnow


class Capa(Audited, Base):
    """One corrective and preventive action record (ISO 13485 8.5.2), from initiation to closure."""

    __tablename__ = "capas"
    __audit_type__ = "capa"  # as tasks and signatures name it
    __audit_ignore__ = ("updated_at",)  # bookkeeping: every change is in the trail with its own time
    __table_args__ = (Index("ix_capas_status", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)  # CAPA-YYYY-NNNN
    source: Mapped[CapaSource] = mapped_column(_enum(CapaSource))
    source_reference: Mapped[str] = mapped_column(String(64))
    recall_id: Mapped[int | None] = mapped_column(ForeignKey("recalls.id"), nullable=True, index=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[CapaStatus] = mapped_column(_enum(CapaStatus), default=CapaStatus.investigation)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    initiated_by: Mapped[str] = mapped_column(String(64))
    initiated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    # An ineffective verification starts a new cycle: investigation, plan and actions again.
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    investigation_method: Mapped[InvestigationMethod | None] = mapped_column(
        _enum(InvestigationMethod), nullable=True
    )
    root_causes: Mapped[list[str]] = mapped_column(JSON, default=list)
    investigation_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    investigation_cycle: Mapped[int] = mapped_column(Integer, default=0)  # the cycle it was recorded in
    investigated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    investigated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    plan_version: Mapped[int] = mapped_column(Integer, default=0)
    plan_submitted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    plan_submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    plan_approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    plan_rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    effectiveness_criteria: Mapped[str | None] = mapped_column(Text, nullable=True)
    effectiveness_period_days: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: policy
    effectiveness_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    effectiveness_result: Mapped[EffectivenessResult | None] = mapped_column(
        _enum(EffectivenessResult), nullable=True
    )
    effectiveness_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    effectiveness_checked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    effectiveness_checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Earlier verifications and closure rejections, oldest first: never overwritten, only appended.
    effectiveness_history: Mapped[list[dict]] = mapped_column(JSON, default=list)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    workflow_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CapaAction(Audited, Base):
    """A corrective or preventive action of a CAPA's plan: owner, due date, and its evidence when done."""

    __tablename__ = "capa_actions"
    __audit_type__ = "capa_action"
    # Ladder bookkeeping: each reminder and escalation is in the trail already, on the action's task.
    __audit_ignore__ = ("escalation_step", "last_nudged_at")
    __table_args__ = (Index("ix_capa_actions_capa_status", "capa_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    capa_id: Mapped[int] = mapped_column(ForeignKey("capas.id"))
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    plan_version: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[ActionKind] = mapped_column(_enum(ActionKind))
    description: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[ActionStatus] = mapped_column(_enum(ActionStatus), default=ActionStatus.proposed)
    task_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The overdue ladder: how many rungs were applied, and when the last one was.
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    last_nudged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
