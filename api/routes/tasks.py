"""The task inbox and sign-off: one mechanism for every process's approvals.

Who may claim, release, delegate and sign is decided in one place, ``domain.tasks.service`` (see its
docstring); the workflow's ``sign_off`` validator checks role, task state and separation of duties.
Refusals: 403 when the person may not do it, 409 when the task's state forbids it now (with the reason),
422 naming the field for bad input.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, status

from api.deps import CurrentUser, SessionDep, TemporalDep, reauthenticate, require_roles
from api.schemas.tasks import (
    AbsenceCreate,
    AbsencePublic,
    CompleteRequest,
    DelegateRequest,
    Process,
    SignRequest,
    TaskPublic,
)
from api.security import Principal
from api.workflow_calls import execute_update
from domain.enums import Role
from domain.errors import Conflict
from domain.quality.service import check_sign_off
from domain.record_hashes import record_hash
from domain.tasks import service as tasks
from domain.tasks.models import Task
from domain.tasks.payloads import SignatureMeaning, SignOff, SignOffResult, TaskStatus
from domain.tasks.service import get_task

__all__ = ["SignRequest", "TaskPublic", "router"]

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
ANY_ROLE = require_roles(*Role)


def _roles(user: Principal) -> list[str]:
    return [r.value for r in user.roles]


async def _public(session: SessionDep, user: Principal, rows: list[Task]) -> list[TaskPublic]:
    now = datetime.now(UTC)
    deputising = await tasks.deputising_for(session, username=user.username, at=now)
    return [
        TaskPublic.of(
            t, tasks.access(t, username=user.username, roles=_roles(user), deputising=deputising), now
        )
        for t in rows
    ]


@router.get("", response_model=list[TaskPublic], dependencies=[Depends(ANY_ROLE)])
async def list_tasks(
    session: SessionDep,
    user: CurrentUser,
    status: TaskStatus | None = TaskStatus.open,
    process: Process | None = None,
    record_type: str | None = None,
    record_id: int | None = None,
    mine: bool = False,
    my_roles: bool = False,
    overdue: bool = False,
) -> list[TaskPublic]:
    """My inbox, overdue first: ``mine`` (assigned to me or to someone I am deputy for), ``my_roles``
    (unclaimed tasks open to my roles, and tasks escalated to them), neither: both; ``overdue`` only,
    one ``process``; with ``record_id`` and neither, every task of that record."""
    rows = await tasks.inbox(
        session,
        username=user.username,
        roles=_roles(user),
        mine=mine,
        my_roles=my_roles,
        overdue=overdue,
        process=process,
        status=status,
        record_type=record_type,
        record_id=record_id,
    )
    return await _public(session, user, rows)


# Out of office (declared before /{task_id}, which would otherwise take the path).


@router.get("/out-of-office", response_model=list[AbsencePublic], dependencies=[Depends(ANY_ROLE)])
async def list_absences(session: SessionDep, user: CurrentUser) -> list[AbsencePublic]:
    """My out-of-office periods not yet over, and those I am deputy in."""
    return [AbsencePublic.of(a) for a in await tasks.absences(session, username=user.username)]


@router.post(
    "/out-of-office",
    status_code=status.HTTP_201_CREATED,
    response_model=AbsencePublic,
    dependencies=[Depends(ANY_ROLE)],
)
async def set_absence(body: AbsenceCreate, session: SessionDep, user: CurrentUser) -> AbsencePublic:
    """Set a period out of office with a named deputy (409 when it overlaps one already set)."""
    absence = await tasks.set_absence(
        session,
        username=user.username,
        deputy=body.deputy,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
    )
    await session.commit()
    return AbsencePublic.of(absence)


@router.delete("/out-of-office/{absence_id}", response_model=AbsencePublic, dependencies=[Depends(ANY_ROLE)])
async def cancel_absence(absence_id: int, session: SessionDep, user: CurrentUser) -> AbsencePublic:
    """End (or drop) one of my out-of-office periods."""
    absence = await tasks.cancel_absence(session, absence_id=absence_id, username=user.username)
    await session.commit()
    return AbsencePublic.of(absence)


# One task.


@router.get("/{task_id}", response_model=TaskPublic, dependencies=[Depends(ANY_ROLE)])
async def get_one(task_id: int, session: SessionDep, user: CurrentUser) -> TaskPublic:
    """One task, with what I may do with it."""
    return (await _public(session, user, [await get_task(session, task_id)]))[0]


@router.post("/{task_id}/claim", response_model=TaskPublic, dependencies=[Depends(ANY_ROLE)])
async def claim(task_id: int, session: SessionDep, user: CurrentUser) -> TaskPublic:
    """Take the task: only someone holding a candidate role who did not initiate the record (403);
    a task someone else claimed is a 409 naming who."""
    task = await tasks.claim(session, task_id=task_id, username=user.username, roles=_roles(user))
    await session.commit()
    return (await _public(session, user, [task]))[0]


@router.post("/{task_id}/release", response_model=TaskPublic, dependencies=[Depends(ANY_ROLE)])
async def release(task_id: int, session: SessionDep, user: CurrentUser) -> TaskPublic:
    """Give a claimed task back to its candidate roles (its holder, their deputy, or whom it went up to)."""
    task = await tasks.release(session, task_id=task_id, username=user.username, roles=_roles(user))
    await session.commit()
    return (await _public(session, user, [task]))[0]


@router.post("/{task_id}/delegate", response_model=TaskPublic, dependencies=[Depends(ANY_ROLE)])
async def delegate(task_id: int, body: DelegateRequest, session: SessionDep, user: CurrentUser) -> TaskPublic:
    """Hand the task to a named person holding a candidate role, with a reason (kept in the audit trail).
    The delegate signs with their own signature; the record's initiator can never be the delegate."""
    task = await tasks.delegate(
        session,
        task_id=task_id,
        username=user.username,
        roles=_roles(user),
        to=body.to,
        reason=body.reason,
    )
    await session.commit()
    return (await _public(session, user, [task]))[0]


