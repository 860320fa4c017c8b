"""The one escalation table: every process's ladders come from it (and nowhere else), fractions resolve
against the stage's deadline, a malformed ladder is refused, and the digest period is 08:00 site time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.capa import policy as capa_policy
from domain.changes import policy as change_policy
from domain.changes.payloads import ChangeKind
from domain.policy import escalation
from domain.policy import recall as recall_policy
from domain.policy.escalation import Ladder, Step
from domain.quality import policy as release_policy
from workflows.task_digest import next_boundary

WORKFLOWS = Path(__file__).parents[2] / "workflows"


def test_every_process_has_its_ladders_in_the_table():
    assert (
        {p for p, _ in escalation.LADDERS}
        == set(escalation.PROCESSES)
        == {
            "recall",
            "capa",
            "change",
            "release",
        }
    )


def test_the_process_policies_read_their_ladders_from_the_table():
    pairs = [
        (capa_policy.INVESTIGATION_LADDER, ("capa", "investigation")),
        (capa_policy.APPROVAL_LADDER, ("capa", "plan_approval")),
        (capa_policy.ACTION_OVERDUE_LADDER, ("capa", "action_overdue")),
        (capa_policy.VERIFICATION_LADDER, ("capa", "verification")),
        (capa_policy.CLOSURE_LADDER, ("capa", "closure")),
        (change_policy.IMPACT_LADDER, ("change", "impact")),
        (change_policy.APPROVAL_LADDER, ("change", "approval")),
        (change_policy.VERIFICATION_LADDER, ("change", "verification")),
        (list(release_policy.RELEASE_LADDER), ("release", "release")),
        (list(release_policy.CONCESSION_LADDER), ("release", "concession")),
    ]
    for ladder, key in pairs:
        assert ladder == escalation.rungs(*key), key
    plan = change_policy.plan_for(ChangeKind.design)
    assert plan.approval_ladder == escalation.rungs("change", "approval")
    assert plan.approval_due == escalation.due("change", "approval")
    assert [(r.after, r.action, r.to_roles) for r in plan.overdue_ladder] == escalation.after_due(
        "change", "task_overdue"
    )
    assert release_policy.release_plan().ladder == escalation.rungs("release", "release")
    for severity in (1, 2, 3):
        lad = escalation.ladder("recall", f"approval.severity{severity}")
        assert [after for after, _ in recall_policy.APPROVAL_LADDER[severity]] == lad.offsets()


def test_fractions_resolve_against_the_deadline_and_the_last_step_repeats():
    # Change approval, due in 5 days: remind on day 2, escalate to QA management at the deadline (1.0),
    # to admin at twice the deadline; the workflow walks the waits between the steps.
    rungs = escalation.rungs("change", "approval")
    assert [r.wait for r in rungs] == [timedelta(days=2), timedelta(days=3), timedelta(days=5)]
    assert [r.to_roles for r in rungs] == [[], ["qa_manager"], ["admin"]]
    assert escalation.due("release", "release") == timedelta(days=2)
    assert [r.wait for r in escalation.rungs("release", "release")] == [timedelta(days=1)] * 2


def test_a_malformed_ladder_is_refused():
    day = timedelta(days=1)
    bad = {
        "a fraction needs a deadline": Ladder(steps=(Step(0.5, "remind"),)),
        "escalation names whom": Ladder(due=day, steps=(Step(1.0, "escalate"),)),
        "one after another": Ladder(due=day, steps=(Step(1.0, "remind"), Step(0.5, "remind"))),
        "needs steps": Ladder(steps=()),
    }
    for why, lad in bad.items():
        with pytest.raises(ValueError, match=why):
            escalation._check(("capa", "x"), lad)
    with pytest.raises(KeyError, match="stages of capa"):
        escalation.ladder("capa", "nonsense")


def test_no_workflow_carries_a_ladder_of_its_own():
    for path in WORKFLOWS.glob("*.py"):
        source = path.read_text()
        assert not re.search(r"Rung\(\s*wait", source), f"{path.name} builds a ladder: put it in the table"


def test_the_digest_goes_out_at_eight_in_the_morning_site_time():
    sched = escalation.digest_schedule()
    assert sched.every == timedelta(days=1) and sched.offset == timedelta(0)  # 08:00 +08:00 = 00:00 UTC
    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert next_boundary(now, sched.every, sched.offset) == datetime(2026, 3, 3, tzinfo=UTC)
    assert next_boundary(datetime(2026, 3, 3, tzinfo=UTC), sched.every, sched.offset) == datetime(
        2026, 3, 4, tzinfo=UTC
    )
    hourly = next_boundary(now, timedelta(hours=1), timedelta(minutes=15))
    assert hourly == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
