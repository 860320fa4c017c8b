"""A process recorded while Temporal cannot take its start still gets its workflow: the record and its
start are committed together, and the worker's starter starts what is pending, exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from domain.enums import Role
from domain.process_starts import WorkflowStart
from domain.recalls.models import Recall
from domain.tasks.models import Task
from lotline.starter import run_starter, start_pending
from tests.workflows.conftest import ON_BOTH_DATABASES, build_world, free_port
from tests.workflows.test_recall_workflow import approval_task, post_recall, token

pytestmark = pytest.mark.temporal

RECALL = {
    "suspects": [{"product_code": "RESIN", "lot_number": "R-001"}],
    "reason": "Seal may leak",
    "hazard": "Leak can delay infusion therapy",
    "nmpa_level": 2,
}


@ON_BOTH_DATABASES
async def test_a_recall_recorded_while_temporal_refuses_is_started_once_by_the_starter(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions)
    queue = stack.settings.temporal_task_queue

    # The usual path: the API starts the workflow at once and marks its start done.
    first = await post_recall(stack)
    async with stack.sessions() as s:
        row = await s.scalar(select(WorkflowStart).where(WorkflowStart.workflow_id == first["workflow_id"]))
        assert row.workflow_type == "RecallWorkflow" and row.started_at is not None and row.attempts == 0

    # An API whose Temporal connection refuses (nothing listens there): the request still succeeds.
    dead = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True, data_converter=pydantic_data_converter)
    app = create_app(stack.settings)
    async with app.router.lifespan_context(app):
        app.state.temporal = dead
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            r = await http.post("/api/recalls", json=RECALL, headers=token(stack, "qa1", Role.qa))
    assert r.status_code == 201, r.text
    created = r.json()
    async with stack.sessions() as s:
        assert await s.get(Recall, created["id"]) is not None
        row = await s.scalar(select(WorkflowStart).where(WorkflowStart.workflow_id == created["workflow_id"]))
        assert row.started_at is None and row.attempts == 1 and row.last_error
    # No workflow yet, so no approval task.
    with pytest.raises(RPCError) as missing:
        await stack.client.get_workflow_handle(created["workflow_id"]).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    async with stack.sessions() as s:
        assert not await s.scalar(
            select(func.count()).select_from(Task).where(Task.record_id == created["id"])
        )

    # Younger than the grace period: left to the request that recorded it.
    assert await start_pending(stack.sessions, stack.client, task_queue=queue) == 0

    # The worker's starter picks it up.
    stop = asyncio.Event()
    starter = asyncio.create_task(
        run_starter(
            stack.sessions, stack.client, task_queue=queue, stop=stop, interval=0.2, older_than=timedelta(0)
        )
    )
    try:
        task = await approval_task(stack, created["id"])
    finally:
        stop.set()
        await starter
    assert task.kind == "approve_recall"
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    run_id = (await handle.describe()).run_id

    # A start recorded as pending again (the API died after starting, before marking) is no second run.
    async with stack.sessions() as s, s.begin():
        await s.execute(
            update(WorkflowStart)
            .where(WorkflowStart.workflow_id == created["workflow_id"])
            .values(started_at=None)
        )
    assert await start_pending(stack.sessions, stack.client, task_queue=queue, older_than=timedelta(0)) == 1
    assert (await handle.describe()).run_id == run_id
    assert await start_pending(stack.sessions, stack.client, task_queue=queue, older_than=timedelta(0)) == 0
    await asyncio.sleep(0.5)
    async with stack.sessions() as s:
        tasks = await s.scalar(select(func.count()).select_from(Task).where(Task.record_id == created["id"]))
    assert tasks == 1
