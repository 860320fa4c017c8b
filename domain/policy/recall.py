"""THE one place a recall's deadlines, reminders, escalation ladders and report cadences come from.

Every number below is a ``PolicyRule`` named after the rule it comes from, with the rule's words and
its citation; the computed ``RecallSchedule`` carries that text into each ``Deadline`` (``rule``,
``source``, ``is_rule``), so a report or a screen can say why a date is what it is. Numbers marked
``is_rule=False`` are company defaults (a plan or setting may change them), not regulatory rules.

How time is counted
- Calendar-day windows (the CN notification within 1 / 3 / 7 days): the rule says "days"
  (日), not working days, so they are calendar days, counted as elapsed time from the decision
  instant: 1 day = 24 hours. That is the strict reading (the Civil Code reckoning would run to 24:00
  of the last day and skip past a holiday); for a safety notice the earlier time is the safe one.
- Working-day windows (CN plan and summary, US 806 report and amendment, EU FSN comment period):
  ``domain.policy.calendars``: the decision's local date is day 0 and is not counted, day 1 is the
  next working day, and the deadline is 24:00 local time on the n-th working day, as UTC.
- "Immediately" (CN recall event report): by 24:00 Asia/Shanghai on the decision's local date.

Pure and deterministic: no clock, no I/O; the same input gives the same schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

from domain.errors import InvalidInput
from domain.policy import escalation
from domain.policy.calendars import (
    JURISDICTIONS,
    end_of_local_day,
    local_date,
    working_day_deadline,
)
from domain.policy.schedule import (
    ApprovalRung,
    Deadline,
    DeadlineKind,
    EuFscaGate,
    FollowUpAction,
    FollowUpStep,
    Jurisdiction,
    RecallPolicyInput,
    RecallSchedule,
    RungAction,
    WorkingDayPeriod,
)

__all__ = [
    "APPROVAL_LADDER",
    "CN_EVENT_REPORT",
    "CN_PLAN",
    "CN_SUMMARY",
    "EU_FSCA_BEFORE_FSN",
    "EU_FSN_COMMENT_PERIOD",
    "EU_INCIDENT_REPORT",
    "EU_INCIDENT_SEVERITY",
    "FOLLOW_UP_LADDER",
    "NOTIFY_WINDOW",
    "PROGRESS_REPORT_EVERY",
    "US_806_AMENDMENT",
    "US_806_REPORT",
    "US_STATUS_REPORT_EVERY",
    "ApprovalRung",
    "Deadline",
    "EuFscaGate",
    "FollowUpStep",
    "PolicyRule",
    "RecallPolicyInput",
    "RecallSchedule",
    "WorkingDayPeriod",
    "amendment_due",
    "approval_ladder",
    "follow_up_steps",
    "fsn_comment_period_end",
    "recall_schedule",
    "summary_due",
]


@dataclass(frozen=True)
class PolicyRule:
    """A number from a rule (or a company default) with the rule's words and its citation."""

    value: int | timedelta
    rule: str
    source: str
    is_rule: bool = True


# --- Citations -----------------------------------------------------------------------------------
# DOMAIN.md marks (R) read in the rule text, (S) secondary sources only; kept in the source strings.
NMPA_RECALL_MEASURES: Final = "医疗器械召回管理办法 (CFDA Order No. 29, 2017)"
US_806: Final = "21 CFR 806.10"
US_STATUS: Final = "21 CFR 7.53 (recall status reports)"
EU_MDR_FSCA: Final = "Regulation (EU) 2017/745 (MDR) Art. 87(1)(b) and Art. 89(8)"
COMPANY_DEFAULT: Final = "Lotline company default, not a regulatory rule (a plan or setting may change it)"

