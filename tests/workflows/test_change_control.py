"""ChangeControlWorkflow on the time-skipping test server, with the real store and API: impact on lots in
stock and delivered, approvals by every role in parallel (required / optional / comment-only) through the
one sign-off mechanism, rejection and a second round, separation of duties, implementation tasks with a
batched overdue escalation, verification and rework, the effective-date timer bringing a document
version into force, withdrawal, and the release gate ``open_changes_blocking_release``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from api.security import Principal, issue_token
from domain.changes import policy
from domain.changes import service as changes
from domain.changes.models import ChangeApproval, ChangeRequest, ChangeTask, DocumentVersion
from domain.changes.payloads import ChangeOutcome, ChangeStatus, DocumentStatus
from domain.enums import Role
from domain.models import Product
from domain.tasks.models import Signature, Task
from domain.tasks.payloads import SignatureMeaning, SignOff, SignOffResult, TaskStatus
from domain.users import create_user
from tests.workflows.conftest import ON_BOTH_DATABASES, PASSWORD, build_world, outcome_of, wait_for

pytestmark = pytest.mark.temporal


def token(stack, username: str, *roles: Role) -> dict[str, str]:
    t = issue_token(
        Principal(username=username, full_name=username.upper(), roles=list(roles)),
        secret=stack.settings.secret_key,
        minutes=30,
    )
    return {"Authorization": f"Bearer {t}"}


USERS = {
    "qa1": (Role.qa,),
    "qa2": (Role.qa,),
    "mgr1": (Role.qa_manager,),
    "reg1": (Role.regulatory,),
    "qamgr": (Role.qa, Role.qa_manager),
    "prod1": (Role.production,),
    "rel1": (Role.releaser,),
    "boss": (Role.qa_manager, Role.regulatory),
}


async def setup(stack) -> None:
    """The recall world (PUMP lots P-100 and P-101 in stock and shipped), more users, and SOP-7 v1."""
    await build_world(stack.sessions)
    async with stack.sessions() as s, s.begin():
        for name in ("qa2", "prod1", "rel1", "boss"):
            await create_user(s, username=name, full_name=name.upper(), roles=USERS[name], password=PASSWORD)
        await changes.register_document(
            s, code="SOP-7", title="Final inspection", version="1", effective_from=date(2025, 1, 1)
        )


async def call(stack, method: str, path: str, user: str, **kw) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        return await http.request(method, path, headers=token(stack, user, *USERS[user]), **kw)


async def sign(
    stack, task_id: int, user: str, decision: str = "approved", reason: str = ""
) -> httpx.Response:
    return await call(
        stack,
        "POST",
        f"/api/tasks/{task_id}/sign",
        user,
        json={"password": PASSWORD, "decision": decision, "reason": reason},
    )


def today() -> date:
    return policy.site_date(datetime.now(UTC))


async def create(stack, user: str, **body) -> dict:
    r = await call(stack, "POST", "/api/changes", user, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def tasks_of(stack, change_id: int, *kinds: str, round_: int | None = None, n: int = 1) -> list[Task]:
    """Wait until ``n`` open tasks of these kinds (of this approval round) exist on the change."""

    async def found(s):
        rows = list(
            await s.scalars(
                select(Task)
                .where(
                    Task.record_type == "change",
                    Task.record_id == change_id,
                    Task.kind.in_(kinds),
                    Task.status == TaskStatus.open,
                )
                .order_by(Task.id)
            )
        )
        rows = [t for t in rows if round_ is None or t.details.get("round") == round_]
        return rows if len(rows) >= n else None

    return await wait_for(found, stack)


async def until(stack, handle, predicate) -> dict:
    """Poll the workflow's status query until ``predicate(state)`` holds (what it accepts right now)."""

    async def holds(_s):
        state = await handle.query("status")
        return state if predicate(state) else None

    return await wait_for(holds, stack)


