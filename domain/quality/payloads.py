"""QC release payloads carried through Temporal and the API (pydantic only: safe in the workflow sandbox)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.tasks.payloads import Rung

# The record type tasks and signatures of a lot release point at (record id: the inspection id).
RECORD_TYPE = "lot_release"


class CharacteristicKind(StrEnum):
    """How a characteristic is inspected: measured against limits, or judged pass/fail."""

    numeric = "numeric"
    pass_fail = "pass_fail"


class InspectionStatus(StrEnum):
    """Where an inspection stands: results → release decision (→ concession approval) → decided."""

    awaiting_results = "awaiting_results"
    awaiting_release = "awaiting_release"
    awaiting_concession = "awaiting_concession"
    released = "released"
    rejected = "rejected"


class EvaluationOutcome(StrEnum):
    """The automatic verdict on an inspection's results."""

    incomplete = "incomplete"
    passed = "passed"
    failed = "failed"


class DispositionOutcome(StrEnum):
    """What was decided for the lot (ISO 13485 8.3: release, concession, or rejection)."""

    released = "released"
    concession = "concession"
    rejected = "rejected"


class NonconformanceStatus(StrEnum):
    """A nonconformance is open until it is dispositioned and closed."""

    open = "open"
    closed = "closed"


class CharacteristicSpec(BaseModel):
    """One characteristic of an inspection plan."""

    name: str
    kind: CharacteristicKind
    lower: float | None = None
    upper: float | None = None
    unit: str | None = None
    sample_size: int = 1


class ResultInput(BaseModel):
    """One recorded observation: a measured value, or pass/fail, for one sample of one characteristic."""

    characteristic: str
    value: float | None = None
    passed: bool | None = None
    unit: str | None = None
    note: str | None = None


class DispositionSplit(BaseModel):
    """How a lot's on-hand quantity is split at the decision; the parts add up to the quantity on hand."""

    model_config = ConfigDict(extra="forbid")

    unrestricted: int = Field(default=0, ge=0, description="released for use")
    blocked: int = Field(default=0, ge=0, description="stays blocked (segregated)")
    scrap: int = Field(default=0, ge=0, description="destroyed")
    sample: int = Field(default=0, ge=0, description="taken out as samples (retained or tested)")

    @property
    def total(self) -> int:
        """The quantity the split accounts for."""
        return self.unrestricted + self.blocked + self.scrap + self.sample


class CharacteristicVerdict(BaseModel):
    """The evaluation of one characteristic."""

    name: str
    kind: CharacteristicKind
    sample_size: int
    recorded: int
    out_of_spec: int
    verdict: EvaluationOutcome
    spec: str = Field(description="the limits or 'pass/fail', as a person reads them")
    failing_values: list[str] = Field(default_factory=list)


class Evaluation(BaseModel):
    """The automatic evaluation: incomplete until every characteristic has its samples, then passed or
    failed with the failing characteristics."""

    inspection_id: int
    outcome: EvaluationOutcome
    characteristics: list[CharacteristicVerdict] = Field(default_factory=list)
    failing: list[str] = Field(default_factory=list, description="names of out-of-spec characteristics")
    missing: dict[str, int] = Field(default_factory=dict, description="samples still to record, by name")
    recorded_by: list[str] = Field(default_factory=list, description="who recorded results (sorted)")

    def summary(self) -> str:
        """One line for a task, a nonconformance or a refusal."""
        if self.outcome == EvaluationOutcome.incomplete:
            todo = ", ".join(f"{name} ({n} more)" for name, n in self.missing.items())
            return f"results are incomplete: {todo}"
        if self.outcome == EvaluationOutcome.passed:
            return "every characteristic is within specification"
        parts = []
        for c in self.characteristics:
            if c.out_of_spec:
                values = ", ".join(c.failing_values)
                parts.append(f"{c.name}: {c.out_of_spec} of {c.recorded} out of {c.spec} ({values})")
        return "out of specification: " + "; ".join(parts)


class ReleaseStart(BaseModel):
    """What QcReleaseWorkflow starts with (the API stored the inspection and quarantined the lot)."""

    inspection_id: int
    lot_id: int
    lot_label: str
    initiated_by: str


class ReleasePlan(BaseModel):
    """Who signs and the SLA ladders, from ``domain.quality.policy`` (through an activity: recorded in
    history, so a policy change never alters a running release)."""

    releaser_roles: list[str]
    concession_roles: list[str]
    ladder: list[Rung]
    due_in_seconds: float
    concession_ladder: list[Rung]
    concession_due_in_seconds: float
    results_recheck_seconds: float
    min_justification: int


class ReleaseReview(BaseModel):
    """Everything a release decision depends on, read from the store at one moment."""

    evaluation: Evaluation
    blockers: list[str] = Field(default_factory=list)
    on_hand: int = 0
    problems: list[str] = Field(default_factory=list, description="why the proposed decision cannot stand")


class ReleaseCheck(BaseModel):
    """A proposed decision to review against the store before it is signed."""

    inspection_id: int
    outcome: DispositionOutcome
    disposition: DispositionSplit | None = None
    signer: str = ""


class Dispose(BaseModel):
    """Apply a signed decision: split the quantity through the ledger, set the QC status, record it."""

    inspection_id: int
    outcome: DispositionOutcome
    disposition: DispositionSplit | None = None
    decided_by: str
    signature_id: int
    approval_signature_id: int | None = None
    justification: str | None = None
    capa: bool = False


class DisposeResult(BaseModel):
    """What applying a decision did, or, when a hold arrived after the signature, why it could not."""

    applied: bool
    disposition_id: int | None = None
    nonconformance_id: int | None = None
    blockers: list[str] = Field(default_factory=list)


class StatusChange(BaseModel):
    """Move an inspection to a new status."""

    inspection_id: int
    status: InspectionStatus


class ResultsRecorded(BaseModel):
    """Signal: results were stored for the inspection; evaluate now."""

    count: int = 0


class ReleaseOutcome(BaseModel):
    """How a lot release ended."""

    inspection_id: int
    lot_id: int
    status: InspectionStatus
    outcome: DispositionOutcome
    disposition_id: int | None = None
    nonconformance_id: int | None = None
