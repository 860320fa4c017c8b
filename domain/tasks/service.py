"""Tasks and signatures in the store: open (idempotent), sign (Part 11 fields), remind, close."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import Conflict, NotFound
from domain.tasks.models import Signature, Task
from domain.tasks.payloads import SignatureMeaning, SignOff, TaskRef, TaskSpec, TaskStatus

TITLE_LENGTH = Task.__table__.c.title.type.length  # PostgreSQL enforces it; SQLite would not


def _fit(text: str, length: int) -> str:
    """The text, shortened with an ellipsis to fit a column (the full wording stays in the details)."""
    return text if len(text) <= length else text[: length - 1] + "…"


def _ref(task: Task) -> TaskRef:
    return TaskRef(
        task_id=task.id,
        kind=task.kind,
        candidate_roles=list(task.candidate_roles),
        excluded_users=list(task.excluded_users),
        status=task.status,
    )


async def open_task(session: AsyncSession, *, spec: TaskSpec) -> TaskRef:
    """Open the task, or return it if its business key already opened one."""
    task = await session.scalar(select(Task).where(Task.business_key == spec.business_key))
    if task is None:
        task = Task(
            business_key=spec.business_key,
            process=spec.process,
            kind=spec.kind,
            title=_fit(spec.title, TITLE_LENGTH),
            record_type=spec.record_type,
            record_id=spec.record_id,
            candidate_roles=spec.candidate_roles,
            excluded_users=spec.excluded_users,
            assignee=spec.assignee,
            priority=spec.priority,
            due_at=spec.due_at,
            workflow_id=spec.workflow_id,
            details=spec.details,
            status=TaskStatus.open,
        )
        session.add(task)
        await session.flush()
    return _ref(task)


async def get_task(session: AsyncSession, task_id: int) -> Task:
    """The task, or NotFound."""
    task = await session.get(Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found", field="task_id")
    return task


async def sign(
    session: AsyncSession,
    *,
    signoff: SignOff,
    record_type: str,
    record_id: int,
    record_hash: str,
    at: datetime | None = None,
) -> Signature:
    """Store the signature and complete the task in one transaction; a retry returns the same signature."""
    existing = await session.scalar(select(Signature).where(Signature.task_id == signoff.task_id))
    if existing is not None:
        if existing.signer != signoff.username:
            raise Conflict(f"task {signoff.task_id} was already signed by {existing.signer}", field="task_id")
        return existing
    task = await get_task(session, signoff.task_id)
    if task.status != TaskStatus.open:
        raise Conflict(f"task {task.id} is {task.status.value}", field="task_id")
    if (task.record_type, task.record_id) != (record_type, record_id):
        raise Conflict("the task belongs to another record", field="task_id")
    at = at or datetime.now(UTC)
    sig = Signature(
        signer=signoff.username,
        printed_name=signoff.printed_name,
        meaning=signoff.meaning,
        signed_at=at,
        record_type=record_type,
        record_id=record_id,
        record_hash=record_hash,
        auth_method=signoff.auth_method,
        reason=signoff.reason or None,
        task_id=task.id,
    )
    session.add(sig)
    task.status = (
        TaskStatus.rejected if signoff.meaning == SignatureMeaning.rejected else TaskStatus.completed
    )
    task.completed_at = at
    task.completed_by = signoff.username
    task.outcome = signoff.meaning.value + (f": {signoff.reason}" if signoff.reason else "")
    await session.flush()
    return sig


async def sign_record(
    session: AsyncSession,
    *,
    record_type: str,
    record_id: int,
    username: str,
    printed_name: str,
    meaning: str,
    reason: str,
    record_hash: str,
    auth_method: str,
    at: datetime | None = None,
) -> Signature:
    """A signature on a record without a task (closure, cancellation, urgent override)."""
    sig = Signature(
        signer=username,
        printed_name=printed_name,
        meaning=SignatureMeaning(meaning),
        signed_at=at or datetime.now(UTC),
        record_type=record_type,
        record_id=record_id,
        record_hash=record_hash,
        auth_method=auth_method,
        reason=reason,
    )
    session.add(sig)
    await session.flush()
    return sig


async def nudge(session: AsyncSession, *, task_id: int, action: str, to_roles: list[str]) -> Task:
    """Count a reminder, or widen the task to the escalation roles."""
    task = await get_task(session, task_id)
    if task.status != TaskStatus.open:
        return task
    task.reminders_sent = (task.reminders_sent or 0) + 1
    task.follow_up_at = datetime.now(UTC)
    if action == "escalate" and to_roles:
        task.escalated_to = sorted(set(task.escalated_to or []) | set(to_roles))
    await session.flush()
    return task


async def close_for_record(session: AsyncSession, *, record_type: str, record_id: int) -> int:
    """Cancel every task still open on a record that has ended; returns how many."""
    res = await session.execute(
        update(Task)
        .where(Task.record_type == record_type, Task.record_id == record_id, Task.status == TaskStatus.open)
        .values(status=TaskStatus.cancelled, completed_at=datetime.now(UTC), outcome="record ended")
    )
    return res.rowcount or 0


async def signatures_for(session: AsyncSession, *, record_type: str, record_id: int) -> list[Signature]:
    """Every signature on a record, oldest first."""
    rows = await session.scalars(
        select(Signature)
        .where(Signature.record_type == record_type, Signature.record_id == record_id)
        .order_by(Signature.signed_at, Signature.id)
    )
    return list(rows)
