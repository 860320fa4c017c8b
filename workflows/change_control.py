"""ChangeControlWorkflow, one per change request (id ``change-<id>``).

Lifecycle (ISO 13485 7.3.9: a change is approved before it is implemented, and assessed for product
already delivered):

1. Request: QA, production or regulatory affairs posts the change (kind, products, documents, whether
   it blocks release of its products, a planned effective date). From here until it is closed or
   withdrawn, a change that says it blocks release is named by ``open_changes_blocking_release``.
2. Impact assessment: an activity computes, for the affected products, the lots with stock on hand and
   the lots already delivered with their consignee counts, and the documents it brings in; a task asks
   the initiator (or QA) for the risk part and the implementation plan (``submit_impact`` Update).
3. Approval: one sign-off task per role of the policy's matrix (by kind, raised by the risk rating),
   all open IN PARALLEL, each through the one ``SignOffGates`` mechanism (``sign_off`` Update, so
   ``POST /api/tasks/{id}/sign`` works). Required roles must approve; optional roles may approve or
   reject; comment-only roles may only comment (meaning "reviewed"). The initiator may not approve,
   and one person decides for one role of a round. ANY rejection returns the change to the requester
   with the reasons: back to step 2, and the next round opens new approval tasks.
4. Implementation: the planned tasks open in parallel for their owners with due dates; the owner
   reports each done (``complete_task`` Update). One timer for the whole step wakes at the next
   overdue rung of any task and escalates every overdue task in one batch.
5. Verification: a sign-off task for QA (never the initiator); a rejection adds a rework task for the
   requester and goes back to step 4.
6. Effective date: when it lies in the future, a durable timer waits for it; then the change's
   document versions come into force (and the versions they replace end that day).
7. Closed. A change may be withdrawn before that, with a signed justification (``withdraw`` Update).

Roles, ladders and durations come from ``domain/changes/policy.py`` through an activity.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.changes.payloads import (
        ENDED_STATUSES,
        ApprovalDecision,
        ApprovalsOpened,
        ApprovalTaskSlot,
        ChangeOutcome,
        ChangePlan,
        ChangeStart,
        ChangeStatus,
        EffectiveResult,
        EffectiveTiming,
        ImpactRequest,
        ImpactSubmission,
        ImpactSummary,
        ImplementationStart,
        ImplementationState,
        MakeEffective,
        OpenImplTask,
        OverdueCheck,
        Requirement,
        Rework,
        RoundClosed,
        SignChange,
        StatusChange,
        TaskCompletion,
        Withdrawal,
    )
    from domain.tasks.payloads import SignOff, SignOffResult, TaskRef, TaskSpec, TaskStatus

from workflows import names
from workflows.common import STORE
from workflows.signoff import SignOffGates

DECISIONS = ("approved", "rejected")


@workflow.defn
class ChangeControlWorkflow:
    """One change from request to closure (see module docstring)."""

    @workflow.init
    def __init__(self, start: ChangeStart) -> None:
        self._start = start
        self._status = ChangeStatus.impact_assessment
        self._gates = SignOffGates()
        self._plan: ChangePlan | None = None
        self._round = 0
        self._impact: ImpactSummary | None = None
        self._impact_task: int | None = None
        self._submitted_round = 0
        self._submitting = False
        self._reasons: list[str] = []
        # Approval tasks of every round (published once the round is recorded) and what was signed.
        self._slots: dict[int, ApprovalTaskSlot] = {}
        self._slot_round: dict[int, int] = {}
        self._signoffs: dict[int, SignOff] = {}
        self._impl: dict[int, OpenImplTask] = {}
        self._completing: dict[int, str] = {}
        self._verify_task: int | None = None
        self._withdrawal: Withdrawal | None = None
        self._withdrawing = False
        self._ending = False

    # ---- queries and updates ----------------------------------------------------------------

    @workflow.query
    def status(self) -> dict:
        """Where the change stands (process state; the store has the records)."""
        return {
            "status": self._status.value,
            "round": self._round,
            "impact_task": self._impact_task,
            "approval_tasks": {
                str(tid): {
                    "role": slot.role,
                    "requirement": slot.requirement.value,
                    "decision": self._gates.decisions[tid].meaning.value
                    if tid in self._gates.decisions
                    else None,
                }
                for tid, slot in self._slots.items()
                if self._slot_round[tid] == self._round
            },
            "open_tasks": list(self._impl),
            "verify_task": self._verify_task,
            "withdrawn": self._withdrawal is not None,
        }

    @workflow.update
    async def sign_off(self, s: SignOff) -> SignOffResult:
        """Sign an approval (approve, reject or comment) or the verification of this change."""
        self._signoffs[s.task_id] = s
        try:
            result = await self._gates.record(s, record_type="change", record_id=self._start.change_id)
        except BaseException:
            self._signoffs.pop(s.task_id, None)
            raise
        if s.task_id in self._slots:
            await workflow.execute_activity(
                names.CHANGE_RECORD_DECISION,
                ApprovalDecision(
                    change_id=self._start.change_id,
                    task_id=s.task_id,
                    username=s.username,
                    printed_name=s.printed_name,
                    meaning=s.meaning.value,
                    reason=s.reason,
                    signature_id=result.signature_id,
                    signed_at=result.signed_at,
                ),
                **STORE,
            )
        return result

    @sign_off.validator
    def _may_sign(self, s: SignOff) -> None:
        slot = self._slots.get(s.task_id)
        if slot is None and s.task_id != self._verify_task:
            raise ValueError(f"task {s.task_id} is not open for sign-off on this change")
        if slot is not None and (
            self._slot_round[s.task_id] != self._round or self._status != ChangeStatus.awaiting_approval
        ):
            raise ValueError(f"approval round {self._slot_round[s.task_id]} of this change is over")
        if slot is None and self._status != ChangeStatus.verifying:
            raise ValueError("the verification of this change is not open")
        self._gates.validate(s)
        meaning = s.meaning.value
        if slot is None:
            if meaning not in DECISIONS:
                raise ValueError("a verification is approved or rejected")
            return
        if slot.requirement == Requirement.comment_only:
            if meaning != "reviewed":
                raise ValueError(
                    f"the role {slot.role} may only comment on this change, not approve or reject it"
                )
            if not s.reason.strip():
                raise ValueError("a comment needs its text")
            return
        if meaning not in DECISIONS:
            raise ValueError(f"the role {slot.role} approves or rejects this change")
        if self._plan is not None and self._plan.one_decision_per_person:
            for tid, other in self._signoffs.items():
                if (
                    tid != s.task_id
                    and other.username == s.username
                    and other.meaning.value in DECISIONS
                    and self._slot_round.get(tid) == self._round
                ):
                    raise ValueError(
                        f"{s.username} already decided for the role {self._slots[tid].role} in this "
                        "round; each role is decided by a different person"
                    )

    @workflow.update
    async def submit_impact(self, sub: ImpactSubmission) -> ImpactSummary:
        """The risk part and the implementation plan (and, after a return, the revision)."""
        self._submitting = True
        try:
            summary = await workflow.execute_activity(
                names.CHANGE_RECORD_IMPACT,
                sub.model_copy(update={"round": self._round, "impact_task_id": self._impact_task}),
                result_type=ImpactSummary,
                **STORE,
            )
        finally:
            self._submitting = False
        self._impact = summary
        self._submitted_round = self._round
        return summary

    @submit_impact.validator
    def _may_submit(self, sub: ImpactSubmission) -> None:
        if self._withdrawal is not None or self._status in ENDED_STATUSES:
            raise ValueError(f"the change is {self._status.value}")
        if self._status not in (ChangeStatus.impact_assessment, ChangeStatus.returned):
            raise ValueError(f"the change is {self._status.value}: its impact can no longer be changed")
        if self._plan is None or self._impact_task is None:
            raise ValueError("the impact assessment of this change is not open yet; try again shortly")
        if self._submitted_round == self._round:
            raise ValueError(
                f"the impact of round {self._round} was submitted; the approvals are being opened"
            )
        if self._submitting:
            raise ValueError("an impact submission is being recorded")
        if sub.change_id != self._start.change_id:
            raise ValueError("the submission names another change")
        if sub.username != self._start.initiated_by and not set(sub.roles) & set(self._plan.assessor_roles):
            raise ValueError(
                f"the impact is completed by the initiator ({self._start.initiated_by}) or the role "
                f"{' or '.join(self._plan.assessor_roles)}"
            )

    @workflow.update
    async def complete_task(self, c: TaskCompletion) -> int:
        """An implementation task is done; returns how many remain open."""
        self._completing[c.change_task_id] = c.username
        try:
            remaining = await workflow.execute_activity(
                names.CHANGE_COMPLETE_TASK, c, result_type=int, **STORE
            )
        finally:
            self._completing.pop(c.change_task_id, None)
        self._impl.pop(c.change_task_id, None)
        return remaining

    @complete_task.validator
    def _may_complete(self, c: TaskCompletion) -> None:
        if self._status != ChangeStatus.implementing:
            raise ValueError(f"the change is {self._status.value}: no implementation task is open")
        task = self._impl.get(c.change_task_id)
        if task is None:
            raise ValueError(f"task {c.change_task_id} is not open on this change")
        if c.change_task_id in self._completing:
            raise ValueError(f"task {c.change_task_id} is being completed")
        assert self._plan is not None
        if (
            c.username != task.owner
            and task.owner not in c.deputy_for
            and not set(c.roles) & set(self._plan.task_manager_roles)
        ):
            raise ValueError(
                f"task {c.change_task_id} belongs to {task.owner}; only they or the role "
                f"{' or '.join(self._plan.task_manager_roles)} may report it done"
            )

    @workflow.update
    async def withdraw(self, w: Withdrawal) -> int:
        """Withdraw the change with a signed justification; returns the signature id."""
        self._withdrawing = True
        try:
            sig = await workflow.execute_activity(
                names.CHANGE_SIGN_RECORD,
                SignChange(
                    change_id=self._start.change_id,
                    username=w.username,
                    printed_name=w.printed_name,
                    meaning="cancelled",
                    reason=w.justification,
                    auth_method=w.auth_method,
                ),
                result_type=int,
                **STORE,
            )
            self._withdrawal = w
        finally:
            self._withdrawing = False
        return sig

    @withdraw.validator
    def _may_withdraw(self, w: Withdrawal) -> None:
        if (
            self._withdrawal is not None
            or self._withdrawing
            or self._ending
            or self._status in ENDED_STATUSES
        ):
            raise ValueError(f"the change is {self._status.value}; it can no longer be withdrawn")
        withdraw_roles = self._plan.withdraw_roles if self._plan else []
        if w.username != self._start.initiated_by and not set(w.roles) & set(withdraw_roles):
            raise ValueError(
                "a change is withdrawn by its initiator or the role "
                f"{' or '.join(withdraw_roles) or '(none)'}"
            )
        if len(w.justification.strip()) < 10:
            raise ValueError("a withdrawal needs a justification (at least 10 characters)")

    # ---- the process ------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: ChangeStart) -> ChangeOutcome:
        self._plan = await workflow.execute_activity(
            names.CHANGE_PLAN, start.change_id, result_type=ChangePlan, **STORE
        )
        while True:
            self._round += 1
            if not await self._assess():
                return await self._finish(ChangeStatus.withdrawn)
            approved = await self._approve()
            if self._withdrawal is not None:
                return await self._finish(ChangeStatus.withdrawn)
            if approved:
                break
        if not await self._implement_and_verify():
            return await self._finish(ChangeStatus.withdrawn)
        return await self._take_effect()

    async def _assess(self) -> bool:
        """Compute the impact and wait for the risk part; False when the change was withdrawn."""
        assert self._plan is not None
        cid = self._start.change_id
        now = workflow.now()
        self._impact = await workflow.execute_activity(
            names.CHANGE_COMPUTE_IMPACT,
            ImpactRequest(change_id=cid, version=self._round, at=now),
            result_type=ImpactSummary,
            **STORE,
        )
        returned = self._round > 1
        ref = await workflow.execute_activity(
            names.OPEN_TASK,
            TaskSpec(
                process="change",
                kind="revise_change" if returned else "assess_change",
                title=(
                    f"Revise change {self._start.reference} (returned: {'; '.join(self._reasons)})"
                    if returned
                    else f"Assess the impact and risk of change {self._start.reference}"
                )[:255],
                record_type="change",
                record_id=cid,
                candidate_roles=self._plan.assessor_roles,
                assignee=self._start.initiated_by,
                due_at=now + self._plan.impact_due,
                workflow_id=None,  # completed through POST /api/changes/{id}/impact, not signed
                business_key=f"change-{cid}-impact-{self._round}",
                details={"round": self._round, "returned_reasons": self._reasons},
            ),
            result_type=TaskRef,
            **STORE,
        )
        self._impact_task = ref.task_id
        await self._gates.wait(
            ref,
            self._plan.impact_ladder,
            stop=lambda: self._submitted_round == self._round or self._withdrawal is not None,
        )
        return self._withdrawal is None

    async def _approve(self) -> bool:
        """One approval round, every role in parallel; True when approved, False when returned."""
        cid = self._start.change_id
        self._plan = await workflow.execute_activity(names.CHANGE_PLAN, cid, result_type=ChangePlan, **STORE)
        plan = self._plan
        self._status = ChangeStatus.awaiting_approval
        due = workflow.now() + plan.approval_due
        verbs = {
            Requirement.required: "Approve",
            Requirement.optional: "Approve (optional)",
            Requirement.comment_only: "Comment on",
        }
        refs: list[TaskRef] = await asyncio.gather(
            *(
                self._gates.open(
                    TaskSpec(
                        process="change",
                        kind="comment_change"
                        if slot.requirement == Requirement.comment_only
                        else "approve_change",
                        title=f"{verbs[slot.requirement]} change {self._start.reference} as {slot.role}",
                        record_type="change",
                        record_id=cid,
                        candidate_roles=[slot.role],
                        excluded_users=[self._start.initiated_by],
                        due_at=due,
                        priority=2 if slot.requirement == Requirement.required else 3,
                        workflow_id=workflow.info().workflow_id,
                        business_key=f"change-{cid}-r{self._round}-{slot.role}",
                        details={"round": self._round, "requirement": slot.requirement.value},
                    )
                )
                for slot in plan.approvals
            )
        )
        slots = [
            ApprovalTaskSlot(role=slot.role, requirement=slot.requirement, task_id=ref.task_id)
            for slot, ref in zip(plan.approvals, refs, strict=True)
        ]
        await workflow.execute_activity(
            names.CHANGE_APPROVALS_OPENED,
            ApprovalsOpened(change_id=cid, round=self._round, slots=slots),
            **STORE,
        )
        for slot in slots:  # published only now: a decision always finds its approval recorded
            self._slots[slot.task_id] = slot
            self._slot_round[slot.task_id] = self._round
        round_ids = [slot.task_id for slot in slots]

        def rejected() -> list[int]:
            return [
                tid
                for tid in round_ids
                if tid in self._gates.decisions and self._gates.decisions[tid].meaning.value == "rejected"
            ]

        def ended() -> bool:
            return self._withdrawal is not None or bool(rejected())

        required = [
            ref for ref, slot in zip(refs, slots, strict=True) if slot.requirement == Requirement.required
        ]
        await asyncio.gather(*(self._gates.wait(ref, plan.approval_ladder, stop=ended) for ref in required))
        # Let decisions being signed right now land; nothing awaits between here and closing the round,
        # so no sign-off can slip in after the outcome is read.
        await workflow.wait_condition(workflow.all_handlers_finished)
        refused = rejected()
        self._status = ChangeStatus.returned if refused else ChangeStatus.implementing
        for tid in round_ids:
            if tid not in self._gates.decisions:
                self._gates.tasks[tid].status = TaskStatus.cancelled
        reasons = [
            f"{self._slots[tid].role} ({self._signoffs[tid].printed_name}): {self._signoffs[tid].reason}"
            for tid in refused
        ]
        if self._withdrawal is not None:
            return False
        await workflow.execute_activity(
            names.CHANGE_CLOSE_ROUND,
            RoundClosed(change_id=cid, round=self._round, approved=not refused, reasons=reasons),
            result_type=int,
            **STORE,
        )
        if refused:
            self._reasons = reasons
            return False
        return True

    async def _implement_and_verify(self) -> bool:
        """Implementation tasks, then verification (a rejection means rework); False when withdrawn."""
        assert self._plan is not None
        cid = self._start.change_id
        wid = workflow.info().workflow_id
        state = await workflow.execute_activity(
            names.CHANGE_START_IMPLEMENTATION,
            ImplementationStart(change_id=cid, workflow_id=wid),
            result_type=ImplementationState,
            **STORE,
        )
        self._status = ChangeStatus.implementing
        self._impl = {t.change_task_id: t for t in state.tasks}
        attempt = 0
        while True:
            await self._work_tasks()
            if self._withdrawal is not None:
                return False
            attempt += 1
            await self._set_status(ChangeStatus.verifying)
            ref = await self._gates.open(
                TaskSpec(
                    process="change",
                    kind="verify_change",
                    title=f"Verify the implementation of change {self._start.reference}",
                    record_type="change",
                    record_id=cid,
                    candidate_roles=self._plan.verifier_roles,
                    excluded_users=[self._start.initiated_by],
                    due_at=workflow.now() + self._plan.verification_due,
                    workflow_id=wid,
                    business_key=f"change-{cid}-verify-{attempt}",
                    details={"attempt": attempt},
                )
            )
            self._verify_task = ref.task_id
            result = await self._gates.wait(
                ref, self._plan.verification_ladder, stop=lambda: self._withdrawal is not None
            )
            if result is None:
                return False
            if result.meaning.value != "rejected":
                return True
            state = await workflow.execute_activity(
                names.CHANGE_REWORK,
                Rework(
                    change_id=cid,
                    round=attempt,
                    reason=self._signoffs[ref.task_id].reason,
                    owner=self._start.initiated_by,
                    due_at=workflow.now() + self._plan.rework_due,
                    workflow_id=wid,
                ),
                result_type=ImplementationState,
                **STORE,
            )
            self._status = ChangeStatus.implementing
            self._impl = {t.change_task_id: t for t in state.tasks}

    def _next_escalation(self) -> datetime | None:
        assert self._plan is not None
        ladder = self._plan.overdue_ladder
        times = [t.due_at + ladder[t.level].after for t in self._impl.values() if t.level < len(ladder)]
        return min(times) if times else None

    async def _work_tasks(self) -> None:
        """Wait until every open task is done; ONE timer at a time, at the next overdue rung of any
        task, and then one activity escalates every overdue task in a batch."""
        assert self._plan is not None
        ladder = self._plan.overdue_ladder

        def finished() -> bool:
            return not self._impl or self._withdrawal is not None

        while not finished():
            wake_at = self._next_escalation()
            if wake_at is None:
                await workflow.wait_condition(finished)
                return
            now = workflow.now()
            if wake_at > now:
                try:
                    await workflow.wait_condition(finished, timeout=wake_at - now)
                    continue
                except TimeoutError:
                    pass
            at = workflow.now()
            state = await workflow.execute_activity(
                names.CHANGE_ESCALATE_OVERDUE,
                OverdueCheck(change_id=self._start.change_id, at=at, ladder=ladder),
                result_type=ImplementationState,
                **STORE,
            )
            fresh = {t.change_task_id: t for t in state.tasks}
            for tid, old in list(self._impl.items()):
                new = fresh.get(tid)
                if new is None:
                    continue
                if (
                    new.level <= old.level
                    and old.level < len(ladder)
                    and old.due_at + ladder[old.level].after <= at
                ):
                    new = old.model_copy(update={"level": old.level + 1})  # never spin on a rung
                self._impl[tid] = new

    async def _take_effect(self) -> ChangeOutcome:
        """Wait (durably) for the effective date, bring the documents into force, close."""
        cid = self._start.change_id
        timing = await workflow.execute_activity(
            names.CHANGE_EFFECTIVE_TIMING, cid, result_type=EffectiveTiming, **STORE
        )
        if timing.effective_at is not None and timing.effective_at > workflow.now():
            await self._set_status(ChangeStatus.awaiting_effective)
            try:
                await workflow.wait_condition(
                    lambda: self._withdrawal is not None, timeout=timing.effective_at - workflow.now()
                )
            except TimeoutError:
                pass
        await workflow.wait_condition(lambda: not self._withdrawing)
        if self._withdrawal is not None:
            return await self._finish(ChangeStatus.withdrawn)
        self._ending = True
        result = await workflow.execute_activity(
            names.CHANGE_MAKE_EFFECTIVE,
            MakeEffective(change_id=cid, at=workflow.now()),
            result_type=EffectiveResult,
            **STORE,
        )
        return await self._finish(ChangeStatus.closed, effective_on=result.effective_on)

    async def _set_status(self, status: ChangeStatus, note: str | None = None) -> None:
        self._status = status
        await workflow.execute_activity(
            names.CHANGE_SET_STATUS,
            StatusChange(change_id=self._start.change_id, status=status, note=note),
            **STORE,
        )

    async def _finish(self, status: ChangeStatus, effective_on: date | None = None) -> ChangeOutcome:
        self._ending = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.execute_activity(names.CLOSE_TASKS, args=["change", self._start.change_id], **STORE)
        note = self._withdrawal.justification if self._withdrawal is not None else None
        await self._set_status(status, note)
        return ChangeOutcome(
            change_id=self._start.change_id, status=status, rounds=self._round, effective_on=effective_on
        )
