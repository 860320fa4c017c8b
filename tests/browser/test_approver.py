"""An approver signs off a recall in Chromium, on the real stack (API under uvicorn, worker, SMTP, the
time-skipping Temporal server): sign-in, the inbox, the task page with the recall, the sign-off dialog,
a wrong password refused in the page, the signature, and the recall moving on. A second approver who
had the same task open is refused with the workflow's reason (409) on the page."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from sqlalchemy import func, select

from domain.models import DevSmsMessage
from domain.recalls.models import Recall
from domain.recalls.payloads import RecallStatus
from domain.tasks.models import Signature, Task
from domain.tasks.payloads import TaskStatus
from tests.workflows.conftest import PASSWORD, build_world, wait_for
from tests.workflows.test_recall_workflow import approval_task, post_recall

pytestmark = pytest.mark.temporal


async def sign_in(page, base_url: str, username: str) -> None:
    """Open the inbox, get sent to the sign-in form, sign in and land in the inbox."""
    await page.goto(base_url + "/inbox")
    await expect(page).to_have_url(base_url + "/login?next=/inbox")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(base_url + "/inbox")


async def test_an_approver_signs_off_a_recall_in_the_browser(browser, recall_stack, shots):
    stack = recall_stack
    base = stack.base_url
    await build_world(stack.sessions)
    created = await post_recall(stack, level=2)
    task = await approval_task(stack, created["id"])
    title = f"Approve recall {created['reference']}"

    desk = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    other = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = await desk.new_page()
        await page.goto(base + "/inbox")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await shots.take(page, "01-sign-in")
        await sign_in(page, base, "mgr1")

        # The inbox: the approval task, due, for the QA manager role.
        entry = page.get_by_role("link", name=title)
        await expect(entry).to_be_visible()
        await expect(entry).to_contain_text("QA manager")
        await shots.take(page, "02-inbox")

        # The task page: the recall it belongs to, and its history (no signature yet).
        await entry.click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(title)
        record = page.get_by_role("region", name=f"Record: Recall {created['reference']}")
        await expect(record).to_contain_text("Seal may leak")
        await expect(record).to_contain_text("Leak can delay infusion therapy")
        await expect(record).to_contain_text("PUMP/P-100")
        await expect(page.get_by_text("No signatures yet.")).to_be_visible()

        # A second QA manager opens the same task at the same time.
        rival = await other.new_page()
        await sign_in(rival, base, "qamgr")
        await rival.goto(f"{base}/tasks/{task.id}")
        await rival.get_by_role("link", name="Approve…").click()
        await rival.get_by_role("dialog").get_by_label("Password").fill(PASSWORD)

        # The dialog says what the signature means; a wrong password is refused in the page.
        await page.get_by_role("link", name="Approve…").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("Meaning of this signature: approved")
        await expect(dialog).to_contain_text("21 CFR Part 11")
        await expect(dialog.get_by_label("Password")).to_be_focused()
        await shots.take(page, "03-task-and-sign-dialog", full_page=False)
        await dialog.get_by_label("Password").fill("not my password")
        await dialog.get_by_role("button", name="Sign: approve").click()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("The signature was refused")
        await expect(alert).to_contain_text("the password is wrong")
        await expect(alert).to_be_focused()
        await shots.take(page, "04-wrong-password")
        async with stack.sessions() as s:
            assert (await s.get(Task, task.id)).status == TaskStatus.open
            assert await s.scalar(select(func.count()).select_from(Signature)) == 0

        # The right password signs: back on the task page, with the signature in its history.
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign: approve").click()
        await expect(page).to_have_url(f"{base}/tasks/{task.id}")
        await expect(page.get_by_role("status")).to_have_text("Signed: approved.")
        signatures = page.get_by_role("table", name="Signatures")
        await expect(signatures).to_contain_text("MGR1 (mgr1)")
        await expect(signatures).to_contain_text("approved")
        await expect(page.get_by_role("link", name="Approve…")).to_have_count(0)
        await shots.take(page, "05-signed")

        # The same page in Chinese, by the language switch (remembered for the next pages).
        await page.get_by_role("link", name="中文").click()
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.get_by_role("table", name="电子签名")).to_contain_text("批准")
        await shots.take(page, "05-signed-zh-CN")
        await page.get_by_role("link", name="待办", exact=True).first.click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("我的待办")
        await expect(page.get_by_role("link", name=title)).to_have_count(0)  # signed: off the inbox

        # The rival's signature comes too late: the workflow refuses it (409), shown on the page.
        await rival.get_by_role("dialog").get_by_role("button", name="Sign: approve").click()
        refused = rival.get_by_role("alert")
        await expect(refused).to_contain_text("The signature was refused")
        await expect(refused).to_contain_text(f"task {task.id} is already decided")
        await shots.take(rival, "06-refused-already-decided")
    finally:
        await desk.close()
        await other.close()

    # The store holds one signature, the approver's, and the recall moved on: notices went out.
    async with stack.sessions() as s:
        sigs = list(await s.scalars(select(Signature)))
        assert [(x.signer, x.meaning.value, x.task_id) for x in sigs] == [("mgr1", "approved", task.id)]
        assert sigs[0].auth_method == "password re-entered at signing"

    async def notified(s):
        recall = await s.get(Recall, created["id"])
        texts = await s.scalar(
            select(func.count()).select_from(DevSmsMessage).where(DevSmsMessage.direction == "outbound-api")
        )
        return recall.status in (RecallStatus.notifying, RecallStatus.in_progress) and texts == 3

    await wait_for(notified, stack)