# --- Consignee notification window, from the decision instant (calendar days, elapsed) ------------
# One table: the CN rule by NMPA level, and the company default by severity (FDA class I/II/III, or
# the NMPA level where CN does not apply). FDA fixes no time for notifying consignees.
NOTIFY_WINDOW: Final[dict[tuple[str, int], PolicyRule]] = {
    ("CN", 1): PolicyRule(
        timedelta(days=1),
        "一级召回: notify the distributors and users concerned within 1 day of the recall decision "
        "(calendar day, counted as 24 h from the decision)",
        f"{NMPA_RECALL_MEASURES}: 一级召回应当在1日内通知到有关医疗器械经营企业、使用单位或者告知使用者 (R)",
    ),
    ("CN", 2): PolicyRule(
        timedelta(days=3),
        "二级召回: notify the distributors and users concerned within 3 days of the recall decision "
        "(calendar days, counted as 72 h from the decision)",
        f"{NMPA_RECALL_MEASURES}: 二级召回应当在3日内通知到有关医疗器械经营企业、使用单位或者告知使用者 (R)",
    ),
    ("CN", 3): PolicyRule(
        timedelta(days=7),
        "三级召回: notify the distributors and users concerned within 7 days of the recall decision "
        "(calendar days, counted as 168 h from the decision)",
        f"{NMPA_RECALL_MEASURES}: 三级召回应当在7日内通知到有关医疗器械经营企业、使用单位或者告知使用者 (R)",
    ),
    ("company", 1): PolicyRule(
        timedelta(days=1),
        "Severity 1 (FDA class I, or NMPA level 1 where CN does not apply): notify consignees within "
        "1 day (24 h) of the decision",
        COMPANY_DEFAULT,
        is_rule=False,
    ),
    ("company", 2): PolicyRule(
        timedelta(days=3),
        "Severity 2 (FDA class II, or NMPA level 2 where CN does not apply): notify consignees within "
        "3 days (72 h) of the decision",
        COMPANY_DEFAULT,
        is_rule=False,
    ),
    ("company", 3): PolicyRule(
        timedelta(days=7),
        "Severity 3 (FDA class III, or NMPA level 3 where CN does not apply): notify consignees within "
        "7 days (168 h) of the decision",
        COMPANY_DEFAULT,
        is_rule=False,
    ),
}

# --- China -----------------------------------------------------------------------------------------
CN_EVENT_REPORT: Final = PolicyRule(
    0,
    "Recall event report (医疗器械召回事件报告表) to the provincial regulator and the registering "
    "authority immediately on the decision; the engine sets 24:00 Asia/Shanghai on the decision date",
    f"{NMPA_RECALL_MEASURES}: 作出召回决定的，应当立即提交医疗器械召回事件报告表 (R)",
)
CN_PLAN: Final = PolicyRule(
    5,
    "Investigation and assessment report and recall plan to the provincial regulator and the "
    "registering authority within 5 working days of the decision (Chinese official calendar, adjusted "
    "working weekends included; 24:00 Asia/Shanghai on the 5th working day after the decision date)",
    f"{NMPA_RECALL_MEASURES}: 在5个工作日内将调查评估报告和召回计划提交 (R)",
)
CN_SUMMARY: Final = PolicyRule(
    10,
    "Effectiveness evaluation and recall summary report within 10 working days of completing the "
    "recall (Chinese official calendar; 24:00 Asia/Shanghai on the 10th working day after completion)",
    f"{NMPA_RECALL_MEASURES}: 召回完成后10个工作日内对召回效果进行评估并提交召回总结评估报告 (S)",
)

# --- United States ---------------------------------------------------------------------------------
US_806_REPORT: Final = PolicyRule(
    10,
    "Report of correction or removal to FDA within 10 working days of initiating it (US federal "
    "working days; 24:00 America/New_York on the 10th working day after the start date)",
    f"{US_806}(b): report within 10-working days of initiating such correction or removal (R)",
)
US_806_AMENDMENT: Final = PolicyRule(
    10,
    "Amend the 806 report within 10 working days of extending the correction or removal to more "
    "lots or batches (US federal working days; 24:00 America/New_York)",
    f"{US_806} (reports of corrections and removals): amend, citing the original report, when the action "
    "is extended to more lots or batches (R)",
)
US_STATUS_REPORT_EVERY: Final = PolicyRule(
    timedelta(days=14),
    "Recall status reports at the interval FDA sets, generally every 2 to 4 weeks, until termination; "
    "default every 14 days until FDA's interval is recorded",
    f"{US_STATUS}: intervals generally 2-4 weeks as FDA specifies (R); 14 days is the default",
)

