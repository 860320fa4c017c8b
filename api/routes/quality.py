"""QC lot release: inspection plans per product, starting an inspection (the lot enters quarantine and
its QcReleaseWorkflow starts), recording results, and the inspection as QA and the releaser see it.

The release decision itself is signed through ``POST /api/tasks/{id}/sign`` (decision ``released`` or
``rejected``, with an optional ``disposition`` split and ``capa`` flag).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError

from api.deps import CurrentUser, SessionDep, SettingsDep, require_roles
from api.schemas.quality import (
    CharacteristicPublic,
    DispositionPublic,
    InspectionCreated,
    InspectionPlanPublic,
    InspectionPlanUpdate,
    InspectionPublic,
    NonconformancePublic,
    ResultPublic,
    ResultsCreate,
    ResultsRecordedPublic,
)
from api.schemas.recalls import SignaturePublic, TaskBrief
from api.workflow_calls import start_process
from domain.enums import Role
from domain.errors import NotFound
from domain.models import Lot, Product
from domain.quality import service as quality
from domain.quality.models import InspectionPlan
from domain.quality.payloads import (
    RECORD_TYPE,
    CharacteristicSpec,
    ReleaseStart,
    ResultInput,
    ResultsRecorded,
)
from domain.scope import lot_label
from domain.tasks.models import Task
from domain.tasks.service import signatures_for
from lotline.starter import start_recorded
from lotline.temporal import connect

router = APIRouter(tags=["quality"])

READERS = require_roles(*Role)
STARTERS = require_roles(Role.qa, Role.releaser, Role.production)
RECORDERS = require_roles(Role.qa, Role.production)
PLANNERS = require_roles(Role.qa, Role.qa_manager)


async def _temporal(request: Request, *, required: bool) -> Client | None:
    """The app's Temporal client; 503 when it is required and unreachable, None when it is optional."""
    state = request.app.state
    if getattr(state, "temporal", None) is None:
        try:
            state.temporal = await connect(state.settings, wait=5.0 if required else 0)
        except RuntimeError as exc:
            if not required:
                return None
            raise HTTPException(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=[{"field": None, "reason": f"the workflow engine is not reachable: {exc}"}],
            ) from exc
    return state.temporal


def _plan_public(plan: InspectionPlan, product_code: str) -> InspectionPlanPublic:
    return InspectionPlanPublic(
        product_code=product_code,
        version=plan.version,
        note=plan.note,
        created_by=plan.created_by,
        created_at=plan.created_at,
        characteristics=[
            CharacteristicPublic(
                id=c.id,
                name=c.name,
                kind=c.kind,
                lower=c.lower,
                upper=c.upper,
                unit=c.unit,
                sample_size=c.sample_size,
            )
            for c in plan.characteristics
        ],
    )


@router.put(
    "/api/products/{product_code}/inspection-plan",
    response_model=InspectionPlanPublic,
    dependencies=[Depends(PLANNERS)],
)
async def put_inspection_plan(
    product_code: str, body: InspectionPlanUpdate, session: SessionDep, user: CurrentUser
) -> InspectionPlanPublic:
    """Store a new version of the product's inspection plan; inspections keep the version they began with."""
    product = await quality.get_product(session, code=product_code)
    plan = await quality.put_plan(
        session,
        product_id=product.id,
        characteristics=[CharacteristicSpec.model_validate(c.model_dump()) for c in body.characteristics],
        created_by=user.username,
        note=body.note,
    )
    await session.commit()
    return _plan_public(plan, product.code)


@router.get(
    "/api/products/{product_code}/inspection-plan",
    response_model=InspectionPlanPublic,
    dependencies=[Depends(READERS)],
)
async def get_inspection_plan(product_code: str, session: SessionDep) -> InspectionPlanPublic:
    """The current version of the product's inspection plan."""
    product = await quality.get_product(session, code=product_code)
    plan = await quality.current_plan(session, product_id=product.id)
    if plan is None:
        raise NotFound(f"product {product_code} has no inspection plan", field="product_code")
    return _plan_public(plan, product.code)


