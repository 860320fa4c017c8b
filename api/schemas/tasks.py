"""Task inbox schemas: a task as the inbox shows it, sign-off, delegation and out-of-office requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from domain.quality.payloads import DispositionSplit
from domain.tasks.models import Absence, Task
from domain.tasks.service import TaskAccess, is_overdue

Process = Literal["recall", "capa", "change", "release"]


class TaskPublic(BaseModel):
    """A task in the inbox, with what the caller may do with it (``actions``) and why not (``refusals``)."""

    id: int
    process: str
    kind: str
    title: str
    record_type: str
    record_id: int
    candidate_roles: list[str]
    excluded_users: list[str]
    assignee: str | None
    claimed_at: datetime | None
    delegated_by: str | None
    delegation_reason: str | None
    deputy_for: str | None = Field(description="the person the assignee stands in for while they are away")
    status: str
    priority: int
    due_at: datetime | None
    follow_up_at: datetime | None
    overdue: bool
    reminders_sent: int
    escalated_to: list[str]
    created_at: datetime
    completed_by: str | None
    outcome: str | None
    actions: list[str] = Field(
        default_factory=list, description="claim, release, delegate, sign: allowed now"
    )
    refusals: dict[str, str] = Field(default_factory=dict, description="why each other action is refused")

    @classmethod
    def of(cls, t: Task, access: TaskAccess | None = None, now: datetime | None = None) -> TaskPublic:
        """The inbox view of a task (``access``: what the caller may do with it)."""
        return cls(
            id=t.id,
            process=t.process,
            kind=t.kind,
            title=t.title,
            record_type=t.record_type,
            record_id=t.record_id,
            candidate_roles=t.candidate_roles,
            excluded_users=t.excluded_users or [],
            assignee=t.assignee,
            claimed_at=t.claimed_at,
            delegated_by=t.delegated_by,
            delegation_reason=t.delegation_reason,
            deputy_for=t.deputy_for,
            status=t.status.value,
            priority=t.priority,
            due_at=t.due_at,
            follow_up_at=t.follow_up_at,
            overdue=is_overdue(t, now or datetime.now(UTC)),
            reminders_sent=t.reminders_sent or 0,
            escalated_to=t.escalated_to or [],
            created_at=t.created_at,
            completed_by=t.completed_by,
            outcome=t.outcome,
            actions=access.actions if access else [],
            refusals=dict(access.reasons) if access else {},
        )


class SignRequest(BaseModel):
    """A sign-off: the signer's password again (Part 11), the decision and, for a rejection, why."""

    password: str = Field(min_length=1)
    decision: Literal["approved", "rejected", "released"]
    reason: str = Field(default="", max_length=4000)
    disposition: DispositionSplit | None = Field(default=None, description="QC release: the quantity split")
    capa: bool = Field(default=False, description="a rejection asks for a CAPA")


class CompleteRequest(BaseModel):
    """Report a work task done under one's signature: a report filed, an announcement published, a
    consignee called. The password again (Part 11)."""

    password: str = Field(min_length=1)
    reference: str | None = Field(
        default=None,
        max_length=500,
        description="the authority's receipt number or the URL (filings, announcements)",
    )
    note: str = Field(default="", max_length=4000, description="what was done, e.g. whom the call reached")
    done_at: datetime | None = Field(
        default=None, description="when it was done (with a time zone); default now"
    )


class DelegateRequest(BaseModel):
    """Hand the task to a named person who holds one of its candidate roles, saying why."""

    to: str = Field(min_length=1, max_length=64, description="the delegate's username")
    reason: str = Field(min_length=1, max_length=4000)


class AbsenceCreate(BaseModel):
    """Out of office: over the period, tasks meant for me go to my deputy."""

    deputy: str = Field(min_length=1, max_length=64)
    starts_at: datetime = Field(description="with a time zone")
    ends_at: datetime = Field(description="with a time zone; after starts_at")
    reason: str | None = Field(default=None, max_length=4000)


class AbsencePublic(BaseModel):
    """An out-of-office period."""

    id: int
    username: str
    deputy: str
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    cancelled_at: datetime | None

    @classmethod
    def of(cls, a: Absence) -> AbsencePublic:
        """The public view of a period."""
        return cls(
            id=a.id,
            username=a.username,
            deputy=a.deputy,
            starts_at=a.starts_at,
            ends_at=a.ends_at,
            reason=a.reason,
            cancelled_at=a.cancelled_at,
        )
