"""``GET /api/audit``: who may read the trail, its filters, and that API changes carry the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Depends

from api.app import create_app
from api.deps import SessionDep, require_roles
from api.security import Principal, issue_token
from domain.audit import acting_as, current_actor
from domain.enums import Role
from domain.models import Lot
from lotline.settings import Settings
from tests import factories as f

SECRET = "audit-api-test-secret-0123456789abcdef"


def _auth(username: str, *roles: Role) -> dict[str, str]:
    token = issue_token(Principal(username=username, roles=list(roles)), secret=SECRET, minutes=5)
    return {"Authorization": f"Bearer {token}"}


async def _touch(lot_id: int, session: SessionDep) -> dict:
    """A route that changes a regulated record the way any route does: through the request's session."""
    lot = await session.get(Lot, lot_id)
    lot.quantity += 1
    await session.commit()
    return {"quantity": lot.quantity}


@pytest.fixture
async def client(store) -> AsyncIterator[httpx.AsyncClient]:
    """The API on a store with a lot created by qa.li and a second lot created by qa.wu."""
    with acting_as("qa.li"):
        async with store.sessions() as s, s.begin():
            product = await f.product(s, "AUDP")
            await f.lot(s, product, "L-1", quantity=5)
    with acting_as("qa.wu"):
        async with store.sessions() as s, s.begin():
            await f.lot(s, product, "L-2", quantity=7)
    app = create_app(Settings(database_url=store.url, secret_key=SECRET))
    app.add_api_route(
        "/api/test-touch/{lot_id}",
        _touch,
        methods=["POST"],
        dependencies=[Depends(require_roles(Role.warehouse))],
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c,
    ):
        yield c


async def test_without_a_token_the_trail_is_401(client):
    r = await client.get("/api/audit", params={"record": "lot:1"})
    assert r.status_code == 401
    assert r.json()["detail"][0]["field"] == "Authorization"


@pytest.mark.parametrize("role", [Role.warehouse, Role.releaser, Role.production])
async def test_roles_outside_quality_and_regulatory_get_403(client, role):
    r = await client.get("/api/audit", headers=_auth("someone", role))
    assert r.status_code == 403
    assert r.json()["detail"][0]["field"] == "role"


@pytest.mark.parametrize("role", [Role.qa, Role.qa_manager, Role.regulatory, Role.admin])
async def test_a_records_history_oldest_first_with_old_and_new_values(client, role):
    r = await client.get("/api/audit", params={"record": "lot:1"}, headers=_auth("reader", role))
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert [(e["record_type"], e["record_id"], e["action"], e["actor"]) for e in entries] == [
        ("lot", "1", "create", "qa.li")
    ]
    assert entries[0]["changes"]["lot_number"] == [None, "L-1"] and len(entries[0]["hash"]) == 64


async def test_filters_by_type_actor_and_time_and_pages_by_seq(client):
    qa = _auth("reader", Role.qa)
    by_actor = (await client.get("/api/audit", params={"actor": "qa.wu"}, headers=qa)).json()["entries"]
    assert [(e["record_type"], e["record_id"]) for e in by_actor] == [("lot", "2")]
    lots = (await client.get("/api/audit", params={"record_type": "lot"}, headers=qa)).json()["entries"]
    assert [e["record_id"] for e in lots] == ["1", "2"]
    future = await client.get("/api/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=qa)
    assert future.json() == {"entries": [], "next_after": None}

    first = (await client.get("/api/audit", params={"limit": 2}, headers=qa)).json()
    assert [e["seq"] for e in first["entries"]] == [1, 2] and first["next_after"] == 2
    rest = (await client.get("/api/audit", params={"limit": 2, "after": 2}, headers=qa)).json()
    assert [e["seq"] for e in rest["entries"]] == [3] and rest["next_after"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"record": "lot"}, "record"),
        ({"record": "lot:1", "record_type": "recall"}, "record"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"after": -1}, "after"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(client, params, field):
    r = await client.get("/api/audit", params=params, headers=_auth("reader", Role.qa))
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["detail"]] == [field]


async def test_a_change_made_through_the_api_is_attributed_to_the_bearer_of_the_token(client):
    r = await client.post("/api/test-touch/2", headers=_auth("wh.zhou", Role.warehouse))
    assert r.status_code == 200, r.text
    trail = (await client.get("/api/audit", params={"record": "lot:2"}, headers=_auth("r", Role.qa))).json()
    assert [(e["action"], e["actor"], e["changes"]) for e in trail["entries"]][1:] == [
        ("update", "wh.zhou", {"quantity": [7, 8]})
    ]
    assert current_actor() == "system"  # the request's actor ended with the request
