"""CAPA records in the store: create, investigation, action plan, actions, effectiveness, closure.

The first group is what people do through the API (each checks the CAPA's stage and the input, and
raises a DomainError naming the field, changing nothing); the second is what the workflow's activities
do on decisions and timers. Every workflow-side function is idempotent, because activities may run
more than once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.capa import policy
from domain.capa.models import Capa, CapaAction
from domain.capa.payloads import (
    ActionInput,
    ActionsOpened,
    ActionStatus,
    CapaSource,
    CapaState,
    CapaStatus,
    ClosureDecision,
    EffectivenessResult,
    InvestigationMethod,
    OverdueReport,
    PlanDecision,
    RecallLink,
)
from domain.errors import Conflict, InvalidInput, NotFound
from domain.recalls.models import RecallReport
from domain.recalls.service import get_recall
from domain.tasks import service as tasks
from domain.tasks.models import Task
from domain.tasks.payloads import TaskSpec, TaskStatus
from domain.users import get_user

MAX_ROOT_CAUSES = 20
MAX_ACTIONS = 50
# Stage tasks that are done by recording data (not by signing): their kinds.
INVESTIGATE_TASK = "capa_investigate"
VERIFY_TASK = "capa_verify"
ACTION_TASK = "capa_action"


def _now() -> datetime:
    return datetime.now(UTC)


def _text(value: str | None, field: str, what: str, *, limit: int | None = None) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{what} must be given", field=field)
    if limit and len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters", field=field)
    return value


def _enum_value(enum_cls, value, field: str):
    try:
        return enum_cls(value)
    except ValueError:
        raise InvalidInput(
            f"'{value}' is not one of {', '.join(m.value for m in enum_cls)}", field=field
        ) from None


async def _active_user(session: AsyncSession, username: str | None, field: str) -> str:
    name = (username or "").strip()
    user = await get_user(session, username=name) if name else None
    if user is None or not user.active:
        raise InvalidInput(f"'{name}' is not an active user", field=field)
    return user.username


def _expect(capa: Capa, *statuses: CapaStatus, doing: str) -> None:
    if capa.status not in statuses:
        raise Conflict(
            f"{capa.reference} is in {capa.status.value}; {doing} is possible only in "
            f"{' or '.join(s.value for s in statuses)}",
            field="status",
        )


async def get_capa(session: AsyncSession, capa_id: int) -> Capa:
    """The CAPA, or NotFound."""
    capa = await session.get(Capa, capa_id)
    if capa is None:
        raise NotFound(f"CAPA {capa_id} not found", field="capa_id")
    return capa


async def actions_of(
    session: AsyncSession, *, capa_id: int, include_withdrawn: bool = True
) -> list[CapaAction]:
    """The CAPA's actions, in the order they were proposed."""
    q = select(CapaAction).where(CapaAction.capa_id == capa_id).order_by(CapaAction.id)
    if not include_withdrawn:
        q = q.where(CapaAction.status != ActionStatus.withdrawn)
    return list(await session.scalars(q))


async def _next_reference(session: AsyncSession, year: int) -> str:
    prefix = f"CAPA-{year}-"
    last = await session.scalar(select(func.max(Capa.reference)).where(Capa.reference.like(prefix + "%")))
    number = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{number:04d}"


# ---- what people do (through the API) ---------------------------------------------------------


