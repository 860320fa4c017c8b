"""Change-control activities on the store: the policy, impact, approval rounds, implementation tasks and
their overdue escalation, the effective date and status. Each is idempotent by a business key (the
round, the task, the change), so a retry never doubles work.

Times a workflow decides by (``at``) come in the payload from ``workflow.now()``, never from this
process's clock: the workflow's clock is the one its timers run on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from domain.changes import service as changes
from domain.changes.payloads import (
    ApprovalDecision,
    ApprovalsOpened,
    ChangePlan,
    EffectiveResult,
    EffectiveTiming,
    ImpactRequest,
    ImpactSubmission,
    ImpactSummary,
    ImplementationStart,
    ImplementationState,
    MakeEffective,
    OverdueCheck,
    Rework,
    RoundClosed,
    SignChange,
    StatusChange,
    TaskCompletion,
)
from domain.db import transaction
from workflows import names


class ChangeActivities:
    """Change-control activities bound to the store at worker start."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    def all(self) -> list[Callable]:
        """Every activity of this class, for the worker's registry."""
        return [
            self.plan,
            self.compute_impact,
            self.record_impact,
            self.approvals_opened,
            self.record_decision,
            self.close_round,
            self.start_implementation,
            self.escalate_overdue,
            self.complete_task,
            self.rework,
            self.effective_timing,
            self.make_effective,
            self.set_status,
            self.sign_record,
        ]

    @activity.defn(name=names.CHANGE_PLAN)
    async def plan(self, change_id: int) -> ChangePlan:
        """Approvers (by kind and risk), ladders and durations from domain/changes/policy.py."""
        async with self.sessions() as s:
            return await changes.plan(s, change_id=change_id)

    @activity.defn(name=names.CHANGE_COMPUTE_IMPACT)
    async def compute_impact(self, req: ImpactRequest) -> ImpactSummary:
        """Recompute lots in stock and delivered (with consignee counts) for the change's products."""
        async with transaction(self.sessions) as s:
            return await changes.compute_impact(s, change_id=req.change_id, version=req.version, at=req.at)

    @activity.defn(name=names.CHANGE_RECORD_IMPACT)
    async def record_impact(self, sub: ImpactSubmission) -> ImpactSummary:
        """Store the risk assessment and implementation plan (and revisions), then recompute the impact."""
        async with transaction(self.sessions) as s:
            return await changes.record_impact(s, submission=sub, at=datetime.now(UTC))

    @activity.defn(name=names.CHANGE_APPROVALS_OPENED)
    async def approvals_opened(self, opened: ApprovalsOpened) -> None:
        """Record a round's approval tasks on the change."""
        async with transaction(self.sessions) as s:
            await changes.record_approval_tasks(s, opened=opened)

    @activity.defn(name=names.CHANGE_RECORD_DECISION)
    async def record_decision(self, decision: ApprovalDecision) -> None:
        """Put a signed decision or comment on its approval."""
        async with transaction(self.sessions) as s:
            await changes.record_decision(s, decision=decision)

    @activity.defn(name=names.CHANGE_CLOSE_ROUND)
    async def close_round(self, closed: RoundClosed) -> int:
        """End a round: cancel undecided tasks; a rejection returns the change with its reasons."""
        async with transaction(self.sessions) as s:
            return await changes.close_round(s, closed=closed)

    @activity.defn(name=names.CHANGE_START_IMPLEMENTATION)
    async def start_implementation(self, req: ImplementationStart) -> ImplementationState:
        """Open the planned implementation tasks for their owners."""
        async with transaction(self.sessions) as s:
            return await changes.start_implementation(s, change_id=req.change_id, workflow_id=req.workflow_id)

    @activity.defn(name=names.CHANGE_ESCALATE_OVERDUE)
    async def escalate_overdue(self, check: OverdueCheck) -> ImplementationState:
        """Remind or escalate, in one batch, every open task overdue by a rung of the ladder."""
        async with transaction(self.sessions) as s:
            return await changes.escalate_overdue(s, check=check)

    @activity.defn(name=names.CHANGE_COMPLETE_TASK)
    async def complete_task(self, completion: TaskCompletion) -> int:
        """Mark an implementation task done; returns how many remain open."""
        async with transaction(self.sessions) as s:
            return await changes.complete_task(s, completion=completion, at=datetime.now(UTC))

    @activity.defn(name=names.CHANGE_REWORK)
    async def rework(self, rework: Rework) -> ImplementationState:
        """Verification failed: a rework task for the requester."""
        async with transaction(self.sessions) as s:
            return await changes.add_rework(s, rework=rework)

    @activity.defn(name=names.CHANGE_EFFECTIVE_TIMING)
    async def effective_timing(self, change_id: int) -> EffectiveTiming:
        """When the change's effective date begins at the site."""
        async with self.sessions() as s:
            return await changes.effective_timing(s, change_id=change_id)

    @activity.defn(name=names.CHANGE_MAKE_EFFECTIVE)
    async def make_effective(self, req: MakeEffective) -> EffectiveResult:
        """Bring the change's document versions into force."""
        async with transaction(self.sessions) as s:
            return await changes.make_effective(s, change_id=req.change_id, at=req.at)

    @activity.defn(name=names.CHANGE_SET_STATUS)
    async def set_status(self, change: StatusChange) -> None:
        """Set the change's status."""
        async with transaction(self.sessions) as s:
            await changes.set_status(s, change_id=change.change_id, status=change.status, note=change.note)

    @activity.defn(name=names.CHANGE_SIGN_RECORD)
    async def sign_record(self, req: SignChange) -> int:
        """A signature on the change without a task (withdrawal); returns its id."""
        async with transaction(self.sessions) as s:
            return await changes.sign_change(s, req=req)
