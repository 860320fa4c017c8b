"""THE one place change control's roles, ladders and durations come from (data, not code in workflows).

Rules encoded (DOMAIN.md):
- ISO 13485 7.3.9: changes are reviewed, verified and **approved before implementation**, and their
  effect on product **already delivered** is assessed: the impact step computes lots in stock and lots
  delivered (with consignee counts) before any approval task opens.
- 21 CFR 11 / separation of duties: the person who initiated a record may not approve it; each role
  of a round is decided by a different person (``ONE_DECISION_PER_PERSON``).
- ISO 13485 4.2.4: documents are approved before issue and the current version is identified: a
  document version comes into force only when its change takes effect.

Everything else below is a company default (a plan or setting may change it), not a regulatory rule.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from domain.changes.payloads import (
    ApprovalSlot,
    ChangeKind,
    ChangePlan,
    OverdueRung,
    Requirement,
    RiskRating,
)
from domain.policy import escalation

REQ, OPT, COM = Requirement.required, Requirement.optional, Requirement.comment_only

# Who approves which kind of change, and how (company default). Every kind has a required role.
APPROVAL_MATRIX: Final[dict[ChangeKind, dict[str, Requirement]]] = {
    ChangeKind.design: {"qa_manager": REQ, "regulatory": REQ, "production": OPT, "releaser": COM},
    ChangeKind.process: {"qa_manager": REQ, "production": REQ, "regulatory": OPT, "releaser": COM},
    ChangeKind.supplier: {"qa_manager": REQ, "production": OPT, "regulatory": COM},
    ChangeKind.labelling: {"qa_manager": REQ, "regulatory": REQ, "production": COM},
    ChangeKind.document: {"qa_manager": REQ, "regulatory": COM},
}

# A higher risk rating raises (never lowers) a role's part: a high-risk change needs regulatory affairs.
RISK_RAISES: Final[dict[RiskRating, dict[str, Requirement]]] = {
    RiskRating.high: {"regulatory": REQ},
}

ASSESSOR_ROLES: Final = ["qa", "qa_manager"]  # besides the initiator, who may complete the impact
VERIFIER_ROLES: Final = ["qa"]  # verification sign-off; never the initiator
WITHDRAW_ROLES: Final = ["qa_manager"]  # besides the initiator
TASK_MANAGER_ROLES: Final = ["qa_manager"]  # may report a task done on its owner's behalf
ONE_DECISION_PER_PERSON: Final = True  # one person cannot approve for two roles of one round

# Dues and ladders come from the one escalation table (domain.policy.escalation).
IMPACT_DUE: Final = escalation.due("change", "impact")
APPROVAL_DUE: Final = escalation.due("change", "approval")
VERIFICATION_DUE: Final = escalation.due("change", "verification")
REWORK_DUE: Final = timedelta(days=10)  # a rework task's own due date (its overdue ladder is below)

IMPACT_LADDER: Final = escalation.rungs("change", "impact")
APPROVAL_LADDER: Final = escalation.rungs("change", "approval")
VERIFICATION_LADDER: Final = escalation.rungs("change", "verification")
# Overdue implementation tasks, counted from each task's due time; one timer for the whole step.
OVERDUE_LADDER: Final = [
    OverdueRung(after=after, action=action, to_roles=roles)
    for after, action, roles in escalation.after_due("change", "task_overdue")
]

# Effective dates and due dates are calendar dates at the manufacturing site.
SITE_TIME_ZONE: Final = ZoneInfo("Asia/Shanghai")


def approvals_for(kind: ChangeKind, risk: RiskRating | None = None) -> list[ApprovalSlot]:
    """The roles that take part in approving a change of this kind and risk, required ones first."""
    matrix = dict(APPROVAL_MATRIX[ChangeKind(kind)])
    rank = {REQ: 0, OPT: 1, COM: 2}
    raises = RISK_RAISES.get(RiskRating(risk), {}) if risk is not None else {}
    for role, req in raises.items():
        if role not in matrix or rank[req] < rank[matrix[role]]:
            matrix[role] = req
    return [
        ApprovalSlot(role=role, requirement=req)
        for role, req in sorted(matrix.items(), key=lambda kv: (rank[kv[1]], kv[0]))
    ]


def plan_for(kind: ChangeKind, risk: RiskRating | None = None) -> ChangePlan:
    """The whole policy for one change."""
    return ChangePlan(
        approvals=approvals_for(kind, risk),
        assessor_roles=list(ASSESSOR_ROLES),
        verifier_roles=list(VERIFIER_ROLES),
        withdraw_roles=list(WITHDRAW_ROLES),
        task_manager_roles=list(TASK_MANAGER_ROLES),
        one_decision_per_person=ONE_DECISION_PER_PERSON,
        impact_due=IMPACT_DUE,
        approval_due=APPROVAL_DUE,
        verification_due=VERIFICATION_DUE,
        rework_due=REWORK_DUE,
        impact_ladder=list(IMPACT_LADDER),
        approval_ladder=list(APPROVAL_LADDER),
        verification_ladder=list(VERIFICATION_LADDER),
        overdue_ladder=list(OVERDUE_LADDER),
    )


def start_of_site_day(day: date) -> datetime:
    """00:00 at the site on ``day``, as an aware UTC datetime (when an effective date begins)."""
    return datetime(day.year, day.month, day.day, tzinfo=SITE_TIME_ZONE).astimezone(UTC)


def end_of_site_day(day: date) -> datetime:
    """24:00 at the site on ``day``, as UTC (a task due on a date is due by the end of it)."""
    return start_of_site_day(day + timedelta(days=1))


def site_date(at: datetime) -> date:
    """The site's calendar date at an aware instant."""
    return at.astimezone(SITE_TIME_ZONE).date()