async def create_capa(
    session: AsyncSession,
    *,
    source: CapaSource | str,
    title: str,
    description: str,
    owner: str,
    initiated_by: str,
    source_reference: str | None = None,
    recall_id: int | None = None,
    effectiveness_criteria: str | None = None,
    effectiveness_period_days: int | None = None,
    at: datetime | None = None,
) -> Capa:
    """Initiate a CAPA (reference CAPA-YYYY-NNNN); it starts in investigation, owned by ``owner``."""
    source = _enum_value(CapaSource, source, "source")
    title = _text(title, "title", "the title", limit=255)
    description = _text(description, "description", "the description")
    if source == CapaSource.recall and recall_id is None:
        raise InvalidInput("a CAPA from a recall names the recall", field="recall_id")
    recall = await get_recall(session, recall_id) if recall_id is not None else None
    if source == CapaSource.recall:
        assert recall is not None
        source_reference = recall.reference
    source_reference = _text(source_reference, "source_reference", "the source's reference", limit=64)
    if effectiveness_period_days is not None and not (
        policy.EFFECTIVENESS_PERIOD_DAYS_MIN
        <= effectiveness_period_days
        <= policy.EFFECTIVENESS_PERIOD_DAYS_MAX
    ):
        raise InvalidInput(
            f"the effectiveness period is {policy.EFFECTIVENESS_PERIOD_DAYS_MIN} to "
            f"{policy.EFFECTIVENESS_PERIOD_DAYS_MAX} days",
            field="effectiveness_period_days",
        )
    criteria = (effectiveness_criteria or "").strip() or None
    owner = await _active_user(session, owner, "owner")
    at = at or _now()
    for _attempt in range(5):  # two CAPAs created at once may compute the same number: take the next
        try:
            async with session.begin_nested():
                capa = Capa(
                    reference=await _next_reference(session, at.year),
                    source=source,
                    source_reference=source_reference,
                    recall_id=recall.id if recall else None,
                    title=title,
                    description=description,
                    status=CapaStatus.investigation,
                    owner=owner,
                    initiated_by=initiated_by,
                    initiated_at=at,
                    effectiveness_criteria=criteria,
                    effectiveness_period_days=effectiveness_period_days,
                )
                session.add(capa)
                await session.flush()
            break
        except IntegrityError:
            continue
    else:  # pragma: no cover - needs five concurrent creators
        raise Conflict("could not allocate a CAPA reference; try again", field="reference")
    capa.workflow_id = f"capa-{capa.id}"
    await session.flush()
    return capa


async def record_investigation(
    session: AsyncSession,
    *,
    capa_id: int,
    method: InvestigationMethod | str,
    root_causes: list[str],
    by: str,
    summary: str | None = None,
    at: datetime | None = None,
) -> Capa:
    """Record how the root cause was sought and what it is (one or more causes); may be revised until the
    action plan is proposed."""
    capa = await get_capa(session, capa_id)
    _expect(capa, CapaStatus.investigation, doing="recording the investigation")
    method = _enum_value(InvestigationMethod, method, "method")
    causes = list(dict.fromkeys(c.strip() for c in root_causes if c and c.strip()))
    if not causes:
        raise InvalidInput("name at least one root cause", field="root_causes")
    if len(causes) > MAX_ROOT_CAUSES:
        raise InvalidInput(f"at most {MAX_ROOT_CAUSES} root causes", field="root_causes")
    for i, cause in enumerate(causes):
        if len(cause) > 2000:
            raise InvalidInput("a root cause is longer than 2000 characters", field=f"root_causes.{i}")
    capa.investigation_method = method
    capa.root_causes = causes
    capa.investigation_summary = (summary or "").strip() or None
    capa.investigation_cycle = capa.cycle
    capa.investigated_by = by
    capa.investigated_at = at or _now()
    await session.flush()
    return capa