# --- European Union --------------------------------------------------------------------------------
EU_FSCA_BEFORE_FSN: Final = PolicyRule(
    0,
    "Report the FSCA to the competent authority before it is carried out: no field safety notice is "
    "sent before the FSCA report is recorded, unless an urgent override is signed with a justification",
    f"{EU_MDR_FSCA}: report prior to undertaking the FSCA, except in cases of urgency (R)",
)
EU_FSN_COMMENT_PERIOD: Final = PolicyRule(
    2,
    "The draft FSN goes to the competent authority, which has 48 hours (2 working days) to comment "
    "before the FSN is sent, except in cases of urgency (weekends only; member-state holidays vary)",
    f"{EU_MDR_FSCA}: draft FSN submitted for comment; 48 h / 2 working days per MEDDEV 2.12/1 rev. 8 (S)",
)

EU_MDR_VIGILANCE: Final = "Regulation (EU) 2017/745 (MDR) Art. 87(3), (4) and (5)"
EU_INCIDENT_REPORT: Final[dict[str, PolicyRule]] = {
    "public_health_threat": PolicyRule(
        2,
        "Report a serious public health threat to the competent authority immediately, and no later than "
        "2 days after becoming aware of it (calendar days)",
        f"{EU_MDR_VIGILANCE}: serious public health threat, 2 days from awareness (R)",
    ),
    "death_or_serious_deterioration": PolicyRule(
        10,
        "Report a death or an unanticipated serious deterioration in a person's state of health "
        "immediately, and no later than 10 days after becoming aware of it (calendar days)",
        f"{EU_MDR_VIGILANCE}: death or unanticipated serious deterioration, 10 days from awareness (R)",
    ),
    "serious_incident": PolicyRule(
        15,
        "Report any other serious incident immediately, and no later than 15 days after becoming aware of "
        "it (calendar days)",
        f"{EU_MDR_VIGILANCE}: serious incident, 15 days from awareness (R)",
    ),
}
# How severe each category makes the recall (1 = most), when no NMPA level or FDA class says so.
EU_INCIDENT_SEVERITY: Final[dict[str, int]] = {
    "public_health_threat": 1,
    "death_or_serious_deterioration": 1,
    "serious_incident": 2,
}

# --- Company defaults that scale with severity (1 = most severe) -----------------------------------
# Progress reports: the recall plan sets the cadence (S); no per-level cadence is fixed for devices
# (the 1/3/7-day cadence is the drug rule), so this is a default for the plan field.
PROGRESS_REPORT_EVERY: Final[dict[int, PolicyRule]] = {
    1: PolicyRule(timedelta(days=1), "Progress report daily (severity 1)", COMPANY_DEFAULT, is_rule=False),
    2: PolicyRule(
        timedelta(days=3), "Progress report every 3 days (severity 2)", COMPANY_DEFAULT, is_rule=False
    ),
    3: PolicyRule(
        timedelta(days=7), "Progress report every 7 days (severity 3)", COMPANY_DEFAULT, is_rule=False
    ),
}

# Approval task (qa_manager signs the recall): remind, then escalate, measured from when the task
# opened. Scaled to the notify window: a level 1 recall has 24 h to reach every consignee. The ladders
# (and whom they escalate to) live in the one escalation table, domain.policy.escalation.
APPROVAL_LADDER: Final[dict[int, tuple[tuple[timedelta, RungAction], ...]]] = {
    severity: tuple(zip(lad.offsets(), (step.action for step in lad.steps), strict=True))
    for severity, lad in ((n, escalation.ladder("recall", f"approval.severity{n}")) for n in (1, 2, 3))
}

# Consignee follow-up, as shares of the notification window: resend on the same channel, switch to
# the other channel, a last reminder on the channel now in use, then at the deadline mark the
# remaining consignees overdue and open call tasks. Fractions strictly increase; the last is 1.0.
FOLLOW_UP_LADDER: Final[tuple[tuple[float, FollowUpAction], ...]] = (
    (0.25, "resend"),
    (0.50, "switch_channel"),
    (0.75, "resend"),
    (1.00, "overdue_call_task"),
)

_FDA_CLASSES: Final[dict[str, int]] = {"I": 1, "II": 2, "III": 3}
_CN_LEVELS: Final = (1, 2, 3)


class _Overrides(BaseModel):
    """The numbers a plan or setting may override for one recall."""

    model_config = ConfigDict(extra="forbid")

    progress_report_every: timedelta | None = None
    us_status_report_every: timedelta | None = None


