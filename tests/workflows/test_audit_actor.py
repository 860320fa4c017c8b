"""The worker's audit interceptor: an activity's changes are attributed to the person its payload
names (and carry the payload's reason), otherwise to ``system:<workflow id>``."""

from __future__ import annotations

import uuid
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import select
from temporalio import activity, workflow
from temporalio.worker import Worker

from activities.audit import AuditActorInterceptor
from domain.audit.models import AuditEntry
from domain.db import transaction
from domain.models import LotHold
from tests import factories as f


class PlaceHold(BaseModel):
    """A payload as the project's are: a pydantic model, here optionally naming a person and a reason."""

    lot_id: int
    reference: str
    username: str | None = None
    reason: str | None = None


@workflow.defn(sandboxed=False)
class PlaceHoldWorkflow:
    """Asks an activity, by name, to place a hold."""

    @workflow.run
    async def run(self, req: PlaceHold) -> None:
        await workflow.execute_activity("test.place_hold", req, start_to_close_timeout=timedelta(seconds=30))


class HoldActivities:
    """Writes a regulated record and knows nothing about auditing."""

    def __init__(self, sessions) -> None:
        self.sessions = sessions

    @activity.defn(name="test.place_hold")
    async def place_hold(self, req: PlaceHold) -> None:
        async with transaction(self.sessions) as s:
            s.add(LotHold(lot_id=req.lot_id, reason="manual", reference=req.reference))


async def test_activity_changes_name_the_payloads_person_or_the_workflow(sqlite_store, time_env):
    async with sqlite_store.sessions() as s, s.begin():
        lot = await f.lot(s, await f.product(s, "ACT"), "A-1")
    queue = f"audit-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_env.client,
        task_queue=queue,
        workflows=[PlaceHoldWorkflow],
        activities=[HoldActivities(sqlite_store.sessions).place_hold],
        interceptors=[AuditActorInterceptor()],
    ):
        for wf_id, req in (
            ("hold-signed", PlaceHold(lot_id=lot.id, reference="h1", username="mgr1", reason="approved")),
            ("hold-timer", PlaceHold(lot_id=lot.id, reference="h2")),
        ):
            await time_env.client.execute_workflow(PlaceHoldWorkflow.run, req, id=wf_id, task_queue=queue)
    async with sqlite_store.sessions() as s:
        holds = list(await s.scalars(select(AuditEntry).where(AuditEntry.record_type == "lot_hold")))
    assert [(e.changes["reference"][1], e.actor, e.reason) for e in holds] == [
        ("h1", "mgr1", "approved"),
        ("h2", "system:hold-timer", None),
    ]
