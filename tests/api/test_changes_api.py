"""The change-control and document routes: 401 without a token, 403 for a role they do not admit, 422
naming the field for bad input (and nothing created), 404 for unknown records. The process itself is
driven end to end in tests/workflows/test_change_control.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.security import Principal, issue_token
from domain.changes import policy
from domain.changes import service as changes
from domain.changes.models import ChangeRequest, Document
from domain.enums import Role
from domain.users import create_user
from lotline.settings import Settings
from tests import factories as f
from tests.workflows.conftest import time_env  # noqa: F401 - a Temporal test server per test

pytestmark = pytest.mark.temporal

SECRET = "changes-api-test-secret-0123456789abcdef"


class Api:
    """An API client with a token per role."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    def as_(self, *roles: Role, user: str = "qa1") -> dict[str, str]:
        principal = Principal(username=user, full_name=user.upper(), roles=list(roles))
        return {"Authorization": f"Bearer {issue_token(principal, secret=SECRET, minutes=5)}"}

    async def request(self, method: str, url: str, *roles: Role, **kw) -> httpx.Response:
        return await self.http.request(method, url, headers=self.as_(*roles) if roles else {}, **kw)


@pytest.fixture
async def api(sqlite_store, time_env) -> AsyncIterator[Api]:  # noqa: F811
    async with sqlite_store.sessions() as s, s.begin():
        await f.product(s, "PUMP")
        await create_user(
            s, username="owner1", full_name="Owner", roles=[Role.production], password="pw-123456789"
        )
        await changes.register_document(
            s, code="SOP-1", title="Cleaning", version="A", effective_from=date(2025, 1, 1)
        )
    app = create_app(Settings(database_url=sqlite_store.url, secret_key=SECRET))
    app.state.temporal = time_env.client  # no worker: nothing here reaches a running workflow
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield Api(http)


def _today() -> date:
    return policy.site_date(datetime.now(UTC))


GOOD = {"kind": "design", "title": "Seal", "description": "Softer seal", "product_codes": ["PUMP"]}


async def test_writes_need_a_token_and_a_requester_role(api):
    assert (await api.request("POST", "/api/changes", json=GOOD)).status_code == 401
    for role in (Role.warehouse, Role.releaser):
        r = await api.request("POST", "/api/changes", role, json=GOOD)
        assert r.status_code == 403 and r.json()["detail"][0]["field"] == "role"
        r = await api.request("POST", "/api/changes/1/impact", role, json={})
        assert r.status_code == 403
        r = await api.request("POST", "/api/changes/1/withdraw", role, json={})
        assert r.status_code == 403
    assert (await api.request("GET", "/api/changes")).status_code == 401
    assert (await api.request("GET", "/api/changes", Role.warehouse)).status_code == 200  # every role reads
    assert (await api.request("GET", "/api/documents/SOP-1/in-force", Role.releaser)).status_code == 200


BAD_CHANGES = [
    ({"kind": "colour"}, "kind"),
    ({"title": ""}, "title"),
    ({"description": None}, "description"),
    ({"product_codes": ["PUMP", "NOPE"]}, "product_codes.1"),
    ({"product_codes": [], "blocks_release": True}, "blocks_release"),
    ({"effective_on": str(date.today() - timedelta(days=2))}, "effective_on"),
    ({"effective_on": "2026-13-01"}, "effective_on"),
    ({"documents": [{"code": "NEW-1", "version": "1"}]}, "documents.0.title"),
    ({"documents": [{"code": "SOP-1", "version": "A"}]}, "documents.0.version"),
    ({"kind": "document", "documents": []}, "documents"),
]


async def test_a_bad_change_is_422_naming_the_field_and_creates_nothing(api, sqlite_store):
    for override, field in BAD_CHANGES:
        body = {k: v for k, v in (GOOD | override).items() if v is not None}
        r = await api.request("POST", "/api/changes", Role.qa, json=body)
        assert r.status_code == 422, (override, r.text)
        assert field in [d["field"] for d in r.json()["detail"]], (override, r.json())
    async with sqlite_store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(ChangeRequest)) == 0
        assert await s.scalar(select(func.count()).select_from(Document)) == 1