async def assessing(stack, handle, change_id: int, kind: str = "assess_change") -> Task:
    """The open impact task, once the workflow accepts the submission."""
    (task,) = await tasks_of(stack, change_id, kind)
    await until(stack, handle, lambda st: st["impact_task"] == task.id)
    return task


async def verifying(stack, handle, change_id: int) -> Task:
    """The open verification task, once the workflow accepts its sign-off."""
    (task,) = await tasks_of(stack, change_id, "verify_change")
    await until(stack, handle, lambda st: st["verify_task"] == task.id and st["status"] == "verifying")
    return task


async def implementing(stack, handle, change_id: int) -> list[ChangeTask]:
    """The open implementation tasks, once the workflow accepts their completion."""
    await until(stack, handle, lambda st: st["status"] == "implementing" and st["open_tasks"])
    async with stack.sessions() as s:
        rows = list(
            await s.scalars(
                select(ChangeTask)
                .where(ChangeTask.change_id == change_id, ChangeTask.status == "open")
                .order_by(ChangeTask.seq)
            )
        )
    return rows


async def approvals(stack, handle, change_id: int, n: int, round_: int = 1) -> list[Task]:
    """The approval tasks of a round, once the workflow has published them for sign-off."""

    await until(stack, handle, lambda st: st["round"] == round_ and len(st["approval_tasks"]) == n)
    return await tasks_of(stack, change_id, "approve_change", "comment_change", round_=round_, n=n)


async def status_is(stack, change_id: int, status: ChangeStatus) -> ChangeRequest:
    async def reached(s):
        c = await s.get(ChangeRequest, change_id)
        await s.refresh(c)
        return c if c.status == status else None

    return await wait_for(reached, stack)


async def submit(stack, change_id: int, user: str, tasks: list[dict], **more) -> httpx.Response:
    body = {
        "risk_assessment": "Reviewed against the risk file",
        "risk_rating": "medium",
        "tasks": tasks,
    } | more
    return await call(stack, "POST", f"/api/changes/{change_id}/impact", user, json=body)


def plan(*owners: str, due: date | None = None) -> list[dict]:
    due = due or today() + timedelta(days=5)
    return [{"title": f"Task for {o}", "owner": o, "due_on": due.isoformat()} for o in owners]


async def in_force(stack, code: str, on: date) -> str | None:
    async with stack.sessions() as s:
        v = await changes.version_in_force(s, document_code=code, on=on)
        return v.version if v else None


