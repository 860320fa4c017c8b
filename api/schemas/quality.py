"""Request and response schemas for QC lot release (kept apart from the ORM classes)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.recalls import SignaturePublic, TaskBrief
from domain.quality.payloads import CharacteristicKind, Evaluation


class CharacteristicBase(BaseModel):
    """A characteristic: measured against limits (either may be open), or judged pass/fail."""

    name: str = Field(min_length=1, max_length=64)
    kind: CharacteristicKind
    lower: float | None = Field(default=None, allow_inf_nan=False)
    upper: float | None = Field(default=None, allow_inf_nan=False)
    unit: str | None = Field(default=None, max_length=16)
    sample_size: int = Field(default=1, ge=1, le=100_000)


class CharacteristicPublic(CharacteristicBase):
    """A characteristic of a stored plan."""

    id: int


class InspectionPlanUpdate(BaseModel):
    """A new version of a product's inspection plan."""

    characteristics: list[CharacteristicBase] = Field(min_length=1, max_length=500)
    note: str | None = Field(default=None, max_length=4000)


class InspectionPlanPublic(BaseModel):
    """A version of a product's inspection plan."""

    product_code: str
    version: int
    note: str | None
    created_by: str
    created_at: datetime
    characteristics: list[CharacteristicPublic]


class InspectionCreated(BaseModel):
    """An inspection started: the lot is in quarantine and its release workflow runs."""

    id: int
    lot: str
    status: str
    plan_version: int
    workflow_id: str


class ResultCreate(BaseModel):
    """One observation: ``value`` for a measured characteristic, ``passed`` for a pass/fail one."""

    characteristic: str = Field(min_length=1, max_length=64)
    value: float | None = Field(default=None, allow_inf_nan=False)
    passed: bool | None = None
    unit: str | None = Field(default=None, max_length=16)
    note: str | None = Field(default=None, max_length=4000)


class ResultsCreate(BaseModel):
    """A batch of observations, stored all or nothing."""

    results: list[ResultCreate] = Field(min_length=1, max_length=1000)


class ResultPublic(BaseModel):
    """A recorded observation with who recorded it and when."""

    id: int
    characteristic: str
    value: float | None
    passed: bool | None
    unit: str | None
    note: str | None
    recorded_by: str
    recorded_at: datetime


class ResultsRecordedPublic(BaseModel):
    """What recording a batch did: the stored results and the evaluation now."""

    recorded: list[ResultPublic]
    evaluation: Evaluation


class DispositionPublic(BaseModel):
    """The signed decision and the split of the lot's quantity."""

    outcome: str
    unrestricted: int
    blocked: int
    scrap: int
    sample: int
    decided_by: str
    decided_at: datetime
    signature_id: int
    approval_signature_id: int | None
    justification: str | None


class NonconformancePublic(BaseModel):
    """A nonconformance the inspection opened."""

    id: int
    description: str
    status: str
    disposition: str | None
    opened_by: str
    opened_at: datetime
    capa_requested: bool
    capa_id: int | None


class InspectionPublic(BaseModel):
    """An inspection: the lot, the evaluation and blockers now, results, tasks, signatures, decision."""

    id: int
    product_code: str
    lot_number: str
    lot_id: int
    qc_status: str
    status: str
    plan_version: int
    initiated_by: str
    started_at: datetime
    workflow_id: str
    on_hand: int
    evaluation: Evaluation
    blockers: list[str]
    results: list[ResultPublic]
    tasks: list[TaskBrief]
    signatures: list[SignaturePublic]
    disposition: DispositionPublic | None
    nonconformances: list[NonconformancePublic]