@router.post(
    "/api/lots/{product_code}/{lot_number}/inspections",
    status_code=status.HTTP_201_CREATED,
    response_model=InspectionCreated,
    dependencies=[Depends(STARTERS)],
)
async def start_inspection(
    product_code: str,
    lot_number: str,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> InspectionCreated:
    """Put the lot in quarantine against its product's current plan and start ``qc-release-<lot id>``.

    Repeating the request returns the inspection under way (200) and makes sure its workflow runs.
    """
    lot = await quality.get_lot(session, product_code=product_code, lot_number=lot_number)
    existing = await quality.active_inspection(session, lot_id=lot.id)
    inspection = await quality.start_inspection(session, lot_id=lot.id, initiated_by=user.username)
    client = await _temporal(request, required=True)  # 503 here rolls the quarantine back: nothing changed
    assert client is not None
    label = lot_label(product_code, lot.lot_number)
    start = ReleaseStart(
        inspection_id=inspection.id, lot_id=lot.id, lot_label=label, initiated_by=inspection.initiated_by
    )
    queue = settings.temporal_task_queue
    if existing is None:
        await start_process(session, client, queue, "QcReleaseWorkflow", inspection.workflow_id, start)
    else:  # a repeated request: make sure the release under way has its workflow
        await start_recorded(
            session,
            client,
            task_queue=queue,
            workflow_type="QcReleaseWorkflow",
            workflow_id=inspection.workflow_id,
            args=start.model_dump(mode="json"),
        )
    if existing is not None:
        response.status_code = status.HTTP_200_OK
    return InspectionCreated(
        id=inspection.id,
        lot=label,
        status=inspection.status.value,
        plan_version=inspection.plan_version,
        workflow_id=inspection.workflow_id,
    )


@router.post(
    "/api/inspections/{inspection_id}/results",
    status_code=status.HTTP_201_CREATED,
    response_model=ResultsRecordedPublic,
    dependencies=[Depends(RECORDERS)],
)
async def record_results(
    inspection_id: int, body: ResultsCreate, request: Request, session: SessionDep, user: CurrentUser
) -> ResultsRecordedPublic:
    """Record observations (all or nothing) with who and when; stored first, then the workflow is told."""
    rows = await quality.record_results(
        session,
        inspection_id=inspection_id,
        results=[ResultInput.model_validate(r.model_dump()) for r in body.results],
        recorded_by=user.username,
    )
    evaluation = await quality.evaluate(session, inspection_id=inspection_id)
    ids = {r.id for r in rows}
    recorded = [
        _result_public(r, name)
        for r, name in await quality.results_of(session, inspection_id=inspection_id)
        if r.id in ids
    ]
    inspection = await quality.get_inspection(session, inspection_id)
    await session.commit()
    client = await _temporal(request, required=False)
    if client is not None:
        try:
            await client.get_workflow_handle(inspection.workflow_id).signal(
                "results_recorded", ResultsRecorded(count=len(rows))
            )
        except RPCError:
            pass  # the results are stored; the workflow reads them at its next recheck
    return ResultsRecordedPublic(recorded=recorded, evaluation=evaluation)


def _result_public(r, name: str) -> ResultPublic:
    return ResultPublic(
        id=r.id,
        characteristic=name,
        value=r.value,
        passed=r.passed,
        unit=r.unit,
        note=r.note,
        recorded_by=r.recorded_by,
        recorded_at=r.recorded_at,
    )


@router.get(
    "/api/inspections/{inspection_id}", response_model=InspectionPublic, dependencies=[Depends(READERS)]
)
async def get_inspection(inspection_id: int, session: SessionDep) -> InspectionPublic:
    """The inspection: evaluation and blockers as they are now, results, tasks, signatures, decision."""
    inspection = await quality.get_inspection(session, inspection_id)
    lot = await session.get(Lot, inspection.lot_id)
    assert lot is not None
    product_code = await session.scalar(select(Product.code).where(Product.id == lot.product_id)) or ""
    tasks = await session.scalars(
        select(Task).where(Task.record_type == RECORD_TYPE, Task.record_id == inspection_id).order_by(Task.id)
    )
    d = await quality.disposition_of(session, inspection_id=inspection_id)
    return InspectionPublic(
        id=inspection.id,
        product_code=product_code,
        lot_number=lot.lot_number,
        lot_id=lot.id,
        qc_status=lot.qc_status.value,
        status=inspection.status.value,
        plan_version=inspection.plan_version,
        initiated_by=inspection.initiated_by,
        started_at=inspection.started_at,
        workflow_id=inspection.workflow_id,
        on_hand=await quality.on_hand(session, lot_id=lot.id),
        evaluation=await quality.evaluate(session, inspection_id=inspection_id),
        blockers=await quality.release_blockers(session, lot_id=lot.id),
        results=[
            _result_public(r, n) for r, n in await quality.results_of(session, inspection_id=inspection_id)
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
        signatures=[
            SignaturePublic(
                signer=s.signer,
                printed_name=s.printed_name,
                meaning=s.meaning.value,
                signed_at=s.signed_at,
                record_hash=s.record_hash,
                reason=s.reason,
            )
            for s in await signatures_for(session, record_type=RECORD_TYPE, record_id=inspection_id)
        ],
        disposition=(
            DispositionPublic(
                outcome=d.outcome.value,
                unrestricted=d.unrestricted,
                blocked=d.blocked,
                scrap=d.scrap,
                sample=d.sample,
                decided_by=d.decided_by,
                decided_at=d.decided_at,
                signature_id=d.signature_id,
                approval_signature_id=d.approval_signature_id,
                justification=d.justification,
            )
            if d
            else None
        ),
        nonconformances=[
            NonconformancePublic(
                id=nc.id,
                description=nc.description,
                status=nc.status.value,
                disposition=nc.disposition.value if nc.disposition else None,
                opened_by=nc.opened_by,
                opened_at=nc.opened_at,
                capa_requested=nc.capa_requested,
                capa_id=nc.capa_id,
            )
            for nc in await quality.nonconformances_of(session, inspection_id=inspection_id)
        ],
    )
