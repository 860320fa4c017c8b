"""TaskDigestWorkflow, one for the whole site (id ``task-digest``): reminders as ONE digest per person
per period, never one mail per task.

Lifecycle: read the period (``domain.policy.escalation``, through an activity, unless the start names
one) → sleep (a durable timer) until the next period boundary → one activity sends, to every person
with open tasks, one e-mail listing them, overdue first (idempotent per person and period, so a retry
or a replay never sends twice) → again; after ``rounds_per_run`` periods it continues as new, so its
history stays short however long it runs. The ladders of the four processes mark tasks reminded and
escalated; this digest is how people hear of it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.tasks.payloads import DigestPlan, DigestReport, DigestRound, DigestStart

from workflows import names
from workflows.common import SENDING, STORE

WORKFLOW_ID = "task-digest"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def next_boundary(now: datetime, every: timedelta, offset: timedelta) -> datetime:
    """The first period boundary strictly after ``now`` (boundaries: ``EPOCH + offset + k * every``)."""
    periods = (now - EPOCH - offset) // every
    return EPOCH + offset + (periods + 1) * every


@workflow.defn
class TaskDigestWorkflow:
    """Reminder digests at every period boundary, forever (see module docstring)."""

    @workflow.init
    def __init__(self, start: DigestStart) -> None:
        self._last: DigestReport | None = None
        self._next_at: datetime | None = None

    @workflow.query
    def status(self) -> dict:
        """When the next digests go out, and what the last round did."""
        return {
            "next_at": self._next_at.isoformat() if self._next_at else None,
            "last": self._last.model_dump(mode="json") if self._last else None,
        }

    @workflow.run
    async def run(self, start: DigestStart) -> None:
        if start.every_seconds:
            plan = DigestPlan(every_seconds=start.every_seconds, offset_seconds=start.offset_seconds)
        else:
            plan = await workflow.execute_activity(names.DIGEST_PLAN, result_type=DigestPlan, **STORE)
        every = timedelta(seconds=plan.every_seconds)
        offset = timedelta(seconds=plan.offset_seconds)
        for _ in range(max(1, start.rounds_per_run)):
            now = workflow.now()
            self._next_at = next_boundary(now, every, offset)
            await workflow.sleep(self._next_at - now)
            self._last = await workflow.execute_activity(
                names.SEND_DIGESTS,
                DigestRound(period_start=self._next_at),
                result_type=DigestReport,
                **SENDING,
            )
        workflow.continue_as_new(start)
