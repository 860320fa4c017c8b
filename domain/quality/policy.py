"""THE one place for QC release's numbers: who signs, the release SLA ladder, the concession ladder.

ISO 13485 8.2.6 requires that release is authorised by a named person after the planned steps, and
NMPA that an authorised releaser signs it; neither names a time. The durations below are company
defaults (change them here, not in the workflow); the workflow reads them through an activity, so a
release already running keeps the ladder it started with.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from domain.policy import escalation
from domain.quality.payloads import ReleasePlan

# NMPA: market release is signed by an authorised releaser (DOMAIN.md); never by the person who
# started the inspection or recorded its results (separation of duties).
RELEASER_ROLES: Final = ("releaser",)
# ISO 13485 8.3: a concession (releasing product that failed its specification) is justified and
# approved; the approval is a second signature by QA management.
CONCESSION_APPROVER_ROLES: Final = ("qa_manager",)

# Release SLA: a reminder to the releasers after a day, then escalation to QA management; the last
# rung repeats until someone signs. The concession approval waits on QA management itself: reminders
# only. Both come from the one escalation table (domain.policy.escalation).
RELEASE_LADDER: Final = tuple(escalation.rungs("release", "release"))
RELEASE_DUE: Final = escalation.due("release", "release")
CONCESSION_LADDER: Final = tuple(escalation.rungs("release", "concession"))
CONCESSION_DUE: Final = escalation.due("release", "concession")

# While results are outstanding, the workflow re-reads the store this often even without a signal,
# so a lost "results recorded" signal delays the evaluation, never loses it.
RESULTS_RECHECK: Final = timedelta(hours=12)

# A concession's justification must say something (ISO 13485 8.3: concessions are justified).
MIN_JUSTIFICATION_CHARS: Final = 10


def release_plan() -> ReleasePlan:
    """The plan a release workflow runs by."""
    return ReleasePlan(
        releaser_roles=list(RELEASER_ROLES),
        concession_roles=list(CONCESSION_APPROVER_ROLES),
        ladder=[r.model_copy() for r in RELEASE_LADDER],
        due_in_seconds=RELEASE_DUE.total_seconds(),
        concession_ladder=[r.model_copy() for r in CONCESSION_LADDER],
        concession_due_in_seconds=CONCESSION_DUE.total_seconds(),
        results_recheck_seconds=RESULTS_RECHECK.total_seconds(),
        min_justification=MIN_JUSTIFICATION_CHARS,
    )
