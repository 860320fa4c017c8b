"""RecallWorkflow, one per recall (id ``recall-<id>``).

Lifecycle: scope frozen → approval task (qa_manager, never the initiator; reminders and escalation
scaled to the level) → on approval: deadlines fixed from the decision time, stock contained, EU gate
(FSCA reported before the FSN, or a signed urgent override) → notices sent in batched rounds →
follow-up steps at times derived from the notify deadline (resend, switch channel, overdue + call
tasks), progress reports at the plan's cadence → completed when every consignee has answered and
quantities reconcile, or closed/cancelled with a signed justification → summary report.

Every step that needs the world is an activity; each timer re-reads the store and acts in batch, so
the history stays small at any number of consignees. Inbound facts arrive in the store first; the
``wake_up`` signal (coalesced by the API) only makes the workflow look sooner.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.recalls.payloads import (
        ApprovalPlan,
        CloseRequest,
        Decision,
        FollowUp,
        FollowUpReport,
        FreezeScope,
        PlannedDeadline,
        Progress,
        RecallOutcome,
        RecallPlan,
        RecallStart,
        RecallStatus,
        ReportRef,
        ReportRequest,
        ScopeSummary,
        ScopeWidened,
        SendReport,
        SendRound,
        SignRecord,
        StatusChange,
        WakeUp,
        WidenScope,
    )
    from domain.tasks.payloads import Rung, SignOff, SignOffResult, TaskSpec

from workflows import names
from workflows.common import SENDING, STORE
from workflows.signoff import SignOffGates

APPROVER_ROLES = ["qa_manager"]
CLOSER_ROLES = ["qa_manager"]
FSCA_REPORTER_ROLES = ["regulatory"]


@workflow.defn
class RecallWorkflow:
    """One recall from QA's request to every consignee's acknowledgement (see module docstring)."""

    @workflow.init
    def __init__(self, start: RecallStart) -> None:
        self._start = start
        self._status = RecallStatus.awaiting_approval
        self._gates = SignOffGates()
        self._approval_task: int | None = None
        self._fsca_task: int | None = None
        self._scope_version = 0
        self._scope: ScopeSummary | None = None
        self._plan: RecallPlan | None = None
        self._attempt = 0
        self._ending: CloseRequest | None = None
        self._ending_status: RecallStatus | None = None
        self._override: str | None = None
        self._woken = False
        self._progress = Progress()
        self._report_seq: dict[str, int] = {}

    # ---- queries, signals and updates -------------------------------------------------------

    @workflow.query
    def status(self) -> dict:
        """Where the recall stands (process state; the store has the records)."""
        return {
            "status": self._status.value,
            "scope_version": self._scope_version,
            "attempt": self._attempt,
            "approval_task": self._approval_task,
            "fsca_task": self._fsca_task,
            "notify_deadline": self._plan.notify_deadline.isoformat() if self._plan else None,
        }

    @workflow.signal
    def wake_up(self, _w: WakeUp) -> None:
        """Facts arrived in the store (a response, a receipt): look at progress now."""
        self._woken = True

    @workflow.update
    async def sign_off(self, s: SignOff) -> SignOffResult:
        """Sign a task of this recall (approval, EU FSCA report)."""
        return await self._gates.record(s, record_type="recall", record_id=self._start.recall_id)

    @sign_off.validator
    def _may_sign(self, s: SignOff) -> None:
        self._gates.validate(s)

    @workflow.update
    async def widen_scope(self, w: WidenScope) -> ScopeSummary:
        """Add suspect lots: a new scope version; notices go only to what is new."""
        version = self._scope_version + 1
        self._scope_version = version
        summary = await workflow.execute_activity(
            names.FREEZE_SCOPE,
            args=[FreezeScope(recall_id=self._start.recall_id, version=version), w.lot_ids],
            result_type=ScopeSummary,
            **STORE,
        )
        self._scope = summary
        if self._status in (RecallStatus.notifying, RecallStatus.in_progress):
            await workflow.execute_activity(names.CONTAIN, self._start.recall_id, result_type=int, **STORE)
            await workflow.execute_activity(
                names.SEND_ROUND,
                SendRound(recall_id=self._start.recall_id, attempt=1, only_new_since_version=version),
                result_type=SendReport,
                **SENDING,
            )
        if self._plan is not None:  # decided: an extension of the action starts filings of its own
            amended = await workflow.execute_activity(
                names.AMEND_FILINGS,
                ScopeWidened(recall_id=self._start.recall_id, version=version, widened_at=workflow.now()),
                result_type=list[PlannedDeadline],
                **STORE,
            )
            if amended:  # the 806 report drafted again over the widened scope, for the amendment
                await self._report("us_806")
        return summary

    @widen_scope.validator
    def _may_widen(self, w: WidenScope) -> None:
        if self._ending is not None or self._status in (
            RecallStatus.completed,
            RecallStatus.closed,
            RecallStatus.cancelled,
            RecallStatus.rejected,
        ):
            raise ValueError(f"the recall is {self._status.value}; its scope can no longer change")
        if not w.lot_ids:
            raise ValueError("no lots to add")

    @workflow.update
    async def close(self, c: CloseRequest) -> int:
        """Close (after approval) or cancel (before) with a signed justification; returns the signature."""
        meaning = "cancelled" if self._status == RecallStatus.awaiting_approval else "closed"
        sig = await self._sign_record(c, meaning)
        self._ending_status = RecallStatus.cancelled if meaning == "cancelled" else RecallStatus.closed
        self._ending = c
        return sig

    @close.validator
    def _may_close(self, c: CloseRequest) -> None:
        if self._ending is not None or self._status in (
            RecallStatus.closed,
            RecallStatus.cancelled,
            RecallStatus.rejected,
        ):
            raise ValueError(f"the recall is already {self._status.value}")
        if not set(c.roles).intersection(CLOSER_ROLES):
            raise ValueError("closing or cancelling a recall needs the role qa_manager")
        if len(c.justification.strip()) < 10:
            raise ValueError("a closure needs a justification (at least 10 characters)")

    @workflow.update
    async def urgent_override(self, c: CloseRequest) -> int:
        """Send the FSN before the FSCA is reported to the authority, with a signed justification."""
        sig = await self._sign_record(c, "overridden")
        self._override = c.justification
        return sig

    async def _sign_record(self, c: CloseRequest, meaning: str) -> int:
        """Store a signature on the recall itself (no task): closure, cancellation, urgent override."""
        return await workflow.execute_activity(
            names.SIGN_RECORD,
            SignRecord(
                recall_id=self._start.recall_id,
                username=c.username,
                printed_name=c.printed_name,
                meaning=meaning,
                reason=c.justification,
                auth_method=c.auth_method,
            ),
            result_type=int,
            **STORE,
        )

    @urgent_override.validator
    def _may_override(self, c: CloseRequest) -> None:
        if self._status != RecallStatus.awaiting_fsca_report:
            raise ValueError("there is no FSCA gate waiting")
        if not set(c.roles).intersection(["qa_manager", "regulatory"]):
            raise ValueError("an urgent override needs the role qa_manager or regulatory")
        if len(c.justification.strip()) < 10:
            raise ValueError("an urgent override needs a justification (at least 10 characters)")

    # ---- the process ------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: RecallStart) -> RecallOutcome:
        rid = start.recall_id
        self._scope_version = 1
        self._scope = await workflow.execute_activity(
            names.FREEZE_SCOPE,
            args=[FreezeScope(recall_id=rid, version=1), []],
            result_type=ScopeSummary,
            **STORE,
        )
        decision = await self._approval(start)
        if decision is None or decision.meaning.value == "rejected":
            status = self._ending_status or RecallStatus.rejected
            return await self._finish(status, summary=False)

        self._plan = await workflow.execute_activity(
            names.DECIDE,
            Decision(
                recall_id=rid,
                approved=True,
                decided_at=decision.signed_at,
                signature_id=decision.signature_id,
            ),
            result_type=RecallPlan,
            **STORE,
        )
        await workflow.execute_activity(names.CONTAIN, rid, result_type=int, **STORE)
        await self._report("cn_event" if "CN" in start.jurisdictions else "event")
        # Drafts of the regulator documents due later; filing them is a task opened by the decision.
        if "CN" in start.jurisdictions:
            await self._report("cn_plan")
        if "US" in start.jurisdictions:
            await self._report("us_806")

        if self._plan.eu_gate and not await self._fsca_gate(start):
            return await self._finish(self._ending_status or RecallStatus.cancelled, summary=False)

        await self._set_status(RecallStatus.notifying)
        self._attempt = 1
        await workflow.execute_activity(
            names.SEND_ROUND, SendRound(recall_id=rid, attempt=1), result_type=SendReport, **SENDING
        )
        await self._set_status(RecallStatus.in_progress)
        await self._follow_up_until_done()
        if self._ending is not None:
            return await self._finish(self._ending_status or RecallStatus.closed, summary=True)
        return await self._finish(RecallStatus.completed, summary=True)

    async def _approval(self, start: RecallStart) -> SignOffResult | None:
        plan = await workflow.execute_activity(
            names.APPROVAL_PLAN, start.recall_id, result_type=ApprovalPlan, **STORE
        )
        task = await self._gates.open(
            TaskSpec(
                process="recall",
                kind="approve_recall",
                title=f"Approve recall {start.reference}",
                record_type="recall",
                record_id=start.recall_id,
                candidate_roles=plan.candidate_roles,
                excluded_users=[start.initiated_by],
                priority=1 if start.nmpa_level == 1 else 2,
                due_at=workflow.now() + timedelta(seconds=plan.due_in_seconds),
                workflow_id=workflow.info().workflow_id,
                business_key=f"recall-{start.recall_id}-approve",
            )
        )
        self._approval_task = task.task_id
        ladder = [Rung.model_validate(r) for r in plan.ladder]
        return await self._gates.wait(task, ladder, stop=lambda: self._ending is not None)

    async def _fsca_gate(self, start: RecallStart) -> bool:
        """EU: the FSCA is reported to the competent authority before the FSN goes out, unless overridden."""
        await self._set_status(RecallStatus.awaiting_fsca_report)
        task = await self._gates.open(
            TaskSpec(
                process="recall",
                kind="report_fsca",
                title=f"Report FSCA {start.reference} to the competent authority",
                record_type="recall",
                record_id=start.recall_id,
                candidate_roles=FSCA_REPORTER_ROLES,
                priority=1,
                due_at=self._fsca_due(),
                workflow_id=workflow.info().workflow_id,
                business_key=f"recall-{start.recall_id}-fsca",
            )
        )
        self._fsca_task = task.task_id
        assert self._plan is not None
        done = await self._gates.wait(
            task, self._plan.fsca_ladder, stop=lambda: self._override is not None or self._ending is not None
        )
        return self._ending is None and (done is not None or self._override is not None)

    def _fsca_due(self) -> datetime:
        """The FSCA report is due before the field safety notice, i.e. by the notify deadline."""
        assert self._plan is not None
        for d in self._plan.deadlines:
            if d.key.startswith("eu.fsca"):
                return d.due_at
        return self._plan.notify_deadline

    async def _follow_up_until_done(self) -> None:
        """Follow-up steps and reports on their timers; completion when everyone answered and reconciled."""
        assert self._plan is not None
        steps = sorted(self._plan.steps, key=lambda s: s.at)
        progress_every = timedelta(seconds=self._plan.progress_every_seconds)
        next_progress = workflow.now() + progress_every
        status_every = (
            timedelta(seconds=self._plan.status_report_every_seconds)
            if self._plan.status_report_every_seconds
            else None
        )
        next_status = workflow.now() + status_every if status_every else None
        while True:
            self._woken = False  # before reading progress: a signal during the read is not lost
            if await self._check_done():
                return
            now = workflow.now()
            candidates: list[datetime] = [next_progress]
            if steps:
                candidates.append(steps[0].at)
            if next_status:
                candidates.append(next_status)
            wake_at = min(candidates)
            if wake_at > now:
                try:
                    await workflow.wait_condition(
                        lambda: self._woken or self._ending is not None, timeout=wake_at - now
                    )
                except TimeoutError:
                    pass
            if self._ending is not None:
                return
            now = workflow.now()
            while steps and steps[0].at <= now:
                step = steps.pop(0)
                await self._follow_up(step.action, step.at)
            if next_progress <= now:
                await self._report("progress")
                next_progress = now + progress_every
            if next_status and status_every and next_status <= now:
                await self._report("us_status")
                next_status = now + status_every

    async def _follow_up(self, action: str, at: datetime) -> None:
        rid = self._start.recall_id
        if action in ("resend", "switch_channel"):
            self._attempt += 1
            await workflow.execute_activity(
                names.SEND_ROUND,
                SendRound(recall_id=rid, attempt=self._attempt, switch_channel=action == "switch_channel"),
                result_type=SendReport,
                **SENDING,
            )
        else:
            await workflow.execute_activity(
                names.FOLLOW_UP,
                FollowUp(recall_id=rid, action=action, attempt=self._attempt, deadline=at),
                result_type=FollowUpReport,
                **STORE,
            )

    async def _check_done(self) -> bool:
        self._progress = await workflow.execute_activity(
            names.PROGRESS, self._start.recall_id, result_type=Progress, **STORE
        )
        return (
            self._progress.consignees > 0
            and self._progress.open_consignees == 0
            and self._progress.reconciled
        )

    async def _report(self, kind: str) -> ReportRef:
        seq = self._report_seq.get(kind, 0) + 1
        self._report_seq[kind] = seq
        return await workflow.execute_activity(
            names.RENDER_REPORT,
            ReportRequest(recall_id=self._start.recall_id, kind=kind, sequence=seq),
            result_type=ReportRef,
            **STORE,
        )

    async def _set_status(self, status: RecallStatus, justification: str | None = None) -> None:
        self._status = status
        await workflow.execute_activity(
            names.SET_STATUS,
            StatusChange(recall_id=self._start.recall_id, status=status, justification=justification),
            **STORE,
        )

    async def _finish(self, status: RecallStatus, *, summary: bool) -> RecallOutcome:
        await workflow.wait_condition(workflow.all_handlers_finished)
        justification = self._ending.justification if self._ending else None
        report_id = None
        if summary:
            report_id = (await self._report("summary")).report_id
        await workflow.execute_activity(names.CLOSE_TASKS, args=["recall", self._start.recall_id], **STORE)
        await self._set_status(status, justification)
        return RecallOutcome(recall_id=self._start.recall_id, status=status, summary_report_id=report_id)