@ON_BOTH_DATABASES
async def test_parallel_approvals_by_role_then_implementation_verification_and_closure(recall_stack):
    stack = recall_stack
    await setup(stack)
    async with stack.sessions() as s:
        pump = await s.scalar(select(Product.id).where(Product.code == "PUMP"))
    created = await create(
        stack,
        "qamgr",
        kind="design",
        title="Softer seal compound",
        description="Seal compound from 60 to 50 Shore A",
        product_codes=["PUMP"],
        blocks_release=True,
        documents=[{"code": "SOP-7", "version": "2"}],
    )
    cid, ref = created["id"], created["reference"]
    assert ref.startswith(f"CHG-{datetime.now(UTC).year}-") and created["workflow_id"] == f"change-{cid}"
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    async with stack.sessions() as s:
        assert await changes.open_changes_blocking_release(s, product_id=pump) == [ref]

    # Impact: computed from the store before anyone approves (ISO 13485 7.3.9).
    assess = await assessing(stack, handle, cid)
    assert assess.assignee == "qamgr" and assess.workflow_id is None
    r = await call(stack, "GET", f"/api/changes/{cid}", "rel1")
    impact = r.json()["impact"]
    assert (impact["lots_in_stock"], impact["units_on_hand"]) == (2, 80)
    assert (impact["lots_delivered"], impact["units_delivered"], impact["consignees"]) == (2, 34, 3)
    assert {(x["lot_number"], x["shipped"], x["consignees"]) for x in impact["delivered"]} == {
        ("P-100", 30, 3),
        ("P-101", 4, 1),
    }
    assert impact["documents"][0]["in_force_version"] == "1"

    assert (await submit(stack, cid, "rel1", plan("prod1"))).status_code == 403  # role not admitted
    refused = await submit(stack, cid, "prod1", plan("prod1"))
    assert refused.status_code == 409 and "initiator" in refused.json()["detail"][0]["reason"]
    ok = await submit(stack, cid, "qamgr", plan("prod1", "qa2"))
    assert ok.status_code == 200, ok.text

    tasks = await approvals(stack, handle, cid, 4)
    by_role = {t.candidate_roles[0]: t for t in tasks}
    assert set(by_role) == {"qa_manager", "regulatory", "production", "releaser"}
    assert all(t.excluded_users == ["qamgr"] for t in tasks)
    async with stack.sessions() as s:
        reqs = {
            a.role: a.requirement.value
            for a in await s.scalars(select(ChangeApproval).where(ChangeApproval.change_id == cid))
        }
    assert reqs == {
        "qa_manager": "required",
        "regulatory": "required",
        "production": "optional",
        "releaser": "comment_only",
    }

    # The initiator may not approve, whatever roles they hold.
    r = await sign(stack, by_role["qa_manager"].id, "qamgr")
    assert r.status_code == 409 and "separation of duties" in r.json()["detail"][0]["reason"]
    # Comment-only may only comment.
    r = await sign(stack, by_role["releaser"].id, "rel1")
    assert r.status_code == 409 and "may only comment" in r.json()["detail"][0]["reason"]
    r = await call(
        stack,
        "POST",
        f"/api/changes/{cid}/comments",
        "rel1",
        json={
            "task_id": by_role["releaser"].id,
            "password": PASSWORD,
            "comment": "Release checklist needs a line",
        },
    )
    assert r.status_code == 200 and r.json()["meaning"] == "reviewed", r.text
    # Optional approves; one person decides one role of a round.
    assert (await sign(stack, by_role["production"].id, "prod1")).status_code == 200
    assert (await sign(stack, by_role["qa_manager"].id, "boss")).status_code == 200
    r = await sign(stack, by_role["regulatory"].id, "boss")
    assert r.status_code == 409 and "different person" in r.json()["detail"][0]["reason"]
    assert (await handle.query("status"))["status"] == "awaiting_approval"  # a required role is still open
    assert (await sign(stack, by_role["regulatory"].id, "reg1")).status_code == 200

    impl = await implementing(stack, handle, cid)
    assert [(t.owner, t.status.value) for t in impl] == [("prod1", "open"), ("qa2", "open")]
    async with stack.sessions() as s:
        inbox = await s.get(Task, impl[0].inbox_task_id)
        assert inbox.assignee == "prod1" and inbox.status == TaskStatus.open
    r = await call(stack, "POST", f"/api/changes/{cid}/tasks/{impl[0].id}/complete", "reg1", json={})
    assert r.status_code == 409 and "belongs to prod1" in r.json()["detail"][0]["reason"]
    assert (
        await call(stack, "POST", f"/api/changes/{cid}/tasks/999999/complete", "prod1", json={})
    ).status_code == 404
    r = await call(
        stack, "POST", f"/api/changes/{cid}/tasks/{impl[0].id}/complete", "prod1", json={"note": "done"}
    )
    assert r.status_code == 200 and r.json()["remaining"] == 1, r.text
    # qa2 is out of office: reg1, their deputy, finishes their task (refused just before, as above).
    now = datetime.now(UTC)
    r = await call(
        stack,
        "POST",
        "/api/tasks/out-of-office",
        "qa2",
        json={
            "deputy": "reg1",
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(days=3)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    r = await call(stack, "POST", f"/api/changes/{cid}/tasks/{impl[1].id}/complete", "reg1", json={})
    assert r.status_code == 200 and r.json()["remaining"] == 0, r.text

    verify = await verifying(stack, handle, cid)
    assert verify.candidate_roles == ["qa"]
    r = await sign(stack, verify.id, "qamgr")
    assert r.status_code == 409 and "separation of duties" in r.json()["detail"][0]["reason"]
    assert (await sign(stack, verify.id, "qa1")).status_code == 200

    outcome = ChangeOutcome.model_validate(await outcome_of(handle))
    assert outcome.status == ChangeStatus.closed and outcome.rounds == 1
    assert outcome.effective_on is not None
    day = outcome.effective_on
    assert await in_force(stack, "SOP-7", day) == "2"
    assert await in_force(stack, "SOP-7", day - timedelta(days=1)) == "1"
    r = await call(
        stack, "GET", "/api/documents/SOP-7/in-force", "prod1", params={"on": str(day - timedelta(days=1))}
    )
    assert r.status_code == 200 and r.json()["version"] == "1" and r.json()["change_reference"] is None
    r = await call(stack, "GET", "/api/documents/SOP-7/in-force", "prod1", params={"on": str(day)})
    assert r.json()["version"] == "2" and r.json()["change_reference"] == ref
    async with stack.sessions() as s:
        assert await changes.open_changes_blocking_release(s, product_id=pump) == []
    full = (await call(stack, "GET", f"/api/changes/{cid}", "qa1")).json()
    assert full["status"] == "closed" and full["open_tasks"] == []
    assert {(a["role"], a["decision"], a["decided_by"]) for a in full["approvals"]} == {
        ("qa_manager", "approved", "boss"),
        ("regulatory", "approved", "reg1"),
        ("production", "approved", "prod1"),
        ("releaser", "reviewed", "rel1"),
    }
    assert sorted((g["signer"], g["meaning"]) for g in full["signatures"]) == [
        ("boss", "approved"),
        ("prod1", "approved"),
        ("qa1", "approved"),  # the verification
        ("reg1", "approved"),
        ("rel1", "reviewed"),
    ]
    assert all(len(g["record_hash"]) == 64 for g in full["signatures"])


async def test_a_rejection_returns_it_with_reasons_and_the_next_round_completes(recall_stack):
    stack = recall_stack
    await setup(stack)
    created = await create(
        stack,
        "qa1",
        kind="document",
        title="New work instruction WI-9",
        description="Visual check of the seal",
        documents=[{"code": "WI-9", "version": "A", "title": "Seal visual check"}],
    )
    cid = created["id"]
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    await assessing(stack, handle, cid)
    assert (await submit(stack, cid, "qa1", plan("prod1"))).status_code == 200
    first = await approvals(stack, handle, cid, 2)
    by_role = {t.candidate_roles[0]: t for t in first}
    assert set(by_role) == {"qa_manager", "regulatory"}  # a document change: regulatory comments only

    r = await sign(stack, by_role["qa_manager"].id, "mgr1", "rejected")
    assert r.status_code == 409 and "needs a reason" in r.json()["detail"][0]["reason"]
    r = await sign(stack, by_role["qa_manager"].id, "mgr1", "rejected", "Training records are missing")
    assert r.status_code == 200, r.text

    change = await status_is(stack, cid, ChangeStatus.returned)
    assert change.returned_reasons == ["qa_manager (MGR1): Training records are missing"]
    revise = await assessing(stack, handle, cid, "revise_change")
    assert revise.assignee == "qa1" and "Training records are missing" in revise.title
    async with stack.sessions() as s:
        lapsed = await s.get(Task, by_role["regulatory"].id)
        assert lapsed.status == TaskStatus.cancelled  # the round's undecided task ends with it
    r = await call(
        stack,
        "POST",
        f"/api/changes/{cid}/comments",
        "reg1",
        json={"task_id": by_role["regulatory"].id, "password": PASSWORD, "comment": "late"},
    )
    assert r.status_code == 409 and "round 1" in r.json()["detail"][0]["reason"]

    ok = await submit(stack, cid, "qa1", plan("prod1", "qa2"), risk_rating="low")
    assert ok.status_code == 200, ok.text
    second = await approvals(stack, handle, cid, 2, round_=2)
    assert not {t.id for t in second} & {t.id for t in first}
    approver = next(t for t in second if t.candidate_roles == ["qa_manager"])
    assert (await sign(stack, approver.id, "mgr1")).status_code == 200

    impl = await implementing(stack, handle, cid)
    assert [t.owner for t in impl] == ["prod1", "qa2"]  # the revised plan replaced the first one
    for t in impl:
        r = await call(stack, "POST", f"/api/changes/{cid}/tasks/{t.id}/complete", t.owner, json={})
        assert r.status_code == 200, r.text

    # Verification fails once: rework for the requester, then a new verification.
    verify = await verifying(stack, handle, cid)
    assert (
        await sign(stack, verify.id, "qa2", "rejected", "WI-9 is not posted at the line")
    ).status_code == 200
    (rework,) = await tasks_of(stack, cid, "rework_change")
    await until(stack, handle, lambda st: st["status"] == "implementing" and st["open_tasks"])
    assert rework.assignee == "qa1" and "not posted" in rework.title
    rework_row = rework.details["change_task_id"]
    r = await call(
        stack, "POST", f"/api/changes/{cid}/tasks/{rework_row}/complete", "qa1", json={"note": "posted"}
    )
    assert r.status_code == 200, r.text
    verify2 = await verifying(stack, handle, cid)
    assert verify2.id != verify.id
    assert (await sign(stack, verify2.id, "qa2")).status_code == 200

    outcome = ChangeOutcome.model_validate(await outcome_of(handle))
    assert outcome.status == ChangeStatus.closed and outcome.rounds == 2
    assert await in_force(stack, "WI-9", outcome.effective_on) == "A"
    full = (await call(stack, "GET", f"/api/changes/{cid}", "qa1")).json()
    assert [(a["round"], a["role"], a["decision"]) for a in full["approvals"]] == [
        (1, "qa_manager", "rejected"),
        (1, "regulatory", None),
        (2, "qa_manager", "approved"),
        (2, "regulatory", None),
    ]
    assert full["approvals"][0]["comment"] == "Training records are missing"


async def test_overdue_tasks_escalate_in_one_batch_and_the_effective_date_timer_brings_the_version_in(
    recall_stack, time_env
):
    stack = recall_stack
    await setup(stack)
    effective = today() + timedelta(days=20)
    created = await create(
        stack,
        "qa1",
        kind="document",
        title="SOP-7 revision 2",
        description="Adds a leak test",
        documents=[{"code": "SOP-7", "version": "2"}],
        effective_on=effective.isoformat(),
    )
    cid = created["id"]
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    await assessing(stack, handle, cid)
    due = today() + timedelta(days=1)
    assert (await submit(stack, cid, "qa1", plan("prod1", "qa2", due=due))).status_code == 200
    approver = next(t for t in await approvals(stack, handle, cid, 2) if t.kind == "approve_change")
    signed = await handle.execute_update(
        "sign_off",
        SignOff(
            task_id=approver.id,
            username="mgr1",
            printed_name="MGR1",
            roles=["qa_manager"],
            meaning="approved",
        ),
        result_type=SignOffResult,
    )
    assert signed.meaning == SignatureMeaning.approved
    await implementing(stack, handle, cid)

    # Both tasks are due at the end of tomorrow at the site: reminded at due, escalated 2 days later.
    await time_env.sleep(timedelta(days=5))

    async def escalated(s):
        rows = list(await s.scalars(select(ChangeTask).where(ChangeTask.change_id == cid)))
        for r in rows:
            await s.refresh(r)
        return rows if all(r.escalation_level == 2 for r in rows) else None

    rows = await wait_for(escalated, stack)
    async with stack.sessions() as s:
        for r in rows:
            inbox = await s.get(Task, r.inbox_task_id)
            assert inbox.reminders_sent == 2 and inbox.escalated_to == ["qa_manager"]
            assert r.overdue_since == policy.end_of_site_day(due)
    history = await handle.fetch_history()
    escalations = [
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "change.escalate_overdue"
    ]
    assert len(escalations) == 2  # one per rung for both tasks together, not one per task
    view = (await call(stack, "GET", f"/api/changes/{cid}", "qa1")).json()
    assert [t["escalation_level"] for t in view["tasks"]] == [2, 2]  # shown on the record

    for r in rows:
        resp = await call(stack, "POST", f"/api/changes/{cid}/tasks/{r.id}/complete", r.owner, json={})
        assert resp.status_code == 200, resp.text
    verify = await verifying(stack, handle, cid)
    assert (await sign(stack, verify.id, "qa2")).status_code == 200
    await status_is(stack, cid, ChangeStatus.awaiting_effective)
    assert await in_force(stack, "SOP-7", effective) == "1"  # approved and verified, not yet in force

    await time_env.sleep(timedelta(days=16))
    change = await status_is(stack, cid, ChangeStatus.closed)
    assert change.became_effective_on == effective
    assert await in_force(stack, "SOP-7", effective) == "2"
    assert await in_force(stack, "SOP-7", effective - timedelta(days=1)) == "1"
    outcome = ChangeOutcome.model_validate(await outcome_of(handle))
    assert outcome.effective_on == effective


async def test_withdrawal_needs_the_initiator_or_a_manager_and_ends_the_release_block(recall_stack):
    stack = recall_stack
    await setup(stack)
    async with stack.sessions() as s:
        pump = await s.scalar(select(Product.id).where(Product.code == "PUMP"))
    created = await create(
        stack,
        "qa1",
        kind="supplier",
        title="Second resin supplier",
        description="Qualify a second source",
        product_codes=["PUMP", "RESIN"],
        blocks_release=True,
        documents=[{"code": "SPEC-2", "version": "1", "title": "Resin specification"}],
    )
    cid, ref = created["id"], created["reference"]
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    await assessing(stack, handle, cid)
    async with stack.sessions() as s:
        assert await changes.open_changes_blocking_release(s, product_id=pump) == [ref]

    body = {"password": PASSWORD, "justification": "Supplier withdrew its offer"}
    r = await call(stack, "POST", f"/api/changes/{cid}/withdraw", "reg1", json=body)
    assert r.status_code == 409 and "initiator" in r.json()["detail"][0]["reason"]
    r = await call(stack, "POST", f"/api/changes/{cid}/withdraw", "qa1", json=body | {"password": "wrong"})
    assert r.status_code == 401 and r.json()["detail"][0]["field"] == "password"
    r = await call(stack, "POST", f"/api/changes/{cid}/withdraw", "qa1", json=body)
    assert r.status_code == 200, r.text

    outcome = ChangeOutcome.model_validate(await outcome_of(handle))
    assert outcome.status == ChangeStatus.withdrawn
    async with stack.sessions() as s:
        assert await changes.open_changes_blocking_release(s, product_id=pump) == []
        change = await s.get(ChangeRequest, cid)
        assert change.closure_note == "Supplier withdrew its offer" and change.closed_at is not None
        sig = await s.scalar(
            select(Signature).where(Signature.record_type == "change", Signature.record_id == cid)
        )
        assert (sig.signer, sig.meaning) == ("qa1", SignatureMeaning.cancelled)
        open_tasks = list(
            await s.scalars(
                select(Task).where(Task.record_id == cid, Task.record_type == "change", Task.status == "open")
            )
        )
        assert open_tasks == []
        draft = await s.scalar(select(DocumentVersion).where(DocumentVersion.change_id == cid))
        assert draft.status == DocumentStatus.withdrawn
    r = await call(stack, "POST", f"/api/changes/{cid}/withdraw", "qa1", json=body)
    assert r.status_code == 409
