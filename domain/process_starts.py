"""Process starts that must not be lost: a transactional outbox for starting workflows.

A recall, CAPA, change or release is recorded and its workflow started in two systems (the store and
Temporal) that share no transaction. The record and a ``workflow_starts`` row are committed together;
the API then starts the workflow at once and marks the row started. If Temporal was unreachable at
that moment (or the API died between the two), the row stays pending and the worker's starter
(``lotline/starter.py``) starts it as soon as it can: a recall is never recorded without its process.
Starting is idempotent by workflow id, so a start made twice is a start made once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Index, Integer, String, Text, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, BigId, UtcDateTime, utcnow


class WorkflowStart(Base):
    """One workflow to start: its type, id and start argument (JSON), and when it was started."""

    __tablename__ = "workflow_starts"
    __table_args__ = (  # the starter looks only at what is still pending
        Index(
            "ix_workflow_starts_pending",
            "created_at",
            postgresql_where=text("started_at IS NULL"),
            sqlite_where=text("started_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workflow_type: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(64), unique=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


def enqueue(session: AsyncSession, workflow_type: str, workflow_id: str, arg: BaseModel) -> WorkflowStart:
    """Record that ``workflow_id`` must be started, in the caller's transaction (with the record)."""
    row = WorkflowStart(
        workflow_type=workflow_type, workflow_id=workflow_id, args=arg.model_dump(mode="json")
    )
    session.add(row)
    return row


async def mark_started(session: AsyncSession, workflow_id: str) -> None:
    await session.execute(
        update(WorkflowStart)
        .where(WorkflowStart.workflow_id == workflow_id, WorkflowStart.started_at.is_(None))
        .values(started_at=utcnow())
    )


async def mark_failed(session: AsyncSession, workflow_id: str, error: str) -> None:
    await session.execute(
        update(WorkflowStart)
        .where(WorkflowStart.workflow_id == workflow_id)
        .values(attempts=WorkflowStart.attempts + 1, last_error=error[:2000])
    )


async def pending(session: AsyncSession, *, older_than: timedelta, limit: int = 100) -> list[WorkflowStart]:
    """Starts not yet made, recorded at least ``older_than`` ago (younger ones the API is still making)."""
    cutoff = utcnow() - older_than
    return list(
        await session.scalars(
            select(WorkflowStart)
            .where(WorkflowStart.started_at.is_(None), WorkflowStart.created_at <= cutoff)
            .order_by(WorkflowStart.id)
            .limit(limit)
        )
    )
