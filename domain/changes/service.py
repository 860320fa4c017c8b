"""Change requests in the store: create and revise them, compute their impact on product in stock and
already delivered, record approvals and implementation, bring document versions into force, and answer
the two questions other processes ask: which open changes block release of a product, and which
version of a document was in force on a date.

Every function that a workflow activity calls is idempotent by a business key (the round, the task,
the change), because activities may run more than once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import case, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.changes import policy
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
    ApprovalDecision,
    ApprovalsOpened,
    ChangeKind,
    ChangePlan,
    ChangeStatus,
    ChangeTaskStatus,
    DocumentChange,
    DocumentStatus,
    EffectiveResult,
    EffectiveTiming,
    ImpactSubmission,
    ImpactSummary,
    ImplementationState,
    ImplementationTaskSpec,
    OpenImplTask,
    OverdueCheck,
    Rework,
    RiskRating,
    RoundClosed,
    SignChange,
    TaskCompletion,
)
from domain.enums import StockStatus
from domain.errors import Conflict, InvalidInput, NotFound
from domain.models import Lot, Product, Shipment, ShipmentLine, StockBalance, User
from domain.tasks import service as task_service
from domain.tasks.models import Task
from domain.tasks.payloads import TaskSpec, TaskStatus

MAX_TITLE = 255
MAX_VERSION = 32
MAX_CODE = 64


def _now() -> datetime:
    return datetime.now(UTC)


# ---- reading ---------------------------------------------------------------------------------


async def get_change(session: AsyncSession, change_id: int) -> ChangeRequest:
    """The change, or NotFound."""
    change = await session.get(ChangeRequest, change_id)
    if change is None:
        raise NotFound(f"change {change_id} not found", field="change_id")
    return change


async def products_of(session: AsyncSession, *, change_id: int) -> list[int]:
    """Ids of the products a change affects."""
    rows = await session.scalars(
        select(ChangeProduct.product_id)
        .where(ChangeProduct.change_id == change_id)
        .order_by(ChangeProduct.product_id)
    )
    return list(rows)


async def open_changes_blocking_release(session: AsyncSession, *, product_id: int) -> list[str]:
    """References of open changes that affect the product and say they block its release."""
    rows = await session.scalars(
        select(ChangeRequest.reference)
        .join(ChangeProduct, ChangeProduct.change_id == ChangeRequest.id)
        .where(
            ChangeProduct.product_id == product_id,
            ChangeRequest.blocks_release.is_(True),
            ChangeRequest.status.not_in(ENDED_STATUSES),
        )
        .order_by(ChangeRequest.id)
    )
    return list(rows)


# ---- validation ------------------------------------------------------------------------------


def _text(value: str | None, *, field: str, what: str, limit: int | None = None) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{what} must be given", field=field)
    if limit and len(text) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters", field=field)
    return text


async def resolve_products(
    session: AsyncSession, *, codes: Sequence[str], field: str = "product_codes"
) -> list[int]:
    """Product ids for the codes, in order without repeats; InvalidInput names ``<field>.<i>``."""
    ids: list[int] = []
    for i, code in enumerate(codes):
        pid = await session.scalar(select(Product.id).where(Product.code == (code or "").strip()))
        if pid is None:
            raise InvalidInput(f"no product with code '{code}'", field=f"{field}.{i}")
        if pid not in ids:
            ids.append(pid)
    return ids


async def check_tasks(
    session: AsyncSession, *, tasks: Sequence[ImplementationTaskSpec], today: date, field: str = "tasks"
) -> list[ImplementationTaskSpec]:
    """The implementation plan, checked: at least one task, each with a title, an active owner and a
    due date not in the past."""
    if not tasks:
        raise InvalidInput("plan at least one implementation task", field=field)
    out = []
    for i, t in enumerate(tasks):
        title = _text(t.title, field=f"{field}.{i}.title", what="the task's title", limit=MAX_TITLE)
        owner = await session.scalar(select(User).where(User.username == t.owner))
        if owner is None or not owner.active:
            raise InvalidInput(f"'{t.owner}' is not an active user", field=f"{field}.{i}.owner")
        if t.due_on < today:
            raise InvalidInput(f"the due date {t.due_on} is in the past", field=f"{field}.{i}.due_on")
        out.append(t.model_copy(update={"title": title}))
    return out


async def check_documents(
    session: AsyncSession,
    *,
    documents: Sequence[DocumentChange],
    change_id: int | None = None,
    field: str = "documents",
) -> list[DocumentChange]:
    """The document versions a change brings in: a code, a version that does not exist yet (except as
    this change's own draft), and a title for a new document."""
    seen: set[str] = set()
    out = []
    for i, d in enumerate(documents):
        code = _text(d.code, field=f"{field}.{i}.code", what="the document code", limit=MAX_CODE)
        version = _text(d.version, field=f"{field}.{i}.version", what="the version", limit=MAX_VERSION)
        if code in seen:
            raise InvalidInput(f"document {code} is named twice", field=f"{field}.{i}.code")
        seen.add(code)
        doc = await session.scalar(select(Document).where(Document.code == code))
        if doc is None:
            _text(d.title, field=f"{field}.{i}.title", what="a new document's title", limit=MAX_TITLE)
        else:
            existing = await session.scalar(
                select(DocumentVersion).where(
                    DocumentVersion.document_id == doc.id, DocumentVersion.version == version
                )
            )
            if existing is not None and (change_id is None or existing.change_id != change_id):
                raise InvalidInput(f"{code} version {version} exists already", field=f"{field}.{i}.version")
        out.append(DocumentChange(code=code, version=version, title=(d.title or "").strip()))
    return out


def _check_effective(effective_on: date | None, today: date) -> None:
    if effective_on is not None and effective_on < today:
        raise InvalidInput(f"the effective date {effective_on} is in the past", field="effective_on")


# ---- creating and revising ---------------------------------------------------------------------


async def _next_reference(session: AsyncSession, year: int) -> str:
    prefix = f"CHG-{year}-"
    refs = await session.scalars(
        select(ChangeRequest.reference).where(ChangeRequest.reference.like(f"{prefix}%"))
    )
    numbers = [int(r[len(prefix) :]) for r in refs if r[len(prefix) :].isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:04d}"


async def _set_documents(
    session: AsyncSession, change: ChangeRequest, documents: list[DocumentChange]
) -> None:
    """Replace the change's draft document versions."""
    await session.execute(
        delete(DocumentVersion).where(
            DocumentVersion.change_id == change.id, DocumentVersion.status == DocumentStatus.draft
        )
    )
    for d in documents:
        doc = await session.scalar(select(Document).where(Document.code == d.code))
        if doc is None:
            doc = Document(code=d.code, title=d.title)
            session.add(doc)
            await session.flush()
        session.add(
            DocumentVersion(
                document_id=doc.id, version=d.version, status=DocumentStatus.draft, change_id=change.id
            )
        )
    await session.flush()


async def _set_products(session: AsyncSession, change: ChangeRequest, product_ids: list[int]) -> None:
    await session.execute(delete(ChangeProduct).where(ChangeProduct.change_id == change.id))
    for pid in product_ids:
        session.add(ChangeProduct(change_id=change.id, product_id=pid))
    await session.flush()


async def create_change(
    session: AsyncSession,
    *,
    kind: ChangeKind | str,
    title: str,
    description: str,
    product_ids: Sequence[int],
    initiated_by: str,
    blocks_release: bool = False,
    effective_on: date | None = None,
    documents: Sequence[DocumentChange] = (),
    at: datetime | None = None,
) -> ChangeRequest:
    """Create a change request (status impact_assessment); the workflow computes its impact."""
    at = at or _now()
    try:
        kind = ChangeKind(kind)
    except ValueError as exc:
        kinds = ", ".join(k.value for k in ChangeKind)
        raise InvalidInput(f"the kind must be one of {kinds}", field="kind") from exc
    title = _text(title, field="title", what="the title", limit=MAX_TITLE)
    description = _text(description, field="description", what="the description")
    ids = list(dict.fromkeys(product_ids))
    for pid in ids:
        if await session.get(Product, pid) is None:
            raise InvalidInput(f"product {pid} not found", field="product_ids")
    if blocks_release and not ids:
        raise InvalidInput(
            "a change that blocks release must name the products it affects", field="blocks_release"
        )
    _check_effective(effective_on, policy.site_date(at))
    docs = await check_documents(session, documents=documents)
    if kind == ChangeKind.document and not docs:
        raise InvalidInput("a document change names the document versions it brings in", field="documents")
    change = ChangeRequest(
        reference=await _next_reference(session, at.year),
        kind=kind,
        title=title,
        description=description,
        status=ChangeStatus.impact_assessment,
        initiated_by=initiated_by,
        initiated_at=at,
        blocks_release=blocks_release,
        effective_on=effective_on,
        round=0,
        returned_reasons=[],
    )
    session.add(change)
    try:
        await session.flush()
    except IntegrityError as exc:  # two requests took the same number at the same moment
        raise Conflict(
            "another change took the same reference just now; send it again", field="reference"
        ) from exc
    change.workflow_id = f"change-{change.id}"
    await _set_products(session, change, ids)
    await _set_documents(session, change, docs)
    return change


async def check_submission(
    session: AsyncSession,
    *,
    change_id: int,
    risk_assessment: str,
    risk_rating: RiskRating | str,
    tasks: Sequence[ImplementationTaskSpec],
    effective_on: date | None = None,
    product_codes: Sequence[str] | None = None,
    documents: Sequence[DocumentChange] | None = None,
    description: str | None = None,
    today: date | None = None,
) -> tuple[list[int] | None, list[ImplementationTaskSpec], list[DocumentChange] | None]:
    """Check an impact submission before it goes to the workflow (so the API answers 422 naming the
    field); returns the resolved product ids (None: unchanged), the tasks and the documents."""
    change = await get_change(session, change_id)
    today = today or policy.site_date(_now())
    _text(risk_assessment, field="risk_assessment", what="the risk assessment")
    try:
        RiskRating(risk_rating)
    except ValueError as exc:
        raise InvalidInput("the risk rating is low, medium or high", field="risk_rating") from exc
    if description is not None:
        _text(description, field="description", what="the description")
    product_ids = None
    if product_codes is not None:
        product_ids = await resolve_products(session, codes=product_codes)
        if change.blocks_release and not product_ids:
            raise InvalidInput(
                "a change that blocks release must name the products it affects", field="product_codes"
            )
    _check_effective(effective_on, today)
    checked = await check_tasks(session, tasks=tasks, today=today)
    docs = None
    if documents is not None:
        docs = await check_documents(session, documents=documents, change_id=change_id)
        if change.kind == ChangeKind.document and not docs:
            raise InvalidInput(
                "a document change names the document versions it brings in", field="documents"
            )
    return product_ids, checked, docs


async def record_impact(
    session: AsyncSession, *, submission: ImpactSubmission, at: datetime
) -> ImpactSummary:
    """Store the assessor's part (risk, the implementation plan, revisions), complete the impact task,
    and recompute the impact as version ``submission.round``."""
    sub = submission
    change = await get_change(session, sub.change_id)
    if change.status in ENDED_STATUSES:
        raise Conflict(f"change {change.reference} is {change.status.value}", field="change_id")
    if sub.description is not None:
        change.description = sub.description.strip()
    if sub.effective_on is not None:
        change.effective_on = sub.effective_on
    if sub.product_ids is not None:
        await _set_products(session, change, list(dict.fromkeys(sub.product_ids)))
    if sub.documents is not None:
        await _set_documents(session, change, list(sub.documents))
    # The plan replaces what was planned before (a return may change it); done tasks stay.
    await session.execute(
        delete(ChangeTask).where(
            ChangeTask.change_id == change.id, ChangeTask.status == ChangeTaskStatus.planned
        )
    )
    seq = await session.scalar(select(func.max(ChangeTask.seq)).where(ChangeTask.change_id == change.id)) or 0
    for t in sub.tasks:
        seq += 1
        session.add(
            ChangeTask(
                change_id=change.id,
                seq=seq,
                kind="implementation",
                title=t.title.strip(),
                description=t.description,
                owner=t.owner,
                due_on=t.due_on,
                due_at=policy.end_of_site_day(t.due_on),
                status=ChangeTaskStatus.planned,
            )
        )
    impact = await session.get(ChangeImpact, change.id)
    if impact is None:
        impact = ChangeImpact(change_id=change.id, version=0)
        session.add(impact)
    impact.risk_assessment = sub.risk_assessment.strip()
    impact.risk_rating = RiskRating(sub.risk_rating)
    impact.assessed_by = sub.username
    impact.assessed_at = at
    if sub.impact_task_id is not None:
        await _complete_inbox_task(session, sub.impact_task_id, by=sub.username, at=at, outcome="assessed")
    await session.flush()
    return await compute_impact(session, change_id=change.id, version=max(sub.round, impact.version), at=at)


# ---- impact ----------------------------------------------------------------------------------


async def _documents_of(session: AsyncSession, change_id: int, today: date) -> list[dict]:
    rows = (
        await session.execute(
            select(Document, DocumentVersion)
            .join(DocumentVersion, DocumentVersion.document_id == Document.id)
            .where(DocumentVersion.change_id == change_id)
            .order_by(Document.code)
        )
    ).all()
    out = []
    for doc, ver in rows:
        current = await version_in_force(session, document_code=doc.code, on=today)
        out.append(
            {
                "code": doc.code,
                "title": doc.title,
                "version": ver.version,
                "status": ver.status.value,
                "in_force_version": current.version if current else None,
            }
        )
    return out


async def compute_impact(
    session: AsyncSession, *, change_id: int, version: int, at: datetime
) -> ImpactSummary:
    """Recompute from the store what the change reaches: for its products, the lots with stock on hand
    (stock_balances) and the lots already delivered (shipment_lines) with their consignee counts."""
    change = await get_change(session, change_id)
    product_ids = await products_of(session, change_id=change_id)
    stock: dict[int, tuple[int, int, int]] = {}
    shipped: dict[int, tuple[int, int, int, date | None, date | None]] = {}
    consignees = 0
    if product_ids:
        rows = await session.execute(
            select(
                StockBalance.lot_id,
                Lot.product_id,
                func.sum(StockBalance.quantity),
                func.sum(case((StockBalance.status == StockStatus.blocked, StockBalance.quantity), else_=0)),
            )
            .join(Lot, Lot.id == StockBalance.lot_id)
            .where(Lot.product_id.in_(product_ids))
            .group_by(StockBalance.lot_id, Lot.product_id)
            .having(func.sum(StockBalance.quantity) > 0)
        )
        stock = {lot_id: (pid, int(total), int(blocked or 0)) for lot_id, pid, total, blocked in rows}
        rows = await session.execute(
            select(
                ShipmentLine.lot_id,
                Lot.product_id,
                func.sum(ShipmentLine.quantity),
                func.count(func.distinct(Shipment.consignee_id)),
                func.min(Shipment.shipped_on),
                func.max(Shipment.shipped_on),
            )
            .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
            .join(Lot, Lot.id == ShipmentLine.lot_id)
            .where(Lot.product_id.in_(product_ids))
            .group_by(ShipmentLine.lot_id, Lot.product_id)
        )
        shipped = {lot_id: (pid, int(q), int(n), first, last) for lot_id, pid, q, n, first, last in rows}
        consignees = (
            await session.scalar(
                select(func.count(func.distinct(Shipment.consignee_id)))
                .select_from(ShipmentLine)
                .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
                .join(Lot, Lot.id == ShipmentLine.lot_id)
                .where(Lot.product_id.in_(product_ids))
            )
            or 0
        )
    await session.execute(delete(ChangeImpactLot).where(ChangeImpactLot.change_id == change_id))
    for lot_id in sorted(set(stock) | set(shipped)):
        pid = (stock.get(lot_id) or shipped[lot_id])[0]
        on_hand, blocked = stock[lot_id][1:] if lot_id in stock else (0, 0)
        q, n, first, last = shipped[lot_id][1:] if lot_id in shipped else (0, 0, None, None)
        session.add(
            ChangeImpactLot(
                change_id=change_id,
                lot_id=lot_id,
                product_id=pid,
                on_hand=on_hand,
                blocked=blocked,
                shipped=q,
                consignees=n,
                first_shipped_on=first,
                last_shipped_on=last,
            )
        )
    codes = (
        list(
            await session.scalars(
                select(Product.code).where(Product.id.in_(product_ids)).order_by(Product.code)
            )
        )
        if product_ids
        else []
    )
    impact = await session.get(ChangeImpact, change_id)
    if impact is None:
        impact = ChangeImpact(change_id=change_id)
        session.add(impact)
    impact.version = version
    impact.computed_at = at
    impact.products = codes
    impact.lots_in_stock = len(stock)
    impact.units_on_hand = sum(v[1] for v in stock.values())
    impact.lots_delivered = len(shipped)
    impact.units_delivered = sum(v[1] for v in shipped.values())
    impact.consignees = int(consignees)
    impact.documents = await _documents_of(session, change_id, policy.site_date(at))
    await session.flush()
    return _summary(change, impact)


def _summary(change: ChangeRequest, impact: ChangeImpact | None) -> ImpactSummary:
    if impact is None:
        return ImpactSummary(change_id=change.id, version=0)
    return ImpactSummary(
        change_id=change.id,
        version=impact.version,
        products=list(impact.products or []),
        lots_in_stock=impact.lots_in_stock,
        units_on_hand=impact.units_on_hand,
        lots_delivered=impact.lots_delivered,
        units_delivered=impact.units_delivered,
        consignees=impact.consignees,
        documents=[f"{d['code']} v{d['version']}" for d in impact.documents or []],
        risk_rating=impact.risk_rating,
    )


async def impact_summary(session: AsyncSession, *, change_id: int) -> ImpactSummary:
    """The impact as last computed."""
    change = await get_change(session, change_id)
    return _summary(change, await session.get(ChangeImpact, change_id))


# ---- approvals -------------------------------------------------------------------------------


async def plan(session: AsyncSession, *, change_id: int) -> ChangePlan:
    """The policy for the change as it stands (the approvers depend on its kind and risk rating)."""
    change = await get_change(session, change_id)
    impact = await session.get(ChangeImpact, change_id)
    return policy.plan_for(change.kind, impact.risk_rating if impact else None)


async def record_approval_tasks(session: AsyncSession, *, opened: ApprovalsOpened) -> None:
    """Record the approval tasks of a round on the change (idempotent)."""
    change = await get_change(session, opened.change_id)
    for slot in opened.slots:
        row = await session.scalar(
            select(ChangeApproval).where(
                ChangeApproval.change_id == change.id,
                ChangeApproval.round == opened.round,
                ChangeApproval.role == slot.role,
            )
        )
        if row is None:
            session.add(
                ChangeApproval(
                    change_id=change.id,
                    round=opened.round,
                    role=slot.role,
                    requirement=slot.requirement,
                    task_id=slot.task_id,
                )
            )
    change.round = opened.round
    change.status = ChangeStatus.awaiting_approval
    await session.flush()


async def record_decision(session: AsyncSession, *, decision: ApprovalDecision) -> None:
    """Put a signed decision (or comment) on the approval it answers (idempotent)."""
    row = await session.scalar(select(ChangeApproval).where(ChangeApproval.task_id == decision.task_id))
    if row is None:
        raise NotFound(f"no approval has task {decision.task_id}", field="task_id")
    row.decision = decision.meaning
    row.decided_by = decision.username
    row.printed_name = decision.printed_name
    row.decided_at = decision.signed_at
    row.comment = decision.reason or None
    row.signature_id = decision.signature_id
    await session.flush()


async def close_round(session: AsyncSession, *, closed: RoundClosed, at: datetime | None = None) -> int:
    """End an approval round: cancel its undecided tasks; a rejected round returns the change to the
    requester with the reasons. Returns how many tasks were cancelled."""
    change = await get_change(session, closed.change_id)
    task_ids = list(
        await session.scalars(
            select(ChangeApproval.task_id).where(
                ChangeApproval.change_id == change.id,
                ChangeApproval.round == closed.round,
                ChangeApproval.decision.is_(None),
                ChangeApproval.task_id.is_not(None),
            )
        )
    )
    cancelled = 0
    for tid in task_ids:
        task = await session.get(Task, tid)
        if task is not None and task.status == TaskStatus.open:
            task.status = TaskStatus.cancelled
            task.completed_at = at or _now()
            task.outcome = f"approval round {closed.round} ended"
            cancelled += 1
    if not closed.approved:
        change.status = ChangeStatus.returned
        change.returned_reasons = list(closed.reasons)
    await session.flush()
    return cancelled


async def set_status(
    session: AsyncSession,
    *,
    change_id: int,
    status: ChangeStatus,
    note: str | None = None,
    at: datetime | None = None,
) -> None:
    """Set the status; an ended change gets its closing time, and a withdrawn one cancels its plan."""
    change = await get_change(session, change_id)
    change.status = status
    if status in ENDED_STATUSES:
        change.closed_at = change.closed_at or at or _now()
        if note:
            change.closure_note = note
    if status == ChangeStatus.withdrawn:
        for ct in await session.scalars(
            select(ChangeTask).where(
                ChangeTask.change_id == change_id,
                ChangeTask.status.in_([ChangeTaskStatus.planned, ChangeTaskStatus.open]),
            )
        ):
            ct.status = ChangeTaskStatus.cancelled
        for ver in await session.scalars(
            select(DocumentVersion).where(
                DocumentVersion.change_id == change_id, DocumentVersion.status == DocumentStatus.draft
            )
        ):
            ver.status = DocumentStatus.withdrawn
    await session.flush()


async def sign_change(session: AsyncSession, *, req: SignChange, at: datetime | None = None) -> int:
    """A Part 11 signature on the change itself (a withdrawal); returns its id."""
    sig = await task_service.sign_record(
        session,
        record_type="change",
        record_id=req.change_id,
        username=req.username,
        printed_name=req.printed_name,
        meaning=req.meaning,
        reason=req.reason,
        record_hash=await record_hash(session, req.change_id),
        auth_method=req.auth_method,
        at=at,
    )
    return sig.id


# ---- implementation --------------------------------------------------------------------------


async def _complete_inbox_task(
    session: AsyncSession, task_id: int, *, by: str, at: datetime, outcome: str
) -> None:
    task = await session.get(Task, task_id)
    if task is not None and task.status == TaskStatus.open:
        task.status = TaskStatus.completed
        task.completed_at = at
        task.completed_by = by
        task.outcome = outcome


async def _open_state(session: AsyncSession, change_id: int) -> ImplementationState:
    rows = await session.scalars(
        select(ChangeTask)
        .where(ChangeTask.change_id == change_id, ChangeTask.status == ChangeTaskStatus.open)
        .order_by(ChangeTask.seq)
    )
    return ImplementationState(
        tasks=[
            OpenImplTask(
                change_task_id=ct.id,
                inbox_task_id=ct.inbox_task_id,
                owner=ct.owner,
                due_at=ct.due_at,
                level=ct.escalation_level,
            )
            for ct in rows
        ]
    )


async def _open_inbox_task(
    session: AsyncSession, change: ChangeRequest, ct: ChangeTask, workflow_id: str
) -> None:
    ref = await task_service.open_task(
        session,
        spec=TaskSpec(
            process="change",
            kind="implement_change" if ct.kind == "implementation" else "rework_change",
            title=f"{change.reference}: {ct.title}"[:255],
            record_type="change",
            record_id=change.id,
            candidate_roles=[],  # the owner's task; escalation widens it to roles
            assignee=ct.owner,
            due_at=ct.due_at,
            priority=2,
            workflow_id=None,  # done through POST /api/changes/{id}/tasks/{task}/complete, not signed
            business_key=f"change-{change.id}-task-{ct.id}",
            details={"change_task_id": ct.id, "workflow_id": workflow_id},
        ),
    )
    ct.inbox_task_id = ref.task_id


async def start_implementation(
    session: AsyncSession, *, change_id: int, workflow_id: str
) -> ImplementationState:
    """Open the planned implementation tasks (inbox tasks for their owners); returns the open ones."""
    change = await get_change(session, change_id)
    planned = await session.scalars(
        select(ChangeTask)
        .where(ChangeTask.change_id == change_id, ChangeTask.status == ChangeTaskStatus.planned)
        .order_by(ChangeTask.seq)
    )
    for ct in planned:
        ct.status = ChangeTaskStatus.open
        await _open_inbox_task(session, change, ct, workflow_id)
    change.status = ChangeStatus.implementing
    await session.flush()
    return await _open_state(session, change_id)


async def escalate_overdue(session: AsyncSession, *, check: OverdueCheck) -> ImplementationState:
    """One pass over every open task of the change: each rung of the ladder a task has become overdue
    for is applied once (remind, or widen its inbox task to the escalation roles)."""
    rows = list(
        await session.scalars(
            select(ChangeTask).where(
                ChangeTask.change_id == check.change_id, ChangeTask.status == ChangeTaskStatus.open
            )
        )
    )
    for ct in rows:
        level, roles, applied = ct.escalation_level, [], False
        while level < len(check.ladder) and ct.due_at + check.ladder[level].after <= check.at:
            roles += check.ladder[level].to_roles
            level += 1
            applied = True
        if not applied:
            continue
        ct.escalation_level = level
        ct.overdue_since = ct.overdue_since or ct.due_at
        if ct.inbox_task_id is not None:
            await task_service.nudge(
                session,
                task_id=ct.inbox_task_id,
                action="escalate" if roles else "remind",
                to_roles=sorted(set(roles)),
            )
    await session.flush()
    return await _open_state(session, check.change_id)


async def get_change_task(session: AsyncSession, *, change_id: int, change_task_id: int) -> ChangeTask:
    """One implementation task of the change, or NotFound."""
    ct = await session.get(ChangeTask, change_task_id)
    if ct is None or ct.change_id != change_id:
        raise NotFound(f"change {change_id} has no task {change_task_id}", field="task_id")
    return ct


async def complete_task(session: AsyncSession, *, completion: TaskCompletion, at: datetime) -> int:
    """Mark an implementation task done (and its inbox task); returns how many are still open."""
    ct = await get_change_task(
        session, change_id=completion.change_id, change_task_id=completion.change_task_id
    )
    if ct.status == ChangeTaskStatus.open:
        ct.status = ChangeTaskStatus.done
        ct.completed_at = at
        ct.completed_by = completion.username
        ct.note = completion.note or None
        if ct.inbox_task_id is not None:
            await _complete_inbox_task(
                session, ct.inbox_task_id, by=completion.username, at=at, outcome="done"
            )
    elif ct.status != ChangeTaskStatus.done:
        raise Conflict(f"task {ct.id} is {ct.status.value}", field="task_id")
    await session.flush()
    return len((await _open_state(session, completion.change_id)).tasks)


async def add_rework(session: AsyncSession, *, rework: Rework) -> ImplementationState:
    """Verification failed: one rework task for the requester (idempotent by the round)."""
    change = await get_change(session, rework.change_id)
    kind = f"rework-{rework.round}"
    existing = await session.scalar(
        select(ChangeTask).where(ChangeTask.change_id == change.id, ChangeTask.kind == kind)
    )
    if existing is None:
        seq = (
            await session.scalar(select(func.max(ChangeTask.seq)).where(ChangeTask.change_id == change.id))
            or 0
        )
        ct = ChangeTask(
            change_id=change.id,
            seq=seq + 1,
            kind=kind,
            title=f"Rework after verification: {rework.reason}"[:255],
            description=rework.reason,
            owner=rework.owner,
            due_on=policy.site_date(rework.due_at),
            due_at=rework.due_at,
            status=ChangeTaskStatus.open,
        )
        session.add(ct)
        await session.flush()
        await _open_inbox_task(session, change, ct, rework.workflow_id)
    change.status = ChangeStatus.implementing
    await session.flush()
    return await _open_state(session, change.id)


# ---- effective date and documents --------------------------------------------------------------


async def effective_timing(session: AsyncSession, *, change_id: int) -> EffectiveTiming:
    """When the change's effective date begins at the site (None: no date was set)."""
    change = await get_change(session, change_id)
    if change.effective_on is None:
        return EffectiveTiming(effective_at=None)
    return EffectiveTiming(effective_at=policy.start_of_site_day(change.effective_on))


async def make_effective(session: AsyncSession, *, change_id: int, at: datetime) -> EffectiveResult:
    """The change takes effect on the site's date at ``at`` (never before its planned date, never
    backdated): its document versions come into force and the versions they replace end that day."""
    change = await get_change(session, change_id)
    if change.became_effective_on is not None:  # a retry
        docs = await session.execute(
            select(Document.code, DocumentVersion.version)
            .join(DocumentVersion, DocumentVersion.document_id == Document.id)
            .where(DocumentVersion.change_id == change_id, DocumentVersion.status != DocumentStatus.withdrawn)
            .order_by(Document.code)
        )
        return EffectiveResult(
            effective_on=change.became_effective_on, documents=[f"{c} v{v}" for c, v in docs]
        )
    day = policy.site_date(at)
    if change.effective_on is not None and change.effective_on > day:
        day = change.effective_on
    brought: list[str] = []
    drafts = (
        await session.execute(
            select(DocumentVersion, Document)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(DocumentVersion.change_id == change_id, DocumentVersion.status == DocumentStatus.draft)
            .order_by(Document.code)
        )
    ).all()
    for new, doc in drafts:
        # The version in force until now ends the day this one begins.
        for old in await session.scalars(
            select(DocumentVersion).where(
                DocumentVersion.document_id == doc.id,
                DocumentVersion.status == DocumentStatus.effective,
                DocumentVersion.effective_from <= day,
                or_(DocumentVersion.effective_to.is_(None), DocumentVersion.effective_to > day),
            )
        ):
            old.effective_to = day
            old.status = DocumentStatus.superseded
        later = await session.scalar(
            select(func.min(DocumentVersion.effective_from)).where(
                DocumentVersion.document_id == doc.id,
                DocumentVersion.status == DocumentStatus.effective,
                DocumentVersion.effective_from > day,
            )
        )
        new.effective_from = day
        new.effective_to = later
        new.status = DocumentStatus.effective
        brought.append(f"{doc.code} v{new.version}")
    change.became_effective_on = day
    await session.flush()
    return EffectiveResult(effective_on=day, documents=brought)


async def register_document(
    session: AsyncSession, *, code: str, title: str, version: str, effective_from: date
) -> DocumentVersion:
    """Take an existing controlled document under control with the version in force now (e.g. at
    go-live); later versions come only through change control."""
    code = _text(code, field="code", what="the document code", limit=MAX_CODE)
    version = _text(version, field="version", what="the version", limit=MAX_VERSION)
    if await session.scalar(select(Document.id).where(Document.code == code)) is not None:
        raise Conflict(
            f"document {code} is already registered; new versions go through a change", field="code"
        )
    doc = Document(code=code, title=_text(title, field="title", what="the title", limit=MAX_TITLE))
    session.add(doc)
    await session.flush()
    ver = DocumentVersion(
        document_id=doc.id, version=version, status=DocumentStatus.effective, effective_from=effective_from
    )
    session.add(ver)
    await session.flush()
    return ver


async def get_document(session: AsyncSession, *, document_code: str) -> Document:
    """The document, or NotFound."""
    doc = await session.scalar(select(Document).where(Document.code == document_code))
    if doc is None:
        raise NotFound(f"no document with code '{document_code}'", field="code")
    return doc


async def version_in_force(session: AsyncSession, *, document_code: str, on: date) -> DocumentVersion | None:
    """The version of the document in force on ``on`` (None when none was); NotFound for an unknown code."""
    doc = await get_document(session, document_code=document_code)
    return await session.scalar(
        select(DocumentVersion)
        .where(
            DocumentVersion.document_id == doc.id,
            DocumentVersion.status.in_([DocumentStatus.effective, DocumentStatus.superseded]),
            DocumentVersion.effective_from <= on,
            or_(DocumentVersion.effective_to.is_(None), DocumentVersion.effective_to > on),
        )
        .order_by(DocumentVersion.effective_from.desc(), DocumentVersion.id.desc())
        .limit(1)
    )


async def document_versions(session: AsyncSession, *, document_code: str) -> list[DocumentVersion]:
    """Every version of a document, the oldest first; NotFound for an unknown code."""
    doc = await get_document(session, document_code=document_code)
    rows = await session.scalars(
        select(DocumentVersion).where(DocumentVersion.document_id == doc.id).order_by(DocumentVersion.id)
    )
    return list(rows)


# ---- signatures ------------------------------------------------------------------------------


async def record_hash(session: AsyncSession, change_id: int) -> str:
    """SHA-256 of the change version being signed: its fields, products, impact and risk, the
    implementation plan and the document versions it brings in."""
    change = await get_change(session, change_id)
    impact = await session.get(ChangeImpact, change_id)
    lots = (
        await session.execute(
            select(
                ChangeImpactLot.lot_id,
                ChangeImpactLot.on_hand,
                ChangeImpactLot.shipped,
                ChangeImpactLot.consignees,
            )
            .where(ChangeImpactLot.change_id == change_id)
            .order_by(ChangeImpactLot.lot_id)
        )
    ).all()
    plan_rows = (
        await session.execute(
            select(ChangeTask.seq, ChangeTask.title, ChangeTask.owner, ChangeTask.due_on, ChangeTask.status)
            .where(ChangeTask.change_id == change_id)
            .order_by(ChangeTask.seq)
        )
    ).all()
    docs = (
        await session.execute(
            select(Document.code, DocumentVersion.version, DocumentVersion.status)
            .join(DocumentVersion, DocumentVersion.document_id == Document.id)
            .where(DocumentVersion.change_id == change_id)
            .order_by(Document.code)
        )
    ).all()
    doc = {
        "id": change.id,
        "reference": change.reference,
        "kind": change.kind.value,
        "title": change.title,
        "description": change.description,
        "blocks_release": change.blocks_release,
        "effective_on": change.effective_on.isoformat() if change.effective_on else None,
        "round": change.round,
        "products": await products_of(session, change_id=change_id),
        "impact": {
            "version": impact.version,
            "risk_assessment": impact.risk_assessment,
            "risk_rating": impact.risk_rating.value if impact.risk_rating else None,
            "lots": [list(r) for r in lots],
        }
        if impact
        else None,
        "plan": [[s, t, o, d.isoformat(), st.value] for s, t, o, d, st in plan_rows],
        "documents": [[c, v, st.value] for c, v, st in docs],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
