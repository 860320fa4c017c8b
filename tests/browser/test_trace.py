"""The trace view finds a lot from a GS1 barcode in Chromium, on the real stack: a USB scanner types the
raw element string, with its symbology prefix and the GS (ASCII 29) separator, into the field that has
the focus and presses Enter; the page shows where the lot went, as a graph with its stock and
consignees beside it; a click on a lot of the graph traces that lot."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from domain.models import Product
from tests.browser.conftest import PHONE
from tests.browser.test_approver import sign_in
from tests.workflows.conftest import build_world

pytestmark = pytest.mark.temporal
GS = "\x1d"


async def test_the_trace_view_finds_a_lot_from_a_scanned_gs1_string(browser, recall_stack, shots):
    stack = recall_stack
    base = stack.base_url
    await build_world(stack.sessions)
    async with stack.sessions() as s:
        gtin = await s.scalar(select(Product.gtin).where(Product.code == "RESIN"))

    desk = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = await desk.new_page()
        await sign_in(page, base, "qa1")
        await page.get_by_role("link", name="Trace", exact=True).click()
        field = page.get_by_label("GS1 barcode")
        await expect(field).to_be_focused()  # ready for the scanner, no click needed

        # The scanner: keystrokes into the focused field, the GS separator after the lot, then Enter.
        await page.keyboard.type(f"]C101{gtin}10R-001{GS}17281231", delay=5)
        await page.keyboard.press("Enter")

        await expect(page.get_by_role("heading", name="Where it went: RESIN/R-001")).to_be_visible()
        assert "gs1=%5DC101" in page.url and "%1D17281231" in page.url  # the GS reached the server
        await expect(page.locator("#scanned")).to_contain_text(
            f"GTIN {gtin} · lot R-001 · expires 2028-12-31"
        )
        await expect(page.locator("#kpi-lots")).to_have_text("3")
        await expect(page.locator("#kpi-consignees")).to_have_text("3")
        graph = page.get_by_role("img", name="Genealogy")
        await expect(graph.locator("a.node")).to_have_count(3)
        side = page.get_by_role("complementary", name="Stock and consignees")
        await expect(side.get_by_role("table", name="Stock on hand")).to_contain_text("WH1")
        await expect(side.get_by_role("table", name="Consignees")).to_contain_text("H1")
        # The field keeps the scan, readable and selected: the next scan replaces it.
        await expect(field).to_have_value(f"(01){gtin}(10)R-001(17)281231")
        await expect(field).to_be_focused()
        await shots.take(page, "01-scanned")

        # A lot of the graph traces that lot.
        await graph.locator("a.node", has_text="PUMP/P-100").click()
        await expect(page.get_by_role("heading", name="Where it went: PUMP/P-100")).to_be_visible()

        # A code that names no lot is refused on the form, saying why.
        await field.fill(f"(01){gtin}(10)NOPE")
        await field.press("Enter")
        await expect(page.get_by_role("alert")).to_contain_text("GS1 barcode: no lot 'NOPE' of RESIN")
    finally:
        await desk.close()

    phone = await browser.new_context(**PHONE, locale="en-GB")
    try:
        page = await phone.new_page()
        await sign_in(page, base, "qa1")
        await page.goto(f"{base}/trace?product_code=RESIN&lot_number=R-001&lang=zh-CN")
        await expect(page.get_by_role("heading", name="流向: RESIN/R-001")).to_be_visible()
        # Nothing wider than the screen: wide tables and the graph scroll inside their own boxes.
        width = PHONE["viewport"]["width"]
        wide = await page.evaluate(
            """(width) => [...document.querySelectorAll("body *")]
                 .filter((el) => !el.closest(".table-wrap, .graph-wrap, .skip"))
                 .map((el) => [el.tagName + "." + el.className, el.getBoundingClientRect()])
                 .filter(([, r]) => r.width && (r.left < 0 || r.right > width + 0.5))
                 .map(([name, r]) => name + " " + Math.round(r.left) + ".." + Math.round(r.right))""",
            width,
        )
        assert wide == [], wide
        await shots.take(page, "02-trace-phone-zh-CN")
    finally:
        await phone.close()