async def propose_action_plan(
    session: AsyncSession,
    *,
    capa_id: int,
    actions: list[ActionInput],
    by: str,
    effectiveness_criteria: str | None = None,
    at: datetime | None = None,
) -> list[CapaAction]:
    """Propose the corrective and preventive actions of this cycle; the CAPA goes to plan approval."""
    capa = await get_capa(session, capa_id)
    _expect(capa, CapaStatus.investigation, doing="proposing an action plan")
    if capa.investigation_cycle != capa.cycle or not capa.root_causes:
        raise Conflict(
            "record the investigation and root cause of this cycle before proposing actions",
            field="root_causes",
        )
    if not actions:
        raise InvalidInput("a plan needs at least one action", field="actions")
    if len(actions) > MAX_ACTIONS:
        raise InvalidInput(f"at most {MAX_ACTIONS} actions in one plan", field="actions")
    at = at or _now()
    today = at.date()
    checked: list[tuple[ActionInput, str, str]] = []
    for i, a in enumerate(actions):
        description = _text(a.description, f"actions.{i}.description", "the action's description")
        owner = await _active_user(session, a.owner, f"actions.{i}.owner")
        if a.due_on < today:
            raise InvalidInput(f"the due date {a.due_on} is in the past", field=f"actions.{i}.due_on")
        checked.append((a, description, owner))
    criteria = (effectiveness_criteria or "").strip() or capa.effectiveness_criteria
    if not criteria:
        raise InvalidInput(
            "state how effectiveness will be verified before the plan is approved",
            field="effectiveness_criteria",
        )
    # A plan replaces whatever was proposed and not approved in this cycle (kept, marked withdrawn).
    await session.execute(
        update(CapaAction)
        .where(
            CapaAction.capa_id == capa.id,
            CapaAction.cycle == capa.cycle,
            CapaAction.status == ActionStatus.proposed,
        )
        .values(status=ActionStatus.withdrawn)
    )
    capa.plan_version += 1
    created = [
        CapaAction(
            capa_id=capa.id,
            cycle=capa.cycle,
            plan_version=capa.plan_version,
            kind=a.kind,
            description=description,
            owner=owner,
            due_on=a.due_on,
            status=ActionStatus.proposed,
            created_at=at,
        )
        for a, description, owner in checked
    ]
    session.add_all(created)
    capa.effectiveness_criteria = criteria
    capa.plan_submitted_by = by
    capa.plan_submitted_at = at
    capa.plan_rejection_reason = None
    capa.status = CapaStatus.plan_approval
    await _complete_stage_tasks(session, capa.id, INVESTIGATE_TASK, by=by, at=at, outcome="plan proposed")
    await session.flush()
    return created


async def complete_action(
    session: AsyncSession,
    *,
    capa_id: int,
    action_id: int,
    evidence: str,
    by: str,
    at: datetime | None = None,
) -> CapaAction:
    """Complete one approved action with its evidence; its task is completed with it."""
    capa = await get_capa(session, capa_id)
    action = await session.get(CapaAction, action_id)
    if action is None or action.capa_id != capa.id:
        raise NotFound(f"{capa.reference} has no action {action_id}", field="action_id")
    if action.status == ActionStatus.completed:
        raise Conflict(
            f"action {action_id} was already completed by {action.completed_by}", field="action_id"
        )
    if action.status != ActionStatus.open:
        raise Conflict(f"action {action_id} is {action.status.value}, not open", field="action_id")
    _expect(capa, CapaStatus.implementation, doing="completing an action")
    evidence = _text(evidence, "evidence", "evidence of what was done", limit=8000)
    at = at or _now()
    action.status = ActionStatus.completed
    action.completed_at = at
    action.completed_by = by
    action.evidence = evidence
    if action.task_id is not None:
        await session.execute(
            update(Task)
            .where(Task.id == action.task_id, Task.status == TaskStatus.open)
            .values(status=TaskStatus.completed, completed_at=at, completed_by=by, outcome="action completed")
        )
    await session.flush()
    return action


async def record_effectiveness(
    session: AsyncSession,
    *,
    capa_id: int,
    result: EffectivenessResult | str,
    summary: str,
    by: str,
    at: datetime | None = None,
) -> Capa:
    """Record the effectiveness verification. Effective: the CAPA goes to closure sign-off. Ineffective:
    the result is kept in the history and a new cycle starts with a fresh investigation."""
    capa = await get_capa(session, capa_id)
    _expect(capa, CapaStatus.effectiveness_check, doing="recording the effectiveness result")
    result = _enum_value(EffectivenessResult, result, "result")
    summary = _text(summary, "summary", "what was checked and found", limit=8000)
    at = at or _now()
    capa.effectiveness_result = result
    capa.effectiveness_summary = summary
    capa.effectiveness_checked_by = by
    capa.effectiveness_checked_at = at
    await _complete_stage_tasks(
        session, capa.id, VERIFY_TASK, by=by, at=at, outcome=f"verified {result.value}"
    )
    if result == EffectivenessResult.effective:
        capa.status = CapaStatus.closure_approval
    else:
        _archive_verification(capa, outcome="ineffective: back to investigation")
        capa.cycle += 1
        capa.status = CapaStatus.investigation
        capa.plan_submitted_at = None
        capa.plan_submitted_by = None
    await session.flush()
    return capa


