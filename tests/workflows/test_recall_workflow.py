"""RecallWorkflow on the time-skipping test server, with the real store, SMTP server and SMS endpoint:
approval with its ladder and separation of duties, containment, notices on both channels, follow-up
steps at times derived from the deadline, report cadence, completion and closure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import WorkflowUpdateFailedError

from api.security import Principal, issue_token
from domain.enums import Role, StockStatus
from domain.inventory import active_holds, balance
from domain.models import DevSmsMessage
from domain.recalls import acknowledgements as acks
from domain.recalls.models import Notice, Recall, RecallConsignee, RecallExposure, RecallReport
from domain.recalls.payloads import RecallOutcome, RecallStatus, WakeUp
from domain.recalls.service import call_task_key
from domain.tasks.models import Signature, Task
from domain.tasks.payloads import SignatureMeaning, SignOff, SignOffResult, TaskStatus
from notifications.devmail import list_messages
from tests.workflows.conftest import (
    ON_BOTH_DATABASES,
    PASSWORD,
    build_world,
    notice_mails,
    outcome_of,
    wait_for,
)

pytestmark = pytest.mark.temporal


def token(stack, username: str, *roles: Role) -> dict[str, str]:
    t = issue_token(
        Principal(username=username, full_name=username.upper(), roles=list(roles)),
        secret=stack.settings.secret_key,
        minutes=30,
    )
    return {"Authorization": f"Bearer {t}"}


async def post_recall(
    stack,
    *,
    level: int = 3,
    lot: str = "R-001",
    product: str = "RESIN",
    by: tuple = ("qa1", Role.qa),
    us: bool = False,
) -> dict:
    """A recall through the API: CN at ``level``, or with ``us`` a US recall of proposed class II."""
    grading = {"fda_class": "II", "jurisdictions": ["US"]} if us else {"nmpa_level": level}
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.post(
            "/api/recalls",
            json={
                "suspects": [{"product_code": product, "lot_number": lot}],
                "reason": "Seal may leak",
                "hazard": "Leak can delay infusion therapy",
            }
            | grading,
            headers=token(stack, *by),
        )
    assert r.status_code == 201, r.text
    return r.json()


async def approval_task(stack, recall_id: int) -> Task:
    async def find(s):
        return await s.scalar(select(Task).where(Task.record_id == recall_id, Task.kind == "approve_recall"))

    return await wait_for(find, stack)


def signoff(
    task_id: int, username: str, *roles: str, meaning=SignatureMeaning.approved, reason=""
) -> SignOff:
    return SignOff(
        task_id=task_id,
        username=username,
        printed_name=username.upper(),
        roles=list(roles),
        meaning=meaning,
        reason=reason,
    )


async def test_approval_refuses_the_initiator_and_wrong_roles_then_contains_and_notifies(recall_stack):
    stack = recall_stack
    world = await build_world(stack.sessions)
    created = await post_recall(stack, level=1, by=("qamgr", Role.qa, Role.qa_manager))
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    task = await approval_task(stack, created["id"])
    assert task.candidate_roles == ["qa_manager"] and task.excluded_users == ["qamgr"]

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            "sign_off", signoff(task.id, "qamgr", "qa_manager"), result_type=SignOffResult
        )
    assert "separation of duties" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            "sign_off", signoff(task.id, "reg1", "regulatory"), result_type=SignOffResult
        )
    assert "needs the role qa_manager" in str(refused.value.cause)

    # Through the API: a wrong password is refused before anything reaches the workflow.
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        bad = await http.post(
            f"/api/tasks/{task.id}/sign",
            json={"password": "nope", "decision": "approved"},
            headers=token(stack, "mgr1", Role.qa_manager),
        )
        assert bad.status_code == 401 and bad.json()["detail"][0]["field"] == "password"
        self_approval = await http.post(
            f"/api/tasks/{task.id}/sign",
            json={"password": PASSWORD, "decision": "approved"},
            headers=token(stack, "qamgr", Role.qa, Role.qa_manager),
        )
        assert self_approval.status_code == 409, self_approval.text
        assert "separation of duties" in self_approval.json()["detail"][0]["reason"]
        ok = await http.post(
            f"/api/tasks/{task.id}/sign",
            json={"password": PASSWORD, "decision": "approved"},
            headers=token(stack, "mgr1", Role.qa_manager),
        )
        assert ok.status_code == 200, ok.text
        again = await http.post(
            f"/api/tasks/{task.id}/sign",
            json={"password": PASSWORD, "decision": "approved"},
            headers=token(stack, "mgr1", Role.qa_manager),
        )
        assert again.status_code == 409 and "already decided" in again.json()["detail"][0]["reason"]

    async def notified(s):
        n = await s.scalar(
            select(func.count()).select_from(Notice).where(Notice.state.in_(["sent", "delivered"]))
        )
        return n == 6 and n

    assert await wait_for(notified, stack) == 6  # three consignees × (e-mail + SMS)
    async with stack.sessions() as s:
        sig = await s.scalar(select(Signature).where(Signature.task_id == task.id))
        assert (
            sig.signer == "mgr1" and sig.meaning == SignatureMeaning.approved and len(sig.record_hash) == 64
        )
        recall = await s.get(Recall, created["id"])
        assert recall.decided_at is not None and recall.notify_deadline is not None
        assert recall.notify_deadline - recall.decided_at <= timedelta(days=1)  # level 1: one day
        for lot_id in world.finished:
            assert await balance(s, lot_id=lot_id, status=StockStatus.unrestricted) == 0
            assert [h.reference for h in await active_holds(s, lot_id)] == [f"recall-{created['id']}"]
        assert await balance(s, lot_id=world.finished[0], status=StockStatus.blocked) == 50
        texts = list(await s.scalars(select(DevSmsMessage)))
        assert len(texts) == 3
    mails = notice_mails(stack)
    assert len(mails) == 3
    assert any("紧急" in (m.subject or "") for m in mails) and any(
        "URGENT" in (m.subject or "") for m in mails
    )


async def test_unsigned_approval_reminds_then_escalates(recall_stack, time_env):
    stack = recall_stack
    await build_world(stack.sessions)
    created = await post_recall(stack, level=3)
    task = await approval_task(stack, created["id"])
    await time_env.sleep(timedelta(days=3))

    async def nudged(s):
        t = await s.get(Task, task.id)
        await s.refresh(t)
        return t.reminders_sent >= 2 and t

    t = await wait_for(nudged, stack)
    assert "qa_manager" in t.escalated_to or t.reminders_sent >= 2


async def test_follow_up_resends_switches_and_marks_overdue_then_reports(recall_stack, time_env):
    stack = recall_stack
    await build_world(stack.sessions)
    created = await post_recall(stack, level=2)
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    task = await approval_task(stack, created["id"])
    await handle.execute_update("sign_off", signoff(task.id, "mgr1", "qa_manager"), result_type=SignOffResult)

    async def first_round(s):
        delivered = await s.scalar(
            select(func.count()).select_from(Notice).where(Notice.state == "delivered")
        )
        return delivered == 3  # the three texts, by the endpoint's signed status callbacks

    await wait_for(first_round, stack)
    await time_env.sleep(timedelta(days=4))  # past the 3-day notify deadline of level 2

    async def overdue(s):
        n = await s.scalar(
            select(func.count()).select_from(RecallConsignee).where(RecallConsignee.overdue.is_(True))
        )
        return n == 3

    await wait_for(overdue, stack)
    async with stack.sessions() as s:
        attempts = set(await s.scalars(select(Notice.attempt)))
        assert attempts == {1, 2, 3, 4}, attempts  # resend, switch channel, resend, then the deadline
        # SMS showed delivery (signed status callbacks), e-mail cannot: the switch round goes by e-mail.
        switched = set(await s.scalars(select(Notice.channel).where(Notice.attempt == 3)))
        assert {c.value for c in switched} == {"email"}
        kinds = set(await s.scalars(select(Task.kind)))
        assert {"publish_announcement", "file:cn.event_report", "file:cn.plan"} <= kinds
        calls = await s.scalar(select(func.count()).select_from(Task).where(Task.kind == "call_consignee"))
        assert calls == 3
        progress_reports = await s.scalar(
            select(func.count()).select_from(RecallReport).where(RecallReport.kind == "progress")
        )
        assert progress_reports >= 1  # level 2: every 3 days
        assert await s.scalar(
            select(func.count()).select_from(RecallReport).where(RecallReport.kind == "cn_event")
        )
    status = await handle.query("status")
    assert status["status"] == RecallStatus.in_progress.value

    # A late answer makes its call task moot: the workflow closes it when the answer wakes it.
    async with stack.sessions() as s, s.begin():
        rc = await s.scalar(select(RecallConsignee).order_by(RecallConsignee.id).limit(1))
        lot_id = await s.scalar(
            select(RecallExposure.lot_id).where(
                RecallExposure.recall_id == rc.recall_id, RecallExposure.consignee_id == rc.consignee_id
            )
        )
        form = acks.AckForm.model_validate(
            {"received_and_understood": True, "name": "Dr Late", "quantities": [{"lot_id": lot_id}]}
        )
        assert (await acks.record_web_response(s, recall_consignee_id=rc.id, form=form)).recorded
    await handle.signal("wake_up", WakeUp())

    async def call_closed(s):
        key = call_task_key(rc.recall_id, rc.consignee_id)
        cancelled = Task.status == TaskStatus.cancelled
        return await s.scalar(select(Task).where(Task.business_key == key, cancelled))

    closed = await wait_for(call_closed, stack)
    assert "acknowledged" in closed.outcome
    async with stack.sessions() as s:
        still_open = await s.scalar(
            select(func.count()).where(Task.kind == "call_consignee", Task.status == TaskStatus.open)
        )
        assert still_open == 2  # the two consignees who have not answered are still to be called


@ON_BOTH_DATABASES
async def test_level_1_and_level_3_deadlines_differ(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions)
    deltas = {}
    for level in (1, 3):
        created = await post_recall(stack, level=level)
        handle = stack.client.get_workflow_handle(created["workflow_id"])
        task = await approval_task(stack, created["id"])
        await handle.execute_update(
            "sign_off", signoff(task.id, "mgr1", "qa_manager"), result_type=SignOffResult
        )

        async def decided(s, rid=created["id"]):
            r = await s.get(Recall, rid)
            await s.refresh(r)
            return r.notify_deadline and r

        r = await wait_for(decided, stack)
        deltas[level] = r.notify_deadline - r.decided_at
    assert deltas[1] <= timedelta(days=1) < deltas[3] <= timedelta(days=7)


async def acknowledge_all(stack, recall_id: int) -> None:
    """Every consignee answers by its link, accounting for exactly what it was shipped."""
    from domain.recalls.acknowledgements import exposures_of
    from domain.recalls.links import ack_path

    async with stack.sessions() as s:
        rcs = list(await s.scalars(select(RecallConsignee).where(RecallConsignee.recall_id == recall_id)))
        forms = {
            rc.id: [{"lot_id": e["lot_id"], "returned": e["quantity"]} for e in await exposures_of(s, rc)]
            for rc in rcs
        }
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        for rc_id, quantities in forms.items():
            r = await http.post(
                ack_path(rc_id, secret=stack.settings.secret_key),
                json={
                    "received_and_understood": True,
                    "name": "Pharmacist",
                    "actions_completed": True,
                    "quantities": quantities,
                },
            )
            assert r.status_code == 201, r.text


@ON_BOTH_DATABASES
async def test_completes_when_everyone_answered_and_quantities_reconcile(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions)
    created = await post_recall(stack, level=3)
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    task = await approval_task(stack, created["id"])
    await handle.execute_update("sign_off", signoff(task.id, "mgr1", "qa_manager"), result_type=SignOffResult)

    async def sent(s):
        return await s.scalar(select(func.count()).select_from(Notice)) == 6

    await wait_for(sent, stack)
    await acknowledge_all(stack, created["id"])
    outcome = RecallOutcome.model_validate(await outcome_of(handle))
    assert outcome.status == RecallStatus.completed and outcome.summary_report_id
    async with stack.sessions() as s:
        summary = await s.get(RecallReport, outcome.summary_report_id)
        assert "all consignee x lot rows reconcile" in summary.body_text
        assert "MGR1" in summary.body_text  # the approval signature is shown on the report
        assert summary.mailed_to == ["reg1@lotline.example.org"]  # regulatory affairs gets every report
        open_tasks = await s.scalar(select(func.count()).select_from(Task).where(Task.status == "open"))
        assert open_tasks == 0
    mailed = [m for m in list_messages(stack.maildir) if "reg1@lotline.example.org" in m.envelope_to]
    assert any(summary.title in m.subject for m in mailed)


@ON_BOTH_DATABASES
async def test_widening_the_scope_notifies_only_the_new_consignees(recall_stack):
    stack = recall_stack
    world = await build_world(stack.sessions)
    # A fourth hospital received only lot P-101, which the first scope (P-100 alone) does not reach.
    async with stack.sessions() as s, s.begin():
        from datetime import date

        from domain.models import Shipment, ShipmentLine
        from tests import factories as f

        h4 = await f.consignee(s, "H4")
        sh = Shipment(ref="S9", consignee_id=h4.id, shipped_on=date(2026, 4, 1))
        s.add(sh)
        await s.flush()
        s.add(ShipmentLine(shipment_id=sh.id, lot_id=world.finished[1], quantity=7))
    created = await post_recall(stack, level=2, product="PUMP", lot="P-100")
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    task = await approval_task(stack, created["id"])
    await handle.execute_update("sign_off", signoff(task.id, "mgr1", "qa_manager"), result_type=SignOffResult)

    async def first(s):
        return await s.scalar(select(func.count()).select_from(Notice)) == 6

    await wait_for(first, stack)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.post(
            f"/api/recalls/{created['id']}/scope",
            headers=token(stack, "qa1", Role.qa),
            json={"suspects": [{"product_code": "PUMP", "lot_number": "P-101"}], "reason": "also"},
        )
    assert r.status_code == 200, r.text
    diff = r.json()
    assert (
        diff["version"] == 2 and diff["added_lots"] == ["PUMP/P-101"] and diff["added_consignees"] == ["H4"]
    )

    async def second(s):
        return await s.scalar(select(func.count()).select_from(Notice)) == 8

    await wait_for(second, stack)
    async with stack.sessions() as s:
        h4_id = await s.scalar(select(RecallConsignee.consignee_id).where(RecallConsignee.version == 2))
        new = list(await s.scalars(select(Notice).where(Notice.consignee_id == h4_id)))
        assert {n.channel.value for n in new} == {"email", "sms"} and {n.attempt for n in new} == {1}
        assert [h.reference for h in await active_holds(s, world.finished[1])] == [f"recall-{created['id']}"]


async def test_widening_a_us_recall_opens_an_806_amendment_due_10_working_days_later(recall_stack):
    from domain.policy.calendars import working_day_deadline
    from domain.tasks.models import Task

    stack = recall_stack
    world = await build_world(stack.sessions)
    created = await post_recall(stack, product="PUMP", lot="P-100", us=True)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        handle = stack.client.get_workflow_handle(created["workflow_id"])
        task = await approval_task(stack, created["id"])
        await handle.execute_update(
            "sign_off", signoff(task.id, "mgr1", "qa_manager"), result_type=SignOffResult
        )

        async def notified(s):
            return await s.scalar(select(func.count()).select_from(Notice)) > 0

        await wait_for(notified, stack)
        r = await http.post(
            f"/api/recalls/{created['id']}/scope",
            headers=token(stack, "qa1", Role.qa),
            json={"suspects": [{"product_code": "PUMP", "lot_number": "P-101"}], "reason": "also"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["added_lots"] == ["PUMP/P-101"] and world.finished

    async def amendment(s):
        return await s.scalar(
            select(Task).where(Task.record_id == created["id"], Task.kind == "file:us.806_amendment.v2")
        )

    task = await wait_for(amendment, stack)
    assert task.candidate_roles == ["regulatory"] and "806" in task.title
    async with stack.sessions() as s:
        recall = await s.get(Recall, created["id"])
        deadlines = {d["key"]: d for d in recall.deadlines}
        drafts = await s.scalar(
            select(func.count())
            .select_from(RecallReport)
            .where(RecallReport.recall_id == created["id"], RecallReport.kind == "us_806")
        )
    # Due at the end of the 10th US working day after the widening (the workflow's clock).
    widened_at = (await handle.describe()).start_time  # a lower bound; the widening came after
    assert datetime.fromisoformat(deadlines["us.806_amendment.v2"]["due_at"]) == task.due_at
    assert task.due_at >= working_day_deadline(widened_at, 10, "US").due_at
    assert task.due_at <= working_day_deadline(widened_at + timedelta(days=1), 10, "US").due_at
    assert "us.806_report" in deadlines  # the original report's deadline stays
    assert drafts == 2  # the 806 report drafted again over the widened scope


async def test_eu_fsca_gate_holds_notices_until_reported(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.post(
            "/api/recalls",
            headers=token(stack, "qa1", Role.qa),
            json={
                "suspects": [{"product_code": "RESIN", "lot_number": "R-001"}],
                "reason": "Seal may leak",
                "hazard": "Leak",
                "jurisdictions": ["EU"],
            },
        )
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "eu_incident"  # no severity given
        aware = datetime.now(UTC) - timedelta(days=2)
        r = await http.post(
            "/api/recalls",
            headers=token(stack, "qa1", Role.qa),
            json={
                "suspects": [{"product_code": "RESIN", "lot_number": "R-001"}],
                "reason": "Seal may leak",
                "hazard": "Leak",
                "jurisdictions": ["EU"],
                "eu_incident": "serious_incident",
                "eu_aware_at": aware.isoformat(),
            },
        )
    assert r.status_code == 201, r.text
    created = r.json()
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    task = await approval_task(stack, created["id"])
    await handle.execute_update("sign_off", signoff(task.id, "mgr1", "qa_manager"), result_type=SignOffResult)

    async def vigilance_filing(s):  # MDR Art. 87: the serious incident report, 15 days from awareness
        return await s.scalar(select(Task).where(Task.kind == "file:eu.serious_incident_report"))

    filing = await wait_for(vigilance_filing, stack)
    assert filing.candidate_roles == ["regulatory"] and filing.due_at == aware + timedelta(days=15)

    async def gated(s):
        return await s.scalar(select(Task).where(Task.kind == "report_fsca"))

    fsca = await wait_for(gated, stack)
    async with stack.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Notice)) == 0  # nothing sent before the report
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            "sign_off", signoff(fsca.id, "mgr1", "qa_manager"), result_type=SignOffResult
        )
    await handle.execute_update("sign_off", signoff(fsca.id, "reg1", "regulatory"), result_type=SignOffResult)

    async def sent(s):
        return await s.scalar(select(func.count()).select_from(Notice)) == 6

    await wait_for(sent, stack)


async def test_cancelled_before_approval_with_a_signed_justification(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions)
    created = await post_recall(stack, level=1)
    handle = stack.client.get_workflow_handle(created["workflow_id"])
    task = await approval_task(stack, created["id"])
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        qa_try = await http.post(
            f"/api/recalls/{created['id']}/close",
            headers=token(stack, "qa1", Role.qa),
            json={"password": PASSWORD, "justification": "Raised in error, wrong lot"},
        )
        assert qa_try.status_code == 403
        r = await http.post(
            f"/api/recalls/{created['id']}/close",
            headers=token(stack, "mgr1", Role.qa_manager),
            json={"password": PASSWORD, "justification": "Raised in error, wrong lot"},
        )
        assert r.status_code == 200, r.text
    outcome = RecallOutcome.model_validate(await outcome_of(handle))
    assert outcome.status == RecallStatus.cancelled
    async with stack.sessions() as s:
        t = await s.get(Task, task.id)
        await s.refresh(t)
        assert t.status.value == "cancelled"
        sig = await s.scalar(select(Signature).where(Signature.record_id == created["id"]))
        assert sig.meaning.value == "cancelled" and sig.reason == "Raised in error, wrong lot"
        assert await s.scalar(select(func.count()).select_from(Notice)) == 0


@ON_BOTH_DATABASES
async def test_eu_urgent_override_sends_before_the_fsca_report_with_a_signed_justification(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.post(
            "/api/recalls",
            headers=token(stack, "qa1", Role.qa),
            json={
                "suspects": [{"product_code": "RESIN", "lot_number": "R-001"}],
                "reason": "Seal may leak",
                "hazard": "Leak",
                "jurisdictions": ["EU"],
                "fda_class": "I",
            },
        )
        created = r.json()
        task = await approval_task(stack, created["id"])
        handle = stack.client.get_workflow_handle(created["workflow_id"])
        await handle.execute_update(
            "sign_off", signoff(task.id, "mgr1", "qa_manager"), result_type=SignOffResult
        )

        async def gated(s):
            return await s.scalar(select(Task).where(Task.kind == "report_fsca"))

        await wait_for(gated, stack)
        headers = token(stack, "mgr1", Role.qa_manager)
        weak = await http.post(
            f"/api/recalls/{created['id']}/urgent-override",
            headers=headers,
            json={"password": "wrong password", "justification": "Patients at risk today"},
        )
        assert weak.status_code == 401
        ok = await http.post(
            f"/api/recalls/{created['id']}/urgent-override",
            headers=headers,
            json={"password": PASSWORD, "justification": "Patients at risk today"},
        )
        assert ok.status_code == 200, ok.text

    async def sent(s):
        return await s.scalar(select(func.count()).select_from(Notice)) == 6

    await wait_for(sent, stack)
    async with stack.sessions() as s:
        sig = await s.scalar(select(Signature).where(Signature.meaning == "overridden"))
        assert sig.signer == "mgr1" and sig.reason == "Patients at risk today"
