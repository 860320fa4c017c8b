"""An approver claims and releases a task, and sets and cancels a period out of office, in Chromium on
the real stack (API under uvicorn): the forms post through the task API's own handlers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from domain.tasks.payloads import SIGN_OFF, TaskSpec
from domain.tasks.service import open_task
from tests.browser.test_approver import sign_in
from tests.workflows.conftest import build_world

pytestmark = pytest.mark.temporal


async def test_claim_release_and_out_of_office_in_the_browser(browser, recall_stack, shots):
    stack = recall_stack
    base = stack.base_url
    await build_world(stack.sessions)
    async with stack.sessions() as s, s.begin():
        ref = await open_task(
            s,
            spec=TaskSpec(
                process="capa",
                kind="approve_capa_plan",
                title="Approve CAPA plan CAPA-9",
                record_type="capa",
                record_id=9,
                candidate_roles=["qa_manager"],
                excluded_users=["qa1"],
                workflow_id="capa-9",
                business_key="capa-9-plan",
                details={SIGN_OFF: True},
            ),
        )
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = await context.new_page()
        await sign_in(page, base, "mgr1")
        await page.goto(f"{base}/tasks/{ref.task_id}")
        await page.get_by_role("button", name="Claim").click()
        await expect(page.get_by_role("status")).to_have_text("You claimed this task.")
        await expect(page.get_by_text("Claimed by mgr1.")).to_be_visible()
        await expect(page.get_by_role("button", name="Claim")).to_have_count(0)
        await page.get_by_text("Delegate…").click()
        await expect(page.get_by_label("Delegate to")).to_contain_text("QAMGR (qamgr)")
        await shots.take(page, "task-claimed")
        await page.get_by_role("button", name="Release").click()
        await expect(page.get_by_role("status")).to_have_text("You released this task.")

        await page.get_by_role("link", name="Out of office").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Out of office")
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=1)
        await page.get_by_label("Deputy").select_option("qamgr")
        await page.get_by_label("From (UTC)").fill(start.strftime("%Y-%m-%dT%H:%M"))
        await page.get_by_label("To (UTC)").fill((start + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))
        await page.get_by_label("Reason").fill("conference")
        await page.get_by_role("button", name="Set out of office").click()
        await expect(page.get_by_role("status")).to_have_text("Out of office set.")
        mine = page.get_by_role("table", name="My periods")
        await expect(mine).to_contain_text("qamgr")
        await shots.take(page, "out-of-office")
        await mine.get_by_role("button", name="Cancel this period").click()
        await expect(page.get_by_role("status")).to_have_text("Out of office cancelled.")
        await expect(page.get_by_text("You have no period out of office set.")).to_be_visible()
    finally:
        await context.close()
