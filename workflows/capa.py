"""CapaWorkflow, one per CAPA (id ``capa-<id>``): ISO 13485 8.5.2 corrective and preventive action.

Lifecycle (the store's ``Capa.status`` in brackets):

1. Initiation: QA creates the CAPA through the API (from a recall, a nonconformance, a complaint or an
   audit finding) and the workflow starts. Opened from a recall whose summary was issued already, the
   summary is reissued so that it shows the link.
2. Investigation and root cause [investigation]: a task for the CAPA's owner. The owner records the
   method and the root causes, then proposes the action plan, through the API (store first, then a
   ``wake_up`` signal). Unfinished, the task is reminded and escalated on the investigation ladder.
3. Action plan approval [plan_approval]: a sign-off task for the QA manager, never the initiator
   (:class:`~workflows.signoff.SignOffGates`: role, task state and separation of duties checked in the
   ``sign_off`` Update's validator; a Part 11 signature stored). Rejected: back to investigation.
4. Corrective and preventive actions [implementation]: one task per action, all opened in one activity
   and worked in parallel by their owners, each completed through the API with its evidence. The
   workflow waits until every action is done. Overdue actions walk the overdue ladder: one timer per
   step (never one per action); at the step an activity asks the store which actions are overdue and
   reminds or escalates them in one batch.
5. Effectiveness verification [effectiveness_pending → effectiveness_check]: a durable timer runs for the
   CAPA's effectiveness period (``domain.capa.policy``, 90 days by default); then a verification task.
   The verifier records the result through the API. Ineffective: a new cycle from step 2.
6. Closure sign-off [closure_approval → closed]: a sign-off task for the QA manager, never the initiator.
   Rejected: effectiveness is verified again (step 5's task).

Every wait re-reads the store when it wakes, by signal or by timer, so a lost signal delays, never loses.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.capa.payloads import (
        ActionsOpened,
        CapaOutcome,
        CapaPlan,
        CapaStart,
        CapaState,
        CapaStatus,
        CapaWakeUp,
        ClosureDecision,
        EffectivenessWait,
        OverdueCheck,
        OverdueReport,
        PlanDecision,
        RecallLink,
        StateRequest,
    )
    from domain.policy import escalation
    from domain.recalls.payloads import ReportRef, ReportRequest
    from domain.tasks.payloads import Nudge, Rung, SignOff, SignOffResult, TaskRef, TaskSpec

from workflows import names
from workflows.common import STORE
from workflows.signoff import SignOffGates

RECORD_TYPE = "capa"


@workflow.defn
class CapaWorkflow:
    """One CAPA from initiation to signed closure (see module docstring)."""

    @workflow.init
    def __init__(self, start: CapaStart) -> None:
        self._start = start
        self._gates = SignOffGates()
        self._plan: CapaPlan | None = None
        self._status = CapaStatus.investigation
        self._cycle = 1
        self._woken = False
        self._seq = 0  # numbers the tasks this workflow opens: business keys stay unique across cycles
        self._current_task: int | None = None
        self._signoffs: dict[int, SignOff] = {}  # who signed each task, and why (for the record's trail)

    # ---- queries, signals and updates -------------------------------------------------------

    @workflow.query
    def status(self) -> dict:
        """Where the CAPA stands (process state; the store has the record)."""
        return {"status": self._status.value, "cycle": self._cycle, "current_task": self._current_task}

    @workflow.signal
    def wake_up(self, _w: CapaWakeUp) -> None:
        """Facts arrived in the store (investigation, plan, completed action, result): look now."""
        self._woken = True

    @workflow.update
    async def sign_off(self, s: SignOff) -> SignOffResult:
        """Sign a task of this CAPA (action plan approval, closure)."""
        self._signoffs[s.task_id] = s
        return await self._gates.record(s, record_type=RECORD_TYPE, record_id=self._start.capa_id)

    @sign_off.validator
    def _may_sign(self, s: SignOff) -> None:
        self._gates.validate(s)

    # ---- the process ------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: CapaStart) -> CapaOutcome:
        self._plan = await workflow.execute_activity(
            names.CAPA_PLAN, start.capa_id, result_type=CapaPlan, **STORE
        )
        if start.recall_id is not None:
            await self._show_on_recall_summary()
        while True:
            await self._investigation()
            if not await self._plan_approval():
                continue
            await self._implementation()
            await self._effectiveness_period()
            closed = await self._verify_and_close()
            if closed is not None:
                return closed

    async def _investigation(self) -> None:
        """A task for the owner until the plan is proposed (the store moves to plan_approval)."""
        plan = self._require_plan()
        self._status = CapaStatus.investigation
        task = await workflow.execute_activity(
            names.OPEN_TASK,
            self._spec(
                kind="capa_investigate",
                title=f"{self._start.reference}: investigate the root cause and propose actions",
                roles=plan.investigation_roles,
                assignee=self._start.owner,
                due=plan.investigation_due_seconds,
            ),
            result_type=TaskRef,
            **STORE,
        )
        await self._wait_in_store(
            lambda st: st.status != CapaStatus.investigation, task.task_id, plan.investigation_ladder
        )

    async def _plan_approval(self) -> bool:
        """The QA manager signs the plan (never the initiator); True when approved."""
        plan = self._require_plan()
        self._status = CapaStatus.plan_approval
        task = await self._gates.open(
            self._spec(
                kind="approve_capa_plan",
                title=f"{self._start.reference}: approve the action plan",
                roles=plan.approval_roles,
                excluded=[self._start.initiated_by],
                due=plan.approval_due_seconds,
            )
        )
        self._current_task = task.task_id
        decision = await self._gates.wait(task, plan.approval_ladder)
        assert decision is not None  # no stop condition: the gate waits for a signature
        approved = decision.meaning.value != "rejected"
        await workflow.execute_activity(
            names.CAPA_DECIDE_PLAN,
            PlanDecision(
                capa_id=self._start.capa_id,
                cycle=self._cycle,
                approved=approved,
                signature_id=decision.signature_id,
                actor=self._signer(task.task_id),
                reason=self._reason(task.task_id),
                decided_at=decision.signed_at,
                workflow_id=workflow.info().workflow_id,
            ),
            result_type=ActionsOpened,
            **STORE,
        )
        return approved

    async def _implementation(self) -> None:
        """Wait until every action is complete; at each overdue step, nudge the overdue ones in batch."""
        self._status = CapaStatus.implementation
        self._current_task = None
        while True:
            self._woken = False  # before reading: a signal during the read is not lost
            state = await self._read()
            if state.open_actions == 0:
                return
            now = workflow.now()
            if state.next_escalation_at is not None and state.next_escalation_at <= now:
                await workflow.execute_activity(
                    names.CAPA_ESCALATE_OVERDUE,
                    OverdueCheck(capa_id=self._start.capa_id, as_of=now),
                    result_type=OverdueReport,
                    **STORE,
                )
                continue
            timeout = state.next_escalation_at - now if state.next_escalation_at else None
            try:
                await workflow.wait_condition(lambda: self._woken, timeout=timeout)
            except TimeoutError:
                pass

    async def _effectiveness_period(self) -> None:
        """A durable timer for the effectiveness period, from the moment the last action was done."""
        plan = self._require_plan()
        self._status = CapaStatus.effectiveness_pending
        wait = EffectivenessWait(
            capa_id=self._start.capa_id,
            cycle=self._cycle,
            due_at=workflow.now() + timedelta(seconds=plan.effectiveness_period_seconds),
        )
        due_at = await workflow.execute_activity(
            names.CAPA_AWAIT_EFFECTIVENESS, wait, result_type=datetime, **STORE
        )
        remaining = due_at - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining)
        await workflow.execute_activity(names.CAPA_BEGIN_VERIFICATION, wait, **STORE)

    async def _verify_and_close(self) -> CapaOutcome | None:
        """Verification task, then closure sign-off; None when the CAPA goes back to investigation."""
        plan = self._require_plan()
        while True:
            self._status = CapaStatus.effectiveness_check
            task = await workflow.execute_activity(
                names.OPEN_TASK,
                self._spec(
                    kind="capa_verify",
                    title=f"{self._start.reference}: verify the effectiveness of the actions",
                    roles=plan.verification_roles,
                    due=plan.verification_due_seconds,
                ),
                result_type=TaskRef,
                **STORE,
            )
            state = await self._wait_in_store(
                lambda st: st.status != CapaStatus.effectiveness_check, task.task_id, plan.verification_ladder
            )
            if state.status == CapaStatus.investigation:  # ineffective: a new cycle
                self._cycle = state.cycle
                return None
            self._status = CapaStatus.closure_approval
            closure = await self._gates.open(
                self._spec(
                    kind="approve_capa_closure",
                    title=f"{self._start.reference}: sign the closure",
                    roles=plan.closure_roles,
                    excluded=[self._start.initiated_by],
                    due=plan.closure_due_seconds,
                )
            )
            self._current_task = closure.task_id
            decision = await self._gates.wait(closure, plan.closure_ladder)
            assert decision is not None
            approved = decision.meaning.value != "rejected"
            await workflow.execute_activity(
                names.CAPA_DECIDE_CLOSURE,
                ClosureDecision(
                    capa_id=self._start.capa_id,
                    cycle=self._cycle,
                    approved=approved,
                    signature_id=decision.signature_id,
                    actor=self._signer(closure.task_id),
                    reason=self._reason(closure.task_id),
                    decided_at=decision.signed_at,
                ),
                **STORE,
            )
            if approved:
                return await self._finish(decision.signed_at)

    async def _finish(self, closed_at: datetime) -> CapaOutcome:
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.execute_activity(
            names.CLOSE_TASKS, args=[RECORD_TYPE, self._start.capa_id], result_type=int, **STORE
        )
        self._status = CapaStatus.closed
        self._current_task = None
        return CapaOutcome(
            capa_id=self._start.capa_id, status=CapaStatus.closed, cycles=self._cycle, closed_at=closed_at
        )

    # ---- helpers ----------------------------------------------------------------------------

    async def _wait_in_store(
        self, done: Callable[[CapaState], bool], task_id: int, ladder: list[Rung]
    ) -> CapaState:
        """Re-read the store at every wake-up until ``done``; each rung of the ladder that passes first
        reminds or escalates the stage's task (the last rung repeats)."""
        self._current_task = task_id
        step = 0
        next_nudge = workflow.now() + _rung(ladder, step).wait
        while True:
            self._woken = False
            state = await self._read()
            if done(state):
                # The API completes the task with the data; this settles one opened in a race with it.
                await workflow.execute_activity(
                    names.CAPA_SETTLE_TASK, args=[self._start.capa_id, task_id], **STORE
                )
                return state
            timeout = next_nudge - workflow.now()
            if timeout > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: self._woken, timeout=timeout)
                    continue
                except TimeoutError:
                    pass
            rung = _rung(ladder, step)
            await workflow.execute_activity(
                names.NUDGE_TASK,
                Nudge(task_id=task_id, action=rung.action, to_roles=rung.to_roles, step=step),
                **STORE,
            )
            step += 1
            next_nudge = workflow.now() + _rung(ladder, step).wait

    async def _read(self) -> CapaState:
        state = await workflow.execute_activity(
            names.CAPA_STATE,
            StateRequest(capa_id=self._start.capa_id, as_of=workflow.now()),
            result_type=CapaState,
            **STORE,
        )
        self._cycle = state.cycle
        return state

    async def _show_on_recall_summary(self) -> None:
        """Opened from a recall whose summary was issued already: reissue it, now showing this CAPA."""
        link = await workflow.execute_activity(
            names.CAPA_RECALL_LINK, self._start.capa_id, result_type=RecallLink, **STORE
        )
        if link.recall_id is not None and link.next_summary_sequence is not None:
            await workflow.execute_activity(
                names.RENDER_REPORT,
                ReportRequest(recall_id=link.recall_id, kind="summary", sequence=link.next_summary_sequence),
                result_type=ReportRef,
                **STORE,
            )

    def _spec(
        self,
        *,
        kind: str,
        title: str,
        roles: list[str],
        due: float,
        assignee: str | None = None,
        excluded: list[str] | None = None,
    ) -> TaskSpec:
        self._seq += 1
        return TaskSpec(
            process="capa",
            kind=kind,
            title=title,
            record_type=RECORD_TYPE,
            record_id=self._start.capa_id,
            candidate_roles=roles,
            assignee=assignee,
            excluded_users=excluded or [],
            due_at=workflow.now() + timedelta(seconds=due),
            workflow_id=workflow.info().workflow_id,
            business_key=f"capa-{self._start.capa_id}-{kind}-{self._seq}",
            details={"cycle": self._cycle},
        )

    def _signer(self, task_id: int) -> str:
        return self._signoffs[task_id].username

    def _reason(self, task_id: int) -> str:
        """The reason the signer gave (a rejection's reason goes to the record too)."""
        return self._signoffs[task_id].reason

    def _require_plan(self) -> CapaPlan:
        assert self._plan is not None
        return self._plan


def _rung(ladder: list[Rung], step: int) -> Rung:
    return ladder[min(step, len(ladder) - 1)] if ladder else escalation.FALLBACK_RUNG
