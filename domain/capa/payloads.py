"""CAPA enumerations and the payloads carried through Temporal (pydantic and the standard library only:
safe inside the workflow sandbox)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.tasks.payloads import Rung


class CapaSource(StrEnum):
    """Where the need for a CAPA came from."""

    recall = "recall"
    nonconformance = "nonconformance"
    complaint = "complaint"
    audit_finding = "audit_finding"


class CapaStatus(StrEnum):
    """Where a CAPA stands. User facts (a plan proposed, a result recorded) move it in the store at
    once; decisions and timers move it through the workflow's activities."""

    investigation = "investigation"  # investigation and root cause, then an action plan proposed
    plan_approval = "plan_approval"  # the plan waits for the QA manager's signed approval
    implementation = "implementation"  # corrective and preventive actions under way, in parallel
    effectiveness_pending = "effectiveness_pending"  # every action done; waiting for the check date
    effectiveness_check = "effectiveness_check"  # the verification task is open
    closure_approval = "closure_approval"  # verified effective; closure waits for the signed sign-off
    closed = "closed"


class InvestigationMethod(StrEnum):
    """How the root cause was sought."""

    five_why = "5-why"
    fishbone = "fishbone"
    fault_tree = "fault-tree"
    other = "other"


class ActionKind(StrEnum):
    """Corrective (removes the cause of a nonconformity that happened) or preventive (of one that may)."""

    corrective = "corrective"
    preventive = "preventive"


class ActionStatus(StrEnum):
    """Where one action stands."""

    proposed = "proposed"  # in a plan not yet approved
    open = "open"  # approved: its task is open for the owner
    completed = "completed"
    withdrawn = "withdrawn"  # its plan was rejected or replaced before approval


class EffectivenessResult(StrEnum):
    """The outcome of the effectiveness verification."""

    effective = "effective"
    ineffective = "ineffective"


class ActionInput(BaseModel):
    """One action of a proposed plan."""

    kind: ActionKind
    description: str
    owner: str
    due_on: date


class CapaStart(BaseModel):
    """What CapaWorkflow starts with."""

    capa_id: int
    reference: str
    initiated_by: str
    owner: str
    recall_id: int | None = None


class CapaPlan(BaseModel):
    """The timers and ladders of one CAPA, read from ``domain.capa.policy`` (and the CAPA's own
    effectiveness period) by an activity, so a policy change never alters a running history."""

    investigation_roles: list[str]
    investigation_due_seconds: float
    investigation_ladder: list[Rung]
    approval_roles: list[str]
    approval_due_seconds: float
    approval_ladder: list[Rung]
    verification_roles: list[str]
    verification_due_seconds: float
    verification_ladder: list[Rung]
    closure_roles: list[str]
    closure_due_seconds: float
    closure_ladder: list[Rung]
    effectiveness_period_seconds: float


class StateRequest(BaseModel):
    """Read a CAPA's state as of the workflow's time (overdue is judged against it, not the wall clock)."""

    capa_id: int
    as_of: datetime


class CapaState(BaseModel):
    """What the workflow needs to know from the store to take its next step."""

    status: CapaStatus
    cycle: int
    open_actions: int = 0
    completed_actions: int = 0
    overdue_actions: int = 0
    next_escalation_at: datetime | None = None
    effectiveness_due_at: datetime | None = None
    effectiveness_result: EffectivenessResult | None = None


class PlanDecision(BaseModel):
    """The QA manager's signed decision on the action plan of a cycle."""

    capa_id: int
    cycle: int
    approved: bool
    signature_id: int
    actor: str = Field(description="the signer: the audit trail attributes the change to them")
    reason: str = ""
    decided_at: datetime
    workflow_id: str


class ActionsOpened(BaseModel):
    """The action tasks opened, one per action, in one activity."""

    action_ids: list[int] = Field(default_factory=list)
    task_ids: list[int] = Field(default_factory=list)


class OverdueCheck(BaseModel):
    """One step of the overdue ladder: nudge every open action whose next rung is due at ``as_of``."""

    capa_id: int
    as_of: datetime


class OverdueReport(BaseModel):
    """What one overdue step did."""

    reminded: list[int] = Field(default_factory=list, description="action ids reminded")
    escalated: list[int] = Field(default_factory=list, description="action ids escalated")


class EffectivenessWait(BaseModel):
    """Every action is done: the effectiveness check falls due at ``due_at`` (workflow time + period)."""

    capa_id: int
    cycle: int
    due_at: datetime


class ClosureDecision(BaseModel):
    """The QA manager's signed decision on closure."""

    capa_id: int
    cycle: int
    approved: bool
    signature_id: int
    actor: str = Field(description="the signer: the audit trail attributes the change to them")
    reason: str = ""
    decided_at: datetime


class RecallLink(BaseModel):
    """A CAPA opened from a recall: the next sequence of the recall's summary if one was issued already."""

    recall_id: int | None = None
    next_summary_sequence: int | None = None


class CapaWakeUp(BaseModel):
    """A signal that facts arrived in the store (investigation, plan, completed action, result)."""

    reason: str = "record changed"


class CapaOutcome(BaseModel):
    """How a CAPA ended."""

    capa_id: int
    status: CapaStatus
    cycles: int
    closed_at: datetime | None = None
