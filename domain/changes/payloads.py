"""Change-control payloads carried through Temporal and the API (pydantic only: sandbox-safe)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.tasks.payloads import Rung


class ChangeKind(StrEnum):
    """What a change touches."""

    design = "design"
    process = "process"
    supplier = "supplier"
    labelling = "labelling"
    document = "document"


class ChangeStatus(StrEnum):
    """A change's life: impact assessment → approval (→ returned → approval ...) → implementing →
    verifying → awaiting its effective date → closed; or withdrawn at any point before closure."""

    impact_assessment = "impact_assessment"
    awaiting_approval = "awaiting_approval"
    returned = "returned"
    implementing = "implementing"
    verifying = "verifying"
    awaiting_effective = "awaiting_effective"
    closed = "closed"
    withdrawn = "withdrawn"


# A change is open (and, when it says so, blocks release of its products) until it ends.
ENDED_STATUSES = (ChangeStatus.closed, ChangeStatus.withdrawn)


class Requirement(StrEnum):
    """How a role takes part in approving a change."""

    required = "required"  # must approve
    optional = "optional"  # may approve or reject; not waited for
    comment_only = "comment_only"  # may only comment


class RiskRating(StrEnum):
    """The risk the assessor rates the change at."""

    low = "low"
    medium = "medium"
    high = "high"


class ChangeTaskStatus(StrEnum):
    """An implementation task: planned with the impact, opened at approval, done or cancelled."""

    planned = "planned"
    open = "open"
    done = "done"
    cancelled = "cancelled"


class DocumentStatus(StrEnum):
    """A document version: drafted by a change, in force from a date, superseded, or withdrawn."""

    draft = "draft"
    effective = "effective"
    superseded = "superseded"
    withdrawn = "withdrawn"


class ImplementationTaskSpec(BaseModel):
    """One implementation task as the assessor plans it."""

    title: str
    owner: str = Field(description="username of the person who does it")
    due_on: date
    description: str = ""


class DocumentChange(BaseModel):
    """A new version of a controlled document that the change brings into force."""

    code: str
    version: str
    title: str = Field(default="", description="needed when the document is new")


class ChangeStart(BaseModel):
    """What ChangeControlWorkflow starts with."""

    change_id: int
    reference: str
    initiated_by: str
    kind: ChangeKind


class ApprovalSlot(BaseModel):
    """One role's part in one approval round."""

    role: str
    requirement: Requirement


class OverdueRung(BaseModel):
    """After a task's due time plus ``after``, do ``action`` (remind the owner, or escalate to roles)."""

    after: timedelta
    action: str  # remind | escalate
    to_roles: list[str] = Field(default_factory=list)


class ChangePlan(BaseModel):
    """The policy for one change, computed by an activity from ``domain.changes.policy``."""

    approvals: list[ApprovalSlot]
    assessor_roles: list[str]
    verifier_roles: list[str]
    withdraw_roles: list[str]
    task_manager_roles: list[str]
    one_decision_per_person: bool = True
    impact_due: timedelta
    approval_due: timedelta
    verification_due: timedelta
    rework_due: timedelta
    impact_ladder: list[Rung]
    approval_ladder: list[Rung]
    verification_ladder: list[Rung]
    overdue_ladder: list[OverdueRung]


class ImpactRequest(BaseModel):
    """Recompute the impact of a change from the store, as version ``version``."""

    change_id: int
    version: int
    at: datetime


class ImpactSummary(BaseModel):
    """What a change reaches: products, lots in stock and delivered, consignees, documents, risk."""

    change_id: int
    version: int
    products: list[str] = Field(default_factory=list)  # product codes
    lots_in_stock: int = 0
    units_on_hand: int = 0
    lots_delivered: int = 0
    units_delivered: int = 0
    consignees: int = 0
    documents: list[str] = Field(default_factory=list)  # "CODE v<version>"
    risk_rating: RiskRating | None = None


