"""The task inbox through the API: filters, claim / release / delegate (403, 409 and 422 with the reason
and field, nothing changed on refusal), out of office. Signing a claimed task is in the authorization
matrix (tests/workflows/test_authorization_matrix.py), which runs the workflows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.security import Principal, issue_token
from domain.audit.models import AuditEntry
from domain.models import User
from domain.tasks.models import Task
from domain.tasks.payloads import SIGN_OFF, TaskSpec
from domain.tasks.service import open_task
from domain.users import hash_password
from lotline.settings import Settings
from tests.api.test_access import _closed_port

SECRET = "tasks-api-test-secret-0123456789abcdef"
PASSWORD = "correct horse battery"  # hashed once for every user of a test
PEOPLE = {
    "qa1": ["qa"],
    "mgr1": ["qa_manager"],
    "mgr2": ["qa_manager"],
    "init": ["qa", "qa_manager"],
    "reg1": ["regulatory"],
}


def who(name: str) -> dict[str, str]:
    principal = Principal(username=name, full_name=name.upper(), roles=PEOPLE[name])
    return {"Authorization": f"Bearer {issue_token(principal, secret=SECRET, minutes=5)}"}


@pytest.fixture
async def api(sqlite_store) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    digest = hash_password(PASSWORD)
    async with sqlite_store.sessions() as s, s.begin():
        for name, roles in PEOPLE.items():
            s.add(User(username=name, full_name=name.upper(), password_hash=digest, roles=roles, active=True))
    settings = Settings(
        database_url=sqlite_store.url, secret_key=SECRET, temporal_address=f"127.0.0.1:{_closed_port()}"
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client, sqlite_store


async def add_task(store, key: str, **over) -> int:
    spec = dict(
        process="recall",
        kind="approve_recall",
        title=f"Approve {key}",
        record_type="recall",
        record_id=7,
        candidate_roles=["qa_manager"],
        excluded_users=["init"],
        due_at=datetime.now(UTC) + timedelta(hours=4),
        workflow_id="recall-7",
        business_key=key,
        details={SIGN_OFF: True},  # as the sign-off mechanism opens it
    )
    async with store.sessions() as s, s.begin():
        return (await open_task(s, spec=TaskSpec(**(spec | over)))).task_id


async def snapshot(store, task_id: int) -> tuple:
    async with store.sessions() as s:
        t = await s.get(Task, task_id)
        audit = await s.scalar(select(func.count()).select_from(AuditEntry))
        return (t.assignee, t.claimed_at, t.delegated_by, t.delegation_reason, t.status, audit)


def reason(r: httpx.Response) -> str:
    return r.json()["detail"][0]["reason"]


async def test_claim_release_and_delegate_with_their_refusals(api):
    client, store = api
    tid = await add_task(store, "k1")
    before = await snapshot(store, tid)
    for name, status, why in (
        ("qa1", 403, "needs the role qa_manager"),
        ("init", 403, "separation of duties"),
        ("reg1", 403, "needs the role qa_manager"),
    ):
        r = await client.post(f"/api/tasks/{tid}/claim", headers=who(name))
        assert r.status_code == status and why in reason(r), (name, r.text)
        assert await snapshot(store, tid) == before  # a refusal changes nothing
    r = await client.post(f"/api/tasks/{tid}/claim", headers=who("mgr1"))
    assert r.status_code == 200 and r.json()["assignee"] == "mgr1"
    assert set(r.json()["actions"]) == {"release", "delegate", "sign"}
    held = await snapshot(store, tid)
    r = await client.post(f"/api/tasks/{tid}/claim", headers=who("mgr2"))
    assert r.status_code == 409 and reason(r) == f"task {tid} is claimed by mgr1"
    r = await client.post(f"/api/tasks/{tid}/release", headers=who("mgr2"))
    assert r.status_code == 403
    r = await client.post(
        f"/api/tasks/{tid}/delegate", json={"to": "mgr2", "reason": "mine now"}, headers=who("mgr2")
    )
    assert r.status_code == 403
    # Bad input: 422 naming the field, nothing changed.
    for body, field in (
        ({"to": "mgr2"}, "reason"),
        ({"to": "mgr2", "reason": ""}, "reason"),
        ({"to": "init", "reason": "please"}, "to"),
        ({"to": "reg1", "reason": "please"}, "to"),
        ({"to": "ghost", "reason": "please"}, "to"),
    ):
        r = await client.post(f"/api/tasks/{tid}/delegate", json=body, headers=who("mgr1"))
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, (body, r.text)
    assert await snapshot(store, tid) == held
    r = await client.post(
        f"/api/tasks/{tid}/delegate",
        json={"to": "mgr2", "reason": "I am auditing a supplier this week"},
        headers=who("mgr1"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["assignee"], body["delegated_by"], body["delegation_reason"]) == (
        "mgr2",
        "mgr1",
        "I am auditing a supplier this week",
    )
    r = await client.get("/api/tasks?mine=true", headers=who("mgr2"))
    assert [t["id"] for t in r.json()] == [tid]
    r = await client.post(f"/api/tasks/{tid}/release", headers=who("mgr2"))
    assert r.status_code == 200 and r.json()["assignee"] is None
    r = await client.post(f"/api/tasks/{tid}/release", headers=who("mgr2"))
    assert r.status_code == 409 and "not claimed" in reason(r)
    assert (await client.post("/api/tasks/999/claim", headers=who("mgr1"))).status_code == 404


async def test_the_inbox_filters_and_refuses_an_unknown_process(api):
    client, store = api
    late = await add_task(store, "late", due_at=datetime.now(UTC) - timedelta(hours=1))
    capa = await add_task(store, "capa", process="capa", record_type="capa", assignee="mgr1")
    await add_task(store, "reg", candidate_roles=["regulatory"])

    async def ids(query: str, name: str = "mgr1") -> list[int]:
        r = await client.get(f"/api/tasks{query}", headers=who(name))
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()]

    assert await ids("") == [late, capa]
    assert await ids("?mine=true") == [capa]
    assert await ids("?my_roles=true") == [late]
    assert await ids("?overdue=true") == [late]
    assert await ids("?process=capa") == [capa]
    assert await ids("", "init") == []
    r = await client.get("/api/tasks?process=nonsense", headers=who("mgr1"))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "process"
    r = await client.get("/api/tasks?overdue=maybe", headers=who("mgr1"))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "overdue"
    one = (await client.get(f"/api/tasks/{late}", headers=who("mgr1"))).json()
    assert one["overdue"] is True and one["actions"] == ["claim", "delegate", "sign"]


async def test_out_of_office_sends_tasks_to_the_deputy(api):
    client, store = api
    now = datetime.now(UTC)
    period = {"deputy": "mgr2", "starts_at": (now - timedelta(hours=1)).isoformat(), "reason": "leave"}
    r = await client.post(
        "/api/tasks/out-of-office",
        json=period | {"ends_at": (now - timedelta(hours=2)).isoformat()},
        headers=who("mgr1"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "ends_at"
    r = await client.post(
        "/api/tasks/out-of-office",
        json=period | {"ends_at": "2030-01-01T00:00:00"},  # no time zone
        headers=who("mgr1"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "ends_at"
    r = await client.post(
        "/api/tasks/out-of-office",
        json=period | {"deputy": "ghost", "ends_at": (now + timedelta(days=3)).isoformat()},
        headers=who("mgr1"),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "deputy"
    ok = period | {"ends_at": (now + timedelta(days=3)).isoformat()}
    r = await client.post("/api/tasks/out-of-office", json=ok, headers=who("mgr1"))
    assert r.status_code == 201, r.text
    absence = r.json()
    r = await client.post("/api/tasks/out-of-office", json=ok, headers=who("mgr1"))
    assert r.status_code == 409 and "already out of office" in reason(r)
    tid = await add_task(store, "for-mgr1", assignee="mgr1")
    mine = (await client.get("/api/tasks?mine=true", headers=who("mgr2"))).json()
    assert [(t["id"], t["assignee"], t["deputy_for"]) for t in mine] == [(tid, "mgr2", "mgr1")]
    listed = (await client.get("/api/tasks/out-of-office", headers=who("mgr2"))).json()
    assert [a["id"] for a in listed] == [absence["id"]]  # the deputy sees the period they stand in for
    r = await client.delete(f"/api/tasks/out-of-office/{absence['id']}", headers=who("mgr2"))
    assert r.status_code == 404  # only the absent person ends their period
    r = await client.delete(f"/api/tasks/out-of-office/{absence['id']}", headers=who("mgr1"))
    assert r.status_code == 200 and r.json()["cancelled_at"]
