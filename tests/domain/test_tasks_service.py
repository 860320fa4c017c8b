"""Task service: titles always fit their column (PostgreSQL refuses what SQLite silently keeps)."""

from __future__ import annotations

from domain.tasks.models import Task
from domain.tasks.payloads import TaskSpec
from domain.tasks.service import open_task


async def test_a_long_title_is_shortened_to_fit_on_both_databases(store):
    async with store.sessions() as s, s.begin():
        ref = await open_task(
            s,
            spec=TaskSpec(
                process="recall",
                kind="file:cn.plan",
                title="RC-2026-0001: " + "调查评估报告和召回计划 " * 40,
                record_type="recall",
                record_id=1,
                candidate_roles=["regulatory"],
                business_key="k1",
            ),
        )
        task = await s.get(Task, ref.task_id)
        assert len(task.title) == 255 and task.title.endswith("…")
