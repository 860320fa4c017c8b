"""THE one place a CAPA's timers and escalation ladders come from, as data.

ISO 13485:2016 8.5.2 (corrective action) and 8.5.3 (preventive action) require: reviewing the
nonconformity, determining its causes, evaluating and planning the action needed, implementing it,
verifying that it does not adversely affect meeting requirements, **reviewing its effectiveness**, and
records of each step. The standard sets no number of days: every number below is a company default
(``is_rule=False`` in the sense of ``domain.policy.recall``), changed here (the effectiveness period) or
in the escalation table (dues and ladders) and nowhere else. A CAPA may
carry its own effectiveness period (``Capa.effectiveness_period_days``), which wins over the default.

Ladders and dues come from the one escalation table, ``domain.policy.escalation``; here they are lists
of :class:`~domain.tasks.payloads.Rung`: after ``wait`` without the stage being done,
``action`` (remind the task's people, or escalate to ``to_roles``); the last rung repeats.

The overdue ladder for actions is counted from the end of each action's due date (UTC): its first rung
fires when the date has passed, each later one ``wait`` after the previous. One workflow timer serves a
whole step: at the step, an activity nudges every action whose next rung has come, in one batch.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from domain.policy import escalation
from domain.tasks.payloads import Rung

# Effectiveness review after implementation (ISO 13485 8.5.2 f): company default 90 days.
EFFECTIVENESS_PERIOD = timedelta(days=90)
EFFECTIVENESS_PERIOD_DAYS_MIN = 1
EFFECTIVENESS_PERIOD_DAYS_MAX = 730

# Who signs what (separation of duties: never the CAPA's initiator; DOMAIN.md, Part 11 authority checks).
APPROVER_ROLES = ["qa_manager"]
CLOSER_ROLES = ["qa_manager"]
INVESTIGATOR_ROLES = ["qa"]  # the task is assigned to the CAPA's owner; QA sees it too
VERIFIER_ROLES = ["qa", "qa_manager"]
ACTION_ROLES = ["qa"]  # each action's task is assigned to its owner

# Dues and ladders: the escalation table (domain.policy.escalation), the one place for every process.
INVESTIGATION_DUE = escalation.due("capa", "investigation")
INVESTIGATION_LADDER = escalation.rungs("capa", "investigation")

# The QA manager's approval of the action plan.
APPROVAL_DUE = escalation.due("capa", "plan_approval")
APPROVAL_LADDER = escalation.rungs("capa", "plan_approval")

# Corrective and preventive actions past their due date (the day after: remind the owner; then escalate).
ACTION_OVERDUE_LADDER = escalation.rungs("capa", "action_overdue")

# Verification of effectiveness once the period has passed.
VERIFICATION_DUE = escalation.due("capa", "verification")
VERIFICATION_LADDER = escalation.rungs("capa", "verification")

# Closure sign-off.
CLOSURE_DUE = escalation.due("capa", "closure")
CLOSURE_LADDER = escalation.rungs("capa", "closure")


def effectiveness_period(days: int | None) -> timedelta:
    """The CAPA's own period when it has one, else the policy's default."""
    return timedelta(days=days) if days else EFFECTIVENESS_PERIOD


def due_end(due_on: date) -> datetime:
    """The instant an action due on ``due_on`` becomes overdue: the end of that day, UTC."""
    return datetime.combine(due_on + timedelta(days=1), time.min, tzinfo=UTC)


def nudge_at(due_on: date, step: int, ladder: list[Rung] | None = None) -> datetime:
    """When rung number ``step`` (0-based; past the end, the last rung repeats) falls due for an action."""
    ladder = ladder or ACTION_OVERDUE_LADDER
    offset = sum((r.wait for r in ladder[: step + 1]), timedelta())
    if step >= len(ladder):
        offset += ladder[-1].wait * (step - len(ladder) + 1)
    return due_end(due_on) + offset


def overdue_step(
    due_on: date, applied: int, as_of: datetime, ladder: list[Rung] | None = None
) -> tuple[int, Rung] | None:
    """The highest rung come by ``as_of`` that was not applied yet (rungs missed while nobody looked are
    skipped, not sent one after another), as (its index, the rung); None when none is due."""
    ladder = ladder or ACTION_OVERDUE_LADDER
    if nudge_at(due_on, applied, ladder) > as_of:
        return None
    step = applied
    # Bounded: the last rung's wait is positive (checked below), so this ends.
    while nudge_at(due_on, step + 1, ladder) <= as_of:
        step += 1
    return step, ladder[min(step, len(ladder) - 1)]


def _check(ladder: list[Rung], name: str) -> None:
    if not ladder or ladder[-1].wait <= timedelta(0):
        raise ValueError(f"{name}: a ladder needs rungs, and its last rung (which repeats) a positive wait")


for _name, _ladder in (
    ("INVESTIGATION_LADDER", INVESTIGATION_LADDER),
    ("APPROVAL_LADDER", APPROVAL_LADDER),
    ("ACTION_OVERDUE_LADDER", ACTION_OVERDUE_LADDER),
    ("VERIFICATION_LADDER", VERIFICATION_LADDER),
    ("CLOSURE_LADDER", CLOSURE_LADDER),
):
    _check(_ladder, _name)