class ImpactSubmission(BaseModel):
    """The assessor's part of the impact: risk, the implementation plan, and revisions after a return.

    Product ids are resolved by the API (so a wrong code is a 422 there); ``None`` keeps what is stored.
    """

    change_id: int
    username: str
    roles: list[str]
    risk_assessment: str
    risk_rating: RiskRating
    tasks: list[ImplementationTaskSpec]
    effective_on: date | None = None
    product_ids: list[int] | None = None
    description: str | None = None
    documents: list[DocumentChange] | None = None
    round: int = 0  # filled in by the workflow
    impact_task_id: int | None = None  # filled in by the workflow: the inbox task this completes


class ApprovalTaskSlot(BaseModel):
    """An approval task opened for one role in one round."""

    role: str
    requirement: Requirement
    task_id: int


class ApprovalsOpened(BaseModel):
    """The approval tasks of a round, to record on the change."""

    change_id: int
    round: int
    slots: list[ApprovalTaskSlot]


class ApprovalDecision(BaseModel):
    """A signed decision (or comment) on an approval task."""

    change_id: int
    task_id: int
    username: str
    printed_name: str
    meaning: str  # approved | rejected | reviewed (a comment)
    reason: str = ""
    signature_id: int
    signed_at: datetime


class RoundClosed(BaseModel):
    """An approval round ended: approved, or returned to the requester with the reasons."""

    change_id: int
    round: int
    approved: bool
    reasons: list[str] = Field(default_factory=list)


class OpenImplTask(BaseModel):
    """An open implementation task as the workflow tracks it."""

    change_task_id: int
    inbox_task_id: int | None = None
    owner: str
    due_at: datetime
    level: int = 0  # rungs of the overdue ladder already applied


class ImplementationState(BaseModel):
    """The open implementation tasks of a change."""

    tasks: list[OpenImplTask] = Field(default_factory=list)


class ImplementationStart(BaseModel):
    """Open the planned implementation tasks (inbox tasks with owners and due dates)."""

    change_id: int
    workflow_id: str


class OverdueCheck(BaseModel):
    """Escalate, in one batch, every open task of a change that is overdue by a rung of the ladder."""

    change_id: int
    at: datetime
    ladder: list[OverdueRung]


class TaskCompletion(BaseModel):
    """An owner (or a task manager) reports an implementation task done."""

    change_id: int
    change_task_id: int
    username: str
    roles: list[str]
    note: str = ""
    deputy_for: list[str] = Field(
        default_factory=list,
        description="whom the person stands in for now (out of office)",
    )


class Rework(BaseModel):
    """Verification failed: a rework task for the requester, due ``due_at``."""

    change_id: int
    round: int
    reason: str
    owner: str
    due_at: datetime
    workflow_id: str


class Withdrawal(BaseModel):
    """Withdraw an open change with a signed justification (password re-entered at the API)."""

    username: str
    printed_name: str
    roles: list[str]
    justification: str
    auth_method: str = "password re-entered at signing"


class SignChange(BaseModel):
    """A signature on the change itself, without a task (withdrawal)."""

    change_id: int
    username: str
    printed_name: str
    meaning: str
    reason: str
    auth_method: str


class StatusChange(BaseModel):
    """Set a change's status (with a note)."""

    change_id: int
    status: ChangeStatus
    note: str | None = None


class EffectiveTiming(BaseModel):
    """When the change's effective date begins (None: as soon as it is verified)."""

    effective_at: datetime | None = None


class MakeEffective(BaseModel):
    """Bring the change's document versions into force at ``at`` and close the change."""

    change_id: int
    at: datetime


class EffectiveResult(BaseModel):
    """The date the change took effect and the document versions that came into force."""

    effective_on: date
    documents: list[str] = Field(default_factory=list)


class ChangeOutcome(BaseModel):
    """How a change ended."""

    change_id: int
    status: ChangeStatus
    rounds: int
    effective_on: date | None = None
