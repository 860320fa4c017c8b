"""QA follows a recall on its dashboard in Chromium, on the real stack (API under uvicorn, worker, SMTP,
the time-skipping Temporal server): the recall in the list, its dashboard before any consignee answered,
then a consignee acknowledges through the link of its notice and the dashboard shows it (the count, the
funnel, the curve, the list of who acknowledged); the consignee timeline downloads as CSV."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest
from playwright.async_api import expect
from sqlalchemy import select

from domain.models import Consignee
from tests.browser.test_approver import sign_in
from tests.browser.test_consignee import _mail_to
from tests.workflows.conftest import build_world
from tests.workflows.test_recall_end_to_end import LINK, start_and_approve

pytestmark = pytest.mark.temporal


async def test_the_dashboard_shows_a_consignees_acknowledgement(browser, recall_stack, shots):
    stack = recall_stack
    base = stack.base_url
    world = await build_world(stack.sessions)
    created = await start_and_approve(stack)
    async with stack.sessions() as s:
        h1 = await s.scalar(select(Consignee).where(Consignee.code == "H1"))

    desk = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", accept_downloads=True
    )
    try:
        page = await desk.new_page()
        await sign_in(page, base, "qa1")
        await page.get_by_role("link", name="Recalls", exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Recalls")
        entry = page.get_by_role("row").filter(has=page.get_by_role("link", name=created["reference"]))
        await expect(entry).to_contain_text("0 / 3")
        await expect(entry).to_contain_text("Notify consignees")
        await shots.take(page, "01-recalls")

        await page.get_by_role("link", name=created["reference"]).click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(f"Recall {created['reference']}")
        acknowledged = page.locator("#kpi-acknowledged")
        funnel_ack = page.locator('#funnel [data-stage="acknowledged"]')
        await expect(acknowledged).to_have_text("0 / 3")
        await expect(funnel_ack).to_contain_text("0 (0%)")
        await expect(page.locator('#funnel [data-stage="sent"]')).to_contain_text("3 (100%)")
        await expect(page.locator("#curve-summary")).to_contain_text(
            "0 of 3 consignees acknowledged; 3 sent."
        )
        await expect(page.get_by_role("img", name="Acknowledgements over time")).to_be_visible()
        await shots.take(page, "02-dashboard-before")

        # H1 acknowledges through the link of its notice e-mail (its own page is tested in test_consignee).
        link = LINK.search((m := await _mail_to(stack, h1.email)).text or m.html or "").group(0)
        async with httpx.AsyncClient() as http:
            form = await http.get(link)
            lots = re.findall(r'name="on_hand_(\d+)"', form.text)
            r = await http.post(
                link,
                data={
                    "received_and_understood": "on",
                    "name": "Dr Wang",
                    **{f"returned_{lot}": "10" if int(lot) == world.finished[0] else "4" for lot in lots},
                },
            )
            assert r.status_code in (200, 201) and "已收到您的回执" in r.text, r.text

        await page.reload()
        await expect(acknowledged).to_have_text("1 / 3")
        await expect(funnel_ack).to_contain_text("1 (33%)")
        await expect(page.locator("#curve-summary")).to_contain_text("1 of 3 consignees acknowledged")
        await page.get_by_role("link", name=re.compile(r"^Acknowledged \(1\)")).click()
        consignees = page.get_by_role("table", name="Consignees")
        await expect(consignees).to_contain_text("H1")
        await expect(consignees).to_contain_text("acknowledged")
        await expect(consignees).not_to_contain_text("H2")
        reconciliation = page.get_by_role("table", name="Reconciliation")
        await expect(reconciliation).to_contain_text("PUMP/P-100")
        await shots.take(page, "03-dashboard-acknowledged")

        async with page.expect_download() as info:
            await page.get_by_role("link", name="Download every consignee's timeline (CSV)").click()
        download = await info.value
        rows = list(csv.DictReader(io.StringIO((await download.path()).read_text("utf-8-sig"))))
        assert {r["consignee_code"] for r in rows} == {"H1", "H2", "H3"}
        assert any(r["consignee_code"] == "H1" and r["state"] == "acknowledged" for r in rows)

        await page.get_by_role("link", name="中文").click()
        await expect(page.locator("#curve-summary")).to_contain_text("3 个收货方中 1 个已确认")
        await shots.take(page, "04-dashboard-zh-CN")
    finally:
        await desk.close()
