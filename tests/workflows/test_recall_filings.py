"""Regulatory affairs reports a filing done: the task is completed under their signature with the
authority's receipt number, the recall's deadline shows it met, and bad input changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from domain.enums import Role
from domain.tasks.models import Signature, Task
from tests.workflows.conftest import PASSWORD, build_world, wait_for
from tests.workflows.test_recall_workflow import approval_task, post_recall, token

pytestmark = pytest.mark.temporal


async def test_a_filing_reported_done_meets_its_deadline_once_and_bad_reports_change_nothing(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions)
    reg = token(stack, "reg1", Role.regulatory)
    rid = (await post_recall(stack, us=True))["id"]
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        approval = await approval_task(stack, rid)
        r = await http.post(
            f"/api/tasks/{approval.id}/sign",
            json={"password": PASSWORD, "decision": "approved"},
            headers=token(stack, "mgr1", Role.qa_manager),
        )
        assert r.status_code == 200, r.text

        async def filing_task(s):
            return await s.scalar(
                select(Task).where(Task.record_id == rid, Task.kind == "file:us.806_report")
            )

        task = await wait_for(filing_task, stack)
        deadline = next(
            d
            for d in (await http.get(f"/api/recalls/{rid}", headers=reg)).json()["deadlines"]
            if d["key"] == "us.806_report"
        )
        assert deadline["met"] is None and deadline["done_at"] is None  # open and not yet due

        url = f"/api/tasks/{task.id}/complete"
        refusals = [
            ({"password": "wrong", "reference": "X"}, reg, 401, "password"),
            ({"password": PASSWORD}, reg, 422, "reference"),  # a filing needs its receipt number
            (
                {
                    "password": PASSWORD,
                    "reference": "X",
                    "done_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                },
                reg,
                422,
                "done_at",
            ),
            ({"password": PASSWORD, "reference": "X", "done_at": "2026-03-01T08:00:00"}, reg, 422, "done_at"),
            ({"password": PASSWORD, "reference": "X"}, token(stack, "qa1", Role.qa), 403, "role"),
        ]
        for body, headers, code, field in refusals:
            r = await http.post(url, json=body, headers=headers)
            assert r.status_code == code, (body, r.text)
            assert r.json()["detail"][0]["field"] == field, r.text
        # The approval task is the workflow's: it is signed, never "reported done".
        r = await http.post(f"/api/tasks/{approval.id}/complete", json={"password": PASSWORD}, headers=reg)
        assert r.status_code == 409 and "finished by its process" in r.text
        async with stack.sessions() as s:
            assert (await s.get(Task, task.id)).status.value == "open"
            assert not await s.scalar(select(Signature).where(Signature.task_id == task.id))

        filed_at = task.created_at + (datetime.now(UTC) - task.created_at) / 2  # between opening and now
        r = await http.post(
            url,
            json={
                "password": PASSWORD,
                "reference": "FDA RES 2026-0042",
                "note": "to the district office",
                "done_at": filed_at.isoformat(),
            },
            headers=reg,
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "completed"
        again = await http.post(url, json={"password": PASSWORD, "reference": "other"}, headers=reg)
        assert again.status_code == 409, again.text

        deadline = next(
            d
            for d in (await http.get(f"/api/recalls/{rid}", headers=reg)).json()["deadlines"]
            if d["key"] == "us.806_report"
        )
    assert deadline["met"] is True
    assert datetime.fromisoformat(deadline["done_at"]) == filed_at
    async with stack.sessions() as s:
        sigs = list(await s.scalars(select(Signature).where(Signature.task_id == task.id)))
        done = await s.get(Task, task.id)
    assert len(sigs) == 1 and sigs[0].signer == "reg1" and sigs[0].meaning.value == "authored"
    assert "FDA RES 2026-0042" in sigs[0].reason and len(sigs[0].record_hash) == 64
    assert done.completed_by == "reg1" and done.details["done"]["reference"] == "FDA RES 2026-0042"