@dataclass(frozen=True)
class _Checked:
    decision_at: datetime
    jurisdictions: list[Jurisdiction]
    cn_level: int | None
    fda_severity: int | None
    eu_incident: str | None
    eu_aware_at: datetime
    severity: int
    correction_started_at: datetime
    overrides: _Overrides


# --- Public functions --------------------------------------------------------------------------------


def recall_schedule(policy: RecallPolicyInput) -> RecallSchedule:
    """Compute every deadline, ladder and cadence of a recall; InvalidInput names a wrong field."""
    c = _check(policy)
    deadlines: list[Deadline] = []
    notify: list[Deadline] = []

    if "CN" in c.jurisdictions:
        assert c.cn_level is not None  # _check requires it
        notify.append(_notify_deadline(c.decision_at, "CN", c.cn_level))
    # The company default applies where no CN rule does, and also alongside it when an FDA class or an
    # EU incident category is given: the earliest window wins, so a class I recall (or a public health
    # threat) is never notified on a level 3 timetable.
    abroad = [x for x in (c.fda_severity, EU_INCIDENT_SEVERITY.get(c.eu_incident or "")) if x is not None]
    if abroad or "CN" not in c.jurisdictions:
        notify.append(_notify_deadline(c.decision_at, "company", min(abroad) if abroad else c.severity))
    deadlines.extend(notify)
    notify_deadline = min(d.due_at for d in notify)

    plan_due: datetime | None = None
    us_806_due: datetime | None = None
    summary_period: WorkingDayPeriod | None = None
    eu_gate: EuFscaGate | None = None
    us_status_every: timedelta | None = None
    warnings: list[str] = []

    if "CN" in c.jurisdictions:
        deadlines.append(
            _deadline(
                "cn.event_report",
                "report",
                "CN",
                end_of_local_day(local_date(c.decision_at, "CN", field="decision_at"), "CN"),
                CN_EVENT_REPORT,
            )
        )
        plan = _working_days_deadline("cn.plan", "report", "CN", c.decision_at, CN_PLAN)
        deadlines.append(plan)
        plan_due = plan.due_at
        summary_period = WorkingDayPeriod(
            working_days=_n(CN_SUMMARY),
            jurisdiction="CN",
            rule=CN_SUMMARY.rule,
            source=CN_SUMMARY.source,
        )

    if "US" in c.jurisdictions:
        report = _working_days_deadline(
            "us.806_report", "report", "US", c.correction_started_at, US_806_REPORT
        )
        deadlines.append(report)
        us_806_due = report.due_at
        us_status_every = c.overrides.us_status_report_every or _td(US_STATUS_REPORT_EVERY)

    if "EU" in c.jurisdictions:
        # The gate must open in time for the notification deadline: that is when it is due.
        deadlines.append(
            _deadline("eu.fsca_report_before_fsn", "gate", "EU", notify_deadline, EU_FSCA_BEFORE_FSN)
        )
        eu_gate = EuFscaGate(
            fsn_comment_working_days=_n(EU_FSN_COMMENT_PERIOD),
            rule=f"{EU_FSCA_BEFORE_FSN.rule}. {EU_FSN_COMMENT_PERIOD.rule}",
            source=f"{EU_FSCA_BEFORE_FSN.source}; {EU_FSN_COMMENT_PERIOD.source}",
        )
        if c.eu_incident is not None:
            rule = EU_INCIDENT_REPORT[c.eu_incident]
            deadlines.append(
                _deadline(
                    "eu.serious_incident_report",
                    "report",
                    "EU",
                    c.eu_aware_at + timedelta(days=_n(rule)),
                    rule,
                )
            )
        comment_end = fsn_comment_period_end(c.decision_at)
        if comment_end.due_at > notify_deadline:
            warnings.append(
                "eu_comment_period_exceeds_notify_window: a draft FSN submitted at the decision has its "
                f"comment period end at {comment_end.due_at.isoformat()}, after the notification deadline "
                f"{notify_deadline.isoformat()}: send under a signed urgent override or accept the later date"
            )

    deadlines.sort(key=lambda d: (d.due_at, d.key))
    for d in deadlines:
        warnings.extend(w for w in d.warnings if w not in warnings)

    return RecallSchedule(
        decision_at=c.decision_at,
        jurisdictions=c.jurisdictions,
        severity=c.severity,
        deadlines=deadlines,
        notify_deadline=notify_deadline,
        reminders=follow_up_steps(start=c.decision_at, deadline=notify_deadline),
        approval_ladder=approval_ladder(c.severity),
        progress_report_every=c.overrides.progress_report_every or _td(PROGRESS_REPORT_EVERY[c.severity]),
        us_status_report_every=us_status_every,
        plan_due=plan_due,
        summary_due_after_completion=summary_period,
        us_806_due=us_806_due,
        eu_fsca_gate=eu_gate,
        warnings=warnings,
    )