# ---- what the workflow does (through activities) ----------------------------------------------


async def state(session: AsyncSession, *, capa_id: int, as_of: datetime) -> CapaState:
    """The CAPA's stage and, for implementation, its open actions and when the next overdue rung is due."""
    capa = await get_capa(session, capa_id)
    current = [a for a in await actions_of(session, capa_id=capa_id) if a.cycle == capa.cycle]
    open_ = [a for a in current if a.status == ActionStatus.open]
    return CapaState(
        status=capa.status,
        cycle=capa.cycle,
        open_actions=len(open_),
        completed_actions=sum(1 for a in current if a.status == ActionStatus.completed),
        overdue_actions=sum(1 for a in open_ if policy.due_end(a.due_on) <= as_of),
        next_escalation_at=min((policy.nudge_at(a.due_on, a.escalation_step) for a in open_), default=None),
        effectiveness_due_at=capa.effectiveness_due_at,
        effectiveness_result=capa.effectiveness_result,
    )


async def decide_plan(session: AsyncSession, *, decision: PlanDecision) -> ActionsOpened:
    """The signed decision on the plan. Approved: every action of the plan opens as a task for its owner,
    all at once (they run in parallel). Rejected: the plan is withdrawn and the CAPA returns to
    investigation with the reason."""
    capa = await get_capa(session, decision.capa_id)
    current = [
        a
        for a in await actions_of(session, capa_id=capa.id)
        if a.cycle == decision.cycle and a.plan_version == capa.plan_version
    ]
    if not decision.approved:
        if capa.status == CapaStatus.plan_approval:
            for a in current:
                if a.status == ActionStatus.proposed:
                    a.status = ActionStatus.withdrawn
            capa.status = CapaStatus.investigation
            capa.plan_rejection_reason = decision.reason or "rejected"
            capa.plan_submitted_at = None
            await session.flush()
        return ActionsOpened()
    if capa.status == CapaStatus.plan_approval:
        capa.status = CapaStatus.implementation
        capa.plan_approved_at = decision.decided_at
    elif capa.status != CapaStatus.implementation:  # a retry after the approval was stored passes
        raise Conflict(f"{capa.reference} is {capa.status.value}: no plan waits for approval", field="status")
    opened = ActionsOpened()
    for a in current:
        if a.status == ActionStatus.proposed:
            a.status = ActionStatus.open
        if a.status == ActionStatus.withdrawn:
            continue
        ref = await tasks.open_task(
            session,
            spec=TaskSpec(
                process="capa",
                kind=ACTION_TASK,
                title=f"{capa.reference}: {a.kind.value} action — {a.description[:160]}",
                record_type="capa",
                record_id=capa.id,
                candidate_roles=policy.ACTION_ROLES,
                assignee=a.owner,
                due_at=policy.due_end(a.due_on),
                priority=2,
                workflow_id=decision.workflow_id,
                business_key=f"capa-{capa.id}-action-{a.id}",
                details={"action_id": a.id, "kind": a.kind.value, "due_on": a.due_on.isoformat()},
            ),
        )
        a.task_id = ref.task_id
        opened.action_ids.append(a.id)
        opened.task_ids.append(ref.task_id)
    await session.flush()
    return opened


