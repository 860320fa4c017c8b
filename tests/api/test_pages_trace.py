"""The trace view over HTTP against the real app: a lot found by product and lot, serial, or a GS1 string
(human-readable or raw with GS separators, as a scanner sends it), its genealogy, stock and consignees;
refusals on the form naming the field; a lot reaching thousands of lots stays a small page."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import quote

from sqlalchemy import insert, select

from api.pages import trace as trace_page
from api.pages.guards import route_guard
from api.routes import trace as trace_api
from domain import inventory
from domain.enums import MovementKind
from domain.models import GenealogyEdge, Lot, Serial, Shipment, ShipmentLine
from tests import factories as f
from tests.api.test_pages import sign_in

GS = "\x1d"


async def _world(sessions) -> dict:
    """RESIN/R-001 in PUMP/P-100 and PUMP/P-101; P-100 in KIT/K-1; stock of P-100; P-100 shipped to H1, H2;
    a serial S-0001 of P-101."""
    async with sessions() as s, s.begin():
        resin, pump, kit = await f.product(s, "RESIN"), await f.product(s, "PUMP"), await f.product(s, "KIT")
        r1 = await f.lot(s, resin, "R-001")
        p100, p101 = await f.lot(s, pump, "P-100"), await f.lot(s, pump, "P-101")
        k1 = await f.lot(s, kit, "K-1")
        await f.edge(s, r1, p100, 5)
        await f.edge(s, r1, p101, 5)
        await f.edge(s, p100, k1, 1)
        wh = await f.location(s, "WH1")
        await inventory.post(s, kind=MovementKind.receipt, lot=p100, location=wh, quantity=50)
        s.add(Serial(product_id=pump.id, lot_id=p101.id, serial="S-0001"))
        for i, code in enumerate(("H1", "H2")):
            h = await f.consignee(s, code)
            sh = Shipment(ref=f"S{i}", consignee_id=h.id, shipped_on=date(2026, 3, 1 + i))
            s.add(sh)
            await s.flush()
            s.add(ShipmentLine(shipment_id=sh.id, lot_id=p100.id, quantity=10 + i))
        return {"pump_gtin": pump.gtin, "resin_gtin": resin.gtin}


def test_the_trace_view_admits_the_roles_of_get_api_trace():
    api_roles = route_guard(trace_api.router, "/api/trace").required_roles
    for route in trace_page.router.routes:
        guards = [
            d.call.required_roles for d in route.dependant.dependencies if hasattr(d.call, "required_roles")
        ]
        assert guards == [api_roles]


async def test_a_raw_gs1_string_with_gs_separators_finds_the_lot(pages, sqlite_store):
    _app, client = pages
    world = await _world(sqlite_store.sessions)
    await sign_in(client, "rel1")
    form = await client.get("/trace")
    assert form.status_code == 200 and 'name="gs1"' in form.text and "autofocus" in form.text
    raw = f"]C101{world['resin_gtin']}10R-001{GS}17281231"  # symbology prefix; GS ends the lot
    r = await client.get("/trace", params={"gs1": raw})
    assert r.status_code == 200, r.text
    html = r.text
    assert "Where it went: <code>RESIN/R-001</code>" in html
    assert (
        f"Scanned: GTIN {world['resin_gtin']}" in html
        and "lot R-001" in html
        and "expires 2028-12-31" in html
    )
    assert re.search(r'id="kpi-lots">4<', html)  # R-001, P-100, P-101, K-1
    assert re.search(r'id="kpi-consignees">2<', html)
    # The field shows what was scanned as people read it, ready for the next scan.
    assert f'value="(01){world["resin_gtin"]}(10)R-001(17)281231"' in html
    # The graph: every lot a box at its level, linked from the lot it was reached through.
    assert html.count('class="node origin"') == 1 and html.count('class="node lot"') == 3
    assert html.count('<path class="edge"') == 3
    # Beside it: stock and consignees.
    side = html.split('class="trace-side"', 1)[1]
    assert "WH1" in side and "<strong>H1</strong>" in side and "<strong>H2</strong>" in side
    # The levels, each listing its lots with the lot it was reached through.
    level2 = html.split('id="level-2"', 1)[1].split("</section>")[0]
    assert "KIT/K-1" in level2 and "<code>PUMP/P-100</code>" in level2


async def test_the_human_readable_form_a_serial_and_product_and_lot_find_the_same_way(pages, sqlite_store):
    _app, client = pages
    world = await _world(sqlite_store.sessions)
    await sign_in(client, "qa1")
    hri = await client.get("/trace", params={"gs1": f"(01){world['pump_gtin']}(21)S-0001"})
    assert hri.status_code == 200 and "Where it went: <code>PUMP/P-101</code>" in hri.text
    serial = await client.get("/trace", params={"serial": "S-0001"})
    assert serial.status_code == 200 and "Where it went: <code>PUMP/P-101</code>" in serial.text
    by_lot = await client.get("/trace", params={"product_code": "PUMP", "lot_number": "P-100"})
    assert by_lot.status_code == 200 and "Where it went: <code>PUMP/P-100</code>" in by_lot.text
    back = await client.get(
        "/trace", params={"product_code": "KIT", "lot_number": "K-1", "direction": "backward"}
    )
    assert back.status_code == 200 and "What it was made from: <code>KIT/K-1</code>" in back.text
    assert "RESIN/R-001" in back.text and 'class="trace-side"' not in back.text


async def test_a_lot_not_found_or_a_bad_code_is_refused_on_the_form_naming_the_field(pages, sqlite_store):
    _app, client = pages
    world = await _world(sqlite_store.sessions)
    await sign_in(client, "qa1")
    missing = await client.get("/trace", params={"gs1": f"(01){world['pump_gtin']}(10)NOPE"})
    assert missing.status_code == 404
    assert "GS1 barcode: no lot &#39;NOPE&#39; of PUMP" in missing.text and 'name="gs1"' in missing.text
    garbage = await client.get("/trace", params={"gs1": "hello"})
    assert garbage.status_code == 422 and "GS1 barcode: not a GS1 element string" in garbage.text
    check = await client.get("/trace", params={"gs1": "(01)09501101530004(10)X"})
    assert check.status_code == 422 and "check digit" in check.text
    no_lot = await client.get("/trace", params={"product_code": "PUMP"})
    assert no_lot.status_code == 422 and "Lot number: a product code needs a lot_number" in no_lot.text
    long = await client.get("/trace", params={"serial": "x" * 21})
    assert long.status_code == 422 and "Serial number: at most 20 characters" in long.text
    bad_direction = await client.get("/trace", params={"serial": "S-0001", "direction": "sideways"})
    assert bad_direction.status_code == 422 and "direction" in bad_direction.text


async def test_a_lot_that_reaches_thousands_stays_a_small_page(pages, sqlite_store):
    _app, client = pages
    async with sqlite_store.sessions() as s, s.begin():
        resin = await f.product(s, "RESIN")
        products = [await f.product(s, f"PUMP{i}") for i in range(12)]
        origin = await f.lot(s, resin, "R-BIG")
        await s.execute(
            insert(Lot),
            [
                {"product_id": products[i % 12].id, "lot_number": f"L{i:05d}", "quantity": 1}
                for i in range(3000)
            ],
        )
        ids = list(await s.scalars(select(Lot.id).where(Lot.lot_number.like("L%")).order_by(Lot.id)))
        await s.execute(
            insert(GenealogyEdge),
            [{"component_lot_id": origin.id, "parent_lot_id": lot_id, "quantity": 1} for lot_id in ids],
        )
    await sign_in(client, "qa1")
    r = await client.get("/trace", params={"product_code": "RESIN", "lot_number": "R-BIG"})
    assert r.status_code == 200
    html = r.text
    assert re.search(r'id="kpi-lots">3001<', html)
    level1 = html.split('id="level-1"', 1)[1].split("</section>")[0]
    assert "3000 lots" in level1 and "<tbody>" not in level1  # collapsed: its count and products only
    assert "List the 3000 lots of this level" in level1
    # The graph draws the crowded level as one box per product (7 named + the others), not 3,000 boxes.
    assert html.count('class="node group"') == 8 and "other products" in html
    assert len(html) < 60_000
    expand = re.search(r'href="(/trace\?[^"]*expand=1[^"]*)"', html).group(1).replace("&amp;", "&")
    opened = await client.get(expand)
    level1 = opened.text.split('id="level-1"', 1)[1].split("</section>")[0]
    assert level1.count("<tr><td><a href") == 100 and "Rows 1–100 of 3000" in level1
    nxt = re.search(r'href="([^"]*offset=100[^"]*)"', level1).group(1).replace("&amp;", "&")
    page2 = (await client.get(nxt)).text.split('id="level-1"', 1)[1].split("</section>")[0]
    assert "Rows 101–200 of 3000" in page2


async def test_the_trace_link_of_a_lot_keeps_its_lot_number_intact(pages, sqlite_store):
    _app, client = pages
    async with sqlite_store.sessions() as s, s.begin():
        p = await f.product(s, "A&B")
        await f.lot(s, p, "L 1/2")
    await sign_in(client, "qa1")
    r = await client.get(f"/trace?product_code={quote('A&B')}&lot_number={quote('L 1/2')}")
    assert r.status_code == 200 and "A&amp;B/L 1/2" in r.text
