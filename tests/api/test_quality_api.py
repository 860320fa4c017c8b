"""QC release routes: inspection plans, starting an inspection, recording results, reading an inspection.

Each refuses a caller without a token (401) or without the role (403), unknown records (404) and bad
input naming the field (422), and a refusal changes nothing. Temporal is unreachable here on purpose:
results are stored without it; starting a release needs it (503) and then leaves the lot untouched.
SQLite only: the store's rules run on both databases in tests/domain/test_quality.py."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.security import Principal, issue_token
from domain import inventory
from domain.enums import MovementKind, QcStatus, Role, StockStatus
from domain.models import Lot
from domain.quality import service as quality
from domain.quality.models import Inspection, InspectionPlan, InspectionResult
from lotline.settings import Settings
from tests import factories as f
from tests.conftest import Store

PLAN = {
    "characteristics": [
        {"name": "diameter", "kind": "numeric", "lower": 3.9, "upper": 4.1, "unit": "mm", "sample_size": 2},
        {"name": "seal", "kind": "pass_fail"},
    ]
}


@dataclass
class Api:
    """An API client on a store with product STENT, lot S-1 (50 in stock) and product BARE without a plan."""

    http: httpx.AsyncClient
    settings: Settings
    store: Store
    lot_id: int

    def auth(self, *roles: Role, user: str = "tester") -> dict[str, str]:
        token = issue_token(
            Principal(username=user, full_name=user.upper(), roles=list(roles)),
            secret=self.settings.secret_key,
            minutes=5,
        )
        return {"Authorization": f"Bearer {token}"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def api(sqlite_store) -> AsyncIterator[Api]:
    store = sqlite_store
    async with store.sessions() as s, s.begin():
        stent = await f.product(s, "STENT")
        await f.product(s, "BARE")
        lot = await f.lot(s, stent, "S-1")
        wh = await f.location(s, "WH1")
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=50)
        lot_id = lot.id
    settings = Settings(database_url=store.url, temporal_address=f"127.0.0.1:{_closed_port()}")
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield Api(http, settings, store, lot_id)


async def _inspection(api: Api) -> int:
    """A plan and an inspection under way, straight in the store (starting one needs Temporal)."""
    r = await api.http.put("/api/products/STENT/inspection-plan", json=PLAN, headers=api.auth(Role.qa))
    assert r.status_code == 200, r.text
    async with api.store.sessions() as s, s.begin():
        return (await quality.start_inspection(s, lot_id=api.lot_id, initiated_by="qa1")).id


async def test_the_inspection_plan_is_versioned_and_needs_qa(api):
    url = "/api/products/STENT/inspection-plan"
    assert (await api.http.put(url, json=PLAN)).status_code == 401
    for role in (Role.releaser, Role.production, Role.warehouse):
        r = await api.http.put(url, json=PLAN, headers=api.auth(role))
        assert r.status_code == 403 and r.json()["detail"][0]["field"] == "role"
    assert (await api.http.get(url, headers=api.auth(Role.warehouse))).status_code == 404
    r = await api.http.put(url, json=PLAN, headers=api.auth(Role.qa, user="qa1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 1 and body["created_by"] == "qa1"
    assert [(c["name"], c["kind"], c["sample_size"]) for c in body["characteristics"]] == [
        ("diameter", "numeric", 2),
        ("seal", "pass_fail", 1),
    ]
    r = await api.http.put(url, json=PLAN, headers=api.auth(Role.qa_manager))
    assert r.json()["version"] == 2
    r = await api.http.get(url, headers=api.auth(Role.warehouse))
    assert r.status_code == 200 and r.json()["version"] == 2


@pytest.mark.parametrize(
    ("characteristic", "field"),
    [
        ({"name": "d", "kind": "colour"}, "characteristics.0.kind"),
        ({"name": "d", "kind": "numeric", "lower": 5, "upper": 4, "unit": "mm"}, "characteristics.0.lower"),
        ({"name": "d", "kind": "numeric", "lower": 1}, "characteristics.0.unit"),
        ({"name": "d", "kind": "pass_fail", "sample_size": 0}, "characteristics.0.sample_size"),
        ({"name": "", "kind": "pass_fail"}, "characteristics.0.name"),
    ],
)
async def test_a_wrong_plan_is_a_422_naming_the_field_and_stores_nothing(api, characteristic, field):
    r = await api.http.put(
        "/api/products/STENT/inspection-plan",
        json={"characteristics": [characteristic]},
        headers=api.auth(Role.qa),
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field
    async with api.store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(InspectionPlan)) == 0


async def test_a_plan_for_an_unknown_product_is_a_404(api):
    r = await api.http.put("/api/products/NOPE/inspection-plan", json=PLAN, headers=api.auth(Role.qa))
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "product_code"


async def test_starting_an_inspection_checks_role_lot_and_plan_before_anything(api):
    url = "/api/lots/STENT/S-1/inspections"
    assert (await api.http.post(url)).status_code == 401
    for role in (Role.qa_manager, Role.warehouse, Role.regulatory):
        assert (await api.http.post(url, headers=api.auth(role))).status_code == 403
    r = await api.http.post("/api/lots/STENT/S-9/inspections", headers=api.auth(Role.qa))
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "lot_number"
    r = await api.http.post("/api/lots/NOPE/S-1/inspections", headers=api.auth(Role.qa))
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "product_code"
    r = await api.http.post(url, headers=api.auth(Role.production))
    assert r.status_code == 409 and "no inspection plan" in r.json()["detail"][0]["reason"]


async def test_without_the_workflow_engine_starting_a_release_changes_nothing(api):
    await api.http.put("/api/products/STENT/inspection-plan", json=PLAN, headers=api.auth(Role.qa))
    r = await api.http.post("/api/lots/STENT/S-1/inspections", headers=api.auth(Role.releaser))
    assert r.status_code == 503, r.text
    async with api.store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Inspection)) == 0
        assert await inventory.balance(s, lot_id=api.lot_id, status=StockStatus.unrestricted) == 50
        assert await inventory.active_holds(s, api.lot_id) == []


async def test_results_are_recorded_with_who_and_when_even_without_the_workflow_engine(api):
    iid = await _inspection(api)
    url = f"/api/inspections/{iid}/results"
    batch = {
        "results": [{"characteristic": "diameter", "value": 4.0}, {"characteristic": "seal", "passed": True}]
    }
    assert (await api.http.post(url, json=batch)).status_code == 401
    for role in (Role.releaser, Role.warehouse, Role.qa_manager):
        assert (await api.http.post(url, json=batch, headers=api.auth(role))).status_code == 403
    r = await api.http.post("/api/inspections/999/results", json=batch, headers=api.auth(Role.qa))
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "inspection_id"
    r = await api.http.post(url, json=batch, headers=api.auth(Role.production, user="prod1"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert [x["recorded_by"] for x in body["recorded"]] == ["prod1", "prod1"]
    assert body["recorded"][0]["unit"] == "mm" and body["recorded"][0]["recorded_at"]
    assert body["evaluation"]["outcome"] == "incomplete" and body["evaluation"]["missing"] == {"diameter": 1}


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"characteristic": "diameter"}, "results.1.value"),
        ({"characteristic": "diameter", "passed": True}, "results.1.passed"),
        ({"characteristic": "seal", "value": 1}, "results.1.value"),
        ({"characteristic": "colour", "passed": True}, "results.1.characteristic"),
        ({"characteristic": "diameter", "value": "wide"}, "results.1.value"),
        ({"characteristic": "diameter", "value": 4.0, "unit": "in"}, "results.1.unit"),
    ],
)
async def test_a_wrong_result_is_a_422_naming_the_field_and_stores_nothing(api, item, field):
    iid = await _inspection(api)
    good = {"characteristic": "seal", "passed": True}
    r = await api.http.post(
        f"/api/inspections/{iid}/results", json={"results": [good, item]}, headers=api.auth(Role.qa)
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field
    async with api.store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(InspectionResult)) == 0


async def test_the_inspection_shows_evaluation_blockers_and_results(api):
    iid = await _inspection(api)
    url = f"/api/inspections/{iid}"
    assert (await api.http.get(url)).status_code == 401
    r = await api.http.get("/api/inspections/999", headers=api.auth(Role.warehouse))
    assert r.status_code == 404
    await api.http.post(
        f"/api/inspections/{iid}/results",
        json={
            "results": [
                {"characteristic": "diameter", "value": 4.0},
                {"characteristic": "diameter", "value": 4.3},
                {"characteristic": "seal", "passed": True},
            ]
        },
        headers=api.auth(Role.qa, user="qa2"),
    )
    async with api.store.sessions() as s, s.begin():
        wire = await f.product(s, "WIRE")
        comp = await f.lot(s, wire, "W-1")
        await f.edge(s, comp, await s.get(Lot, api.lot_id))
        await inventory.place_hold(s, lot=comp, reason="recall", reference="recall-4")
    r = await api.http.get(url, headers=api.auth(Role.warehouse))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["product_code"], body["lot_number"], body["qc_status"]) == (
        "STENT",
        "S-1",
        QcStatus.quarantined,
    )
    assert body["status"] == "awaiting_results" and body["on_hand"] == 50 and body["plan_version"] == 1
    assert body["evaluation"]["outcome"] == "failed" and body["evaluation"]["failing"] == ["diameter"]
    assert body["blockers"] == ["component lot WIRE/W-1 is under recall hold recall-4"]
    assert [x["recorded_by"] for x in body["results"]] == ["qa2"] * 3
    assert body["tasks"] == [] and body["signatures"] == [] and body["disposition"] is None