async def escalate_overdue(session: AsyncSession, *, capa_id: int, as_of: datetime) -> OverdueReport:
    """One step of the overdue ladder for the whole CAPA: every open action whose next rung has come is
    reminded or escalated (its task nudged), in this one call."""
    report = OverdueReport()
    rows = await session.scalars(
        select(CapaAction)
        .where(CapaAction.capa_id == capa_id, CapaAction.status == ActionStatus.open)
        .order_by(CapaAction.id)
    )
    for a in rows:
        due = policy.overdue_step(a.due_on, a.escalation_step, as_of)
        if due is None:
            continue
        step, rung = due
        if a.task_id is not None:
            await tasks.nudge(session, task_id=a.task_id, action=rung.action, to_roles=list(rung.to_roles))
        a.escalation_step = step + 1
        a.last_nudged_at = as_of
        (report.escalated if rung.action == "escalate" else report.reminded).append(a.id)
    await session.flush()
    return report


async def await_effectiveness(
    session: AsyncSession, *, capa_id: int, cycle: int, due_at: datetime
) -> datetime:
    """Every action of the cycle is done: the effectiveness check falls due at ``due_at``. Returns the due
    time stored (a retry keeps the first)."""
    capa = await get_capa(session, capa_id)
    if capa.status == CapaStatus.implementation and capa.cycle == cycle:
        still_open = await session.scalar(
            select(func.count()).where(
                CapaAction.capa_id == capa_id,
                CapaAction.cycle == cycle,
                CapaAction.status == ActionStatus.open,
            )
        )
        if still_open:
            raise Conflict(f"{still_open} actions are still open", field="actions")
        capa.status = CapaStatus.effectiveness_pending
        capa.effectiveness_due_at = due_at
        await session.flush()
    return capa.effectiveness_due_at or due_at


async def begin_verification(session: AsyncSession, *, capa_id: int, cycle: int) -> None:
    """The effectiveness period has passed: the check is open."""
    capa = await get_capa(session, capa_id)
    if capa.status == CapaStatus.effectiveness_pending and capa.cycle == cycle:
        capa.status = CapaStatus.effectiveness_check
        await session.flush()


async def decide_closure(session: AsyncSession, *, decision: ClosureDecision) -> Capa:
    """The signed decision on closure. Approved: closed. Rejected: the verification is kept in the history
    with the reason, and effectiveness is verified again."""
    capa = await get_capa(session, decision.capa_id)
    if capa.status != CapaStatus.closure_approval or capa.cycle != decision.cycle:
        return capa  # already applied (a retry)
    if decision.approved:
        capa.status = CapaStatus.closed
        capa.closed_at = decision.decided_at
    else:
        _archive_verification(capa, outcome=f"closure rejected: {decision.reason or 'no reason given'}")
        capa.status = CapaStatus.effectiveness_check
    await session.flush()
    return capa


def _archive_verification(capa: Capa, *, outcome: str) -> None:
    """Append the current verification to the history (never overwritten) and clear it for the next."""
    capa.effectiveness_history = [
        *(capa.effectiveness_history or []),
        {
            "cycle": capa.cycle,
            "due_at": capa.effectiveness_due_at.isoformat() if capa.effectiveness_due_at else None,
            "result": capa.effectiveness_result.value if capa.effectiveness_result else None,
            "summary": capa.effectiveness_summary,
            "checked_by": capa.effectiveness_checked_by,
            "checked_at": capa.effectiveness_checked_at.isoformat()
            if capa.effectiveness_checked_at
            else None,
            "outcome": outcome,
        },
    ]
    if outcome.startswith("ineffective"):
        capa.effectiveness_due_at = None
    capa.effectiveness_result = None
    capa.effectiveness_summary = None
    capa.effectiveness_checked_by = None
    capa.effectiveness_checked_at = None


async def _complete_stage_tasks(
    session: AsyncSession, capa_id: int, kind: str, *, by: str, at: datetime, outcome: str
) -> None:
    await session.execute(
        update(Task)
        .where(
            Task.record_type == "capa",
            Task.record_id == capa_id,
            Task.kind == kind,
            Task.status == TaskStatus.open,
        )
        .values(status=TaskStatus.completed, completed_at=at, completed_by=by, outcome=outcome)
    )


