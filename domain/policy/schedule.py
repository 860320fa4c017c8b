"""Payload models of the recall policy: what goes in and the schedule that comes out.

Pydantic and the standard library only, so workflows can import them inside Temporal's sandbox (the
schedule is computed by an activity from ``domain.policy.recall`` and handed to the workflow).
The numbers live in ``domain.policy.recall``; these are only the shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field

Jurisdiction = Literal["CN", "US", "EU"]
DeadlineKind = Literal["notify", "report", "gate"]
FollowUpAction = Literal["resend", "switch_channel", "overdue_call_task"]
RungAction = Literal["remind", "escalate"]


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a time zone")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class RecallPolicyInput(BaseModel):
    """What the policy needs to know about a recall to compute its schedule.

    Types are deliberately permissive: ``domain.policy.recall.recall_schedule`` checks the values and
    raises ``InvalidInput`` naming the field, so the API can answer 422 with the field and reason.
    """

    model_config = ConfigDict(populate_by_name=True)

    decision_at: datetime = Field(description="when the recall was decided; aware, UTC recommended")
    cn_level: int | None = Field(
        default=None,
        validation_alias=AliasChoices("cn_level", "nmpa_level"),
        description="NMPA recall level 1 (一级), 2 (二级) or 3 (三级); required when CN applies",
    )
    fda_class: str | None = Field(default=None, description="FDA recall class I, II or III")
    jurisdictions: list[str] = Field(default_factory=lambda: ["CN"], description="CN, US and/or EU")
    correction_started_at: datetime | None = Field(
        default=None,
        description="US 806 clock start: when the correction or removal began; default decision_at",
    )
    eu_incident: str | None = Field(
        default=None,
        description="EU serious incident category behind the FSCA: public_health_threat, "
        "death_or_serious_deterioration or serious_incident (MDR Art. 87: 2, 10 or 15 days)",
    )
    eu_aware_at: datetime | None = Field(
        default=None,
        description="EU vigilance clock start: when the manufacturer became aware; default decision_at",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="plan or setting overrides: progress_report_every, us_status_report_every (durations)",
    )


class Deadline(BaseModel):
    """One dated obligation of a recall, with the rule it comes from."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="stable name, e.g. cn.notify_consignees, us.806_report")
    kind: DeadlineKind
    jurisdiction: Jurisdiction | None = Field(description="None: a company default across jurisdictions")
    due_at: UtcDatetime
    rule: str = Field(description="what must be done by when, and how the time is counted")
    source: str = Field(description="the citation the number comes from")
    is_rule: bool = Field(default=True, description="False: a company default, not a regulatory rule")
    warnings: list[str] = Field(default_factory=list)

    def met_by(self, done_at: datetime) -> bool:
        """Whether something done at ``done_at`` (aware) meets this deadline."""
        return _as_utc(done_at) <= self.due_at


class FollowUpStep(BaseModel):
    """One rung of the consignee follow-up ladder: at ``at``, act on every consignee still open."""

    model_config = ConfigDict(frozen=True)

    step: int = Field(description="1-based position on the ladder")
    at: UtcDatetime
    action: FollowUpAction
    fraction: float = Field(description="share of the notification window elapsed at this step")


class ApprovalRung(BaseModel):
    """One rung of the approval task's ladder: ``wait`` after the previous rung (``after`` since opening)."""

    model_config = ConfigDict(frozen=True)

    wait: timedelta
    after: timedelta
    action: RungAction


class WorkingDayPeriod(BaseModel):
    """A period counted in working days of a jurisdiction's calendar, started by a later event."""

    model_config = ConfigDict(frozen=True)

    working_days: int
    jurisdiction: Jurisdiction
    rule: str
    source: str


class EuFscaGate(BaseModel):
    """EU: the FSCA is reported to the competent authority before any field safety notice is sent."""

    model_config = ConfigDict(frozen=True)

    fsn_comment_working_days: int = Field(description="the authority's comment period on the draft FSN")
    urgent_override_requires: str = "a signed justification (urgency) recorded before sending"
    rule: str
    source: str


class RecallSchedule(BaseModel):
    """Every deadline, ladder and cadence of one recall, computed once from the decision."""

    model_config = ConfigDict(frozen=True)

    decision_at: UtcDatetime
    jurisdictions: list[Jurisdiction]
    severity: int = Field(description="1 most severe: the NMPA level or FDA class, whichever is more severe")
    deadlines: list[Deadline] = Field(description="sorted by due_at, then key")
    notify_deadline: UtcDatetime = Field(description="the earliest consignee-notification deadline")
    reminders: list[FollowUpStep] = Field(description="consignee follow-up ladder up to notify_deadline")
    approval_ladder: list[ApprovalRung]
    progress_report_every: timedelta
    us_status_report_every: timedelta | None = None
    plan_due: UtcDatetime | None = Field(default=None, description="CN investigation report and recall plan")
    summary_due_after_completion: WorkingDayPeriod | None = None
    us_806_due: UtcDatetime | None = None
    eu_fsca_gate: EuFscaGate | None = None
    warnings: list[str] = Field(default_factory=list)

    def deadline(self, key: str) -> Deadline:
        """The deadline named ``key``; KeyError if this recall has none by that name."""
        for item in self.deadlines:
            if item.key == key:
                return item
        raise KeyError(key)
