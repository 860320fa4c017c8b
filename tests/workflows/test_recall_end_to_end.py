"""A recall end to end through the HTTP API, with the real SMTP server, the twilio SDK against the local
endpoint, signed acknowledgement links and signed SMS webhooks; timers on the time-skipping server.

QA posts a recall, the manager signs, mails and texts arrive; one consignee acknowledges by link with
quantities, one by SMS, one never (it is escalated); the recall's progress shows exactly that. Then
every kind of bad input is refused and changes nothing.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from domain.enums import Role
from domain.models import Consignee, DevSmsMessage
from domain.recalls.models import Recall, RecallConsignee, Response, ResponseQuantity
from notifications.devmail import list_messages
from tests.workflows.conftest import ON_BOTH_DATABASES, PASSWORD, build_world, notice_mails, wait_for
from tests.workflows.test_recall_workflow import approval_task, post_recall, token

pytestmark = pytest.mark.temporal
LINK = re.compile(r"https?://[^\s\"'<>]+/ack/\d+/[A-Za-z0-9_\-]+")


async def counts(stack) -> dict[str, int]:
    async with stack.sessions() as s:
        return {
            "responses": await s.scalar(select(func.count()).select_from(Response)),
            "quantities": await s.scalar(select(func.count()).select_from(ResponseQuantity)),
            "recalls": await s.scalar(select(func.count()).select_from(Recall)),
        }


async def start_and_approve(stack, level: int = 2) -> dict:
    created = await post_recall(stack, level=level)
    task = await approval_task(stack, created["id"])
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        r = await http.post(
            f"/api/tasks/{task.id}/sign",
            json={"password": PASSWORD, "decision": "approved"},
            headers=token(stack, "mgr1", Role.qa_manager),
        )
        assert r.status_code == 200, r.text

    async def all_out(s):
        # Texts and mails go out concurrently: wait for both channels, not whichever is first.
        n = await s.scalar(
            select(func.count()).select_from(DevSmsMessage).where(DevSmsMessage.direction == "outbound-api")
        )
        return n == 3 and len(notice_mails(stack)) == 3

    await wait_for(all_out, stack)
    return created


@ON_BOTH_DATABASES
async def test_one_by_link_one_by_sms_one_never(recall_stack, time_env):
    stack = recall_stack
    await build_world(stack.sessions)
    created = await start_and_approve(stack)
    assert len(notice_mails(stack)) == 3
    async with stack.sessions() as s:
        consignees = {c.code: c for c in await s.scalars(select(Consignee))}
    h1_mail = next(m for m in list_messages(stack.maildir) if consignees["H1"].email in m.envelope_to)
    link = LINK.search(h1_mail.text or h1_mail.html or "").group(0)
    path = link.split(stack.base_url, 1)[1]

    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        page = await http.get(path)
        assert page.status_code == 200 and "P-100" in page.text and "P-101" in page.text
        lot_ids = [int(x) for x in re.findall(r'name="on_hand_(\d+)"', page.text)]
        assert len(lot_ids) == 2
        a, b = lot_ids
        form = {
            "received_and_understood": "on",
            "actions_completed": "on",
            "name": "Dr Wang",
            f"on_hand_{a}": "2",
            f"returned_{a}": "5",
            f"destroyed_{a}": "3",
            f"returned_{b}": "4",
        }
        done = await http.post(path, data=form)
        assert done.status_code == 201 and ("已收到" in done.text or "recorded" in done.text)
        repeat = await http.post(path, data=form)
        assert repeat.status_code == 200 and (
            "此前已记录" in repeat.text or "already recorded" in repeat.text
        )

        # H2 replies YES from its phone (the dev phone page signs the webhook as Twilio does).
        reply = await http.post(
            "/dev/phone/reply", data={"number": consignees["H2"].phone, "text": "YES"}, follow_redirects=False
        )
        assert reply.status_code in (200, 303)

    async with stack.sessions() as s:
        answer = await s.scalar(
            select(DevSmsMessage).where(
                DevSmsMessage.direction == "outbound-reply", DevSmsMessage.phone == consignees["H2"].phone
            )
        )
        assert answer is not None and "/ack/" in answer.body  # the link for the quantities

    await time_env.sleep(timedelta(days=4))  # past the level-2 notify deadline (3 days)

    async def escalated(s):
        return (
            await s.scalar(
                select(func.count()).select_from(RecallConsignee).where(RecallConsignee.overdue.is_(True))
            )
            == 1
        )

    await wait_for(escalated, stack)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        headers = token(stack, "qa1", Role.qa)
        rec = (await http.get(f"/api/recalls/{created['id']}", headers=headers)).json()
        rows = {
            c["code"]: c
            for c in (await http.get(f"/api/recalls/{created['id']}/consignees", headers=headers)).json()
        }
        tasks = (
            await http.get(
                f"/api/tasks?record_type=recall&record_id={created['id']}",
                headers=token(stack, "mgr1", Role.qa_manager),
            )
        ).json()
    assert rec["progress"]["planned"] == 3
    assert rec["progress"]["sent"] == 3
    assert rec["progress"]["acknowledged"] == 2
    assert rec["progress"]["overdue"] == 1
    assert rec["units"]["shipped"] == 34 and rec["units"]["returned"] == 9 and rec["units"]["destroyed"] == 3
    assert rows["H1"]["state"] == "acknowledged" and not rows["H1"]["overdue"]
    assert [e["channel"] for e in rows["H1"]["timeline"] if e["kind"] == "acknowledged"] == ["web"]
    assert rows["H2"]["state"] == "acknowledged"
    assert [e["channel"] for e in rows["H2"]["timeline"] if e["kind"] == "acknowledged"] == ["sms"]
    assert rows["H3"]["state"] != "acknowledged" and rows["H3"]["overdue"]
    assert [t["kind"] for t in tasks if t["kind"] == "call_consignee"] == ["call_consignee"]
    notify = next(d for d in rec["deadlines"] if d["kind"] == "notify")
    assert notify["met"] is True  # every consignee had a sent notice before the deadline
    assert rec["status"] == "in_progress"


async def test_bad_input_is_refused_and_changes_nothing(recall_stack):
    stack = recall_stack
    await build_world(stack.sessions)
    qa = token(stack, "qa1", Role.qa)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        before = await counts(stack)
        unknown = await http.post(
            "/api/recalls",
            headers=qa,
            json={
                "suspects": [{"product_code": "RESIN", "lot_number": "NOPE"}],
                "reason": "x",
                "hazard": "y",
                "nmpa_level": 1,
            },
        )
        assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"].startswith("suspects.0")
        bad_level = await http.post(
            "/api/recalls",
            headers=qa,
            json={
                "suspects": [{"product_code": "RESIN", "lot_number": "R-001"}],
                "reason": "x",
                "hazard": "y",
                "nmpa_level": 4,
            },
        )
        assert bad_level.status_code == 422 and bad_level.json()["detail"][0]["field"] == "nmpa_level"
        empty = await http.post(
            "/api/recalls", headers=qa, json={"suspects": [], "reason": "x", "hazard": "y", "nmpa_level": 1}
        )
        assert empty.status_code == 422 and empty.json()["detail"][0]["field"] == "suspects"
        wrong_role = await http.post(
            "/api/recalls",
            headers=token(stack, "mgr1", Role.qa_manager),
            json={
                "suspects": [{"product_code": "RESIN", "lot_number": "R-001"}],
                "reason": "x",
                "hazard": "y",
                "nmpa_level": 1,
            },
        )
        assert wrong_role.status_code == 403
        assert await counts(stack) == before

    created = await start_and_approve(stack)
    async with stack.sessions() as s:
        rc = await s.scalar(select(RecallConsignee).order_by(RecallConsignee.id))
        phone = (await s.get(Consignee, rc.consignee_id)).phone
    from domain.recalls.links import ack_path

    path = ack_path(rc.id, secret=stack.settings.secret_key)
    forged = ack_path(rc.id, secret="not-the-secret")
    tampered = f"/ack/{rc.id + 1}/{path.rsplit('/', 1)[1]}"
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        before = await counts(stack)
        for bad in (forged, tampered):
            assert (await http.get(bad)).status_code == 403
            assert (
                await http.post(bad, json={"received_and_understood": True, "name": "x"})
            ).status_code == 403
        lot_id = int(re.findall(r'name="on_hand_(\d+)"', (await http.get(path)).text)[0])
        negative = await http.post(
            path,
            json={
                "received_and_understood": True,
                "name": "A",
                "quantities": [{"lot_id": lot_id, "on_hand": -1}],
            },
        )
        assert negative.status_code == 422 and negative.json()["detail"][0]["field"] == "quantities.0.on_hand"
        words = await http.post(
            path, data={"received_and_understood": "on", "name": "A", f"on_hand_{lot_id}": "ten"}
        )
        assert words.status_code == 422
        other_lot = await http.post(
            path,
            json={
                "received_and_understood": True,
                "name": "A",
                "quantities": [{"lot_id": 999999, "on_hand": 1}],
            },
        )
        assert other_lot.status_code == 422
        assert await counts(stack) == before

        # Twilio webhooks: a wrong signature is refused; an unknown number is answered and nothing recorded.
        url = stack.base_url + "/webhooks/twilio/sms"
        params = {"From": phone, "Body": "YES", "MessageSid": "SMx"}
        bad_sig = await http.post(
            "/webhooks/twilio/sms", data=params, headers={"X-Twilio-Signature": "forged"}
        )
        assert bad_sig.status_code == 403
        stranger = {"From": "+8613999999999", "Body": "YES", "MessageSid": "SMy"}
        sig = RequestValidator(stack.settings.twilio_auth_token).compute_signature(url, stranger)
        unknown = await http.post("/webhooks/twilio/sms", data=stranger, headers={"X-Twilio-Signature": sig})
        assert unknown.status_code == 200 and "no recall notice" in unknown.text
        assert await counts(stack) == before

        # Closed recall: an acknowledgement afterwards is refused.
        mgr = token(stack, "mgr1", Role.qa_manager)
        short = await http.post(
            f"/api/recalls/{created['id']}/close",
            headers=mgr,
            json={"password": PASSWORD, "justification": "too short"},
        )
        assert short.status_code == 422
        closed = await http.post(
            f"/api/recalls/{created['id']}/close",
            headers=mgr,
            json={"password": PASSWORD, "justification": "Closed by QA after field review"},
        )
        assert closed.status_code == 200, closed.text

        async def is_closed(s):
            r = await s.get(Recall, created["id"])
            await s.refresh(r)
            return r.status.value == "closed"

        await wait_for(is_closed, stack)
        late = await http.post(path, json={"received_and_understood": True, "name": "Late"})
        assert late.status_code == 409
        assert await counts(stack) == before
        again = await http.post(
            f"/api/recalls/{created['id']}/close",
            headers=mgr,
            json={"password": PASSWORD, "justification": "Closed by QA after field review"},
        )
        assert again.status_code == 409
