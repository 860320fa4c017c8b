"""The task page's actions (claim, release, delegate, report done) and the out-of-office page, over HTTP
against the real app: each goes through the task API's own handler, a refusal is shown on the page and
changes nothing."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from domain.capa.service import create_capa
from domain.enums import Role
from domain.tasks.models import Absence, Signature
from domain.tasks.payloads import TaskStatus
from domain.tasks.service import get_task
from domain.users import create_user, set_active
from tests.api.test_pages import CHEAP, PASSWORD, _csrf, _task, sign_in


async def _user(sqlite_store, name: str, roles: list[Role]) -> None:
    async with sqlite_store.sessions() as s, s.begin():
        await create_user(
            s, username=name, full_name=name.upper(), roles=roles, password=PASSWORD, password_hasher=CHEAP
        )


async def _row(sqlite_store, task_id: int):
    async with sqlite_store.sessions() as s:
        return await get_task(s, task_id)


async def test_claim_then_release_from_the_task_page(pages, sqlite_store):
    _app, client = pages
    task_id = await _task(sqlite_store)
    await sign_in(client, "mgr1")
    page = await client.get(f"/tasks/{task_id}")
    assert f'action="/tasks/{task_id}/claim"' in page.text
    assert f'action="/tasks/{task_id}/release"' not in page.text  # not claimed: nothing to release

    r = await client.post(f"/tasks/{task_id}/claim", data={"csrf_token": _csrf(page.text)})
    assert r.status_code == 303 and r.headers["location"] == f"/tasks/{task_id}"
    assert (await _row(sqlite_store, task_id)).assignee == "mgr1"
    page = await client.get(f"/tasks/{task_id}")
    assert "You claimed this task." in page.text and "Claimed by mgr1." in page.text
    assert f'action="/tasks/{task_id}/claim"' not in page.text
    assert f'action="/tasks/{task_id}/release"' in page.text

    # Another candidate may not take it now: the task service's 409, shown on the page; nothing changes.
    await _user(sqlite_store, "mgr2", [Role.qa_manager])
    client.cookies.clear()
    await sign_in(client, "mgr2")
    theirs = await client.get(f"/tasks/{task_id}")
    assert f'action="/tasks/{task_id}/claim"' not in theirs.text
    again = await client.post(f"/tasks/{task_id}/claim", data={"csrf_token": _csrf(theirs.text)})
    assert again.status_code == 409 and f"task {task_id} is claimed by mgr1" in again.text
    assert "The task was not changed" in again.text
    assert (await _row(sqlite_store, task_id)).assignee == "mgr1"

    client.cookies.clear()
    await sign_in(client, "mgr1")
    page = await client.get(f"/tasks/{task_id}")
    r = await client.post(f"/tasks/{task_id}/release", data={"csrf_token": _csrf(page.text)})
    assert r.status_code == 303
    assert (await _row(sqlite_store, task_id)).assignee is None
    assert "You released this task." in (await client.get(f"/tasks/{task_id}")).text

    # Someone without a candidate role sees no claim button and is refused if they post anyway.
    client.cookies.clear()
    await sign_in(client, "rel1")
    other = await client.get(f"/tasks/{task_id}")
    assert f'action="/tasks/{task_id}/claim"' not in other.text
    refused = await client.post(f"/tasks/{task_id}/claim", data={"csrf_token": _csrf(other.text)})
    assert refused.status_code == 403 and "claiming this task needs the role qa_manager" in refused.text
    assert (await _row(sqlite_store, task_id)).assignee is None


async def test_delegate_to_an_eligible_person_and_refused_for_an_ineligible_one(pages, sqlite_store):
    _app, client = pages
    await _user(sqlite_store, "mgr2", [Role.qa_manager])
    await _user(sqlite_store, "gone", [Role.qa_manager])
    async with sqlite_store.sessions() as s, s.begin():
        await set_active(s, username="gone", active=False)
    task_id = await _task(sqlite_store)  # for qa_manager; qa1 initiated the record
    await sign_in(client, "mgr1")
    page = await client.get(f"/tasks/{task_id}")
    # The select offers active candidates other than me, never the initiator nor someone inactive.
    assert '<option value="mgr2">' in page.text
    for absent in ("mgr1", "qa1", "rel1", "gone"):
        assert f'<option value="{absent}"' not in page.text
    token = _csrf(page.text)

    refused = await client.post(
        f"/tasks/{task_id}/delegate", data={"csrf_token": token, "to": "rel1", "reason": "on leave"}
    )
    assert refused.status_code == 422
    assert "rel1 holds none of the roles this task needs (qa_manager)" in html.unescape(refused.text)
    assert 'aria-invalid="true" aria-describedby="delegate-to-error"' in refused.text
    assert ">on leave</textarea>" in refused.text  # what was typed is kept
    no_reason = await client.post(f"/tasks/{task_id}/delegate", data={"csrf_token": token, "to": "mgr2"})
    assert no_reason.status_code == 422 and 'id="delegate-reason-error"' in no_reason.text
    assert (await _row(sqlite_store, task_id)).assignee is None

    r = await client.post(
        f"/tasks/{task_id}/delegate", data={"csrf_token": token, "to": "mgr2", "reason": "on leave"}
    )
    assert r.status_code == 303
    row = await _row(sqlite_store, task_id)
    assert (row.assignee, row.delegated_by, row.delegation_reason) == ("mgr2", "mgr1", "on leave")
    page = await client.get(f"/tasks/{task_id}")
    assert "The task was delegated." in page.text and "Delegated by mgr1: on leave" in page.text


async def _filing(sqlite_store) -> int:
    async with sqlite_store.sessions() as s, s.begin():
        capa = await create_capa(
            s,
            source="complaint",
            source_reference="CMP-1",
            title="Seal leaks",
            description="d",
            owner="qa1",
            initiated_by="qa1",
        )
        capa_id = capa.id
    task_id = await _task(
        sqlite_store,
        kind="file:mdr",
        title="File the MDR report",
        record_id=capa_id,
        business_key=f"capa-{capa_id}-mdr",
        workflow_id=None,
        details={},
    )
    async with sqlite_store.sessions() as s, s.begin():  # opened an hour ago
        (await get_task(s, task_id)).created_at = datetime.now(UTC) - timedelta(hours=1)
    return task_id


async def _signatures(sqlite_store) -> int:
    async with sqlite_store.sessions() as s:
        return await s.scalar(select(func.count()).select_from(Signature))


async def test_report_a_filing_done_with_its_reference_under_the_persons_signature(pages, sqlite_store):
    _app, client = pages
    task_id = await _filing(sqlite_store)
    await sign_in(client, "mgr1")
    page = await client.get(f"/tasks/{task_id}")
    assert f'action="/tasks/{task_id}/complete"' in page.text
    assert 'name="reference"' in page.text and "meaning “authored”" in page.text
    token = _csrf(page.text)
    before = await _signatures(sqlite_store)

    no_ref = await client.post(
        f"/tasks/{task_id}/complete", data={"csrf_token": token, "password": PASSWORD, "reference": " "}
    )
    assert no_ref.status_code == 422 and 'id="complete-reference-error"' in no_ref.text
    assert "needs its reference" in no_ref.text
    wrong = await client.post(
        f"/tasks/{task_id}/complete",
        data={"csrf_token": token, "password": "wrong", "reference": "MDR-123", "note": "by portal"},
    )
    assert wrong.status_code == 401 and "the password is wrong" in wrong.text
    assert 'value="MDR-123"' in wrong.text  # kept; the password is not
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    later = await client.post(
        f"/tasks/{task_id}/complete",
        data={"csrf_token": token, "password": PASSWORD, "reference": "MDR-123", "done_at": future},
    )
    assert later.status_code == 422 and "done in the future" in later.text
    row = await _row(sqlite_store, task_id)
    assert row.status == TaskStatus.open and await _signatures(sqlite_store) == before

    done_at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    r = await client.post(
        f"/tasks/{task_id}/complete",
        data={
            "csrf_token": token,
            "password": PASSWORD,
            "reference": "MDR-123",
            "note": "by portal",
            "done_at": done_at.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert r.status_code == 303
    row = await _row(sqlite_store, task_id)
    assert row.status == TaskStatus.completed and row.completed_by == "mgr1"
    assert row.completed_at.replace(tzinfo=UTC) == done_at  # read as UTC, as the form says
    assert await _signatures(sqlite_store) == before + 1
    page = await client.get(f"/tasks/{task_id}")
    assert "Reported done and signed." in page.text and "filed (MDR-123): by portal" in page.text
    assert f'action="/tasks/{task_id}/complete"' not in page.text


async def test_set_and_cancel_out_of_office(pages, sqlite_store):
    _app, client = pages
    await sign_in(client, "mgr1")
    page = await client.get("/out-of-office")
    assert page.status_code == 200 and 'href="/out-of-office"' in page.text  # in the header
    assert '<option value="qa1">' in page.text and '<option value="mgr1">' not in page.text
    token = _csrf(page.text)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=1)
    end = start + timedelta(days=3)
    fmt = "%Y-%m-%dT%H:%M"

    backwards = await client.post(
        "/out-of-office",
        data={
            "csrf_token": token,
            "deputy": "qa1",
            "starts_at": end.strftime(fmt),
            "ends_at": start.strftime(fmt),
        },
    )
    assert backwards.status_code == 422 and 'id="ooo-ends_at-error"' in backwards.text
    assert "the period must end after it starts" in backwards.text
    async with sqlite_store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Absence)) == 0

    r = await client.post(
        "/out-of-office",
        data={
            "csrf_token": token,
            "deputy": "qa1",
            "starts_at": start.strftime(fmt),
            "ends_at": end.strftime(fmt),
            "reason": "conference",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/out-of-office"
    async with sqlite_store.sessions() as s:
        absence = await s.scalar(select(Absence))
    assert (absence.username, absence.deputy, absence.reason) == ("mgr1", "qa1", "conference")
    assert absence.starts_at.replace(tzinfo=UTC) == start
    page = await client.get("/out-of-office")
    assert "Out of office set." in page.text and "conference" in page.text
    assert f'action="/out-of-office/{absence.id}/cancel"' in page.text

    # The deputy sees whom they stand in for, and cannot cancel it.
    client.cookies.clear()
    await sign_in(client, "qa1")
    theirs = await client.get("/out-of-office")
    assert "I stand in for" in theirs.text and "<td>mgr1</td>" in theirs.text
    assert f'action="/out-of-office/{absence.id}/cancel"' not in theirs.text
    refused = await client.post(
        f"/out-of-office/{absence.id}/cancel", data={"csrf_token": _csrf(theirs.text)}
    )
    assert refused.status_code == 404

    client.cookies.clear()
    await sign_in(client, "mgr1")
    page = await client.get("/out-of-office")
    r = await client.post(f"/out-of-office/{absence.id}/cancel", data={"csrf_token": _csrf(page.text)})
    assert r.status_code == 303
    async with sqlite_store.sessions() as s:
        assert (await s.get(Absence, absence.id)).cancelled_at is not None
    page = await client.get("/out-of-office")
    assert "Out of office cancelled." in page.text and "You have no period out of office set." in page.text


async def test_the_pages_speak_chinese(pages, sqlite_store):
    _app, client = pages
    task_id = await _task(sqlite_store)
    client.headers["Accept-Language"] = "zh-CN"
    await sign_in(client, "mgr1")
    assert "认领" in (await client.get(f"/tasks/{task_id}")).text
    assert "设置外出时段" in (await client.get("/out-of-office")).text
