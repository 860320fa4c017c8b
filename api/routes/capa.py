"""CAPAs: initiate one (or open one from a recall), follow it, and record what people do at each stage.

People's facts go to the store first (the domain checks the stage and the input), then a ``wake_up``
signal tells the CAPA's workflow to look. Sign-offs (action plan approval, closure) go through
``POST /api/tasks/{id}/sign`` like every other process's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from api.deps import CurrentUser, SessionDep, SettingsDep, TemporalDep, require_roles
from api.schemas.capa import (
    ActionCompleteIn,
    ActionPlanIn,
    ActionPublic,
    CapaCreate,
    CapaCreated,
    CapaFromRecall,
    CapaListItem,
    CapaPublic,
    EffectivenessIn,
    InvestigationIn,
    InvestigationPublic,
)
from api.schemas.recalls import SignaturePublic, TaskBrief
from api.security import Principal
from api.workflow_calls import start_process
from domain.capa import policy
from domain.capa import service as capas
from domain.capa.models import Capa, CapaAction
from domain.capa.payloads import ActionInput, CapaSource, CapaStart, CapaStatus, CapaWakeUp
from domain.enums import Role
from domain.recalls.service import get_recall
from domain.tasks.models import Task
from domain.tasks.payloads import TaskStatus
from domain.tasks.service import deputising_for, signatures_for
from lotline.settings import Settings

router = APIRouter(tags=["capa"])

READERS = require_roles(*Role)
INITIATORS = require_roles(Role.qa, Role.qa_manager)
VERIFIERS = require_roles(Role.qa, Role.qa_manager)
# Investigation, plan and actions are the owner's work: every role may reach the route, and the handler
# admits the CAPA's (or the action's) owner and QA.
WORKERS = require_roles(*Role)
QA_ROLES = {Role.qa, Role.qa_manager}


def _forbidden(reason: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=[{"field": "role", "reason": reason}])


async def _start(session: AsyncSession, client: Client, settings: Settings, capa: Capa) -> CapaCreated:
    """Commit the new CAPA with its start, then start its workflow (or leave that to the starter)."""
    workflow_id = capa.workflow_id or f"capa-{capa.id}"
    start = CapaStart(
        capa_id=capa.id,
        reference=capa.reference,
        initiated_by=capa.initiated_by,
        owner=capa.owner,
        recall_id=capa.recall_id,
    )
    await start_process(session, client, settings.temporal_task_queue, "CapaWorkflow", workflow_id, start)
    return CapaCreated(
        id=capa.id,
        reference=capa.reference,
        status=capa.status.value,
        workflow_id=workflow_id,
        recall_id=capa.recall_id,
    )


async def _wake(client: Client, capa: Capa, reason: str) -> None:
    """Tell the workflow facts arrived; if the signal is lost, the workflow reads them at its next timer."""
    try:
        await client.get_workflow_handle(capa.workflow_id or f"capa-{capa.id}").signal(
            "wake_up", CapaWakeUp(reason=reason)
        )
    except RPCError:
        pass


@router.post(
    "/api/capas",
    status_code=status.HTTP_201_CREATED,
    response_model=CapaCreated,
    dependencies=[Depends(INITIATORS)],
)
async def create_capa(
    body: CapaCreate, session: SessionDep, settings: SettingsDep, client: TemporalDep, user: CurrentUser
) -> CapaCreated:
    """Initiate a CAPA: the record is created and CapaWorkflow ``capa-<id>`` started."""
    capa = await capas.create_capa(
        session,
        source=body.source,
        source_reference=body.source_reference,
        recall_id=body.recall_id,
        title=body.title,
        description=body.description,
        owner=body.owner or user.username,
        initiated_by=user.username,
        effectiveness_criteria=body.effectiveness_criteria,
        effectiveness_period_days=body.effectiveness_period_days,
    )
    return await _start(session, client, settings, capa)


@router.post(
    "/api/recalls/{recall_id}/capa",
    status_code=status.HTTP_201_CREATED,
    response_model=CapaCreated,
    dependencies=[Depends(INITIATORS)],
)
async def open_from_recall(
    recall_id: int,
    body: CapaFromRecall,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalDep,
    user: CurrentUser,
) -> CapaCreated:
    """Open a CAPA linked to a recall (source ``recall``); the recall's record and summary show the link."""
    recall = await get_recall(session, recall_id)
    capa = await capas.create_capa(
        session,
        source=CapaSource.recall,
        recall_id=recall.id,
        title=body.title or f"CAPA for recall {recall.reference}",
        description=body.description
        or f"Recall {recall.reference}: {recall.reason}\nHazard: {recall.hazard}",
        owner=body.owner or user.username,
        initiated_by=user.username,
        effectiveness_criteria=body.effectiveness_criteria,
        effectiveness_period_days=body.effectiveness_period_days,
    )
    return await _start(session, client, settings, capa)