async def test_bad_queries_and_submissions_are_422_naming_the_field(api):
    r = await api.request("GET", "/api/documents/SOP-1/in-force", Role.qa, params={"on": "yesterday"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "on"
    r = await api.request("GET", "/api/changes", Role.qa, params={"status": "bogus"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "status"
    r = await api.request("GET", "/api/changes", Role.qa, params={"product_code": "NOPE"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "product_code.0"

    created = await api.request("POST", "/api/changes", Role.qa, json=GOOD | {"blocks_release": True})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    due = str(_today() + timedelta(days=3))
    task = {"title": "Validate", "owner": "owner1", "due_on": due}
    cases = [
        ({"risk_rating": "extreme"}, "risk_rating"),
        ({"tasks": []}, "tasks"),
        ({"tasks": [task, task | {"owner": "ghost"}]}, "tasks.1.owner"),
        ({"tasks": [task | {"due_on": "2020-01-01"}]}, "tasks.0.due_on"),
        ({"product_codes": ["NOPE"]}, "product_codes.0"),
        ({"risk_assessment": ""}, "risk_assessment"),
    ]
    for override, field in cases:
        body = {"risk_assessment": "r", "risk_rating": "low", "tasks": [task]} | override
        r = await api.request("POST", f"/api/changes/{cid}/impact", Role.qa, json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, (override, r.text)


async def test_unknown_records_are_404(api):
    body = {
        "risk_assessment": "r",
        "risk_rating": "low",
        "tasks": [{"title": "t", "owner": "x", "due_on": "2030-01-01"}],
    }
    for method, url, json in [
        ("GET", "/api/changes/999", None),
        ("POST", "/api/changes/999/impact", body),
        ("POST", "/api/changes/999/tasks/1/complete", {}),
        ("POST", "/api/changes/999/comments", {"task_id": 1, "password": "pw", "comment": "c"}),
        ("POST", "/api/changes/999/withdraw", {"password": "pw", "justification": "long enough reason"}),
    ]:
        r = await api.request(method, url, Role.qa, json=json)
        assert r.status_code == 404 and r.json()["detail"][0]["field"] == "change_id", (url, r.text)
    r = await api.request("GET", "/api/documents/NOPE", Role.qa)
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "code"
    r = await api.request("GET", "/api/documents/NOPE/in-force", Role.qa)
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "code"
    r = await api.request("GET", "/api/documents/SOP-1/in-force", Role.qa, params={"on": "2024-12-31"})
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "on"  # before its first version

    created = await api.request("POST", "/api/changes", Role.production, json=GOOD)
    cid = created.json()["id"]
    r = await api.request("POST", f"/api/changes/{cid}/tasks/12345/complete", Role.qa, json={})
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "task_id"
    r = await api.request(
        "POST",
        f"/api/changes/{cid}/comments",
        Role.qa,
        json={"task_id": 12345, "password": "p", "comment": "c"},
    )
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "task_id"


async def test_a_created_change_reads_back_and_lists(api):
    r = await api.request(
        "POST",
        "/api/changes",
        Role.regulatory,
        json=GOOD
        | {
            "kind": "labelling",
            "blocks_release": True,
            "effective_on": str(_today() + timedelta(days=30)),
            "documents": [
                {"code": "SOP-1", "version": "B"},
                {"code": "LBL-9", "version": "1", "title": "Label"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "impact_assessment" and created["workflow_id"] == f"change-{created['id']}"
    one = (await api.request("GET", f"/api/changes/{created['id']}", Role.warehouse)).json()
    assert one["reference"] == created["reference"] and one["initiated_by"] == "qa1"
    assert one["products"] == ["PUMP"] and one["blocks_release"] is True and one["impact"] is None
    assert [(d["code"], d["version"], d["status"]) for d in one["documents"]] == [
        ("LBL-9", "1", "draft"),
        ("SOP-1", "B", "draft"),
    ]
    listed = (
        await api.request("GET", "/api/changes", Role.qa, params={"open": "true", "product_code": "PUMP"})
    ).json()
    assert [c["reference"] for c in listed] == [created["reference"]]
    assert (await api.request("GET", "/api/changes", Role.qa, params={"status": "closed"})).json() == []
    doc = (await api.request("GET", "/api/documents/SOP-1", Role.qa)).json()
    assert [(v["version"], v["status"], v["change_reference"]) for v in doc["versions"]] == [
        ("A", "effective", None),
        ("B", "draft", created["reference"]),
    ]
    r = await api.request("GET", "/api/documents/SOP-1/in-force", Role.qa)  # today: B is only a draft
    assert r.status_code == 200 and r.json()["version"] == "A"