async def settle_stage_task(session: AsyncSession, *, capa_id: int, task_id: int) -> None:
    """Complete a stage task (investigation, verification) still open after its stage ended: one opened
    while the API was recording the data that ends the stage."""
    capa = await get_capa(session, capa_id)
    task = await session.get(Task, task_id)
    if (
        task is None
        or task.record_type != "capa"
        or task.record_id != capa.id
        or task.status != TaskStatus.open
    ):
        return
    by = capa.plan_submitted_by if task.kind == INVESTIGATE_TASK else capa.effectiveness_checked_by
    task.status = TaskStatus.completed
    task.completed_at = _now()
    task.completed_by = by
    task.outcome = "stage done"
    await session.flush()


async def recall_link(session: AsyncSession, *, capa_id: int) -> RecallLink:
    """For a CAPA opened from a recall: the sequence a reissued summary takes, if a summary exists."""
    capa = await get_capa(session, capa_id)
    if capa.recall_id is None:
        return RecallLink()
    last = await session.scalar(
        select(func.max(RecallReport.sequence)).where(
            RecallReport.recall_id == capa.recall_id, RecallReport.kind == "summary"
        )
    )
    return RecallLink(recall_id=capa.recall_id, next_summary_sequence=(last + 1) if last else None)


# ---- reading ----------------------------------------------------------------------------------


async def list_capas(
    session: AsyncSession,
    *,
    status: CapaStatus | None = None,
    source: CapaSource | None = None,
    owner: str | None = None,
    recall_id: int | None = None,
    overdue: bool | None = None,
    today: date | None = None,
    limit: int = 100,
) -> list[Capa]:
    """CAPAs, newest first, filtered; ``overdue``: having (or not) an open action past its due date."""
    q = select(Capa).order_by(Capa.id.desc()).limit(limit)
    if status:
        q = q.where(Capa.status == status)
    if source:
        q = q.where(Capa.source == source)
    if owner:
        q = q.where(Capa.owner == owner)
    if recall_id is not None:
        q = q.where(Capa.recall_id == recall_id)
    if overdue is not None:
        late = exists().where(
            CapaAction.capa_id == Capa.id,
            CapaAction.status == ActionStatus.open,
            CapaAction.due_on < (today or _now().date()),
        )
        q = q.where(late if overdue else ~late)
    return list(await session.scalars(q))


async def capas_for_recall(session: AsyncSession, *, recall_id: int) -> list[Capa]:
    """The CAPAs opened from (or linked to) a recall, oldest first."""
    return list(await session.scalars(select(Capa).where(Capa.recall_id == recall_id).order_by(Capa.id)))


async def record_hash(session: AsyncSession, capa_id: int) -> str:
    """SHA-256 of the CAPA version being signed: its fields, investigation, plan and actions."""
    capa = await get_capa(session, capa_id)
    doc = {
        "id": capa.id,
        "reference": capa.reference,
        "source": capa.source.value,
        "source_reference": capa.source_reference,
        "recall_id": capa.recall_id,
        "title": capa.title,
        "description": capa.description,
        "owner": capa.owner,
        "cycle": capa.cycle,
        "investigation_method": capa.investigation_method.value if capa.investigation_method else None,
        "root_causes": capa.root_causes,
        "investigation_summary": capa.investigation_summary,
        "plan_version": capa.plan_version,
        "effectiveness_criteria": capa.effectiveness_criteria,
        "effectiveness_result": capa.effectiveness_result.value if capa.effectiveness_result else None,
        "effectiveness_summary": capa.effectiveness_summary,
        "actions": [
            [
                a.id,
                a.cycle,
                a.kind.value,
                a.description,
                a.owner,
                a.due_on.isoformat(),
                a.status.value,
                a.evidence,
            ]
            for a in await actions_of(session, capa_id=capa_id, include_withdrawn=False)
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
