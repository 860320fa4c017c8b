"""CAPA activities on the store: the plan of timers and ladders, the state read at every wake-up, the
signed decisions applied, overdue actions nudged in batch, the effectiveness timer recorded, and the
link to a recall's summary. Each is idempotent, so a retry never doubles work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from domain.capa import policy
from domain.capa import service as capas
from domain.capa.payloads import (
    ActionsOpened,
    CapaPlan,
    CapaState,
    ClosureDecision,
    EffectivenessWait,
    OverdueCheck,
    OverdueReport,
    PlanDecision,
    RecallLink,
    StateRequest,
)
from domain.db import transaction
from workflows import names


class CapaStore:
    """CAPA activities bound to the store at worker start."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    def all(self) -> list[Callable]:
        """Every CAPA activity, for the worker's registry."""
        return [
            self.plan,
            self.state,
            self.decide_plan,
            self.escalate_overdue,
            self.await_effectiveness,
            self.begin_verification,
            self.decide_closure,
            self.recall_link,
            self.settle_task,
        ]

    @activity.defn(name=names.CAPA_PLAN)
    async def plan(self, capa_id: int) -> CapaPlan:
        """The CAPA's timers and ladders from the policy, with its own effectiveness period if it has one."""
        async with self.sessions() as s:
            capa = await capas.get_capa(s, capa_id)
            period = policy.effectiveness_period(capa.effectiveness_period_days)
        return CapaPlan(
            investigation_roles=policy.INVESTIGATOR_ROLES,
            investigation_due_seconds=policy.INVESTIGATION_DUE.total_seconds(),
            investigation_ladder=policy.INVESTIGATION_LADDER,
            approval_roles=policy.APPROVER_ROLES,
            approval_due_seconds=policy.APPROVAL_DUE.total_seconds(),
            approval_ladder=policy.APPROVAL_LADDER,
            verification_roles=policy.VERIFIER_ROLES,
            verification_due_seconds=policy.VERIFICATION_DUE.total_seconds(),
            verification_ladder=policy.VERIFICATION_LADDER,
            closure_roles=policy.CLOSER_ROLES,
            closure_due_seconds=policy.CLOSURE_DUE.total_seconds(),
            closure_ladder=policy.CLOSURE_LADDER,
            effectiveness_period_seconds=period.total_seconds(),
        )

    @activity.defn(name=names.CAPA_STATE)
    async def state(self, req: StateRequest) -> CapaState:
        """Where the CAPA stands, as of the workflow's time."""
        async with self.sessions() as s:
            return await capas.state(s, capa_id=req.capa_id, as_of=req.as_of)

    @activity.defn(name=names.CAPA_DECIDE_PLAN)
    async def decide_plan(self, d: PlanDecision) -> ActionsOpened:
        """Apply the signed plan decision: open every action's task at once, or return to investigation."""
        async with transaction(self.sessions) as s:
            return await capas.decide_plan(s, decision=d)

    @activity.defn(name=names.CAPA_ESCALATE_OVERDUE)
    async def escalate_overdue(self, check: OverdueCheck) -> OverdueReport:
        """One step of the overdue ladder: nudge every action whose next rung has come, in one batch."""
        async with transaction(self.sessions) as s:
            return await capas.escalate_overdue(s, capa_id=check.capa_id, as_of=check.as_of)

    @activity.defn(name=names.CAPA_AWAIT_EFFECTIVENESS)
    async def await_effectiveness(self, w: EffectivenessWait) -> datetime:
        """Record when the effectiveness check falls due (the workflow's durable timer runs to it)."""
        async with transaction(self.sessions) as s:
            return await capas.await_effectiveness(s, capa_id=w.capa_id, cycle=w.cycle, due_at=w.due_at)

    @activity.defn(name=names.CAPA_BEGIN_VERIFICATION)
    async def begin_verification(self, w: EffectivenessWait) -> None:
        """The period has passed: the effectiveness check is open."""
        async with transaction(self.sessions) as s:
            await capas.begin_verification(s, capa_id=w.capa_id, cycle=w.cycle)

    @activity.defn(name=names.CAPA_DECIDE_CLOSURE)
    async def decide_closure(self, d: ClosureDecision) -> None:
        """Apply the signed closure decision: closed, or verified again."""
        async with transaction(self.sessions) as s:
            await capas.decide_closure(s, decision=d)

    @activity.defn(name=names.CAPA_RECALL_LINK)
    async def recall_link(self, capa_id: int) -> RecallLink:
        """The recall this CAPA came from, and the sequence of a reissued summary if one exists."""
        async with self.sessions() as s:
            return await capas.recall_link(s, capa_id=capa_id)

    @activity.defn(name=names.CAPA_SETTLE_TASK)
    async def settle_task(self, capa_id: int, task_id: int) -> None:
        """The stage is done: complete its task if it is still open."""
        async with transaction(self.sessions) as s:
            await capas.settle_stage_task(s, capa_id=capa_id, task_id=task_id)