@router.get("/api/capas", response_model=list[CapaListItem], dependencies=[Depends(READERS)])
async def list_capas(
    session: SessionDep,
    status_: CapaStatus | None = Query(default=None, alias="status"),
    source: CapaSource | None = None,
    owner: str | None = None,
    recall_id: int | None = None,
    overdue: bool | None = Query(default=None, description="with (or without) an open action past due"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[CapaListItem]:
    """CAPAs, newest first, filtered by status, source, owner, recall or overdue actions."""
    rows = await capas.list_capas(
        session, status=status_, source=source, owner=owner, recall_id=recall_id, overdue=overdue, limit=limit
    )
    return [_list_item(c) for c in rows]


def _list_item(c: Capa) -> CapaListItem:
    return CapaListItem(
        id=c.id,
        reference=c.reference,
        source=c.source.value,
        source_reference=c.source_reference,
        recall_id=c.recall_id,
        title=c.title,
        status=c.status.value,
        owner=c.owner,
        initiated_by=c.initiated_by,
        initiated_at=c.initiated_at,
        cycle=c.cycle,
        effectiveness_due_at=c.effectiveness_due_at,
        closed_at=c.closed_at,
    )


def _action(a: CapaAction, today) -> ActionPublic:
    return ActionPublic(
        id=a.id,
        cycle=a.cycle,
        kind=a.kind.value,
        description=a.description,
        owner=a.owner,
        due_on=a.due_on,
        status=a.status.value,
        overdue=a.status.value == "open" and a.due_on < today,
        task_id=a.task_id,
        completed_at=a.completed_at,
        completed_by=a.completed_by,
        evidence=a.evidence,
        escalation_step=a.escalation_step,
    )


async def _public(session: AsyncSession, capa_id: int) -> CapaPublic:
    capa = await capas.get_capa(session, capa_id)
    await session.refresh(capa)  # the workflow's activities change it in other sessions
    today = datetime.now(UTC).date()
    actions = await capas.actions_of(session, capa_id=capa_id)
    recall_reference = (await get_recall(session, capa.recall_id)).reference if capa.recall_id else None
    sigs = await signatures_for(session, record_type="capa", record_id=capa_id)
    tasks = list(
        await session.scalars(
            select(Task)
            .where(Task.record_type == "capa", Task.record_id == capa_id, Task.status == TaskStatus.open)
            .order_by(Task.priority, Task.due_at, Task.id)
        )
    )
    return CapaPublic(
        **_list_item(capa).model_dump(),
        description=capa.description,
        recall_reference=recall_reference,
        investigation=InvestigationPublic(
            method=capa.investigation_method.value if capa.investigation_method else None,
            root_causes=capa.root_causes or [],
            summary=capa.investigation_summary,
            cycle=capa.investigation_cycle,
            by=capa.investigated_by,
            at=capa.investigated_at,
        ),
        plan_version=capa.plan_version,
        plan_submitted_by=capa.plan_submitted_by,
        plan_submitted_at=capa.plan_submitted_at,
        plan_approved_at=capa.plan_approved_at,
        plan_rejection_reason=capa.plan_rejection_reason,
        effectiveness_criteria=capa.effectiveness_criteria,
        effectiveness_period_days=policy.effectiveness_period(capa.effectiveness_period_days).days,
        effectiveness_result=capa.effectiveness_result.value if capa.effectiveness_result else None,
        effectiveness_summary=capa.effectiveness_summary,
        effectiveness_checked_by=capa.effectiveness_checked_by,
        effectiveness_checked_at=capa.effectiveness_checked_at,
        effectiveness_history=capa.effectiveness_history or [],
        actions=[_action(a, today) for a in actions],
        signatures=[
            SignaturePublic(
                signer=s.signer,
                printed_name=s.printed_name,
                meaning=s.meaning.value,
                signed_at=s.signed_at,
                record_hash=s.record_hash,
                reason=s.reason,
            )
            for s in sigs
        ],
        tasks=[
            TaskBrief(
                id=t.id,
                kind=t.kind,
                title=t.title,
                candidate_roles=t.candidate_roles,
                assignee=t.assignee,
                status=t.status.value,
                due_at=t.due_at,
            )
            for t in tasks
        ],
    )


@router.get("/api/capas/{capa_id}", response_model=CapaPublic, dependencies=[Depends(READERS)])
async def get_capa(capa_id: int, session: SessionDep) -> CapaPublic:
    """The CAPA: source, investigation, plan, actions, effectiveness, signatures and open tasks."""
    return await _public(session, capa_id)


async def _owner_or_qa(session: AsyncSession, user: Principal, owner: str, what: str) -> None:
    """The owner, their deputy while they are out of office, or QA."""
    if user.username == owner or user.has_any(QA_ROLES):
        return
    if owner in await deputising_for(session, username=user.username):
        return
    raise _forbidden(f"{what} is for its owner ({owner}), their deputy, or the role qa or qa_manager")


@router.post("/api/capas/{capa_id}/investigation", response_model=CapaPublic, dependencies=[Depends(WORKERS)])
async def record_investigation(
    capa_id: int, body: InvestigationIn, session: SessionDep, client: TemporalDep, user: CurrentUser
) -> CapaPublic:
    """Record the investigation method and root causes (the CAPA's owner, or QA)."""
    capa = await capas.get_capa(session, capa_id)
    await _owner_or_qa(session, user, capa.owner, "the investigation")
    await capas.record_investigation(
        session,
        capa_id=capa_id,
        method=body.method,
        root_causes=body.root_causes,
        summary=body.summary,
        by=user.username,
    )
    await session.commit()
    await _wake(client, capa, "investigation")
    return await _public(session, capa_id)


@router.post("/api/capas/{capa_id}/actions", response_model=CapaPublic, dependencies=[Depends(WORKERS)])
async def propose_action_plan(
    capa_id: int, body: ActionPlanIn, session: SessionDep, client: TemporalDep, user: CurrentUser
) -> CapaPublic:
    """Propose the action plan (the CAPA's owner, or QA); it goes to the QA manager for approval."""
    capa = await capas.get_capa(session, capa_id)
    await _owner_or_qa(session, user, capa.owner, "the action plan")
    await capas.propose_action_plan(
        session,
        capa_id=capa_id,
        actions=[ActionInput(**a.model_dump()) for a in body.actions],
        effectiveness_criteria=body.effectiveness_criteria,
        by=user.username,
    )
    await session.commit()
    await _wake(client, capa, "plan proposed")
    return await _public(session, capa_id)


@router.post(
    "/api/capas/{capa_id}/actions/{action_id}/complete",
    response_model=CapaPublic,
    dependencies=[Depends(WORKERS)],
)
async def complete_action(
    capa_id: int,
    action_id: int,
    body: ActionCompleteIn,
    session: SessionDep,
    client: TemporalDep,
    user: CurrentUser,
) -> CapaPublic:
    """Complete an action with its evidence (the action's owner, or QA)."""
    capa = await capas.get_capa(session, capa_id)
    action = await session.get(CapaAction, action_id)
    if action is not None and action.capa_id == capa.id:
        await _owner_or_qa(session, user, action.owner, "completing this action")
    await capas.complete_action(
        session, capa_id=capa_id, action_id=action_id, evidence=body.evidence, by=user.username
    )
    await session.commit()
    await _wake(client, capa, "action completed")
    return await _public(session, capa_id)


@router.post(
    "/api/capas/{capa_id}/effectiveness", response_model=CapaPublic, dependencies=[Depends(VERIFIERS)]
)
async def record_effectiveness(
    capa_id: int, body: EffectivenessIn, session: SessionDep, client: TemporalDep, user: CurrentUser
) -> CapaPublic:
    """Record the effectiveness verification: effective goes to closure sign-off, ineffective starts a new
    cycle from investigation."""
    capa = await capas.get_capa(session, capa_id)
    await capas.record_effectiveness(
        session, capa_id=capa_id, result=body.result, summary=body.summary, by=user.username
    )
    await session.commit()
    await _wake(client, capa, "effectiveness recorded")
    return await _public(session, capa_id)
