"""Task and sign-off payloads carried through Temporal (pydantic only: safe inside the workflow sandbox)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field


class TaskStatus(StrEnum):
    """Where a task stands."""

    open = "open"
    completed = "completed"
    rejected = "rejected"
    cancelled = "cancelled"


class SignatureMeaning(StrEnum):
    """What a signature means (21 CFR 11.50: the meaning is part of the signature)."""

    authored = "authored"
    reviewed = "reviewed"
    approved = "approved"
    released = "released"
    rejected = "rejected"
    closed = "closed"
    cancelled = "cancelled"
    overridden = "overridden"


# Set in a task's details by the one sign-off mechanism (workflows/signoff.py): the task is decided by a
# signature through ``POST /api/tasks/{id}/sign`` (other tasks are done on their record's own pages).
SIGN_OFF = "sign_off"


class TaskSpec(BaseModel):
    """A task a workflow opens for people holding one of ``candidate_roles``."""

    process: str  # recall | capa | change | release
    kind: str  # approve_recall | call_consignee | file_report | ...
    title: str
    record_type: str
    record_id: int
    candidate_roles: list[str]
    assignee: str | None = None
    excluded_users: list[str] = Field(default_factory=list, description="separation of duties")
    due_at: datetime | None = None
    priority: int = 2  # 1 urgent .. 3 low
    workflow_id: str | None = None
    business_key: str = Field(description="idempotency: the same key opens the task once")
    details: dict = Field(default_factory=dict)


class TaskRef(BaseModel):
    """A task as a workflow tracks it."""

    task_id: int
    kind: str
    candidate_roles: list[str]
    excluded_users: list[str] = Field(default_factory=list)
    status: TaskStatus = TaskStatus.open


class SignOff(BaseModel):
    """A signer's decision on a task. The API has re-authenticated the signer's password before
    sending it; the password itself never enters workflow history."""

    task_id: int
    username: str
    printed_name: str
    roles: list[str]
    meaning: SignatureMeaning
    reason: str = ""
    auth_method: str = "password re-entered at signing"
    # QC release: the quantity split signed with the decision (unrestricted/blocked/scrap/sample).
    disposition: dict[str, int] | None = None
    capa: bool = False  # a rejection asks for a CAPA (recorded on the nonconformance)


class SignOffResult(BaseModel):
    """What a sign-off produced: the stored signature."""

    signature_id: int
    task_id: int
    meaning: SignatureMeaning
    signed_at: datetime
    record_hash: str


class Rung(BaseModel):
    """One step of an escalation ladder: after ``wait`` without a decision, do ``action``."""

    wait: timedelta
    action: str  # remind | escalate
    to_roles: list[str] = Field(default_factory=list)


class Nudge(BaseModel):
    """A reminder or escalation of an open task, sent by an activity."""

    task_id: int
    action: str
    to_roles: list[str] = Field(default_factory=list)
    step: int = 0


class DigestStart(BaseModel):
    """What the reminder-digest workflow runs by; None: the period from ``domain.policy.escalation``."""

    every_seconds: float | None = None
    offset_seconds: float = 0.0
    rounds_per_run: int = 30  # then continue as new: the history stays short however long it runs


class DigestPlan(BaseModel):
    """The digest period: boundaries every ``every_seconds``, ``offset_seconds`` after UTC-epoch multiples."""

    every_seconds: float
    offset_seconds: float = 0.0


class DigestRound(BaseModel):
    """Send the digests of the period that starts at ``period_start`` (idempotent per person and period)."""

    period_start: datetime


class DigestReport(BaseModel):
    """What a digest round did."""

    period_start: datetime
    people: int = 0
    sent: int = 0
    already_sent: int = 0
    failed: list[str] = Field(default_factory=list)
