"""Recall payloads carried through Temporal and the API (pydantic only: safe in the workflow sandbox)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.tasks.payloads import Rung


class RecallStatus(StrEnum):
    """A recall's life: awaiting approval → notifying → in progress → completed → closed (or cancelled)."""

    awaiting_approval = "awaiting_approval"
    rejected = "rejected"
    awaiting_fsca_report = "awaiting_fsca_report"
    notifying = "notifying"
    in_progress = "in_progress"
    completed = "completed"
    closed = "closed"
    cancelled = "cancelled"


class Channel(StrEnum):
    """How a notice travels."""

    email = "email"
    sms = "sms"


class NoticeState(StrEnum):
    """A notice's receipt state, from planned to acknowledged (ordered)."""

    planned = "planned"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    delivered = "delivered"
    opened = "opened"
    acknowledged = "acknowledged"


class ConsigneeState(StrEnum):
    """Where one consignee of one recall stands."""

    planned = "planned"
    sent = "sent"
    delivered = "delivered"
    opened = "opened"
    acknowledged = "acknowledged"
    unreachable = "unreachable"


class RecallStart(BaseModel):
    """What RecallWorkflow starts with."""

    recall_id: int
    reference: str
    initiated_by: str
    nmpa_level: int | None = None
    fda_class: str | None = None
    jurisdictions: list[str] = Field(default_factory=lambda: ["CN"])


class ScopeSummary(BaseModel):
    """A frozen scope version: what it covers and what it added to the previous one."""

    recall_id: int
    version: int
    lots: int
    consignees: int
    units_shipped: int
    units_on_hand: int
    added_lots: list[str] = Field(default_factory=list)  # "PRODUCT/LOT"
    added_consignees: list[str] = Field(default_factory=list)  # consignee codes


class WidenScope(BaseModel):
    """An Update: more suspect lots (by id; the API resolved them) for a new scope version."""

    lot_ids: list[int]
    requested_by: str
    reason: str = ""


class SendRound(BaseModel):
    """One batch round of notices: which attempt, and whether to switch to the other channel."""

    recall_id: int
    attempt: int
    switch_channel: bool = False
    only_new_since_version: int | None = None


class SendReport(BaseModel):
    """What a send round did."""

    attempt: int
    planned: int = 0
    sent: int = 0
    failed: int = 0
    skipped_already_sent: int = 0
    unreachable: list[str] = Field(default_factory=list)


class Progress(BaseModel):
    """Counts a workflow needs to decide what to do next (read from the store, never kept in memory)."""

    consignees: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    acknowledged: int = 0
    overdue: int = 0
    open_consignees: int = 0
    reconciled: bool = False


class FollowUp(BaseModel):
    """A follow-up step acting on every consignee that has not acknowledged."""

    recall_id: int
    action: str  # resend | switch_channel | overdue_call_task
    attempt: int
    deadline: datetime | None = None


class FollowUpReport(BaseModel):
    """What a follow-up step did."""

    action: str
    open_consignees: int
    acted_on: int
    call_tasks: int = 0


class ReportRequest(BaseModel):
    """Render and store a report (progress, cn_event, cn_plan, us_806, summary) and mail it to regulatory."""

    recall_id: int
    kind: str
    sequence: int = 0


class ReportRef(BaseModel):
    """A stored report."""

    report_id: int
    kind: str
    sequence: int


class CloseRequest(BaseModel):
    """Close or cancel with a signed justification (sent as an Update after password re-authentication)."""

    username: str
    printed_name: str
    roles: list[str]
    justification: str
    auth_method: str = "password re-entered at signing"


class RecallOutcome(BaseModel):
    """How a recall workflow ended."""

    recall_id: int
    status: RecallStatus
    summary_report_id: int | None = None


class ScopeWidened(BaseModel):
    """The scope grew to ``version`` at ``widened_at``, after the decision: filings it starts."""

    recall_id: int
    version: int
    widened_at: datetime


class FreezeScope(BaseModel):
    """Freeze scope ``version`` of a recall from its suspects (idempotent per version)."""

    recall_id: int
    version: int


class PlannedStep(BaseModel):
    """A follow-up step of the consignee ladder, at a time derived from the deadline."""

    at: datetime
    action: str  # resend | switch_channel | overdue_call_task


class PlannedDeadline(BaseModel):
    """A regulatory deadline as the workflow acts on it."""

    key: str
    due_at: datetime
    kind: str  # notify | report | gate
    rule: str = ""


class ApprovalPlan(BaseModel):
    """Who approves a recall and the reminder/escalation ladder, scaled to the level's deadline."""

    candidate_roles: list[str]
    ladder: list[dict]  # Rung dicts (wait seconds as timedelta ISO): see domain.tasks.payloads.Rung
    due_in_seconds: float


class RecallPlan(BaseModel):
    """The schedule a decision sets: deadlines, follow-up steps, report cadence, the EU gate."""

    decided_at: datetime
    notify_deadline: datetime
    deadlines: list[PlannedDeadline] = Field(default_factory=list)
    steps: list[PlannedStep] = Field(default_factory=list)
    progress_every_seconds: float
    status_report_every_seconds: float | None = None  # US status reports
    eu_gate: bool = False
    # The EU FSCA report task's reminders and escalation (domain.policy.escalation, recall/fsca_report).
    fsca_ladder: list[Rung] = Field(default_factory=list)


class Decision(BaseModel):
    """The approval's outcome, stored on the recall; returns the plan that follows from it."""

    recall_id: int
    approved: bool
    decided_at: datetime
    signature_id: int


class StatusChange(BaseModel):
    """Set a recall's status (and closure details)."""

    recall_id: int
    status: RecallStatus
    justification: str | None = None


class SignRecord(BaseModel):
    """Store a signature on a recall without a task (closure, cancellation, urgent override)."""

    recall_id: int
    username: str
    printed_name: str
    meaning: str
    reason: str
    auth_method: str = "password re-entered at signing"


class WakeUp(BaseModel):
    """A signal that facts arrived in the store (coalesced by the API); the workflow re-reads progress."""

    reason: str = "response"
