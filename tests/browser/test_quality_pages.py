"""The CAPA, change-control and lot-release pages in Chromium on the real stack: a CAPA's record page with
its plan and timeline, a change's page, and a releaser's task page whose release dialog asks for the
disposition split of the quantity on hand (signing it is tested over HTTP on the same stack in
``tests/api/test_pages_quality.py``)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from domain.changes import service as changes
from domain.enums import Role
from domain.models import Product
from domain.users import create_user
from tests.api.test_pages import CHEAP
from tests.api.test_pages_quality import _capa, _inspection, _release_task
from tests.browser.test_approver import sign_in
from tests.workflows.conftest import PASSWORD

pytestmark = pytest.mark.temporal


async def test_capa_change_and_release_pages(browser, recall_stack, shots):
    stack = recall_stack
    base = stack.base_url
    async with stack.sessions() as s, s.begin():
        for name, roles in (("qa1", [Role.qa]), ("rel1", [Role.releaser]), ("prod1", [Role.production])):
            await create_user(
                s,
                username=name,
                full_name=name.upper(),
                roles=roles,
                password=PASSWORD,
                password_hasher=CHEAP,
            )
    await _capa(stack.sessions)
    inspection_id, _lot = await _inspection(stack.sessions, failing=True)
    task_id = await _release_task(stack.sessions, inspection_id)
    async with stack.sessions() as s, s.begin():
        pump = (await s.execute(Product.__table__.select().where(Product.code == "PUMP"))).first()
        change = await changes.create_change(
            s,
            kind="supplier",
            title="Second source for the seal",
            description="Qualify supplier B",
            product_ids=[pump.id],
            initiated_by="qa1",
            blocks_release=True,
        )
        change_id = change.id

    desk = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = await desk.new_page()
        await sign_in(page, base, "qa1")
        await page.get_by_role("link", name="CAPA", exact=True).click()
        await page.get_by_role("link", name="CAPA-").first.click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Seal leaks on PUMP")
        await expect(page.get_by_role("table", name="Action plan")).to_contain_text("Requalify the seal")
        timeline = page.locator("ol.timeline")
        await expect(timeline).to_contain_text("Investigation recorded")
        await expect(page.get_by_role("table", name="Audit trail")).to_contain_text("root_causes")
        await shots.take(page, "01-capa")

        await page.goto(f"{base}/changes/{change_id}")
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Second source for the seal")
        await expect(page.get_by_role("heading", level=1)).to_contain_text("impact assessment")
        await shots.take(page, "02-change")

        await page.goto(f"{base}/releases/{inspection_id}")
        await expect(page.get_by_role("table", name="Evaluation")).to_contain_text("11.2")
        await shots.take(page, "03-release")
    finally:
        await desk.close()

    releaser = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = await releaser.new_page()
        await sign_in(page, base, "rel1")
        await page.goto(f"{base}/tasks/{task_id}")
        await page.get_by_role("link", name="Release…").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("Disposition of the 50 units on hand")
        await expect(dialog.get_by_label("Unrestricted (released for use)")).to_have_value("50")
        await expect(dialog.get_by_label("Samples")).to_have_value("0")
        # The evaluation failed: releasing is a concession, and the justification is required.
        await expect(dialog.get_by_label("Justification")).to_have_attribute("required", "")
        await shots.take(page, "04-release-sign-dialog", full_page=False)
    finally:
        await releaser.close()
