"""Recall request and response schemas."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from domain.recalls.payloads import ScopeSummary


class SuspectItem(BaseModel):
    """One suspect: a product and lot, a serial (with its product), or a GS1 element string."""

    product_code: str | None = None
    lot_number: str | None = None
    serial: str | None = None
    gs1: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SuspectItem:
        if not (self.gs1 or self.serial or (self.product_code and self.lot_number)):
            raise ValueError("name a product_code and lot_number, a serial, or a gs1 string")
        return self


class RecallCreate(BaseModel):
    """What QA posts to start a recall."""

    suspects: list[SuspectItem] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=4000)
    hazard: str = Field(min_length=1, max_length=4000)
    nmpa_level: int | None = Field(default=None, description="NMPA level 1, 2 or 3 (required for CN)")
    fda_class: Literal["I", "II", "III"] | None = None
    jurisdictions: list[Literal["CN", "US", "EU"]] = Field(default_factory=lambda: ["CN"], min_length=1)
    eu_incident: (
        Literal["public_health_threat", "death_or_serious_deterioration", "serious_incident"] | None
    ) = Field(
        default=None,
        description="EU: the serious incident behind the FSCA; its report is due 2, 10 or 15 days after "
        "awareness (MDR Art. 87) and it sets the recall's severity when no level or class does",
    )
    eu_aware_at: datetime | None = Field(
        default=None,
        description="EU: when the maker became aware of the incident (with a time zone); default now",
    )
    depth: Literal["wholesale", "retail", "user"] = "user"
    required_actions: list[Literal["stop_use", "quarantine", "return", "correct", "destroy"]] = Field(
        default_factory=lambda: ["stop_use", "quarantine", "return"], min_length=1
    )


class RecallCreated(BaseModel):
    """The answer to a new recall."""

    id: int
    reference: str
    status: str
    workflow_id: str


class RecallListItem(BaseModel):
    """A recall in a list."""

    id: int
    reference: str
    status: str
    nmpa_level: int | None
    fda_class: str | None
    eu_incident: str | None = None
    jurisdictions: list[str]
    initiated_by: str
    initiated_at: datetime
    decided_at: datetime | None
    notify_deadline: datetime | None


class DeadlinePublic(BaseModel):
    """A deadline and whether it was met."""

    key: str
    kind: str
    due_at: datetime
    rule: str
    source: str | None = None
    met: bool | None = Field(description="True/False once decided; None while still open")
    done_at: datetime | None = None


class ProgressPublic(BaseModel):
    """Consignee funnel of a recall."""

    planned: int
    sent: int
    delivered: int
    opened: int
    acknowledged: int
    overdue: int
    unreachable: int


class UnitsPublic(BaseModel):
    """Units shipped against units reported by consignees."""

    shipped: int
    on_hand_at_scope: int
    reported_on_hand: int
    returned: int
    corrected: int
    destroyed: int
    used: int


class SignaturePublic(BaseModel):
    """A signature shown on the record."""

    signer: str
    printed_name: str
    meaning: str
    signed_at: datetime
    record_hash: str
    reason: str | None


class TaskBrief(BaseModel):
    """An open task on the record."""

    id: int
    kind: str
    title: str
    candidate_roles: list[str]
    assignee: str | None
    status: str
    due_at: datetime | None


class CapaLink(BaseModel):
    """A CAPA opened from (linked to) the recall."""

    id: int
    reference: str
    title: str
    status: str


class RecallPublic(RecallListItem):
    """A recall with its scope, deadlines, progress and signatures."""

    reason: str
    hazard: str
    depth: str
    required_actions: list[str]
    scope: ScopeSummary | None
    deadlines: list[DeadlinePublic]
    progress: ProgressPublic
    units: UnitsPublic
    signatures: list[SignaturePublic]
    tasks: list[TaskBrief]
    notification_completed_at: datetime | None
    completed_at: datetime | None
    closed_at: datetime | None
    closure_justification: str | None
    capas: list[CapaLink] = Field(default_factory=list)


class NoticeEventPublic(BaseModel):
    """One step of a consignee's notice timeline."""

    at: datetime
    kind: str
    channel: str | None
    detail: dict


class RecallConsigneePublic(BaseModel):
    """A consignee of a recall with its notice timeline."""

    code: str
    name: str
    kind: str
    region: str | None
    language: str
    state: str
    overdue: bool
    units_shipped: int
    first_sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    acknowledged_at: datetime | None
    timeline: list[NoticeEventPublic]


class WidenRequest(BaseModel):
    """More suspect lots for a new scope version."""

    suspects: list[SuspectItem] = Field(min_length=1)
    reason: str = ""


class SignedJustification(BaseModel):
    """A signed closure, cancellation or override: the signer's password and the justification."""

    password: str = Field(min_length=1)
    justification: str = Field(min_length=10, max_length=4000)


class ReportBrief(BaseModel):
    """A stored report."""

    id: int
    kind: str
    sequence: int
    title: str
    created_at: datetime


class ShippedDates(BaseModel):
    """First and last ship dates."""

    first: date | None
    last: date | None
