"""The recall pages over HTTP against the real app: the list with deadlines, the dashboard (curve, funnel,
consignees, regions, reconciliation, reports), the CSV export, their guards and their cost at size."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from api.pages.security import require_page_roles
from api.routes import recalls as recalls_api
from domain import inventory
from domain.enums import MovementKind, Role
from domain.models import Consignee, Shipment, ShipmentLine
from domain.recalls import dashboard
from domain.recalls import service as recalls
from domain.recalls.models import NoticeEvent, RecallConsignee, RecallReport, Response, ResponseQuantity
from domain.recalls.payloads import ConsigneeState, RecallStatus
from domain.users import create_user
from tests import factories as f
from tests.api.test_pages import CHEAP, PASSWORD, _app, sign_in

__all__ = ["seed_recall"]


async def seed_recall(
    sessions,
    *,
    consignees: int = 6,
    acknowledged: int = 2,
    overdue: int = 1,
    regions: tuple[str, ...] = ("Shanghai", "Beijing"),
    decided_hours_ago: float = 30,
    notify_in_hours: float = -6,
) -> dict:
    """A recall of one component lot in two finished lots, shipped to ``consignees`` hospitals (the first
    also gets the second lot), approved ``decided_hours_ago``, notify deadline ``notify_in_hours`` from now;
    everyone sent and delivered, the first ``acknowledged`` acknowledged with quantities (the first of them
    off by 2 on its first lot), the next ``overdue`` marked overdue, the last one unreachable."""
    now = datetime.now(UTC)
    decided = now - timedelta(hours=decided_hours_ago)
    async with sessions() as s, s.begin():
        resin, pump = await f.product(s, "RESIN"), await f.product(s, "PUMP")
        comp = await f.lot(s, resin, "R-001")
        a, b = await f.lot(s, pump, "P-100"), await f.lot(s, pump, "P-101")
        await f.edge(s, comp, a, 5)
        await f.edge(s, comp, b, 5)
        wh = await f.location(s, "WH1")
        await inventory.post(s, kind=MovementKind.receipt, lot=a, location=wh, quantity=50)
        rows = [
            {
                "code": f"H{i:05d}",
                "name": "=1+2 Clinic" if i == 1 else f"Hospital {i}",
                "kind": "hospital",
                "email": f"h{i}@example.org",
                "phone": f"+8613{i:09d}",
                "language": "zh-CN",
                "region": regions[i % len(regions)],
            }
            for i in range(consignees)
        ]
        await s.execute(insert(Consignee), rows)
        ids = list(await s.scalars(select(Consignee.id).order_by(Consignee.code)))
        shipments = [
            {"ref": f"S{i}", "consignee_id": cid, "shipped_on": date(2026, 3, 1)} for i, cid in enumerate(ids)
        ]
        await s.execute(insert(Shipment), shipments)
        ship_ids = dict((await s.execute(select(Shipment.consignee_id, Shipment.id))).all())
        lines = [{"shipment_id": ship_ids[cid], "lot_id": a.id, "quantity": 10} for cid in ids]
        lines.append({"shipment_id": ship_ids[ids[0]], "lot_id": b.id, "quantity": 4})
        await s.execute(insert(ShipmentLine), lines)
        recall = await recalls.create_recall(
            s,
            suspect_lot_ids=[comp.id],
            reason="Seal may leak",
            hazard="Leak can delay infusion therapy",
            nmpa_level=2,
            fda_class=None,
            jurisdictions=["CN"],
            depth="user",
            required_actions=["stop_use", "return"],
            initiated_by="qa1",
        )
        await recalls.freeze_scope(s, recall_id=recall.id, version=1)
        notify_at = now + timedelta(hours=notify_in_hours)
        recall.status = RecallStatus.in_progress
        recall.decided_at = decided
        recall.notify_deadline = notify_at
        recall.deadlines = [
            {
                "key": "cn.notify",
                "kind": "notify",
                "due_at": notify_at.isoformat(),
                "rule": "Notify (level 2)",
                "source": "NMPA Order 29 art. 16",
            },
            {
                "key": "cn.report",
                "kind": "report",
                "due_at": (decided + timedelta(days=3)).isoformat(),
                "rule": "Progress report",
                "source": None,
            },
        ]
        rcs = list(
            await s.scalars(
                select(RecallConsignee)
                .where(RecallConsignee.recall_id == recall.id)
                .order_by(RecallConsignee.consignee_id)
            )
        )
        for i, rc in enumerate(rcs):
            sent = decided + timedelta(minutes=10 + i % 50)
            if i == len(rcs) - 1 and consignees > acknowledged + overdue:
                rc.state = ConsigneeState.unreachable
                continue
            rc.state, rc.first_sent_at, rc.delivered_at = ConsigneeState.delivered, sent, sent
            s.add(
                NoticeEvent(
                    recall_id=recall.id, consignee_id=rc.consignee_id, kind="sent", channel="email", at=sent
                )
            )
            s.add(
                NoticeEvent(
                    recall_id=recall.id,
                    consignee_id=rc.consignee_id,
                    kind="delivered",
                    channel="email",
                    at=sent + timedelta(seconds=5),
                    detail={"note": "=cmd|x"},
                )
            )
            if i < acknowledged:
                rc.state = ConsigneeState.acknowledged
                rc.acknowledged_at = rc.responded_at = decided + timedelta(hours=2 + i)
                response = Response(
                    recall_id=recall.id,
                    consignee_id=rc.consignee_id,
                    channel="web",
                    received_at=rc.acknowledged_at,
                    name="Dr Wang",
                )
                s.add(response)
                await s.flush()
                s.add(
                    ResponseQuantity(
                        response_id=response.id, lot_id=a.id, on_hand=3, returned=7 - (2 if i == 0 else 0)
                    )
                )
                if i == 0:
                    s.add(ResponseQuantity(response_id=response.id, lot_id=b.id, destroyed=4))
            elif i < acknowledged + overdue:
                rc.overdue = True
        s.add(
            RecallReport(
                recall_id=recall.id,
                kind="progress",
                sequence=1,
                title=f"{recall.reference} Progress",
                body_text="Progress report body\nline two",
                data={"acknowledged": acknowledged},
            )
        )
        return {"id": recall.id, "reference": recall.reference, "lots": (a.id, b.id)}


def test_the_recall_pages_admit_the_roles_of_get_api_recalls():
    from api.pages import recalls as pages_mod

    guard = require_page_roles(recalls_api.READERS)
    assert guard.required_roles == set(recalls_api.READERS.required_roles)
    for route in pages_mod.router.routes:
        deps = [d for d in route.dependant.dependencies if getattr(d.call, "required_roles", None)]
        assert [d.call.required_roles for d in deps] == [set(recalls_api.READERS.required_roles)], route.path


async def test_the_recall_list_shows_each_recall_with_its_deadlines_met_or_missed(pages, sqlite_store):
    _app, client = pages
    seeded = await seed_recall(sqlite_store.sessions)
    await sign_in(client, "rel1")  # every role reads recalls, as GET /api/recalls admits them
    page = await client.get("/recalls")
    assert page.status_code == 200
    row = page.text.split(f'href="/recalls/{seeded["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert "in progress" in row and "2 / 6" in row
    assert "Notify consignees" in row and "missed" in row  # the notify deadline passed 6 h ago, unmet
    assert "Report to the authority" in row and "pending" in row
    assert 'aria-current="page"' in page.text.split("<main", 1)[0]  # the nav marks where we are
    filtered = await client.get("/recalls", params={"status": "closed"})
    assert filtered.status_code == 200 and f'href="/recalls/{seeded["id"]}"' not in filtered.text
    bad = await client.get("/recalls", params={"status": "nonsense"})
    assert bad.status_code == 422 and "status" in bad.text and "<html" in bad.text


async def test_the_dashboard_shows_the_funnel_curve_consignees_regions_and_reconciliation(
    pages, sqlite_store
):
    _app, client = pages
    seeded = await seed_recall(sqlite_store.sessions)
    await sign_in(client, "qa1")
    r = await client.get(f"/recalls/{seeded['id']}")
    assert r.status_code == 200, r.text
    html = r.text
    assert f"Recall {seeded['reference']}" in html and "Seal may leak" in html
    assert re.search(r'id="kpi-acknowledged">2<small> / 6', html)
    assert re.search(r'id="kpi-overdue">1<', html) and re.search(r'id="kpi-unreachable">1<', html)
    # The funnel: planned 6 → sent 5 → delivered 5 → opened 2 (acknowledged counts as opened) → 2.
    stages = dict(re.findall(r'data-stage="(\w+)">.*?class="count"[^>]*>(\d+) \(', html, re.S))
    assert stages == {"planned": "6", "sent": "5", "delivered": "5", "opened": "2", "acknowledged": "2"}
    # The curve: two step paths and the notify deadline drawn; the summary says who was on time.
    assert html.count('<path class="sent" d="M') == 1 and html.count('<path class="ack" d="M') == 1
    assert 'class="marker main-deadline"' in html
    assert "By the notification deadline" in html and ": 2 acknowledged." in html
    # Not yet acknowledged, overdue first: the overdue hospital leads the list; acknowledged ones are absent.
    listed = re.findall(
        r"<strong>(H\d{5})</strong>", html.split('id="consignees"', 1)[1].split("</section>")[0]
    )
    assert listed[0] == "H00002" and "H00000" not in listed and len(listed) == 4
    # Regions: 3 in Shanghai (H0, H2, H4), 3 in Beijing.
    regions = html.split('id="regions-h"', 1)[1].split("</section>")[0]
    assert re.search(r"<td>Beijing</td><td class=\"num\">3</td>", regions)
    assert re.search(r"<td>Shanghai</td><td class=\"num\">3</td>", regions)
    # Reconciliation: P-100 shipped 60 (10 each), answered by 2 with 3+7 and 3+5: one mismatch of -2.
    rec = html.split('id="reconciliation-h"', 1)[1].split("</section>")[0]
    assert "<code>PUMP/P-100</code>" in rec and "PUMP/P-101" in rec
    assert "<strong>H00000</strong>" in rec and "-2" in rec
    # The reports, linked.
    assert f'href="/recalls/{seeded["id"]}/reports/' in html and "Progress" in html
    report_id = re.search(rf'href="/recalls/{seeded["id"]}/reports/(\d+)"', html).group(1)
    report = await client.get(f"/recalls/{seeded['id']}/reports/{report_id}")
    assert report.status_code == 200 and "Progress report body" in report.text
    assert (await client.get(f"/recalls/{seeded['id']}/reports/999")).status_code == 404


async def test_the_consignee_list_filters_and_pages(pages, sqlite_store):
    _app, client = pages
    seeded = await seed_recall(sqlite_store.sessions, consignees=130, acknowledged=10, overdue=20)
    await sign_in(client, "qa1")
    url = f"/recalls/{seeded['id']}"

    def codes(html: str) -> list[str]:
        part = html.split('id="consignees"', 1)[1].split("</section>")[0]
        return re.findall(r"<strong>(H\d{5})</strong>", part)

    first = (await client.get(url)).text
    assert len(codes(first)) == 50 and "Rows 1–50 of 120" in first
    assert codes(first)[:20] == [f"H{i:05d}" for i in range(10, 30)]  # the 20 overdue first
    second = (await client.get(url, params={"page": 3})).text
    assert len(codes(second)) == 20 and "Rows 101–120 of 120" in second
    overdue = (await client.get(url, params={"show": "overdue"})).text
    assert codes(overdue) == [f"H{i:05d}" for i in range(10, 30)]
    unreachable = (await client.get(url, params={"show": "unreachable"})).text
    assert codes(unreachable) == ["H00129"]
    everyone = (await client.get(url, params={"show": "all"})).text
    assert "Rows 1–50 of 130" in everyone
    bad = await client.get(url, params={"show": "everybody"})
    assert bad.status_code == 422 and "show" in bad.text


async def test_the_timeline_csv_has_every_event_and_defuses_formulas(pages, sqlite_store):
    _app, client = pages
    seeded = await seed_recall(sqlite_store.sessions)
    await sign_in(client, "mgr1")
    r = await client.get(f"/recalls/{seeded['id']}/timeline.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f'filename="{seeded["reference"]}-consignee-timeline.csv"' in r.headers["content-disposition"]
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    # 5 consignees reached with 2 events each, and the unreachable one with its state only.
    assert len(rows) == 11
    assert [r["event"] for r in rows if r["consignee_code"] == "H00000"] == ["sent", "delivered"]
    unreachable = [r for r in rows if r["consignee_code"] == "H00005"]
    assert (
        len(unreachable) == 1 and unreachable[0]["state"] == "unreachable" and unreachable[0]["event"] == ""
    )
    assert {r["consignee_name"] for r in rows if r["consignee_code"] == "H00001"} == {"'=1+2 Clinic"}
    delivered = next(r for r in rows if r["event"] == "delivered")
    assert delivered["detail"] == '{"note": "=cmd|x"}'  # JSON starts with {: harmless
    assert datetime.fromisoformat(delivered["event_at"]).tzinfo is not None
    missing = await client.get("/recalls/999/timeline.csv")
    assert missing.status_code == 404 and "recall 999 not found" in missing.text


async def test_a_missing_recall_is_a_404_page_and_a_bad_id_a_422_page(pages):
    _app, client = pages
    await sign_in(client, "qa1")
    missing = await client.get("/recalls/424242")
    assert (
        missing.status_code == 404 and "recall 424242 not found" in missing.text and "<html" in missing.text
    )
    bad = await client.get("/recalls/abc")
    assert bad.status_code == 422 and "recall_id" in bad.text


async def test_the_dashboard_costs_the_same_statements_and_rows_at_any_size(pages, sqlite_store, tmp_path):
    """Aggregates in SQL, lists by page: 3,000 consignees cost the statements 40 cost, and the page shows
    at most one page of rows."""
    _app, client = pages
    seeded = await seed_recall(sqlite_store.sessions, consignees=40, acknowledged=10, overdue=10)
    await sign_in(client, "qa1")
    engine = Engine  # every engine: the app opens its own on the store's URL
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        small = await client.get(f"/recalls/{seeded['id']}")
        small_n = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert small.status_code == 200 and small_n > 10

    # The same recall with 3,000 more consignees.
    async with sqlite_store.sessions() as s, s.begin():
        rows = [
            {
                "code": f"X{i:05d}",
                "name": f"Clinic {i}",
                "kind": "hospital",
                "language": "zh-CN",
                "region": f"R{i % 30}",
            }
            for i in range(3000)
        ]
        await s.execute(insert(Consignee), rows)
        new_ids = list(await s.scalars(select(Consignee.id).where(Consignee.code.like("X%"))))
        await s.execute(
            insert(RecallConsignee),
            [
                {
                    "recall_id": seeded["id"],
                    "consignee_id": cid,
                    "version": 1,
                    "reply_code": f"Z{n:06d}",
                    "units_shipped": 1,
                    "state": ConsigneeState.sent,
                    "first_sent_at": datetime.now(UTC) - timedelta(hours=5),
                }
                for n, cid in enumerate(new_ids)
            ],
        )
    statements.clear()
    event.listen(engine, "before_cursor_execute", count)
    try:
        big = await client.get(f"/recalls/{seeded['id']}")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert big.status_code == 200
    assert len(statements) == small_n, (small_n, len(statements))
    assert "Rows 1–50 of 3030" in big.text
    assert big.text.count("<strong>X0") <= 50


@pytest.fixture
async def any_pages(store):
    """The real app and a signed-in QA client, on SQLite and on PostgreSQL (the dashboard's time buckets
    are computed in SQL, differently on each)."""
    async with store.sessions() as s, s.begin():
        await create_user(
            s, username="qa1", full_name="QA1", roles=[Role.qa], password=PASSWORD, password_hasher=CHEAP
        )
    app = _app(store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Accept-Language": "en"}
        ) as client,
    ):
        await sign_in(client, "qa1")
        yield client, store


async def test_the_curve_regions_and_reconciliation_read_the_same_on_both_databases(any_pages):
    client, store = any_pages
    seeded = await seed_recall(store.sessions, consignees=12, acknowledged=4, overdue=3, decided_hours_ago=48)
    async with store.sessions() as s:
        recall = await recalls.get_recall(s, seeded["id"])
        curve = await dashboard.acknowledgement_curve(s, recall=recall, buckets=48)
    # Sent 10 to 59 minutes after the decision (11 of 12: the last is unreachable); acknowledged 2, 3, 4
    # and 5 hours after it. The chart runs from the decision to now: a bucket is about an hour.
    assert curve.total == 12 and curve.sent[0] == 11 and curve.sent[-1] == 11
    assert curve.acknowledged[0] == 0 and curve.acknowledged[2] in (1, 2) and curve.acknowledged[6] == 4
    assert curve.acknowledged == sorted(curve.acknowledged)
    assert curve.acknowledged[-1] == 4 and curve.at(recall.notify_deadline) == 4
    r = await client.get(f"/recalls/{seeded['id']}")
    assert r.status_code == 200
    assert re.search(r'id="kpi-acknowledged">4<small> / 12', r.text)
    rec = r.text.split('id="reconciliation-h"', 1)[1].split("</section>")[0]
    assert "<strong>H00000</strong>" in rec and rec.count('<span class="badge overdue">-2</span>') == 1
    csv_rows = list(
        csv.DictReader(io.StringIO((await client.get(f"/recalls/{seeded['id']}/timeline.csv")).text[1:]))
    )
    assert len(csv_rows) == 11 * 2 + 1
