"""CapaWorkflow on the time-skipping test server, driven through the HTTP API with the real store:
initiation → investigation → plan approval (separation of duties) → parallel actions (overdue ladder in
batch) → the durable effectiveness timer → verification (ineffective: a new cycle) → closure sign-off;
and a CAPA opened from a recall, shown on the recall and its summary."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from domain.capa.models import Capa, CapaAction
from domain.capa.payloads import CapaOutcome, CapaStatus
from domain.enums import Role
from domain.models import User
from domain.recalls.models import Notice, RecallReport
from domain.recalls.payloads import RecallOutcome, RecallStatus
from domain.tasks.models import Signature, Task
from domain.users import hash_password
from tests.workflows.conftest import ON_BOTH_DATABASES, PASSWORD, build_world, outcome_of, wait_for
from tests.workflows.test_recall_workflow import acknowledge_all, approval_task, post_recall, token
from workflows import names
from workflows.capa import CapaWorkflow

pytestmark = pytest.mark.temporal

# Who plays which part: owners of actions need no QA role.
QA = ("qa1", Role.qa)
MANAGER = ("mgr1", Role.qa_manager)
QA_AND_MANAGER = ("qamgr", Role.qa, Role.qa_manager)
PROD1 = ("prod1", Role.production)
PROD2 = ("prod2", Role.production)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return hash_password(PASSWORD)  # argon2 is slow on purpose: hash the shared test password once


async def add_people(stack) -> None:
    """QA, a QA manager, regulatory affairs, someone with both QA roles, and two production engineers
    who own actions (owners need no QA role)."""
    digest = await asyncio.to_thread(_password_hash)
    async with stack.sessions() as s, s.begin():
        for name, roles in (
            ("qa1", [Role.qa]),
            ("mgr1", [Role.qa_manager]),
            ("reg1", [Role.regulatory]),
            ("qamgr", [Role.qa, Role.qa_manager]),
            ("prod1", [Role.production]),
            ("prod2", [Role.production]),
        ):
            s.add(User(username=name, full_name=name.upper(), password_hash=digest, roles=roles, active=True))


async def call(stack, method: str, path: str, who: tuple, json: dict | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        return await http.request(method, path, json=json, headers=token(stack, *who))


async def sign(
    stack, task_id: int, who: tuple, decision: str = "approved", reason: str = ""
) -> httpx.Response:
    return await call(
        stack,
        "POST",
        f"/api/tasks/{task_id}/sign",
        who,
        {"password": PASSWORD, "decision": decision, "reason": reason},
    )


def due(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


async def create_capa(stack, who: tuple = QA, **body) -> dict:
    payload = {
        "source": "complaint",
        "source_reference": "CMP-2026-114",
        "title": "Seal leaks on infusion pump housings",
        "description": "Three complaints of leaking seals on lot P-100",
        "owner": "prod1",
        "effectiveness_criteria": "No leak complaint on lots made after the change for the period",
        **body,
    }
    r = await call(stack, "POST", "/api/capas", who, payload)
    assert r.status_code == 201, r.text
    return r.json()


async def open_task(stack, capa_id: int, kind: str, *, count: int = 1) -> list[Task]:
    """Wait until ``count`` open tasks of this kind exist on the CAPA; return them, oldest first."""

    async def find(s):
        rows = list(
            await s.scalars(
                select(Task)
                .where(
                    Task.record_type == "capa",
                    Task.record_id == capa_id,
                    Task.kind == kind,
                    Task.status == "open",
                )
                .order_by(Task.id)
            )
        )
        return rows if len(rows) == count else None

    return await wait_for(find, stack)


async def status_is(stack, capa_id: int, status: CapaStatus) -> Capa:
    async def find(s):
        capa = await s.get(Capa, capa_id)
        await s.refresh(capa)
        return capa if capa.status == status else None

    return await wait_for(find, stack)


async def investigate(stack, capa_id: int, who: tuple = PROD1) -> None:
    r = await call(
        stack,
        "POST",
        f"/api/capas/{capa_id}/investigation",
        who,
        {"method": "5-why", "root_causes": ["Seal durometer below spec", "No incoming inspection"]},
    )
    assert r.status_code == 200, r.text


async def propose(stack, capa_id: int, actions: list[dict], who: tuple = PROD1) -> dict:
    r = await call(stack, "POST", f"/api/capas/{capa_id}/actions", who, {"actions": actions})
    assert r.status_code == 200, r.text
    return r.json()


def action(
    kind: str = "corrective", owner: str = "prod1", days: int = 10, text: str = "Change seal spec"
) -> dict:
    return {"kind": kind, "description": text, "owner": owner, "due_on": due(days)}


async def approve_plan(stack, capa_id: int, who: tuple = MANAGER) -> None:
    (task,) = await open_task(stack, capa_id, "approve_capa_plan")
    r = await sign(stack, task.id, who)
    assert r.status_code == 200, r.text
    await status_is(stack, capa_id, CapaStatus.implementation)


async def to_implementation(stack, actions: list[dict], **body) -> dict:
    created = await create_capa(stack, **body)
    await open_task(stack, created["id"], "capa_investigate")
    await investigate(stack, created["id"])
    await propose(stack, created["id"], actions)
    await approve_plan(stack, created["id"])
    return created


async def complete(
    stack, capa_id: int, action_id: int, who: tuple, evidence: str = "Done, see DOC-12"
) -> httpx.Response:
    return await call(
        stack, "POST", f"/api/capas/{capa_id}/actions/{action_id}/complete", who, {"evidence": evidence}
    )


async def action_ids(stack, capa_id: int) -> list[int]:
    async with stack.sessions() as s:
        return list(
            await s.scalars(
                select(CapaAction.id)
                .where(CapaAction.capa_id == capa_id, CapaAction.status != "withdrawn")
                .order_by(CapaAction.id)
            )
        )


async def activity_count(handle, name: str) -> int:
    """How many times the workflow scheduled the activity ``name`` (from its history)."""
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == name
    )


async def read_after_signals(handle, signals: int) -> bool:
    """True once the workflow got ``signals`` wake-ups and re-read the store after the last one."""
    events = (await handle.fetch_history()).events
    signalled = [e.event_id for e in events if e.HasField("workflow_execution_signaled_event_attributes")]
    if len(signalled) < signals:
        return False
    reads = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == names.CAPA_STATE
        and e.event_id > signalled[-1]
    }
    return any(
        e.HasField("activity_task_completed_event_attributes")
        and e.activity_task_completed_event_attributes.scheduled_event_id in reads
        for e in events
    )


async def verify(stack, capa_id: int, result: str, who: tuple = QA) -> httpx.Response:
    return await call(
        stack,
        "POST",
        f"/api/capas/{capa_id}/effectiveness",
        who,
        {"result": result, "summary": "Checked 300 units"},
    )


async def to_verification(stack, time_env, **body) -> dict:
    created = await to_implementation(stack, [action()], **body)
    (aid,) = await action_ids(stack, created["id"])
    assert (await complete(stack, created["id"], aid, PROD1)).status_code == 200
    capa = await status_is(stack, created["id"], CapaStatus.effectiveness_pending)
    await time_env.sleep(capa.effectiveness_due_at - datetime.now(UTC) + timedelta(days=1))
    await open_task(stack, created["id"], "capa_verify")
    return created


@ON_BOTH_DATABASES
async def test_the_whole_path_through_the_api(recall_stack, time_env):
    stack = recall_stack
    await add_people(stack)
    created = await create_capa(stack, effectiveness_period_days=30)
    assert (
        created["reference"] == f"CAPA-{datetime.now(UTC).year}-0001" and created["workflow_id"] == "capa-1"
    )
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    cid = created["id"]

    (inv,) = await open_task(stack, cid, "capa_investigate")
    assert inv.assignee == "prod1"  # the owner investigates, though production holds no QA role
    await investigate(stack, cid)
    body = await propose(
        stack,
        cid,
        [action(), action(kind="preventive", owner="prod2", days=20, text="Incoming inspection of seals")],
    )
    assert body["status"] == "plan_approval" and [a["status"] for a in body["actions"]] == ["proposed"] * 2
    async with stack.sessions() as s:
        inv = await s.get(Task, inv.id)
        assert inv.status.value == "completed" and inv.completed_by == "prod1"

    await approve_plan(stack, cid)
    tasks = await open_task(stack, cid, "capa_action", count=2)
    assert [t.assignee for t in tasks] == ["prod1", "prod2"]
    first, second = await action_ids(stack, cid)
    assert (await complete(stack, cid, first, PROD1)).status_code == 200
    assert (await complete(stack, cid, second, QA)).status_code == 200  # QA may complete anyone's action

    capa = await status_is(stack, cid, CapaStatus.effectiveness_pending)
    period = capa.effectiveness_due_at - datetime.now(UTC)
    assert timedelta(days=29) < period <= timedelta(days=30)  # this CAPA's own period
    await time_env.sleep(period + timedelta(hours=1))
    await open_task(stack, cid, "capa_verify")
    r = await verify(stack, cid, "effective")
    assert r.status_code == 200 and r.json()["status"] == "closure_approval", r.text

    (closure,) = await open_task(stack, cid, "approve_capa_closure")
    assert closure.candidate_roles == ["qa_manager"] and closure.excluded_users == ["qa1"]
    assert (await sign(stack, closure.id, MANAGER)).status_code == 200
    outcome = CapaOutcome.model_validate(await outcome_of(handle))
    assert outcome.status == CapaStatus.closed and outcome.cycles == 1
    # The recorded history replays on the current code: the workflow is deterministic.
    replayer = Replayer(workflows=[CapaWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())

    r = await call(stack, "GET", f"/api/capas/{cid}", PROD2)
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["status"] == "closed" and record["closed_at"] and record["tasks"] == []
    assert record["investigation"]["method"] == "5-why" and len(record["investigation"]["root_causes"]) == 2
    assert [(a["status"], a["completed_by"]) for a in record["actions"]] == [
        ("completed", "prod1"),
        ("completed", "qa1"),
    ]
    assert record["effectiveness_result"] == "effective" and record["effectiveness_checked_by"] == "qa1"
    assert [(s["signer"], s["meaning"]) for s in record["signatures"]] == [
        ("mgr1", "approved"),
        ("mgr1", "approved"),
    ]
    assert all(len(s["record_hash"]) == 64 for s in record["signatures"])
    r = await call(stack, "GET", "/api/capas?status=closed&source=complaint", PROD1)
    assert [c["reference"] for c in r.json()] == [created["reference"]]


async def test_plan_approval_refuses_the_initiator_and_non_managers_and_a_rejection_returns_to_investigation(
    recall_stack,
):
    stack = recall_stack
    await add_people(stack)
    created = await create_capa(stack, who=QA_AND_MANAGER)
    cid = created["id"]
    await open_task(stack, cid, "capa_investigate")
    await investigate(stack, cid)
    await propose(stack, cid, [action()])
    (task,) = await open_task(stack, cid, "approve_capa_plan")
    assert task.candidate_roles == ["qa_manager"] and task.excluded_users == ["qamgr"]

    own = await sign(stack, task.id, QA_AND_MANAGER)
    assert own.status_code == 409 and "separation of duties" in own.json()["detail"][0]["reason"]
    for who in (QA, PROD1):
        r = await sign(stack, task.id, who)
        assert r.status_code == 409 and "needs the role qa_manager" in r.json()["detail"][0]["reason"], r.text
    async with stack.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Signature)) == 0

    r = await sign(
        stack, task.id, MANAGER, decision="rejected", reason="Add a preventive action on the supplier"
    )
    assert r.status_code == 200, r.text
    capa = await status_is(stack, cid, CapaStatus.investigation)
    assert capa.plan_rejection_reason == "Add a preventive action on the supplier"
    (again,) = await open_task(stack, cid, "capa_investigate")  # a new investigation task for the owner
    assert again.assignee == "prod1"
    await propose(
        stack, cid, [action(), action(kind="preventive", owner="prod2", text="Audit the seal supplier")]
    )
    await approve_plan(stack, cid)
    assert len(await open_task(stack, cid, "capa_action", count=2)) == 2
    async with stack.sessions() as s:
        sigs = list(await s.scalars(select(Signature).order_by(Signature.id)))
    assert [(x.signer, x.meaning.value) for x in sigs] == [("mgr1", "rejected"), ("mgr1", "approved")]
    assert sigs[0].reason == "Add a preventive action on the supplier"


async def test_parallel_actions_the_workflow_proceeds_only_when_all_are_done(recall_stack):
    stack = recall_stack
    await add_people(stack)
    created = await to_implementation(
        stack,
        [
            action(),
            action(owner="prod2", text="Rework stock"),
            action(kind="preventive", text="Supplier audit"),
        ],
    )
    cid = created["id"]
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    tasks = await open_task(stack, cid, "capa_action", count=3)  # every action at once, each for its owner
    assert [t.assignee for t in tasks] == ["prod1", "prod2", "prod1"]
    assert await activity_count(handle, names.CAPA_DECIDE_PLAN) == 1  # opened in one activity
    a1, a2, a3 = await action_ids(stack, cid)

    refused = await complete(stack, cid, a1, PROD2)  # neither its owner nor QA
    assert refused.status_code == 403 and refused.json()["detail"][0]["field"] == "role"
    assert (await complete(stack, cid, a1, PROD1)).status_code == 200
    again = await complete(stack, cid, a1, PROD1)
    assert again.status_code == 409 and "already completed" in again.json()["detail"][0]["reason"]
    assert (await complete(stack, cid, a2, PROD2)).status_code == 200

    await wait_for(lambda _s: read_after_signals(handle, 2), stack)
    assert (await handle.query("status"))["status"] == "implementation"
    async with stack.sessions() as s:
        assert (await s.get(Capa, cid)).status == CapaStatus.implementation
    assert await activity_count(handle, names.CAPA_AWAIT_EFFECTIVENESS) == 0

    assert (await complete(stack, cid, a3, PROD1)).status_code == 200
    capa = await status_is(stack, cid, CapaStatus.effectiveness_pending)
    assert capa.effectiveness_due_at is not None


async def test_an_owner_out_of_office_has_their_deputy_complete_their_action(recall_stack):
    stack = recall_stack
    await add_people(stack)
    created = await to_implementation(stack, [action(owner="prod1")])
    cid = created["id"]
    [a1] = await action_ids(stack, cid)
    refused = await complete(stack, cid, a1, PROD2)  # not yet their deputy
    assert refused.status_code == 403 and "deputy" in refused.json()["detail"][0]["reason"]
    now = datetime.now(UTC)
    r = await call(
        stack,
        "POST",
        "/api/tasks/out-of-office",
        PROD1,
        {"deputy": "prod2", "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=7)).isoformat()},
    )
    assert r.status_code == 201, r.text
    assert (await complete(stack, cid, a1, PROD2)).status_code == 200
    async with stack.sessions() as s:
        done = await s.get(CapaAction, a1)
    assert done.completed_by == "prod2"  # done by the deputy, under their own name


async def test_overdue_actions_are_escalated_in_one_batch_per_step(recall_stack, time_env):
    stack = recall_stack
    await add_people(stack)
    created = await to_implementation(
        stack, [action(days=3), action(owner="prod2", days=3, text="Rework"), action(days=60, text="Later")]
    )
    cid = created["id"]
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    late1, late2, later = await open_task(stack, cid, "capa_action", count=3)

    async def nudged(expected: int):
        async def check(s):
            rows = {t.id: t for t in await s.scalars(select(Task).where(Task.kind == "capa_action"))}
            for t in rows.values():
                await s.refresh(t)
            return rows if all(rows[t.id].reminders_sent == expected for t in (late1, late2)) else None

        return await wait_for(check, stack)

    await time_env.sleep(timedelta(days=5))  # past the due date, before the next rung
    rows = await nudged(1)
    assert rows[later.id].reminders_sent == 0 and rows[late1.id].escalated_to == []
    assert await activity_count(handle, names.CAPA_ESCALATE_OVERDUE) == 1  # one step for both actions

    await time_env.sleep(timedelta(days=3))  # the escalation rung
    rows = await nudged(2)
    assert rows[late1.id].escalated_to == rows[late2.id].escalated_to == ["qa_manager"]
    assert rows[later.id].reminders_sent == 0
    assert await activity_count(handle, names.CAPA_ESCALATE_OVERDUE) == 2
    r = await call(stack, "GET", "/api/capas?overdue=true", QA)
    assert [
        c["id"] for c in r.json()
    ] == []  # by the wall clock nothing is late yet: skipped time is not real
    record = (await call(stack, "GET", f"/api/capas/{cid}", QA)).json()
    assert [a["escalation_step"] for a in record["actions"]] == [2, 2, 0]


async def test_the_effectiveness_check_opens_after_90_days(recall_stack, time_env):
    stack = recall_stack
    await add_people(stack)
    created = await to_implementation(stack, [action()])
    cid = created["id"]
    (aid,) = await action_ids(stack, cid)
    assert (await complete(stack, cid, aid, PROD1)).status_code == 200
    capa = await status_is(stack, cid, CapaStatus.effectiveness_pending)
    wait = capa.effectiveness_due_at - datetime.now(UTC)
    assert timedelta(days=89, hours=23) < wait <= timedelta(days=90)  # the policy's default

    await time_env.sleep(timedelta(days=89))
    early = await verify(stack, cid, "effective")
    assert early.status_code == 409 and early.json()["detail"][0]["field"] == "status"
    async with stack.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Task).where(Task.kind == "capa_verify")) == 0

    await time_env.sleep(timedelta(days=2))
    (task,) = await open_task(stack, cid, "capa_verify")
    assert task.candidate_roles == ["qa", "qa_manager"]
    await status_is(stack, cid, CapaStatus.effectiveness_check)


async def test_an_ineffective_result_returns_to_investigation_for_a_new_cycle(recall_stack, time_env):
    stack = recall_stack
    await add_people(stack)
    created = await to_verification(stack, time_env, effectiveness_period_days=14)
    cid = created["id"]
    assert (await verify(stack, cid, "ineffective")).status_code == 200
    capa = await status_is(stack, cid, CapaStatus.investigation)
    assert capa.cycle == 2 and capa.effectiveness_history[0]["result"] == "ineffective"
    invs = await open_task(stack, cid, "capa_investigate")  # the second cycle's investigation task
    assert invs[0].details == {"cycle": 2}

    stale = await call(stack, "POST", f"/api/capas/{cid}/actions", PROD1, {"actions": [action()]})
    assert stale.status_code == 409 and stale.json()["detail"][0]["field"] == "root_causes"
    await investigate(stack, cid)
    await propose(stack, cid, [action(text="Change the seal supplier")])
    await approve_plan(stack, cid)
    await open_task(stack, cid, "capa_action")
    record = (await call(stack, "GET", f"/api/capas/{cid}", QA)).json()
    assert [(a["cycle"], a["status"]) for a in record["actions"]] == [(1, "completed"), (2, "open")]
    assert record["effectiveness_history"][0]["summary"] == "Checked 300 units"


async def test_closure_sign_off_refuses_the_initiator_and_a_rejection_verifies_again(recall_stack, time_env):
    stack = recall_stack
    await add_people(stack)
    created = await to_verification(stack, time_env, who=QA_AND_MANAGER, effectiveness_period_days=7)
    cid = created["id"]
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    assert (await verify(stack, cid, "effective")).status_code == 200
    (closure,) = await open_task(stack, cid, "approve_capa_closure")
    own = await sign(stack, closure.id, QA_AND_MANAGER)
    assert own.status_code == 409 and "separation of duties" in own.json()["detail"][0]["reason"]
    assert (await sign(stack, closure.id, QA)).status_code == 409
    assert (
        await sign(stack, closure.id, MANAGER, decision="rejected", reason="Sample too small")
    ).status_code == 200
    await open_task(stack, cid, "capa_verify")
    capa = await status_is(stack, cid, CapaStatus.effectiveness_check)
    assert capa.effectiveness_history[-1]["outcome"] == "closure rejected: Sample too small"
    assert (await verify(stack, cid, "effective")).status_code == 200
    (closure,) = await open_task(stack, cid, "approve_capa_closure")
    assert (await sign(stack, closure.id, MANAGER)).status_code == 200
    outcome = CapaOutcome.model_validate(await outcome_of(handle))
    assert outcome.status == CapaStatus.closed
    late = await verify(stack, cid, "effective")
    assert late.status_code == 409


async def test_a_capa_opened_from_a_recall_shows_on_the_recall_and_its_summary(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions, users=False)
    await add_people(stack)
    recall = await post_recall(stack, level=3)
    handle = stack.client.get_workflow_handle(recall["workflow_id"])
    task = await approval_task(stack, recall["id"])
    assert (await sign(stack, task.id, MANAGER)).status_code == 200

    async def sent(s):
        return await s.scalar(select(func.count()).select_from(Notice)) == 6

    await wait_for(sent, stack)
    await acknowledge_all(stack, recall["id"])
    done = RecallOutcome.model_validate(await outcome_of(handle))
    assert done.status == RecallStatus.completed

    assert (
        await call(stack, "POST", f"/api/recalls/{recall['id']}/capa", ("reg1", Role.regulatory), {})
    ).status_code == 403
    missing = await call(stack, "POST", "/api/recalls/999/capa", QA, {})
    assert missing.status_code == 404 and missing.json()["detail"][0]["field"] == "recall_id"
    r = await call(stack, "POST", f"/api/recalls/{recall['id']}/capa", QA, {"owner": "prod1"})
    assert r.status_code == 201, r.text
    capa = r.json()
    assert capa["recall_id"] == recall["id"]

    shown = (await call(stack, "GET", f"/api/recalls/{recall['id']}", QA)).json()
    assert [(c["id"], c["reference"], c["status"]) for c in shown["capas"]] == [
        (capa["id"], capa["reference"], "investigation")
    ]
    record = (await call(stack, "GET", f"/api/capas/{capa['id']}", QA)).json()
    assert record["source"] == "recall" and record["source_reference"] == record["recall_reference"]
    assert record["recall_reference"] == shown["reference"] and "Seal may leak" in record["description"]

    async def reissued(s):
        return await s.scalar(
            select(RecallReport).where(
                RecallReport.recall_id == recall["id"],
                RecallReport.kind == "summary",
                RecallReport.sequence == 2,
            )
        )

    summary = await wait_for(reissued, stack)
    assert capa["reference"] in summary.body_text and capa["reference"] in summary.body_html
    async with stack.sessions() as s:
        first = await s.get(RecallReport, done.summary_report_id)
        assert capa["reference"] not in first.body_text  # the first summary stays as it was issued


async def test_bad_input_is_refused_naming_the_field_and_changes_nothing(recall_stack):
    stack = recall_stack
    await add_people(stack)
    good = {
        "source": "complaint",
        "source_reference": "CMP-1",
        "title": "Leak",
        "description": "Leaks",
        "owner": "prod1",
    }
    for change, field in (
        ({"source": "rumour"}, "source"),
        ({"owner": "nobody"}, "owner"),
        ({"title": "  "}, "title"),
        ({"effectiveness_period_days": 0}, "effectiveness_period_days"),
        ({"source": "recall"}, "recall_id"),
        ({"recall_id": 999}, "recall_id"),
    ):
        r = await call(stack, "POST", "/api/capas", QA, {**good, **change})
        assert r.status_code in (404, 422) and r.json()["detail"][0]["field"] == field, (change, r.text)
    assert (await call(stack, "POST", "/api/capas", ("reg1", Role.regulatory), good)).status_code == 403
    async with stack.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Capa)) == 0

    created = await create_capa(stack)
    cid = created["id"]
    assert (await call(stack, "GET", "/api/capas/999", QA)).status_code == 404
    r = await call(
        stack, "POST", "/api/capas/999/investigation", QA, {"method": "5-why", "root_causes": ["x"]}
    )
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "capa_id"
    r = await call(
        stack, "POST", f"/api/capas/{cid}/investigation", PROD1, {"method": "5-why", "root_causes": []}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "root_causes"
    r = await call(
        stack, "POST", f"/api/capas/{cid}/investigation", PROD2, {"method": "5-why", "root_causes": ["x"]}
    )
    assert r.status_code == 403  # neither the owner nor QA
    await investigate(stack, cid)
    r = await call(stack, "POST", f"/api/capas/{cid}/actions", PROD1, {"actions": [action(days=-1)]})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "actions.0.due_on"
    r = await call(
        stack, "POST", f"/api/capas/{cid}/actions", PROD1, {"actions": [{**action(), "kind": "hope"}]}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "actions.0.kind"
    r = await complete(stack, cid, 999, QA)
    assert r.status_code == 404 and r.json()["detail"][0]["field"] == "action_id"
    r = await verify(stack, cid, "effective")
    assert r.status_code == 409 and r.json()["detail"][0]["field"] == "status"
    record = (await call(stack, "GET", f"/api/capas/{cid}", QA)).json()
    assert record["status"] == "investigation" and record["actions"] == [] and record["plan_version"] == 0