def summary_due(completed_at: datetime) -> Deadline:
    """CN: the effectiveness evaluation and summary report, 10 working days after the recall completed."""
    return _working_days_deadline(
        "cn.summary", "report", "CN", _aware(completed_at, "completed_at"), CN_SUMMARY
    )


def amendment_due(extended_at: datetime) -> Deadline:
    """US: the 806 report amendment, 10 working days after the action was extended to more lots."""
    start = _aware(extended_at, "extended_at")
    return _working_days_deadline("us.806_amendment", "report", "US", start, US_806_AMENDMENT)


def fsn_comment_period_end(submitted_at: datetime) -> Deadline:
    """EU: when the competent authority's comment period on a draft FSN submitted at ``submitted_at`` ends."""
    start = _aware(submitted_at, "submitted_at")
    return _working_days_deadline("eu.fsn_comment_period", "gate", "EU", start, EU_FSN_COMMENT_PERIOD)


def follow_up_steps(*, start: datetime, deadline: datetime) -> list[FollowUpStep]:
    """The consignee follow-up ladder scaled to the window from ``start`` to ``deadline``.

    Every step but the last is strictly before the deadline; the last (overdue, call tasks) is at it.
    Recompute with ``start`` = when the first notices went out to spread the steps over what is left.
    If the window is already over, only the overdue step remains, at the deadline.
    """
    start, deadline = _aware(start, "start"), _aware(deadline, "deadline")
    if deadline <= start:
        return [FollowUpStep(step=1, at=deadline, action="overdue_call_task", fraction=1.0)]
    window = deadline - start
    return [
        FollowUpStep(
            step=i, at=deadline if share == 1.0 else start + window * share, action=action, fraction=share
        )
        for i, (share, action) in enumerate(FOLLOW_UP_LADDER, start=1)
    ]


def approval_ladder(severity: int) -> list[ApprovalRung]:
    """The approval task's reminder and escalation rungs for a severity (1 most severe)."""
    if severity not in APPROVAL_LADDER:
        raise InvalidInput("severity must be 1, 2 or 3", field="severity")
    rungs: list[ApprovalRung] = []
    previous = timedelta(0)
    for after, action in APPROVAL_LADDER[severity]:
        rungs.append(ApprovalRung(wait=after - previous, after=after, action=action))
        previous = after
    return rungs


# --- Helpers ---------------------------------------------------------------------------------------