@router.post("/{task_id}/complete", response_model=TaskPublic, dependencies=[Depends(ANY_ROLE)])
async def complete(task_id: int, body: CompleteRequest, session: SessionDep, user: CurrentUser) -> TaskPublic:
    """Report a work task done that no process step awaits (a regulator filing with its receipt number,
    the recall announcement with its URL, a call to a consignee), signed with the password again; its
    deadline is judged by ``done_at``. Refusals: 403 without a candidate role, 409 when someone else
    holds it or it is done already, 422 naming the field."""
    await reauthenticate(session, user, body.password)
    task = await get_task(session, task_id)
    digest = await record_hash(session, task.record_type, task.record_id)
    await tasks.complete(
        session,
        task_id=task_id,
        username=user.username,
        printed_name=user.full_name or user.username,
        roles=_roles(user),
        note=body.note,
        reference=body.reference,
        done_at=body.done_at,
        record_hash=digest,
        auth_method="password re-entered at signing",
    )
    await session.commit()
    return (await _public(session, user, [await get_task(session, task_id)]))[0]


@router.post("/{task_id}/sign", response_model=SignOffResult, dependencies=[Depends(ANY_ROLE)])
async def sign_task(
    task_id: int,
    body: SignRequest,
    session: SessionDep,
    client: TemporalDep,
    user: CurrentUser,
) -> SignOffResult:
    """Sign off or reject a task. The password is checked here and never enters workflow history; a task
    someone else claimed is refused here (409); the workflow's validator checks role, task state and
    separation of duties (409 with its reason). The signature is always the signer's own."""
    task = await get_task(session, task_id)
    if task.workflow_id is None:
        raise Conflict("this task is not signed through a process", field="task_id")
    await reauthenticate(session, user, body.password)
    refusal = await tasks.sign_refusal(session, task=task, username=user.username)
    if refusal and task.status == TaskStatus.open:
        raise Conflict(refusal, field="task_id")
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
        roles=_roles(user),
        meaning=SignatureMeaning(body.decision),
        reason=body.reason,
        disposition=body.disposition.model_dump() if body.disposition else None,
        capa=body.capa,
    )
    return await execute_update(client, task.workflow_id, "sign_off", signoff, SignOffResult)
