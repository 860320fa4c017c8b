"""Tables for tasks, electronic signatures, out-of-office deputies and the reminder digests sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from domain.audit import Audited
from domain.models import Base, BigId, UtcDateTime, _enum, utcnow
from domain.tasks.payloads import SignatureMeaning, TaskStatus


class Task(Base):
    """A piece of work for a person: approve, call, file. Belongs to one record of one process."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_record", "record_type", "record_id"),
        Index("ix_tasks_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_key: Mapped[str] = mapped_column(String(128), unique=True)
    process: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[int] = mapped_column(BigId)
    candidate_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    excluded_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus), default=TaskStatus.open)
    priority: Mapped[int] = mapped_column(Integer, default=2)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    follow_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    workflow_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    escalated_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who holds it: claimed (or delegated) when; a delegation's author and reason (also in the audit
    # trail); the person it was meant for when it went to their out-of-office deputy instead.
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    delegated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    delegation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    deputy_for: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Signature(Base):
    """A Part 11 electronic signature: who, what it means, when (UTC), on which version of which record."""

    __tablename__ = "signatures"
    __table_args__ = (Index("ix_signatures_record", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    signer: Mapped[str] = mapped_column(String(64))
    printed_name: Mapped[str] = mapped_column(String(255))
    meaning: Mapped[SignatureMeaning] = mapped_column(_enum(SignatureMeaning))
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[int] = mapped_column(BigId)
    record_hash: Mapped[str] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    task_id: Mapped[int | None] = mapped_column(BigId, nullable=True, unique=True)


class Absence(Audited, Base):
    """Out of office: from ``starts_at`` until ``ends_at`` tasks meant for ``username`` go to ``deputy``,
    who also sees (and may sign, with their own signature) the tasks already assigned to them."""

    __tablename__ = "task_absences"
    __audit_type__ = "task_absence"
    __audit_reason__ = "reason"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period"),
        CheckConstraint("deputy <> username", name="not_self"),
        Index("ix_task_absences_user", "username", "ends_at"),
        Index("ix_task_absences_deputy", "deputy", "ends_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    deputy: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Digest(Base):
    """One reminder digest: one person, one period (unique), the tasks it listed, whether it went out."""

    __tablename__ = "task_digests"
    __table_args__ = (UniqueConstraint("username", "period_start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime] = mapped_column(UtcDateTime)
    email: Mapped[str] = mapped_column(String(255))
    task_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    overdue: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="planned")  # planned | sent | failed
    message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
