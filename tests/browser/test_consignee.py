"""A consignee acknowledges a recall on a phone, in Chromium with JavaScript OFF, through the signed link
of their notice e-mail: the notice in their language, only their own lots, large touch targets, the
form, a clear confirmation; the store records the acknowledgement once."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from playwright.async_api import expect
from sqlalchemy import func, select

from domain.models import Consignee
from domain.recalls.models import RecallConsignee, Response, ResponseQuantity
from domain.recalls.payloads import ConsigneeState
from notifications.devmail import list_messages
from tests.browser.conftest import PHONE
from tests.workflows.conftest import build_world
from tests.workflows.test_recall_end_to_end import LINK, start_and_approve

pytestmark = pytest.mark.temporal
MIN_TAP = 44  # CSS pixels: the smallest comfortable touch target (WCAG 2.5.5, Apple HIG)


async def test_a_consignee_acknowledges_on_a_phone_without_javascript(browser, recall_stack, shots):
    stack = recall_stack
    world = await build_world(stack.sessions)
    created = await start_and_approve(stack)
    async with stack.sessions() as s:
        hospitals = {c.code: c for c in await s.scalars(select(Consignee))}
    h1 = hospitals["H1"]  # zh-CN; received both finished lots
    mail = await _mail_to(stack, h1.email)
    link = LINK.search(mail.text or mail.html or "").group(0)

    phone = await browser.new_context(**PHONE, java_script_enabled=False, locale="zh-CN")
    try:
        page = await phone.new_page()
        opened = await page.goto(link)
        assert opened.status == 200

        # The notice, in the consignee's language, about this consignee only.
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.get_by_role("heading", level=1)).to_have_text("紧急：医疗器械召回通知")
        body = await page.locator("body").inner_text()
        assert created["reference"] in body and h1.name in body
        assert "Seal may leak" in body and "Leak can delay infusion therapy" in body
        assert "P-100" in body and "P-101" in body
        # The regulators informed, worded as in the e-mail.
        assert "本次召回已报告：所在地省级药品监督管理部门" in body
        assert "所在地省级药品监督管理部门" in (mail.text or "")
        for code in ("H2", "H3"):
            assert hospitals[code].name not in body and hospitals[code].email not in body
        await expect(page.locator("fieldset")).to_have_count(2)  # one per lot shipped to H1

        # The other language is one tap away, and leaves no cookie behind.
        await page.get_by_role("link", name="English").tap()
        await expect(page.get_by_role("heading", level=1)).to_have_text("URGENT: MEDICAL DEVICE RECALL")
        await expect(page.get_by_role("button", name="Submit acknowledgement")).to_be_visible()
        await page.get_by_role("link", name="中文").tap()
        await expect(page.get_by_role("heading", level=1)).to_have_text("紧急：医疗器械召回通知")

        # Made for a phone: nothing wider than the screen, every control easy to tap.
        width = PHONE["viewport"]["width"]
        for box in [await el.bounding_box() for el in await page.locator("main *").all()]:
            if box and box["width"]:
                assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, box
        for control in await page.locator("main input:not([type=hidden]), main button, main textarea").all():
            box = await control.bounding_box()
            if await control.get_attribute("type") == "checkbox":  # the whole label is the target
                box = await control.locator("xpath=ancestor::label[1]").bounding_box()
            assert box["height"] >= MIN_TAP, (await control.get_attribute("name"), box)
        await shots.take(page, "01-notice-and-form-phone")

        # A form the browser would not send (a negative quantity) is refused, naming the lot and the field.
        bad = await _post(
            link, {"received_and_understood": "on", "name": "x", f"on_hand_{world.finished[0]}": "-1"}
        )
        assert bad.status_code == 422 and "P-100: 现有库存" in bad.text and 'aria-invalid="true"' in bad.text
        async with stack.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Response)) == 0

        # The form: checkboxes, quantities per lot, the name; a confirmation after sending.
        await page.get_by_label("已收到并理解本通知").check()
        await page.get_by_label("已完成要求的措施").check()
        lots = await page.locator("fieldset").all()
        await lots[0].get_by_label("现有库存").fill("3")
        await lots[0].get_by_label("已退回").fill("7")
        await lots[1].get_by_label("已销毁").fill("4")
        await page.get_by_label("您的姓名").fill("张医生")
        await page.get_by_role("button", name="提交回执").tap()
        confirmation = page.get_by_role("status")
        await expect(confirmation).to_contain_text("已收到您的回执，谢谢。")
        await expect(confirmation).to_contain_text("记录人：张医生。")
        await expect(page.locator("form")).to_have_count(0)
        await shots.take(page, "02-confirmation-phone")

        # Opening the link again shows it was recorded; it offers no second form.
        await page.goto(link)
        await expect(page.get_by_role("status")).to_contain_text("您的回执此前已记录，本次未作任何更改。")
        await expect(page.locator("form")).to_have_count(0)
        # A damaged link is refused in words, with nothing about the recall.
        damaged = await page.goto(link[:-2] + ("AA" if not link.endswith("AA") else "BB"))
        assert damaged.status == 403
        await expect(page.get_by_role("heading", level=1)).to_have_text("此链接无效")
        assert created["reference"] not in await page.locator("body").inner_text()
        # The consignee pages set no cookie at all: no session, no remembered language.
        assert await phone.cookies() == []
    finally:
        await phone.close()

    # A form sent again (a double tap, a resent POST) changes nothing and says so.
    rc_id = int(re.search(r"/ack/(\d+)/", link).group(1))
    lot_ids = world.finished
    again = await _post(
        link, {"received_and_understood": "on", "name": "someone else", f"on_hand_{lot_ids[0]}": "9"}
    )
    async with stack.sessions() as s:
        assert again.status_code == 200 and "本次未作任何更改" in again.text
        responses = list(await s.scalars(select(Response).where(Response.recall_id == created["id"])))
        assert [(r.consignee_id, r.channel, r.name) for r in responses] == [(h1.id, "web", "张医生")]
        quantities = {
            q.lot_id: (q.on_hand, q.returned, q.destroyed)
            for q in await s.scalars(
                select(ResponseQuantity).where(ResponseQuantity.response_id == responses[0].id)
            )
        }
        assert quantities == {lot_ids[0]: (3, 7, 0), lot_ids[1]: (0, 0, 4)}
        assert (await s.get(RecallConsignee, rc_id)).state == ConsigneeState.acknowledged
        assert await s.scalar(select(func.count()).select_from(Response)) == 1


async def _mail_to(stack, address: str, seconds: float = 60.0):
    """The notice e-mail to ``address`` once the SMTP server has it (texts can arrive before mail)."""
    for _ in range(int(seconds / 0.1)):
        found = [m for m in list_messages(stack.maildir) if address in m.envelope_to]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no notice e-mail to {address}")


async def _post(url: str, form: dict[str, str]) -> httpx.Response:
    """The acknowledgement form as a browser posts it."""
    async with httpx.AsyncClient() as http:
        return await http.post(url, data=form)
