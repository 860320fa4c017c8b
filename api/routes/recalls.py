"""Recalls for QA: start one, follow it, widen its scope, close or cancel it with a signature."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import CurrentUser, SessionDep, SettingsDep, TemporalDep, reauthenticate, require_roles
from api.schemas.recalls import (
    CapaLink,
    DeadlinePublic,
    NoticeEventPublic,
    ProgressPublic,
    RecallConsigneePublic,
    RecallCreate,
    RecallCreated,
    RecallListItem,
    RecallPublic,
    ReportBrief,
    SignaturePublic,
    SignedJustification,
    SuspectItem,
    TaskBrief,
    UnitsPublic,
    WidenRequest,
)
from api.workflow_calls import execute_update, start_process
from domain.capa.service import capas_for_recall
from domain.enums import Role
from domain.errors import DomainError
from domain.models import Consignee
from domain.recalls import service as recalls
from domain.recalls.models import (
    NoticeEvent,
    Recall,
    RecallConsignee,
    RecallReport,
    Response,
    ResponseQuantity,
)
from domain.recalls.payloads import (
    CloseRequest,
    ConsigneeState,
    RecallStart,
    RecallStatus,
    ScopeSummary,
    WidenScope,
)
from domain.tasks.models import Task
from domain.tasks.payloads import TaskStatus
from domain.tasks.service import signatures_for
from domain.trace import resolve_origin

router = APIRouter(prefix="/api/recalls", tags=["recalls"])

READERS = require_roles(*Role)
QA = require_roles(Role.qa)
MANAGER = require_roles(Role.qa_manager)
OVERRIDERS = require_roles(Role.qa_manager, Role.regulatory)


async def _resolve(session, suspects: list[SuspectItem], field: str = "suspects") -> list[int]:
    """Lot ids for the suspects; a 422 naming ``suspects.<i>.<field>`` for the first that is wrong."""
    lot_ids: list[int] = []
    for i, item in enumerate(suspects):
        try:
            lot_ids += await resolve_origin(
                session,
                product_code=item.product_code,
                lot_number=item.lot_number,
                serial=item.serial,
                gs1=item.gs1,
            )
        except DomainError as exc:
            raise HTTPException(
                status_code=422,
                detail=[{"field": f"{field}.{i}.{exc.field or 'lot_number'}", "reason": exc.reason}],
            ) from exc
    return lot_ids


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=RecallCreated, dependencies=[Depends(QA)]
)
async def create_recall(
    body: RecallCreate,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalDep,
    user: CurrentUser,
) -> RecallCreated:
    """Start a recall: the record is created and RecallWorkflow ``recall-<id>`` started (if Temporal cannot
    take the start at this moment, the recall still stands and the worker starts its workflow shortly)."""
    lot_ids = await _resolve(session, body.suspects)
    recall = await recalls.create_recall(
        session,
        suspect_lot_ids=lot_ids,
        reason=body.reason,
        hazard=body.hazard,
        nmpa_level=body.nmpa_level,
        fda_class=body.fda_class,
        eu_incident=body.eu_incident,
        eu_aware_at=body.eu_aware_at,
        jurisdictions=list(body.jurisdictions),
        depth=body.depth,
        required_actions=list(body.required_actions),
        initiated_by=user.username,
    )
    workflow_id = recall.workflow_id or f"recall-{recall.id}"
    start = RecallStart(
        recall_id=recall.id,
        reference=recall.reference,
        initiated_by=user.username,
        nmpa_level=recall.nmpa_level,
        fda_class=recall.fda_class_proposed,
        jurisdictions=list(recall.jurisdictions),
    )
    await start_process(session, client, settings.temporal_task_queue, "RecallWorkflow", workflow_id, start)
    return RecallCreated(
        id=recall.id, reference=recall.reference, status=recall.status.value, workflow_id=workflow_id
    )


@router.get("", response_model=list[RecallListItem], dependencies=[Depends(READERS)])
async def list_recalls(
    session: SessionDep,
    status_: RecallStatus | None = Query(default=None, alias="status"),
    jurisdiction: str | None = None,
    nmpa_level: int | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[RecallListItem]:
    """Recalls, newest first, filtered by status, jurisdiction or level."""
    q = select(Recall).order_by(Recall.id.desc()).limit(limit)
    if status_:
        q = q.where(Recall.status == status_)
    if nmpa_level:
        q = q.where(Recall.nmpa_level == nmpa_level)
    rows = list(await session.scalars(q))
    if jurisdiction:
        rows = [r for r in rows if jurisdiction in r.jurisdictions]
    return [list_item(r) for r in rows]


def list_item(r: Recall) -> RecallListItem:
    return RecallListItem(
        id=r.id,
        reference=r.reference,
        status=r.status.value,
        nmpa_level=r.nmpa_level,
        fda_class=r.fda_class_proposed,
        eu_incident=r.eu_incident,
        jurisdictions=r.jurisdictions,
        initiated_by=r.initiated_by,
        initiated_at=r.initiated_at,
        decided_at=r.decided_at,
        notify_deadline=r.notify_deadline,
    )


async def deadlines_of(session: AsyncSession, recall: Recall) -> list[DeadlinePublic]:
    """Each deadline with whether it was met: notification when every consignee had a sent notice; a
    filing when its task was reported done (``POST /api/tasks/{id}/complete``). Unmet once overdue."""
    now = datetime.now(UTC)
    filings = {  # business key -> when it was filed (None: not yet)
        key: at if status == TaskStatus.completed else None
        for key, status, at in await session.execute(
            select(Task.business_key, Task.status, Task.completed_at).where(
                Task.record_type == "recall", Task.record_id == recall.id, Task.kind.startswith("file:")
            )
        )
    }
    out = []
    for d in recall.deadlines or []:
        due = datetime.fromisoformat(d["due_at"])
        key = f"recall-{recall.id}-{d['key']}"
        tracked = d["kind"] == "notify" or key in filings  # others: no record of being done is kept
        done = recall.notification_completed_at if d["kind"] == "notify" else filings.get(key)
        met = (done <= due) if done else (False if tracked and now > due else None)
        out.append(
            DeadlinePublic(
                key=d["key"],
                kind=d["kind"],
                due_at=due,
                rule=d["rule"],
                source=d.get("source"),
                met=met,
                done_at=done,
            )
        )
    return out


@router.get("/{recall_id}", response_model=RecallPublic, dependencies=[Depends(READERS)])
async def get_recall(recall_id: int, session: SessionDep) -> RecallPublic:
    """Status, scope, deadlines (met or not), the consignee funnel, units, signatures and open tasks."""
    recall = await recalls.get_recall(session, recall_id)
    states = dict(
        (
            await session.execute(
                select(RecallConsignee.state, func.count())
                .where(RecallConsignee.recall_id == recall_id)
                .group_by(RecallConsignee.state)
            )
        ).all()
    )
    prog = await recalls.progress(session, recall_id=recall_id)
    sums = (
        await session.execute(
            select(
                *(
                    func.coalesce(func.sum(getattr(ResponseQuantity, c)), 0)
                    for c in ("on_hand", "returned", "corrected", "destroyed", "used")
                )
            )
            .join(Response, Response.id == ResponseQuantity.response_id)
            .where(Response.recall_id == recall_id)
        )
    ).one()
    scope = (
        await recalls.scope_summary(session, recall_id=recall_id, version=recall.scope_version)
        if recall.scope_version
        else None
    )
    tasks = list(
        await session.scalars(
            select(Task)
            .where(Task.record_type == "recall", Task.record_id == recall_id, Task.status == TaskStatus.open)
            .order_by(Task.priority, Task.due_at)
        )
    )
    sigs = await signatures_for(session, record_type="recall", record_id=recall_id)
    item = list_item(recall)
    return RecallPublic(
        **item.model_dump(),
        reason=recall.reason,
        hazard=recall.hazard,
        depth=recall.depth,
        required_actions=recall.required_actions,
        scope=scope,
        deadlines=await deadlines_of(session, recall),
        progress=ProgressPublic(
            planned=prog.consignees,
            sent=prog.sent,
            delivered=prog.delivered,
            opened=prog.opened,
            acknowledged=prog.acknowledged,
            overdue=prog.overdue,
            unreachable=states.get(ConsigneeState.unreachable, 0),
        ),
        units=UnitsPublic(
            shipped=scope.units_shipped if scope else 0,
            on_hand_at_scope=scope.units_on_hand if scope else 0,
            reported_on_hand=sums[0],
            returned=sums[1],
            corrected=sums[2],
            destroyed=sums[3],
            used=sums[4],
        ),
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
        notification_completed_at=recall.notification_completed_at,
        completed_at=recall.completed_at,
        closed_at=recall.closed_at,
        closure_justification=recall.closure_justification,
        capas=[
            CapaLink(id=c.id, reference=c.reference, title=c.title, status=c.status.value)
            for c in await capas_for_recall(session, recall_id=recall_id)
        ],
    )


@router.get(
    "/{recall_id}/consignees", response_model=list[RecallConsigneePublic], dependencies=[Depends(READERS)]
)
async def recall_consignees(
    recall_id: int, session: SessionDep, state: ConsigneeState | None = None, overdue: bool | None = None
) -> list[RecallConsigneePublic]:
    """Each consignee of the recall with its notice timeline (sent → delivered → opened → acknowledged)."""
    await recalls.get_recall(session, recall_id)
    q = (
        select(RecallConsignee, Consignee)
        .join(Consignee, Consignee.id == RecallConsignee.consignee_id)
        .where(RecallConsignee.recall_id == recall_id)
        .order_by(Consignee.code)
    )
    if state:
        q = q.where(RecallConsignee.state == state)
    if overdue is not None:
        q = q.where(RecallConsignee.overdue.is_(overdue))
    rows = (await session.execute(q)).all()
    events: dict[int, list[NoticeEventPublic]] = {}
    for e in await session.scalars(
        select(NoticeEvent).where(NoticeEvent.recall_id == recall_id).order_by(NoticeEvent.at, NoticeEvent.id)
    ):
        events.setdefault(e.consignee_id, []).append(
            NoticeEventPublic(at=e.at, kind=e.kind, channel=e.channel, detail=e.detail)
        )
    return [
        RecallConsigneePublic(
            code=c.code,
            name=c.name,
            kind=c.kind.value,
            region=c.region,
            language=c.language.value,
            state=rc.state.value,
            overdue=rc.overdue,
            units_shipped=rc.units_shipped,
            first_sent_at=rc.first_sent_at,
            delivered_at=rc.delivered_at,
            opened_at=rc.opened_at,
            acknowledged_at=rc.acknowledged_at,
            timeline=events.get(c.id, []),
        )
        for rc, c in rows
    ]


@router.post("/{recall_id}/scope", response_model=ScopeSummary, dependencies=[Depends(QA)])
async def widen_scope(
    recall_id: int,
    body: WidenRequest,
    session: SessionDep,
    client: TemporalDep,
    user: CurrentUser,
) -> ScopeSummary:
    """Widen the scope with more lots: a new scope version and its diff; notices only for what is new."""
    workflow_id = (await recalls.get_recall(session, recall_id)).workflow_id or f"recall-{recall_id}"
    lot_ids = await _resolve(session, body.suspects)
    await session.rollback()  # read-only so far; end the transaction before the long Update
    return await execute_update(
        client,
        workflow_id,
        "widen_scope",
        WidenScope(lot_ids=lot_ids, requested_by=user.username, reason=body.reason),
        ScopeSummary,
    )


async def _signed_ending(
    recall_id: int, body: SignedJustification, session, client, user, update: str
) -> dict:
    recall = await recalls.get_recall(session, recall_id)
    await reauthenticate(session, user, body.password)
    await session.commit()
    signature_id = await execute_update(
        client,
        recall.workflow_id or f"recall-{recall_id}",
        update,
        CloseRequest(
            username=user.username,
            printed_name=user.full_name or user.username,
            roles=[r.value for r in user.roles],
            justification=body.justification,
        ),
        int,
    )
    return {"recall_id": recall_id, "signature_id": signature_id}


@router.post("/{recall_id}/close", dependencies=[Depends(MANAGER)])
async def close_recall(
    recall_id: int,
    body: SignedJustification,
    session: SessionDep,
    client: TemporalDep,
    user: CurrentUser,
) -> dict:
    """Close (or, before approval, cancel) the recall with a signed justification."""
    return await _signed_ending(recall_id, body, session, client, user, "close")


@router.post("/{recall_id}/urgent-override", dependencies=[Depends(OVERRIDERS)])
async def urgent_override(
    recall_id: int, body: SignedJustification, session: SessionDep, client: TemporalDep, user: CurrentUser
) -> dict:
    """EU: send the field safety notice before the FSCA report, with a signed justification of urgency."""
    return await _signed_ending(recall_id, body, session, client, user, "urgent_override")


@router.get("/{recall_id}/reports", response_model=list[ReportBrief], dependencies=[Depends(READERS)])
async def list_reports(recall_id: int, session: SessionDep) -> list[ReportBrief]:
    """The reports generated for the recall."""
    await recalls.get_recall(session, recall_id)
    rows = await session.scalars(
        select(RecallReport).where(RecallReport.recall_id == recall_id).order_by(RecallReport.id)
    )
    return [
        ReportBrief(id=r.id, kind=r.kind, sequence=r.sequence, title=r.title, created_at=r.created_at)
        for r in rows
    ]


@router.get("/{recall_id}/reports/{report_id}", dependencies=[Depends(READERS)])
async def get_report(recall_id: int, report_id: int, session: SessionDep, fmt: str = "json") -> dict:
    """One report: its text, HTML and figures."""
    report = await session.get(RecallReport, report_id)
    if report is None or report.recall_id != recall_id:
        raise HTTPException(status_code=404, detail=[{"field": "report_id", "reason": "no such report"}])
    return {
        "id": report.id,
        "kind": report.kind,
        "sequence": report.sequence,
        "title": report.title,
        "created_at": report.created_at,
        "text": report.body_text,
        "html": report.body_html,
        "data": report.data,
        "format": fmt,
    }