def _check(policy: RecallPolicyInput) -> _Checked:
    decision_at = _aware(policy.decision_at, "decision_at")

    jurisdictions: list[Jurisdiction] = []
    for raw in policy.jurisdictions:
        code = str(raw).strip().upper()
        if code not in JURISDICTIONS:
            raise InvalidInput(
                f"unknown jurisdiction {raw!r}: expected one of {', '.join(JURISDICTIONS)}",
                field="jurisdictions",
            )
        if code not in jurisdictions:
            jurisdictions.append(code)  # type: ignore[arg-type]
    if not jurisdictions:
        raise InvalidInput("name at least one jurisdiction: CN, US or EU", field="jurisdictions")

    cn_level = policy.cn_level
    if cn_level is not None and cn_level not in _CN_LEVELS:
        raise InvalidInput(f"NMPA recall level must be 1, 2 or 3, not {cn_level}", field="nmpa_level")
    if "CN" in jurisdictions and cn_level is None:
        raise InvalidInput(
            "a recall in China needs its NMPA level (1, 2 or 3): the notification deadline depends on it",
            field="nmpa_level",
        )

    fda_severity = None
    if policy.fda_class is not None:
        fda_class = str(policy.fda_class).strip().upper()
        if fda_class not in _FDA_CLASSES:
            raise InvalidInput(
                f"FDA recall class must be I, II or III, not {policy.fda_class!r}", field="fda_class"
            )
        fda_severity = _FDA_CLASSES[fda_class]

    eu_incident = policy.eu_incident
    if eu_incident is not None and eu_incident not in EU_INCIDENT_REPORT:
        raise InvalidInput(
            f"the EU incident category is one of {', '.join(EU_INCIDENT_REPORT)}, not {eu_incident!r}",
            field="eu_incident",
        )
    if eu_incident is not None and "EU" not in jurisdictions:
        raise InvalidInput(
            "an EU incident category needs the EU among the jurisdictions", field="eu_incident"
        )
    eu_aware_at = decision_at
    if policy.eu_aware_at is not None:
        eu_aware_at = _aware(policy.eu_aware_at, "eu_aware_at")
        if eu_aware_at > decision_at:
            raise InvalidInput("awareness cannot come after the decision", field="eu_aware_at")

    eu_severity = EU_INCIDENT_SEVERITY.get(eu_incident) if eu_incident else None
    given = [s for s in (cn_level, fda_severity, eu_severity) if s is not None]
    if not given:
        field = (
            "fda_class" if "US" in jurisdictions else "eu_incident" if "EU" in jurisdictions else "nmpa_level"
        )
        raise InvalidInput(
            "give the NMPA level (1-3), the FDA class (I-III, the proposed class until FDA assigns one) or "
            "the EU incident category: the notification deadline and escalations are scaled to it",
            field=field,
        )

    correction_started_at = decision_at
    if policy.correction_started_at is not None:
        correction_started_at = _aware(policy.correction_started_at, "correction_started_at")

    return _Checked(
        decision_at=decision_at,
        jurisdictions=jurisdictions,
        cn_level=cn_level,
        fda_severity=fda_severity,
        eu_incident=eu_incident,
        eu_aware_at=eu_aware_at,
        severity=min(given),
        correction_started_at=correction_started_at,
        overrides=_overrides(policy.overrides),
    )


def _overrides(raw: dict) -> _Overrides:
    try:
        overrides = _Overrides.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        reason = (
            "not a setting that can be overridden" if error["type"] == "extra_forbidden" else error["msg"]
        )
        raise InvalidInput(reason, field=f"overrides.{where}" if where else "overrides") from None
    for name in ("progress_report_every", "us_status_report_every"):
        value = getattr(overrides, name)
        if value is not None and value <= timedelta(0):
            raise InvalidInput("must be a positive duration", field=f"overrides.{name}")
    return overrides


def _notify_deadline(decision_at: datetime, table: str, severity: int) -> Deadline:
    rule = NOTIFY_WINDOW[(table, severity)]
    key = "cn.notify_consignees" if table == "CN" else "company.notify_consignees"
    jurisdiction: Jurisdiction | None = "CN" if table == "CN" else None
    return _deadline(key, "notify", jurisdiction, decision_at + _td(rule), rule)


def _working_days_deadline(
    key: str, kind: DeadlineKind, jurisdiction: Jurisdiction, start: datetime, rule: PolicyRule
) -> Deadline:
    counted = working_day_deadline(start, _n(rule), jurisdiction)
    return _deadline(key, kind, jurisdiction, counted.due_at, rule, warnings=list(counted.warnings))


def _deadline(
    key: str,
    kind: DeadlineKind,
    jurisdiction: Jurisdiction | None,
    due_at: datetime,
    rule: PolicyRule,
    *,
    warnings: list[str] | None = None,
) -> Deadline:
    return Deadline(
        key=key,
        kind=kind,
        jurisdiction=jurisdiction,
        due_at=due_at,
        rule=rule.rule,
        source=rule.source,
        is_rule=rule.is_rule,
        warnings=warnings or [],
    )


def _td(rule: PolicyRule) -> timedelta:
    assert isinstance(rule.value, timedelta), rule  # the tables above hold a duration here
    return rule.value


def _n(rule: PolicyRule) -> int:
    assert isinstance(rule.value, int), rule  # the tables above hold a count of working days here
    return rule.value


def _aware(at: datetime, field: str) -> datetime:
    if not isinstance(at, datetime):
        raise InvalidInput("must be a date and time", field=field)
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("must carry a time zone (UTC recommended); a naive time is ambiguous", field=field)
    return at.astimezone(UTC)
