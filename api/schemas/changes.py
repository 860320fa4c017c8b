"""Change-control and controlled-document request and response schemas."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from api.schemas.recalls import SignaturePublic, TaskBrief
from domain.changes.payloads import ChangeKind, RiskRating


class DocumentChangeIn(BaseModel):
    """A new version of a controlled document that the change brings into force."""

    code: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=32)
    title: str = Field(default="", max_length=255, description="needed when the document is new")


class ImplementationTaskIn(BaseModel):
    """One implementation task: what, who, by when."""

    title: str = Field(min_length=1, max_length=255)
    owner: str = Field(min_length=1, max_length=64, description="username")
    due_on: date
    description: str = Field(default="", max_length=4000)


class ChangeCreate(BaseModel):
    """What a requester posts to open a change."""

    kind: ChangeKind
    title: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=8000)
    product_codes: list[str] = Field(default_factory=list, description="the products the change affects")
    blocks_release: bool = Field(default=False, description="while open, new lots of them cannot be released")
    effective_on: date | None = Field(default=None, description="planned effective date (site calendar)")
    documents: list[DocumentChangeIn] = Field(default_factory=list)


class ChangeCreated(BaseModel):
    """The answer to a new change."""

    id: int
    reference: str
    status: str
    workflow_id: str


class ImpactIn(BaseModel):
    """The assessor's part of the impact, and revisions after a return (omitted fields stay)."""

    risk_assessment: str = Field(min_length=1, max_length=8000)
    risk_rating: RiskRating
    tasks: list[ImplementationTaskIn] = Field(min_length=1)
    effective_on: date | None = None
    product_codes: list[str] | None = None
    description: str | None = Field(default=None, min_length=1, max_length=8000)
    documents: list[DocumentChangeIn] | None = None


class TaskDone(BaseModel):
    """An implementation task reported done."""

    note: str = Field(default="", max_length=4000)


class CommentIn(BaseModel):
    """A comment-only role's signed comment on its approval task (Part 11: the password again)."""

    task_id: int
    password: str = Field(min_length=1)
    comment: str = Field(min_length=1, max_length=4000)


class WithdrawIn(BaseModel):
    """A signed withdrawal: the signer's password and the justification."""

    password: str = Field(min_length=1)
    justification: str = Field(min_length=10, max_length=4000)


class ImpactLotPublic(BaseModel):
    """One affected lot: on hand, and delivered to how many consignees."""

    lot_id: int
    product_code: str
    lot_number: str
    on_hand: int
    blocked: int
    shipped: int
    consignees: int
    first_shipped_on: date | None
    last_shipped_on: date | None


class ImpactPublic(BaseModel):
    """The impact as last computed, with the risk part."""

    version: int
    computed_at: datetime
    products: list[str]
    lots_in_stock: int
    units_on_hand: int
    lots_delivered: int
    units_delivered: int
    consignees: int
    documents: list[dict]
    risk_assessment: str | None
    risk_rating: str | None
    assessed_by: str | None
    assessed_at: datetime | None
    in_stock: list[ImpactLotPublic]
    delivered: list[ImpactLotPublic]


class ApprovalPublic(BaseModel):
    """One role's part in one approval round and its decision."""

    round: int
    role: str
    requirement: str
    task_id: int | None
    decision: str | None
    decided_by: str | None
    printed_name: str | None
    decided_at: datetime | None
    comment: str | None
    signature_id: int | None


class ChangeTaskPublic(BaseModel):
    """An implementation or rework task."""

    id: int
    seq: int
    kind: str
    title: str
    description: str
    owner: str
    due_on: date
    status: str
    overdue: bool
    escalation_level: int
    inbox_task_id: int | None
    completed_at: datetime | None
    completed_by: str | None
    note: str | None


class DocumentVersionPublic(BaseModel):
    """A version of a controlled document and when it was in force."""

    code: str
    title: str
    version: str
    status: str
    effective_from: date | None
    effective_to: date | None
    change_reference: str | None


class DocumentPublic(BaseModel):
    """A controlled document with every version."""

    code: str
    title: str
    versions: list[DocumentVersionPublic]


class ChangeListItem(BaseModel):
    """A change in a list."""

    id: int
    reference: str
    kind: str
    title: str
    status: str
    initiated_by: str
    initiated_at: datetime
    blocks_release: bool
    effective_on: date | None
    became_effective_on: date | None
    round: int
    products: list[str]


class ChangePublic(ChangeListItem):
    """A change with its impact, approvals, tasks, documents and signatures."""

    description: str
    workflow_id: str | None
    returned_reasons: list[str]
    closed_at: datetime | None
    closure_note: str | None
    impact: ImpactPublic | None
    approvals: list[ApprovalPublic]
    tasks: list[ChangeTaskPublic]
    documents: list[DocumentVersionPublic]
    signatures: list[SignaturePublic]
    open_tasks: list[TaskBrief]
