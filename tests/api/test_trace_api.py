"""GET /api/trace: forward and backward traces by product/lot, serial and GS1, for every role; bad input
gets a 4xx naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import httpx
import pytest

from api.app import create_app
from api.security import Principal, issue_token
from domain import inventory
from domain.enums import MovementKind, Role
from domain.models import Serial, Shipment, ShipmentLine
from lotline.settings import Settings
from tests import factories as f


@dataclass
class Client:
    """An API client, a QA token and the GTIN of the component product."""

    http: httpx.AsyncClient
    settings: Settings
    gtin: str

    def headers(self, *roles: Role) -> dict[str, str]:
        token = issue_token(
            Principal(username="qa1", roles=list(roles or [Role.qa])),
            secret=self.settings.secret_key,
            minutes=5,
        )
        return {"Authorization": f"Bearer {token}"}

    async def trace(self, role: Role = Role.qa, **params) -> httpx.Response:
        return await self.http.get("/api/trace", params=params, headers=self.headers(role))


@pytest.fixture
async def client(store) -> AsyncIterator[Client]:
    """Component lot CMP/K1 went into FG/F1 and FG/F2; FG/F1 went into KIT/T1. Stock and shipments on them."""
    async with store.sessions() as s, s.begin():
        cmp_, fg, kit = await f.product(s, "CMP"), await f.product(s, "FG"), await f.product(s, "KIT")
        k1, f1, f2, t1 = (
            await f.lot(s, cmp_, "K1"),
            await f.lot(s, fg, "F1"),
            await f.lot(s, fg, "F2"),
            await f.lot(s, kit, "T1"),
        )
        for a, b in [(k1, f1), (k1, f2), (f1, t1)]:
            await f.edge(s, a, b)
        wh = await f.location(s, "WH1")
        await inventory.post(s, kind=MovementKind.receipt, lot=f2, location=wh, quantity=40)
        await inventory.post(s, kind=MovementKind.receipt, lot=t1, location=wh, quantity=6)
        await inventory.post(s, kind=MovementKind.block, lot=t1, location=wh, quantity=2)
        s.add(Serial(product_id=cmp_.id, lot_id=k1.id, serial="K-0001"))
        h1, h2 = await f.consignee(s, "H1"), await f.consignee(s, "H2")
        for ref, who, lot, qty in [("S1", h1, f2, 5), ("S2", h2, t1, 2), ("S3", h1, t1, 1)]:
            shipment = Shipment(ref=ref, consignee_id=who.id, shipped_on=date(2026, 4, 1))
            s.add(shipment)
            await s.flush()
            s.add(
                ShipmentLine(
                    shipment_id=shipment.id,
                    lot_id=lot.id,
                    quantity=qty,
                    consignee_id=who.id,
                    shipped_on=shipment.shipped_on,
                )
            )
        gtin = cmp_.gtin
    settings = Settings(database_url=store.url)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield Client(http, settings, gtin)


def lots(body: dict) -> dict[str, int]:
    return {f"{x['product_code']}/{x['lot_number']}": x["depth"] for x in body["lots"]}


async def test_forward_trace_returns_lots_stock_shipments_and_consignees(client):
    r = await client.trace(product_code="CMP", lot_number="K1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["direction"] == "forward"
    assert lots(body) == {"CMP/K1": 0, "FG/F1": 1, "FG/F2": 1, "KIT/T1": 2}
    assert next(x for x in body["lots"] if x["lot_number"] == "T1")["path"] == ["CMP/K1", "FG/F1", "KIT/T1"]
    stock = {
        (x["location_code"], x["product_code"], x["lot_number"], x["status"]): x["quantity"]
        for x in body["stock"]
    }
    assert stock == {
        ("WH1", "FG", "F2", "unrestricted"): 40,
        ("WH1", "KIT", "T1", "unrestricted"): 4,
        ("WH1", "KIT", "T1", "blocked"): 2,
    }
    assert {x["code"]: x["quantity"] for x in body["consignees"]} == {"H1": 6, "H2": 2}
    assert sorted((x["shipment_ref"], x["quantity"]) for x in body["shipments"]) == [
        ("S1", 5),
        ("S2", 2),
        ("S3", 1),
    ]
    assert body["truncated"] is False and body["cycle"] == [] and body["warnings"] == []


async def test_the_lot_can_be_named_by_gs1_or_serial(client):
    for params in [
        {"gs1": "(01){gtin}(10)K1"},
        {"gs1": "01{gtin}10K1\x1d17281231"},
        {"gs1": "01{gtin}21K-0001"},
        {"serial": "K-0001"},
        {"serial": "K-0001", "product_code": "CMP"},
    ]:
        r = await client.trace(**{k: v.format(gtin=client.gtin) for k, v in params.items()})
        assert r.status_code == 200, (params, r.text)
        assert [o["lot_number"] for o in r.json()["origin"]] == ["K1"]
        assert len(r.json()["lots"]) == 4


async def test_backward_trace_returns_the_component_lots(client):
    r = await client.trace(product_code="KIT", lot_number="T1", direction="backward")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["direction"] == "backward" and lots(body) == {"KIT/T1": 0, "FG/F1": 1, "CMP/K1": 2}
    assert "stock" not in body and "consignees" not in body


async def test_shipment_lines_can_be_left_out_but_consignees_stay(client):
    r = await client.trace(product_code="CMP", lot_number="K1", include_shipments="false")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["shipments"] == [] and body["shipments_included"] is False
    assert {x["code"]: x["quantity"] for x in body["consignees"]} == {"H1": 6, "H2": 2}


async def test_every_role_may_read_a_trace(client):
    for role in Role:
        r = await client.trace(role=role, product_code="FG", lot_number="F2")
        assert r.status_code == 200, (role, r.text)
        assert lots(r.json()) == {"FG/F2": 0}


async def test_a_trace_needs_a_token(client):
    r = await client.http.get("/api/trace", params={"product_code": "CMP", "lot_number": "K1"})
    assert r.status_code == 401


BAD_INPUT = [
    ({"product_code": "CMP", "lot_number": "NOPE"}, 404, "lot_number", "NOPE"),
    ({"product_code": "NOPE", "lot_number": "K1"}, 404, "product_code", "NOPE"),
    ({"serial": "NOPE"}, 404, "serial", "NOPE"),
    ({"gs1": "(01){unknown}(10)K1"}, 404, "gs1", "GTIN"),
    ({"gs1": "(01){gtin}(10)NOPE"}, 404, "gs1", "NOPE"),
    ({"gs1": "(01)06950000000018(10)K1"}, 422, "gs1", "check digit"),
    ({"gs1": "hello"}, 422, "gs1", "GS1"),
    ({}, 422, "lot_number", "name the lot"),
    ({"product_code": "CMP"}, 422, "lot_number", "lot_number"),
    ({"product_code": "CMP", "lot_number": "K1", "direction": "sideways"}, 422, "direction", "forward"),
    (
        {"product_code": "CMP", "lot_number": "K1", "include_shipments": "maybe"},
        422,
        "include_shipments",
        "",
    ),
    ({"product_code": "CMP", "lot_number": "K" * 21}, 422, "lot_number", "20"),
]


async def test_bad_input_gets_a_4xx_naming_the_field(client):
    for params, status, field, says in BAD_INPUT:
        values = {k: v.format(gtin=client.gtin, unknown=f.make_gtin(999_998)) for k, v in params.items()}
        r = await client.trace(**values)
        assert r.status_code == status, (params, r.text)
        (error,) = r.json()["detail"]
        assert error["field"] == field and says in error["reason"], (params, error)
