"""Tables for tasks and electronic signatures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

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
