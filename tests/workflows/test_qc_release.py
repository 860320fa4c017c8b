"""QcReleaseWorkflow on the time-skipping test server with the real store and API: results through the
API start the evaluation, the release SLA reminds then escalates, only a releaser who neither started
the inspection nor recorded its results releases, a rejection opens a nonconformance, a concession needs
two signatures, a recall hold on a component lot refuses release, and the disposition split posts the
right ledger entries."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy import func, select

from api.security import Principal, issue_token
from domain import inventory
from domain.audit.models import AuditEntry
from domain.enums import MovementKind, QcStatus, Role, StockStatus
from domain.models import Lot, LotHold, StockEntry
from domain.quality import policy
from domain.quality import service as quality
from domain.quality.models import Disposition, Inspection, Nonconformance
from domain.quality.payloads import DispositionOutcome, InspectionStatus, ReleaseOutcome, ResultInput
from domain.tasks.models import Signature, Task
from domain.users import create_user
from tests.workflows.conftest import ON_BOTH_DATABASES, PASSWORD, build_world, wait_for
from tests.workflows.conftest import outcome_of as workflow_result

pytestmark = pytest.mark.temporal
# Test passwords are public: a cheap hash keeps the suite fast (the real parameters are tested in
# tests/domain/test_users.py).
CHEAP = PasswordHasher.from_parameters(CHEAPEST)

PLAN = {
    "characteristics": [
        {"name": "flow", "kind": "numeric", "lower": 9.5, "upper": 10.5, "unit": "ml/h", "sample_size": 2},
        {"name": "leak", "kind": "pass_fail"},
    ]
}
PASSING = [
    {"characteristic": "flow", "value": 9.9},
    {"characteristic": "flow", "value": 10.2},
    {"characteristic": "leak", "passed": True},
]
FAILING = [
    {"characteristic": "flow", "value": 9.9},
    {"characteristic": "flow", "value": 11.0},
    {"characteristic": "leak", "passed": True},
]
ROLES = {
    "qa1": [Role.qa],
    "mgr1": [Role.qa_manager],
    "qamgr": [Role.qa, Role.qa_manager],
    "rel1": [Role.releaser],
    "rel2": [Role.releaser, Role.production],
    "relqa": [Role.qa, Role.releaser],
    "prod1": [Role.production],
}


def token(stack, username: str, *roles: Role) -> dict[str, str]:
    t = issue_token(
        Principal(username=username, full_name=username.upper(), roles=list(roles)),
        secret=stack.settings.secret_key,
        minutes=30,
    )
    return {"Authorization": f"Bearer {t}"}


def who(username: str) -> tuple:
    """A username with its roles, for ``token``."""
    return (username, *ROLES[username])


async def setup_release(stack, *, by: str = "qa1", results=PASSING, recorder: str = "prod1") -> dict:
    """World, users and the PUMP plan; inspection of PUMP/P-100 (50 on hand) started by ``by`` and
    ``results`` recorded through the API by ``recorder``."""
    world = await build_world(stack.sessions, users=False)
    async with stack.sessions() as s, s.begin():
        for name, roles in ROLES.items():
            await create_user(
                s,
                username=name,
                full_name=name.upper(),
                roles=roles,
                password=PASSWORD,
                password_hasher=CHEAP,
            )
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.put(
            "/api/products/PUMP/inspection-plan", json=PLAN, headers=token(stack, "qa1", Role.qa)
        )
        assert r.status_code == 200, r.text
        r = await http.post("/api/lots/PUMP/P-100/inspections", headers=token(stack, *who(by)))
        assert r.status_code == 201, r.text
        started = r.json()
        if results:
            r = await http.post(
                f"/api/inspections/{started['id']}/results",
                json={"results": results},
                headers=token(stack, *who(recorder)),
            )
            assert r.status_code == 201, r.text
    return {**started, "lot_id": world.finished[0], "component": world.component}


async def open_task(stack, inspection_id: int, kind: str = "release_lot") -> Task:
    async def find(s):
        return await s.scalar(
            select(Task).where(
                Task.record_type == "lot_release",
                Task.record_id == inspection_id,
                Task.kind == kind,
                Task.status == "open",
            )
        )

    return await wait_for(find, stack)


async def sign(stack, task_id: int, username: str, decision: str, **extra) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        return await http.post(
            f"/api/tasks/{task_id}/sign",
            json={"password": PASSWORD, "decision": decision, **extra},
            headers=token(stack, *who(username)),
        )


def refusal(r: httpx.Response) -> str:
    assert r.status_code == 409, r.text
    return r.json()["detail"][0]["reason"]


async def outcome_of(stack, started: dict) -> ReleaseOutcome:
    handle = stack.client.get_workflow_handle(started["workflow_id"])
    return ReleaseOutcome.model_validate(await workflow_result(handle))


async def test_the_release_sla_reminds_then_escalates_to_qa_management(recall_stack, time_env):
    stack = recall_stack
    started = await setup_release(stack)
    assert started["workflow_id"] == f"qc-release-{started['lot_id']}"
    task = await open_task(stack, started["id"])  # the results through the API started the evaluation
    assert task.candidate_roles == ["releaser"]
    assert abs(task.due_at - task.created_at - policy.RELEASE_DUE) < timedelta(minutes=1)  # workflow time
    first, second = policy.RELEASE_LADDER

    async def nudged(n: int):
        async def check(s):
            t = await s.get(Task, task.id)
            await s.refresh(t)
            return t.reminders_sent >= n and t

        return await wait_for(check, stack)

    await time_env.sleep(first.wait + timedelta(minutes=1))
    t = await nudged(1)
    assert t.reminders_sent == 1 and t.escalated_to == []  # a reminder, not yet an escalation
    await time_env.sleep(second.wait)
    t = await nudged(2)
    assert t.escalated_to == ["qa_manager"] and t.status == "open"
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        inbox = await http.get("/api/tasks", headers=token(stack, "mgr1", Role.qa_manager))
    assert task.id in [x["id"] for x in inbox.json()]  # QA management now sees the overdue release


async def test_results_stored_without_a_signal_are_evaluated_at_the_recheck(recall_stack, time_env):
    stack = recall_stack
    started = await setup_release(stack, results=None)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:  # asking again: the same inspection
        again = await http.post("/api/lots/PUMP/P-100/inspections", headers=token(stack, *who("qa1")))
    assert again.status_code == 200 and again.json()["id"] == started["id"]
    async with stack.sessions() as s, s.begin():  # stored, but the signal is lost
        await quality.record_results(
            s, inspection_id=started["id"], results=[ResultInput(**r) for r in PASSING], recorded_by="prod1"
        )
    await time_env.sleep(policy.RESULTS_RECHECK + timedelta(minutes=1))
    task = await open_task(stack, started["id"])
    assert task.details["evaluation"] == "passed"


async def test_only_a_releaser_who_neither_started_nor_recorded_may_release(recall_stack):
    stack = recall_stack
    started = await setup_release(stack, by="relqa", recorder="rel2")
    task = await open_task(stack, started["id"])
    assert set(task.excluded_users) == {"relqa", "rel2"}
    assert "needs the role releaser" in refusal(await sign(stack, task.id, "qa1", "released"))
    assert "separation of duties" in refusal(await sign(stack, task.id, "relqa", "released"))
    assert "recorded results" in refusal(await sign(stack, task.id, "rel2", "released"))
    assert "released or rejected" in refusal(await sign(stack, task.id, "rel1", "approved"))
    async with stack.sessions() as s:
        assert (await s.get(Lot, started["lot_id"])).qc_status == QcStatus.quarantined

    r = await sign(stack, task.id, "rel1", "released")
    assert r.status_code == 200, r.text
    assert r.json()["meaning"] == "released"
    outcome = await outcome_of(stack, started)
    assert outcome.status == InspectionStatus.released and outcome.outcome == DispositionOutcome.released
    async with stack.sessions() as s:
        lot = await s.get(Lot, started["lot_id"])
        assert lot.qc_status == QcStatus.released
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.unrestricted) == 50
        assert await inventory.active_holds(s, lot.id) == []
        sig = await s.scalar(select(Signature).where(Signature.task_id == task.id))
        assert sig.signer == "rel1" and sig.record_type == "lot_release" and len(sig.record_hash) == 64
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        body = (
            await http.get(f"/api/inspections/{started['id']}", headers=token(stack, "qa1", Role.qa))
        ).json()
    assert body["status"] == "released" and body["disposition"]["unrestricted"] == 50
    assert [(x["signer"], x["meaning"]) for x in body["signatures"]] == [("rel1", "released")]
    assert [x["status"] for x in body["tasks"]] == ["completed"]
    async with stack.sessions() as s:  # the release record is a regulated record: its trail names who
        trail = (
            await s.execute(
                select(AuditEntry.action, AuditEntry.actor, AuditEntry.changes)
                .where(AuditEntry.record_type == "lot_release", AuditEntry.record_id == str(started["id"]))
                .order_by(AuditEntry.seq)
            )
        ).all()
    assert trail[0][:2] == ("create", "relqa")
    assert any(c.get("status", [None, None])[1] == "released" for _, _, c in trail)


async def test_a_rejection_opens_a_nonconformance_with_the_capa_request(recall_stack):
    stack = recall_stack
    started = await setup_release(stack)
    task = await open_task(stack, started["id"])
    assert "needs a reason" in refusal(await sign(stack, task.id, "rel1", "rejected"))
    r = await sign(
        stack, task.id, "rel1", "rejected", reason="Batch record shows an unapproved deviation", capa=True
    )
    assert r.status_code == 200, r.text
    outcome = await outcome_of(stack, started)
    assert outcome.status == InspectionStatus.rejected and outcome.nonconformance_id
    async with stack.sessions() as s:
        nc = await s.get(Nonconformance, outcome.nonconformance_id)
        assert nc.status == "open" and nc.capa_requested and nc.lot_id == started["lot_id"]
        assert "unapproved deviation" in nc.description and nc.opened_by == "rel1"
        lot = await s.get(Lot, started["lot_id"])
        assert lot.qc_status == QcStatus.rejected
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.blocked) == 50  # segregated


@ON_BOTH_DATABASES
async def test_a_concession_needs_a_justification_and_a_second_signature(recall_stack):
    stack = recall_stack
    started = await setup_release(stack, by="qamgr", results=FAILING)
    task = await open_task(stack, started["id"])
    assert task.details["evaluation"] == "failed"
    assert "justification" in refusal(await sign(stack, task.id, "rel1", "released"))
    r = await sign(stack, task.id, "rel1", "released", reason="Flow 11.0 ml/h accepted: design review DR-7")
    assert r.status_code == 200, r.text

    concession = await open_task(stack, started["id"], "approve_concession")
    assert concession.candidate_roles == ["qa_manager"] and set(concession.excluded_users) == {
        "qamgr",
        "rel1",
    }
    async with stack.sessions() as s:  # one signature is not enough: the lot is still in quarantine
        assert (await s.get(Lot, started["lot_id"])).qc_status == QcStatus.quarantined
        assert (await s.get(Inspection, started["id"])).status == InspectionStatus.awaiting_concession
        assert await s.scalar(select(func.count()).select_from(Disposition)) == 0
    assert "needs the role qa_manager" in refusal(await sign(stack, concession.id, "rel1", "approved"))
    assert "separation of duties" in refusal(await sign(stack, concession.id, "qamgr", "approved"))
    r = await sign(stack, concession.id, "mgr1", "approved")
    assert r.status_code == 200, r.text

    outcome = await outcome_of(stack, started)
    assert outcome.status == InspectionStatus.released and outcome.outcome == DispositionOutcome.concession
    async with stack.sessions() as s:
        d = await s.get(Disposition, outcome.disposition_id)
        signers = dict(
            (
                await s.execute(
                    select(Signature.id, Signature.signer).where(Signature.record_id == started["id"])
                )
            ).all()
        )
        assert signers[d.signature_id] == "rel1" and signers[d.approval_signature_id] == "mgr1"
        assert "DR-7" in d.justification
        nc = await s.get(Nonconformance, outcome.nonconformance_id)
        assert nc.status == "closed" and nc.disposition == DispositionOutcome.concession
        assert (await s.get(Lot, started["lot_id"])).qc_status == QcStatus.released


@ON_BOTH_DATABASES
async def test_release_is_refused_while_a_component_lot_is_under_a_recall_hold(recall_stack):
    stack = recall_stack
    started = await setup_release(stack)
    task = await open_task(stack, started["id"])  # evaluated before the hold: the task says nothing blocks
    assert task.details["blockers"] == []
    async with stack.sessions() as s, s.begin():
        component = await s.get(Lot, started["component"])
        await inventory.place_hold(s, lot=component, reason="recall", reference="recall-99")
    reason = refusal(await sign(stack, task.id, "rel1", "released"))
    assert "component lot RESIN/R-001 is under recall hold recall-99" in reason
    async with stack.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Signature)) == 0  # refused before signing
        assert (await s.get(Lot, started["lot_id"])).qc_status == QcStatus.quarantined
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        body = (
            await http.get(f"/api/inspections/{started['id']}", headers=token(stack, "rel1", Role.releaser))
        ).json()
    assert body["blockers"] == ["component lot RESIN/R-001 is under recall hold recall-99"]

    async with stack.sessions() as s, s.begin():  # the recall ends: the hold is lifted
        hold = await s.scalar(select(LotHold).where(LotHold.reference == "recall-99"))
        hold.released_at = hold.placed_at
    r = await sign(stack, task.id, "rel1", "released")
    assert r.status_code == 200, r.text
    assert (await outcome_of(stack, started)).status == InspectionStatus.released


async def test_the_disposition_split_posts_the_ledger_entries(recall_stack):
    stack = recall_stack
    started = await setup_release(stack)
    task = await open_task(stack, started["id"])
    r = await sign(stack, task.id, "rel1", "released", disposition={"unrestricted": 40, "scrap": 3})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "disposition"
    assert "accounts for 43 units but the lot has 50" in r.json()["detail"][0]["reason"]
    r = await sign(stack, task.id, "rel1", "released", disposition={"unrestricted": 40, "bogus": 10})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "disposition.bogus"
    split = {"unrestricted": 40, "blocked": 5, "scrap": 3, "sample": 2}
    r = await sign(stack, task.id, "rel1", "released", disposition=split)
    assert r.status_code == 200, r.text
    outcome = await outcome_of(stack, started)
    assert outcome.status == InspectionStatus.released
    lot_id = started["lot_id"]
    async with stack.sessions() as s:
        moves = (
            await s.execute(
                select(StockEntry.kind, StockEntry.quantity)
                .where(StockEntry.reference == f"qc-{lot_id}")
                .order_by(StockEntry.id)
            )
        ).all()
        assert [(k, q) for k, q in moves] == [
            (MovementKind.block, 50),  # quarantine when the inspection started
            (MovementKind.destruction, 3),
            (MovementKind.unblock, 2),  # samples: unblocked, then issued
            (MovementKind.issue, 2),
            (MovementKind.unblock, 40),
        ]
        assert await inventory.balance(s, lot_id=lot_id, status=StockStatus.unrestricted) == 40
        assert await inventory.balance(s, lot_id=lot_id, status=StockStatus.blocked) == 5
        d = await s.get(Disposition, outcome.disposition_id)
        assert (d.unrestricted, d.blocked, d.scrap, d.sample) == (40, 5, 3, 2) and d.decided_by == "rel1"
