"""Recall activities on the store: freeze scope, plan from the policy, contain, progress, follow-up,
status, signatures and reports. Each is idempotent by a business key, so a retry never doubles work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from domain.db import transaction
from domain.models import Consignee
from domain.policy import escalation
from domain.policy.recall import amendment_due, recall_schedule
from domain.policy.schedule import Deadline, RecallPolicyInput, RecallSchedule
from domain.recalls import service as recalls
from domain.recalls.models import Recall, RecallConsignee
from domain.recalls.payloads import (
    ApprovalPlan,
    ConsigneeState,
    Decision,
    FollowUp,
    FollowUpReport,
    FreezeScope,
    PlannedDeadline,
    PlannedStep,
    Progress,
    RecallPlan,
    ScopeSummary,
    ScopeWidened,
    SignRecord,
    StatusChange,
)
from domain.tasks import service as tasks
from domain.tasks.payloads import TaskSpec
from workflows import names

APPROVER_ROLES = ["qa_manager"]
# Where a CN recall is announced, by level (DOMAIN.md: level 1 national regulator's site and central
# media; levels 2 and 3 the provincial regulator's site).
PUBLICATION = {
    1: "the NMPA website and central media",
    2: "the provincial medical products administration website",
    3: "the provincial medical products administration website",
}


def schedule_for(recall: Recall, decided_at: datetime) -> RecallSchedule:
    """The policy's schedule for this recall, decided at ``decided_at`` (domain/policy/recall.py)."""
    return recall_schedule(
        RecallPolicyInput(
            decision_at=decided_at,
            cn_level=recall.nmpa_level,
            fda_class=recall.fda_class_proposed,
            jurisdictions=list(recall.jurisdictions),
            eu_incident=recall.eu_incident,
            eu_aware_at=recall.eu_aware_at,
        )
    )


async def _open_filing(s: AsyncSession, recall: Recall, dl: Deadline, what: str, **details: object) -> None:
    """The regulatory affairs task of filing what ``dl`` asks by its time (reported done with its receipt
    number through ``POST /api/tasks/{id}/complete``, which is what the deadline is judged by)."""
    await tasks.open_task(
        s,
        spec=TaskSpec(
            process="recall",
            kind=f"file:{dl.key}",
            title=f"{recall.reference}: {what} (due {dl.due_at:%Y-%m-%d %H:%M} UTC)",
            record_type="recall",
            record_id=recall.id,
            candidate_roles=["regulatory"],
            due_at=dl.due_at,
            priority=1,
            workflow_id=recall.workflow_id,
            business_key=f"recall-{recall.id}-{dl.key}",
            details={"source": dl.source, "rule": dl.rule, **details},
        ),
    )


