"""Change control: open a change, follow it, submit its impact and risk, report implementation tasks
done, comment or withdraw; and controlled documents ("which version was in force on date X").

Approvals and verification are signed through ``POST /api/tasks/{id}/sign`` (the one sign-off
mechanism); the writes here command ``ChangeControlWorkflow`` by Update, so a refusal is a 409 with
the workflow's reason, after the input was checked here (422 naming the field).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep, SettingsDep, TemporalDep, reauthenticate, require_roles
from api.schemas.changes import (
    ApprovalPublic,
    ChangeCreate,
    ChangeCreated,
    ChangeListItem,
    ChangePublic,
    ChangeTaskPublic,
    CommentIn,
    DocumentPublic,
    DocumentVersionPublic,
    ImpactIn,
    ImpactLotPublic,
    ImpactPublic,
    TaskDone,
    WithdrawIn,
)
from api.schemas.recalls import SignaturePublic, TaskBrief
from api.workflow_calls import execute_update, start_process
from domain.changes import policy
from domain.changes import service as changes
from domain.changes.models import (
    ChangeApproval,
    ChangeImpact,
    ChangeImpactLot,
    ChangeProduct,
    ChangeRequest,
    ChangeTask,
    Document,
    DocumentVersion,
)
from domain.changes.payloads import (
    ENDED_STATUSES,
    ChangeKind,
    ChangeStart,
    ChangeStatus,
    ChangeTaskStatus,
    DocumentChange,
    ImpactSubmission,
    ImpactSummary,
    ImplementationTaskSpec,
    TaskCompletion,
    Withdrawal,
)
from domain.enums import Role
from domain.errors import NotFound
from domain.models import Lot, Product
from domain.tasks.models import Task
from domain.tasks.payloads import SignatureMeaning, SignOff, SignOffResult, TaskStatus
from domain.tasks.service import deputising_for, get_task, signatures_for

router = APIRouter(tags=["changes"])

READERS = require_roles(*Role)
REQUESTERS = require_roles(Role.qa, Role.qa_manager, Role.production, Role.regulatory)


def _docs(items) -> list[DocumentChange] | None:
    if items is None:
        return None
    return [DocumentChange(code=d.code, version=d.version, title=d.title) for d in items]


@router.post(
    "/api/changes",
    status_code=status.HTTP_201_CREATED,
    response_model=ChangeCreated,
    dependencies=[Depends(REQUESTERS)],
)
async def create_change(
    body: ChangeCreate, session: SessionDep, settings: SettingsDep, client: TemporalDep, user: CurrentUser
) -> ChangeCreated:
    """Open a change request: the record is created and ChangeControlWorkflow ``change-<id>`` started."""
    product_ids = await changes.resolve_products(session, codes=body.product_codes)
    change = await changes.create_change(
        session,
        kind=body.kind,
        title=body.title,
        description=body.description,
        product_ids=product_ids,
        blocks_release=body.blocks_release,
        effective_on=body.effective_on,
        documents=_docs(body.documents) or [],
        initiated_by=user.username,
    )
    workflow_id = change.workflow_id or f"change-{change.id}"
    start = ChangeStart(
        change_id=change.id, reference=change.reference, initiated_by=user.username, kind=change.kind
    )
    await start_process(
        session, client, settings.temporal_task_queue, "ChangeControlWorkflow", workflow_id, start
    )
    return ChangeCreated(
        id=change.id, reference=change.reference, status=change.status.value, workflow_id=workflow_id
    )


async def _product_codes(session, change_ids: list[int]) -> dict[int, list[str]]:
    if not change_ids:
        return {}
    rows = await session.execute(
        select(ChangeProduct.change_id, Product.code)
        .join(Product, Product.id == ChangeProduct.product_id)
        .where(ChangeProduct.change_id.in_(change_ids))
        .order_by(Product.code)
    )
    out: dict[int, list[str]] = {}
    for cid, code in rows:
        out.setdefault(cid, []).append(code)
    return out


def _item(c: ChangeRequest, products: list[str]) -> ChangeListItem:
    return ChangeListItem(
        id=c.id,
        reference=c.reference,
        kind=c.kind.value,
        title=c.title,
        status=c.status.value,
        initiated_by=c.initiated_by,
        initiated_at=c.initiated_at,
        blocks_release=c.blocks_release,
        effective_on=c.effective_on,
        became_effective_on=c.became_effective_on,
        round=c.round,
        products=products,
    )


@router.get("/api/changes", response_model=list[ChangeListItem], dependencies=[Depends(READERS)])
async def list_changes(
    session: SessionDep,
    status_: ChangeStatus | None = Query(default=None, alias="status"),
    kind: ChangeKind | None = None,
    product_code: str | None = None,
    open_only: bool = Query(default=False, alias="open"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[ChangeListItem]:
    """Changes, newest first, by status, kind, affected product, or only the open ones."""
    q = select(ChangeRequest).order_by(ChangeRequest.id.desc()).limit(limit)
    if status_:
        q = q.where(ChangeRequest.status == status_)
    if kind:
        q = q.where(ChangeRequest.kind == kind)
    if open_only:
        q = q.where(ChangeRequest.status.not_in(ENDED_STATUSES))
    if product_code:
        (pid,) = await changes.resolve_products(session, codes=[product_code], field="product_code")
        q = q.join(ChangeProduct, ChangeProduct.change_id == ChangeRequest.id).where(
            ChangeProduct.product_id == pid
        )
    rows = list(await session.scalars(q))
    codes = await _product_codes(session, [c.id for c in rows])
    return [_item(c, codes.get(c.id, [])) for c in rows]


async def _impact(session, change_id: int) -> ImpactPublic | None:
    impact = await session.get(ChangeImpact, change_id)
    if impact is None:
        return None
    rows = (
        await session.execute(
            select(ChangeImpactLot, Lot.lot_number, Product.code)
            .join(Lot, Lot.id == ChangeImpactLot.lot_id)
            .join(Product, Product.id == ChangeImpactLot.product_id)
            .where(ChangeImpactLot.change_id == change_id)
            .order_by(Product.code, Lot.lot_number)
        )
    ).all()
    lots = [
        ImpactLotPublic(
            lot_id=il.lot_id,
            product_code=code,
            lot_number=number,
            on_hand=il.on_hand,
            blocked=il.blocked,
            shipped=il.shipped,
            consignees=il.consignees,
            first_shipped_on=il.first_shipped_on,
            last_shipped_on=il.last_shipped_on,
        )
        for il, number, code in rows
    ]
    return ImpactPublic(
        version=impact.version,
        computed_at=impact.computed_at,
        products=impact.products or [],
        lots_in_stock=impact.lots_in_stock,
        units_on_hand=impact.units_on_hand,
        lots_delivered=impact.lots_delivered,
        units_delivered=impact.units_delivered,
        consignees=impact.consignees,
        documents=impact.documents or [],
        risk_assessment=impact.risk_assessment,
        risk_rating=impact.risk_rating.value if impact.risk_rating else None,
        assessed_by=impact.assessed_by,
        assessed_at=impact.assessed_at,
        in_stock=[x for x in lots if x.on_hand > 0],
        delivered=[x for x in lots if x.shipped > 0],
    )


def _version_public(doc: Document, ver: DocumentVersion, reference: str | None) -> DocumentVersionPublic:
    return DocumentVersionPublic(
        code=doc.code,
        title=doc.title,
        version=ver.version,
        status=ver.status.value,
        effective_from=ver.effective_from,
        effective_to=ver.effective_to,
        change_reference=reference,
    )


@router.get("/api/changes/{change_id}", response_model=ChangePublic, dependencies=[Depends(READERS)])
async def get_change(change_id: int, session: SessionDep) -> ChangePublic:
    """A change with its impact (lots in stock and delivered), approvals, tasks, documents, signatures."""
    change = await changes.get_change(session, change_id)
    codes = await _product_codes(session, [change.id])
    approvals = list(
        await session.scalars(
            select(ChangeApproval)
            .where(ChangeApproval.change_id == change_id)
            .order_by(ChangeApproval.round, ChangeApproval.id)
        )
    )
    plan_rows = list(
        await session.scalars(
            select(ChangeTask).where(ChangeTask.change_id == change_id).order_by(ChangeTask.seq)
        )
    )
    docs = (
        await session.execute(
            select(Document, DocumentVersion)
            .join(DocumentVersion, DocumentVersion.document_id == Document.id)
            .where(DocumentVersion.change_id == change_id)
            .order_by(Document.code)
        )
    ).all()
    open_tasks = list(
        await session.scalars(
            select(Task)
            .where(Task.record_type == "change", Task.record_id == change_id, Task.status == TaskStatus.open)
            .order_by(Task.priority, Task.due_at, Task.id)
        )
    )
    sigs = await signatures_for(session, record_type="change", record_id=change_id)
    now = datetime.now(UTC)
    return ChangePublic(
        **_item(change, codes.get(change.id, [])).model_dump(),
        description=change.description,
        workflow_id=change.workflow_id,
        returned_reasons=change.returned_reasons or [],
        closed_at=change.closed_at,
        closure_note=change.closure_note,
        impact=await _impact(session, change_id),
        approvals=[
            ApprovalPublic(
                round=a.round,
                role=a.role,
                requirement=a.requirement.value,
                task_id=a.task_id,
                decision=a.decision,
                decided_by=a.decided_by,
                printed_name=a.printed_name,
                decided_at=a.decided_at,
                comment=a.comment,
                signature_id=a.signature_id,
            )
            for a in approvals
        ],
        tasks=[
            ChangeTaskPublic(
                id=t.id,
                seq=t.seq,
                kind=t.kind,
                title=t.title,
                description=t.description,
                owner=t.owner,
                due_on=t.due_on,
                status=t.status.value,
                overdue=t.status == ChangeTaskStatus.open and t.due_at < now,
                escalation_level=t.escalation_level,
                inbox_task_id=t.inbox_task_id,
                completed_at=t.completed_at,
                completed_by=t.completed_by,
                note=t.note,
            )
            for t in plan_rows
        ],
        documents=[_version_public(doc, ver, change.reference) for doc, ver in docs],
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
        open_tasks=[
            TaskBrief(
                id=t.id,
                kind=t.kind,
                title=t.title,
                candidate_roles=t.candidate_roles,
                assignee=t.assignee,
                status=t.status.value,
                due_at=t.due_at,
            )
            for t in open_tasks
        ],
    )


@router.post(
    "/api/changes/{change_id}/impact", response_model=ImpactSummary, dependencies=[Depends(REQUESTERS)]
)
async def submit_impact(
    change_id: int, body: ImpactIn, session: SessionDep, client: TemporalDep, user: CurrentUser
) -> ImpactSummary:
    """The risk part and implementation plan (and revisions after a return); approvals open next."""
    change = await changes.get_change(session, change_id)
    tasks = [
        ImplementationTaskSpec(title=t.title, owner=t.owner, due_on=t.due_on, description=t.description)
        for t in body.tasks
    ]
    product_ids, tasks, docs = await changes.check_submission(
        session,
        change_id=change_id,
        risk_assessment=body.risk_assessment,
        risk_rating=body.risk_rating,
        tasks=tasks,
        effective_on=body.effective_on,
        product_codes=body.product_codes,
        documents=_docs(body.documents),
        description=body.description,
    )
    await session.commit()
    submission = ImpactSubmission(
        change_id=change_id,
        username=user.username,
        roles=[r.value for r in user.roles],
        risk_assessment=body.risk_assessment,
        risk_rating=body.risk_rating,
        tasks=tasks,
        effective_on=body.effective_on,
        product_ids=product_ids,
        description=body.description,
        documents=docs,
    )
    return await execute_update(
        client, change.workflow_id or f"change-{change_id}", "submit_impact", submission, ImpactSummary
    )


@router.post(
    "/api/changes/{change_id}/tasks/{task_id}/complete", response_model=dict, dependencies=[Depends(READERS)]
)
async def complete_task(
    change_id: int, task_id: int, body: TaskDone, session: SessionDep, client: TemporalDep, user: CurrentUser
) -> dict:
    """Report an implementation task done (its owner or their out-of-office deputy, or a task manager on
    their behalf)."""
    change = await changes.get_change(session, change_id)
    await changes.get_change_task(session, change_id=change_id, change_task_id=task_id)
    await session.commit()
    remaining = await execute_update(
        client,
        change.workflow_id or f"change-{change_id}",
        "complete_task",
        TaskCompletion(
            change_id=change_id,
            change_task_id=task_id,
            username=user.username,
            roles=[r.value for r in user.roles],
            note=body.note,
            deputy_for=await deputising_for(session, username=user.username),
        ),
        int,
    )
    return {"task_id": task_id, "status": "done", "remaining": remaining}


@router.post(
    "/api/changes/{change_id}/comments", response_model=SignOffResult, dependencies=[Depends(READERS)]
)
async def comment(
    change_id: int, body: CommentIn, session: SessionDep, client: TemporalDep, user: CurrentUser
) -> SignOffResult:
    """A comment-only role's signed comment on its approval task (meaning "reviewed"), through the same
    ``sign_off`` Update as every sign-off; approving and rejecting go through POST /api/tasks/{id}/sign."""
    change = await changes.get_change(session, change_id)
    task = await get_task(session, body.task_id)
    if (task.record_type, task.record_id) != ("change", change_id):
        raise NotFound(f"change {change_id} has no task {body.task_id}", field="task_id")
    await reauthenticate(session, user, body.password)
    await session.commit()
    signoff = SignOff(
        task_id=task.id,
        username=user.username,
        printed_name=user.full_name or user.username,
        roles=[r.value for r in user.roles],
        meaning=SignatureMeaning.reviewed,
        reason=body.comment,
    )
    return await execute_update(
        client, change.workflow_id or f"change-{change_id}", "sign_off", signoff, SignOffResult
    )


@router.post("/api/changes/{change_id}/withdraw", response_model=dict, dependencies=[Depends(REQUESTERS)])
async def withdraw(
    change_id: int, body: WithdrawIn, session: SessionDep, client: TemporalDep, user: CurrentUser
) -> dict:
    """Withdraw an open change (its initiator or a QA manager) with a signed justification."""
    change = await changes.get_change(session, change_id)
    await reauthenticate(session, user, body.password)
    await session.commit()
    signature_id = await execute_update(
        client,
        change.workflow_id or f"change-{change_id}",
        "withdraw",
        Withdrawal(
            username=user.username,
            printed_name=user.full_name or user.username,
            roles=[r.value for r in user.roles],
            justification=body.justification,
        ),
        int,
    )
    return {"change_id": change_id, "signature_id": signature_id}


@router.get("/api/documents/{code}", response_model=DocumentPublic, dependencies=[Depends(READERS)])
async def get_document(code: str, session: SessionDep) -> DocumentPublic:
    """A controlled document and every version, with the change that brought it in."""
    doc = await changes.get_document(session, document_code=code)
    versions = await changes.document_versions(session, document_code=code)
    refs = dict(
        (
            await session.execute(
                select(ChangeRequest.id, ChangeRequest.reference).where(
                    ChangeRequest.id.in_([v.change_id for v in versions if v.change_id])
                )
            )
        ).all()
    )
    return DocumentPublic(
        code=doc.code,
        title=doc.title,
        versions=[_version_public(doc, v, refs.get(v.change_id)) for v in versions],
    )


@router.get(
    "/api/documents/{code}/in-force", response_model=DocumentVersionPublic, dependencies=[Depends(READERS)]
)
async def in_force(
    code: str,
    session: SessionDep,
    on: date | None = Query(default=None, description="YYYY-MM-DD; default: today at the site"),
) -> DocumentVersionPublic:
    """Which version of the document was in force on the date (404 naming ``on`` when none was)."""
    day = on or policy.site_date(datetime.now(UTC))
    ver = await changes.version_in_force(session, document_code=code, on=day)
    if ver is None:
        raise NotFound(f"no version of {code} was in force on {day.isoformat()}", field="on")
    doc = await changes.get_document(session, document_code=code)
    reference = (await session.get(ChangeRequest, ver.change_id)).reference if ver.change_id else None
    return _version_public(doc, ver, reference)
