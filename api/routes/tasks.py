"""The task inbox and sign-off: one mechanism for every process's approvals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep, TemporalDep, reauthenticate, require_roles
from api.workflow_calls import execute_update
from domain.enums import Role
from domain.errors import Conflict
from domain.quality.payloads import DispositionSplit
from domain.quality.service import check_sign_off
from domain.tasks.models import Task
from domain.tasks.payloads import SignatureMeaning, SignOff, SignOffResult, TaskStatus
from domain.tasks.service import get_task

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
ANY_ROLE = require_roles(*Role)


class TaskPublic(BaseModel):
    """A task in the inbox."""

    id: int
    process: str
    kind: str
    title: str
    record_type: str
    record_id: int
    candidate_roles: list[str]
    assignee: str | None
    status: str
    priority: int
    due_at: datetime | None
    overdue: bool
    reminders_sent: int
    escalated_to: list[str]
    created_at: datetime
    completed_by: str | None
    outcome: str | None


class SignRequest(BaseModel):
    """A sign-off: the signer's password again (Part 11), the decision and, for a rejection, why."""

    password: str = Field(min_length=1)
    decision: Literal["approved", "rejected", "released"]
    reason: str = Field(default="", max_length=4000)
    disposition: DispositionSplit | None = Field(default=None, description="QC release: the quantity split")
    capa: bool = Field(default=False, description="a rejection asks for a CAPA")


def _public(t: Task, now: datetime) -> TaskPublic:
    due = t.due_at.replace(tzinfo=UTC) if t.due_at and t.due_at.tzinfo is None else t.due_at
    return TaskPublic(
        id=t.id,
        process=t.process,
        kind=t.kind,
        title=t.title,
        record_type=t.record_type,
        record_id=t.record_id,
        candidate_roles=t.candidate_roles,
        assignee=t.assignee,
        status=t.status.value,
        priority=t.priority,
        due_at=t.due_at,
        overdue=bool(due and due < now and t.status == TaskStatus.open),
        reminders_sent=t.reminders_sent or 0,
        escalated_to=t.escalated_to or [],
        created_at=t.created_at,
        completed_by=t.completed_by,
        outcome=t.outcome,
    )


@router.get("", response_model=list[TaskPublic], dependencies=[Depends(ANY_ROLE)])
async def list_tasks(
    session: SessionDep,
    user: CurrentUser,
    status: TaskStatus | None = TaskStatus.open,
    process: str | None = None,
    record_type: str | None = None,
    record_id: int | None = None,
    mine: bool = False,
) -> list[TaskPublic]:
    """Tasks for me and my roles (overdue first), or every task of a record."""
    q = select(Task)
    if status:
        q = q.where(Task.status == status)
    if process:
        q = q.where(Task.process == process)
    if record_type:
        q = q.where(Task.record_type == record_type)
    if record_id is not None:
        q = q.where(Task.record_id == record_id)
    rows = list(await session.scalars(q.order_by(Task.due_at, Task.priority, Task.id)))
    roles = {r.value for r in user.roles}
    if mine or record_id is None:
        rows = [
            t
            for t in rows
            if t.assignee == user.username
            or (not mine and (roles & set(t.candidate_roles) or roles & set(t.escalated_to or [])))
        ]
    now = datetime.now(UTC)
    out = [_public(t, now) for t in rows]
    return sorted(out, key=lambda t: (not t.overdue, t.due_at or now, t.priority))


@router.post("/{task_id}/sign", response_model=SignOffResult, dependencies=[Depends(ANY_ROLE)])
async def sign_task(
    task_id: int,
    body: SignRequest,
    session: SessionDep,
    client: TemporalDep,
    user: CurrentUser,
) -> SignOffResult:
    """Sign off or reject a task. The password is checked here and never enters workflow history; the
    workflow's validator checks role, task state and separation of duties (409 with its reason)."""
    task = await get_task(session, task_id)
    if task.workflow_id is None:
        raise Conflict("this task is not signed through a process", field="task_id")
    await reauthenticate(session, user, body.password)
    await session.commit()
    # A lot release's input (decision "released", the disposition split) that does not fit: 422.
    await check_sign_off(
        session,
        record_type=task.record_type,
        record_id=task.record_id,
        decision=body.decision,
        split=body.disposition,
    )
    signoff = SignOff(
        task_id=task.id,
        username=user.username,
        printed_name=user.full_name or user.username,
        roles=[r.value for r in user.roles],
        meaning=SignatureMeaning(body.decision),
        reason=body.reason,
        disposition=body.disposition.model_dump() if body.disposition else None,
        capa=body.capa,
    )
    return await execute_update(client, task.workflow_id, "sign_off", signoff, SignOffResult)


@router.get("/{task_id}", response_model=TaskPublic, dependencies=[Depends(ANY_ROLE)])
async def get_one(task_id: int, session: SessionDep) -> TaskPublic:
    """One task."""
    return _public(await get_task(session, task_id), datetime.now(UTC))