class RecallStore:
    """Recall activities bound to the store at worker start."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @activity.defn(name=names.FREEZE_SCOPE)
    async def freeze_scope(self, req: FreezeScope, more_lot_ids: list[int]) -> ScopeSummary:
        """Freeze scope version ``req.version`` (adding ``more_lot_ids`` as suspects first)."""
        async with transaction(self.sessions) as s:
            if more_lot_ids:
                await recalls.add_suspects(
                    s, recall_id=req.recall_id, lot_ids=more_lot_ids, version=req.version
                )
            return await recalls.freeze_scope(s, recall_id=req.recall_id, version=req.version)

    @activity.defn(name=names.APPROVAL_PLAN)
    async def approval_plan(self, recall_id: int) -> ApprovalPlan:
        """Who approves, and the reminder/escalation ladder scaled to the level's deadline."""
        async with self.sessions() as s:
            recall = await recalls.get_recall(s, recall_id)
            sched = schedule_for(recall, datetime.now(UTC))
        # The one escalation table (domain.policy.escalation) says whom each rung escalates to.
        rungs = escalation.rungs("recall", f"approval.severity{sched.severity}")
        ladder = [r.model_dump() for r in rungs]
        due = sum((r.wait for r in sched.approval_ladder), timedelta())
        return ApprovalPlan(candidate_roles=APPROVER_ROLES, ladder=ladder, due_in_seconds=due.total_seconds())

    @activity.defn(name=names.DECIDE)
    async def decide(self, d: Decision) -> RecallPlan:
        """Store the decision; fix every deadline from its time; open the regulatory filing tasks."""
        async with transaction(self.sessions) as s:
            recall = await recalls.get_recall(s, d.recall_id)
            sched = schedule_for(recall, d.decided_at)
            if recall.decided_at is None:
                recall.decided_at = d.decided_at
            recall.notify_deadline = sched.notify_deadline
            recall.deadlines = [dl.model_dump(mode="json") for dl in sched.deadlines]
            for dl in sched.deadlines:
                if dl.kind in ("report", "gate") and dl.key != "eu.fsca_report_before_fsn":
                    await _open_filing(s, recall, dl, f"file {dl.key}")
            if "CN" in recall.jurisdictions and recall.nmpa_level:
                where = PUBLICATION[recall.nmpa_level]
                await tasks.open_task(
                    s,
                    spec=TaskSpec(
                        process="recall",
                        kind="publish_announcement",
                        title=f"{recall.reference}: publish the recall announcement on {where}",
                        record_type="recall",
                        record_id=recall.id,
                        candidate_roles=["regulatory"],
                        due_at=sched.notify_deadline,
                        priority=1,
                        workflow_id=recall.workflow_id,
                        business_key=f"recall-{recall.id}-publish",
                        details={
                            "where": where,
                            "rule": "NMPA recall measures: public announcement by level",
                            "url": None,
                        },
                    ),
                )
        return RecallPlan(
            decided_at=sched.decision_at,
            notify_deadline=sched.notify_deadline,
            deadlines=[
                PlannedDeadline(key=dl.key, due_at=dl.due_at, kind=dl.kind, rule=dl.rule)
                for dl in sched.deadlines
            ],
            steps=[PlannedStep(at=step.at, action=step.action) for step in sched.reminders],
            progress_every_seconds=sched.progress_report_every.total_seconds(),
            status_report_every_seconds=(
                sched.us_status_report_every.total_seconds() if sched.us_status_report_every else None
            ),
            eu_gate=sched.eu_fsca_gate is not None,
            fsca_ladder=escalation.rungs("recall", "fsca_report") if sched.eu_fsca_gate else [],
        )

    @activity.defn(name=names.AMEND_FILINGS)
    async def amend_filings(self, w: ScopeWidened) -> list[PlannedDeadline]:
        """The action was extended to more lots after the decision: the filings that starts.

        US: an amendment of the 806 report within 10 working days of the extension (21 CFR 806),
        one per scope version, added to the recall's deadlines with a filing task for regulatory.
        Idempotent per version (a retried activity changes nothing more)."""
        async with transaction(self.sessions) as s:
            recall = await recalls.get_recall(s, w.recall_id)
            if "US" not in recall.jurisdictions:
                return []
            due = amendment_due(w.widened_at)
            dl = due.model_copy(update={"key": f"{due.key}.v{w.version}"})
            if all(d.get("key") != dl.key for d in recall.deadlines):
                recall.deadlines = [*recall.deadlines, dl.model_dump(mode="json")]
            await _open_filing(
                s, recall, dl, f"amend the 806 report for scope v{w.version}", scope_version=w.version
            )
            return [PlannedDeadline(key=dl.key, due_at=dl.due_at, kind=dl.kind, rule=dl.rule)]

    @activity.defn(name=names.CONTAIN)
    async def contain(self, recall_id: int) -> int:
        """Block on-hand stock of every affected lot (ledger entries naming the recall)."""
        async with transaction(self.sessions) as s:
            return await recalls.contain(s, recall_id=recall_id, user="recall-workflow")

    @activity.defn(name=names.SET_STATUS)
    async def set_status(self, change: StatusChange) -> None:
        """Record the recall's status (and, for an ending, when and why)."""
        async with transaction(self.sessions) as s:
            recall = await recalls.get_recall(s, change.recall_id)
            recall.status = change.status
            now = datetime.now(UTC)
            if change.status.value in ("closed", "cancelled", "rejected") and recall.closed_at is None:
                recall.closed_at = now
                recall.closure_justification = change.justification
            if change.status.value == "completed" and recall.completed_at is None:
                recall.completed_at = now

    @activity.defn(name=names.PROGRESS)
    async def progress(self, recall_id: int) -> Progress:
        """Counts by receipt state, read from the store; first, call tasks made moot by an
        acknowledgement since they were opened are closed (the workflow looks here at every timer and
        whenever inbound facts wake it)."""
        async with transaction(self.sessions) as s:
            await recalls.close_moot_calls(s, recall_id=recall_id)
        async with self.sessions() as s:
            return await recalls.progress(s, recall_id=recall_id)

    @activity.defn(name=names.FOLLOW_UP)
    async def follow_up(self, f: FollowUp) -> FollowUpReport:
        """At the deadline: mark every consignee without acknowledgement overdue and open call tasks
        (for the consignee's account owner where one is set, else the recall's coordinator)."""
        async with transaction(self.sessions) as s:
            recall = await recalls.get_recall(s, f.recall_id)
            rows = (
                await s.execute(
                    select(RecallConsignee, Consignee)
                    .join(Consignee, Consignee.id == RecallConsignee.consignee_id)
                    .where(
                        RecallConsignee.recall_id == f.recall_id,
                        RecallConsignee.state != ConsigneeState.acknowledged,
                    )
                    .order_by(RecallConsignee.id)
                )
            ).all()
            calls = 0
            for rc, consignee in rows:
                rc.overdue = True
                owner = consignee.account_owner or recall.coordinator
                await tasks.open_task(
                    s,
                    spec=TaskSpec(
                        process="recall",
                        kind=recalls.CALL_TASK,
                        title=f"{recall.reference}: call {consignee.name} ({consignee.phone or 'no phone'})",
                        record_type="recall",
                        record_id=recall.id,
                        candidate_roles=["qa"],
                        assignee=owner,
                        priority=1,
                        due_at=datetime.now(UTC) + timedelta(hours=4),
                        workflow_id=recall.workflow_id,
                        business_key=recalls.call_task_key(recall.id, consignee.id),
                        details={
                            "consignee_code": consignee.code,
                            "phone": consignee.phone,
                            "state": rc.state.value,
                        },
                    ),
                )
                await recalls.add_event(
                    s,
                    recall_id=f.recall_id,
                    consignee_id=consignee.id,
                    kind="overdue",
                    detail={
                        "deadline": f.deadline.isoformat() if f.deadline else None,
                        "call_task_for": owner,
                    },
                )
                calls += 1
            return FollowUpReport(
                action=f.action, open_consignees=len(rows), acted_on=len(rows), call_tasks=calls
            )

    @activity.defn(name=names.SIGN_RECORD)
    async def sign_record(self, r: SignRecord) -> int:
        """Store a signature on the recall without a task (closure, cancellation, urgent override)."""
        async with transaction(self.sessions) as s:
            digest = await recalls.record_hash(s, r.recall_id)
            sig = await tasks.sign_record(
                s,
                record_type="recall",
                record_id=r.recall_id,
                username=r.username,
                printed_name=r.printed_name,
                meaning=r.meaning,
                reason=r.reason,
                record_hash=digest,
                auth_method=r.auth_method,
            )
            return sig.id
