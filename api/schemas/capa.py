"""CAPA request and response schemas."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from api.schemas.recalls import SignaturePublic, TaskBrief
from domain.capa.payloads import ActionKind, CapaSource, EffectivenessResult, InvestigationMethod


class CapaCreate(BaseModel):
    """What QA posts to initiate a CAPA."""

    source: CapaSource
    source_reference: str | None = Field(
        default=None, max_length=64, description="the complaint, nonconformance or audit finding it answers"
    )
    recall_id: int | None = Field(default=None, description="required for source 'recall'")
    title: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=8000)
    owner: str | None = Field(default=None, description="who runs it; the caller when not given")
    effectiveness_criteria: str | None = Field(default=None, max_length=4000)
    effectiveness_period_days: int | None = Field(
        default=None, ge=1, le=730, description="when the effectiveness check falls due; policy default 90"
    )


class CapaFromRecall(BaseModel):
    """A CAPA opened from a recall: everything has a default taken from the recall."""

    title: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, min_length=1, max_length=8000)
    owner: str | None = None
    effectiveness_criteria: str | None = Field(default=None, max_length=4000)
    effectiveness_period_days: int | None = Field(default=None, ge=1, le=730)


class CapaCreated(BaseModel):
    """The answer to a new CAPA."""

    id: int
    reference: str
    status: str
    workflow_id: str
    recall_id: int | None = None


class InvestigationIn(BaseModel):
    """The investigation: how the root cause was sought and what it is."""

    method: InvestigationMethod
    root_causes: list[str] = Field(min_length=1, max_length=20)
    summary: str | None = Field(default=None, max_length=8000)


class ActionIn(BaseModel):
    """One corrective or preventive action of a plan."""

    kind: ActionKind
    description: str = Field(min_length=1, max_length=4000)
    owner: str = Field(min_length=1, max_length=64)
    due_on: date


class ActionPlanIn(BaseModel):
    """The action plan proposed for approval, and how effectiveness will be verified."""

    actions: list[ActionIn] = Field(min_length=1, max_length=50)
    effectiveness_criteria: str | None = Field(default=None, max_length=4000)


class ActionCompleteIn(BaseModel):
    """An action done, with the evidence of what was done."""

    evidence: str = Field(min_length=1, max_length=8000)


class EffectivenessIn(BaseModel):
    """The effectiveness verification's result."""

    result: EffectivenessResult
    summary: str = Field(min_length=1, max_length=8000)


class ActionPublic(BaseModel):
    """An action as the record shows it."""

    id: int
    cycle: int
    kind: str
    description: str
    owner: str
    due_on: date
    status: str
    overdue: bool
    task_id: int | None
    completed_at: datetime | None
    completed_by: str | None
    evidence: str | None
    escalation_step: int


class InvestigationPublic(BaseModel):
    """The investigation as recorded."""

    method: str | None
    root_causes: list[str]
    summary: str | None
    cycle: int
    by: str | None
    at: datetime | None


class CapaListItem(BaseModel):
    """A CAPA in a list."""

    id: int
    reference: str
    source: str
    source_reference: str
    recall_id: int | None
    title: str
    status: str
    owner: str
    initiated_by: str
    initiated_at: datetime
    cycle: int
    effectiveness_due_at: datetime | None
    closed_at: datetime | None


class CapaPublic(CapaListItem):
    """A CAPA with its investigation, plan, actions, effectiveness, signatures and open tasks."""

    description: str
    recall_reference: str | None
    investigation: InvestigationPublic
    plan_version: int
    plan_submitted_by: str | None
    plan_submitted_at: datetime | None
    plan_approved_at: datetime | None
    plan_rejection_reason: str | None
    effectiveness_criteria: str | None
    effectiveness_period_days: int
    effectiveness_result: str | None
    effectiveness_summary: str | None
    effectiveness_checked_by: str | None
    effectiveness_checked_at: datetime | None
    effectiveness_history: list[dict]
    actions: list[ActionPublic]
    signatures: list[SignaturePublic]
    tasks: list[TaskBrief]
