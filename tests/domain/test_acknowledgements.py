"""Acknowledgements arriving at the same time: the same link submitted twice, and an SMS reply racing the
web form. Each answer is recorded once, nothing fails, and the audit trail stays one chain."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update

from domain.audit.models import AuditEntry
from domain.audit.policy import policy_for
from domain.audit.verify import verify_chain
from domain.models import Consignee
from domain.recalls import acknowledgements as acks
from domain.recalls.models import NoticeEvent, RecallConsignee, RecallExposure, Response, ResponseQuantity
from domain.recalls.payloads import ConsigneeState
from tests.domain.test_receipts import _one_notice


async def _recall_with_one_consignee(store) -> tuple[int, int, str]:
    """(recall consignee id, its lot id, the consignee's phone), notified by SMS."""
    async with store.sessions() as s, s.begin():
        notice = await _one_notice(s)
        rc = await s.scalar(select(RecallConsignee).where(RecallConsignee.recall_id == notice.recall_id))
        await s.execute(
            update(RecallConsignee).where(RecallConsignee.id == rc.id).values(last_attempt=1)
        )  # a notice went out: an SMS reply from this number matches it
        phone = (await s.get(Consignee, rc.consignee_id)).phone
        lot_id = await s.scalar(select(RecallExposure.lot_id).where(RecallExposure.recall_id == rc.recall_id))
        return rc.id, lot_id, phone


def _form(lot_id: int, name: str) -> acks.AckForm:
    return acks.AckForm.model_validate(
        {"received_and_understood": True, "name": name, "quantities": [{"lot_id": lot_id, "returned": 3}]}
    )


async def _web(store, rc_id: int, form: acks.AckForm) -> acks.AckOutcome:
    async with store.sessions() as s, s.begin():
        return await acks.record_web_response(s, recall_consignee_id=rc_id, form=form)


async def _sms(store, phone: str) -> acks.SmsOutcome:
    async with store.sessions() as s, s.begin():
        return await acks.record_sms_reply(s, from_number=phone, body="YES", link_for=lambda i: f"/ack/{i}")


async def _stored(store, rc_id: int) -> tuple:
    async with store.sessions() as s:
        rc = await s.get(RecallConsignee, rc_id)
        responses = list(await s.scalars(select(Response).where(Response.consignee_id == rc.consignee_id)))
        quantities = await s.scalar(select(func.count()).select_from(ResponseQuantity))
        acknowledged = await s.scalar(
            select(func.count()).where(
                NoticeEvent.kind == "acknowledged", NoticeEvent.consignee_id == rc.consignee_id
            )
        )
        assert (await verify_chain(s)).ok
        return rc, responses, quantities, acknowledged


async def test_the_same_link_submitted_twice_at_once_is_recorded_once(store):
    rc_id, lot_id, _phone = await _recall_with_one_consignee(store)
    outcomes = await asyncio.gather(
        _web(store, rc_id, _form(lot_id, "A")), _web(store, rc_id, _form(lot_id, "B"))
    )
    assert sorted(o.recorded for o in outcomes) == [False, True]
    assert "already recorded" in next(o.message for o in outcomes if not o.recorded)
    rc, responses, quantities, acknowledged = await _stored(store, rc_id)
    assert rc.state == ConsigneeState.acknowledged and rc.responded_at is not None
    assert len(responses) == 1 and responses[0].quantities_reported and quantities == 1 and acknowledged == 1
    assert responses[0].name == next(n for o, n in zip(outcomes, "AB", strict=True) if o.recorded)


async def test_an_sms_reply_racing_the_web_form_leaves_one_response_with_the_quantities(store):
    rc_id, lot_id, phone = await _recall_with_one_consignee(store)
    web, sms = await asyncio.gather(_web(store, rc_id, _form(lot_id, "Dr Li")), _sms(store, phone))
    assert web.recorded  # the form always completes the response, whichever came first
    rc, responses, quantities, acknowledged = await _stored(store, rc_id)
    assert len(responses) == 1 and responses[0].quantities_reported and responses[0].name == "Dr Li"
    assert quantities == 1 and rc.state == ConsigneeState.acknowledged
    # The receipt is acknowledged once (by whichever answer came first); the form is recorded either way.
    assert acknowledged == (2 if sms.acknowledged[0].recorded else 1)


async def test_the_web_form_after_an_sms_reply_completes_that_response(store):
    rc_id, lot_id, phone = await _recall_with_one_consignee(store)
    assert (await _sms(store, phone)).acknowledged[0].recorded
    again = await _sms(store, phone)
    assert not again.acknowledged[0].recorded and "already recorded" in again.reply
    assert (await _web(store, rc_id, _form(lot_id, "Dr Li"))).recorded
    assert not (await _web(store, rc_id, _form(lot_id, "Dr Li"))).recorded
    rc, responses, quantities, _acknowledged = await _stored(store, rc_id)
    assert [(r.channel, r.quantities_reported, r.name) for r in responses] == [("sms", True, "Dr Li")]
    assert quantities == 1 and rc.acknowledged_at <= rc.responded_at


async def _trail_of(store, record_type: str) -> list[tuple[str, dict]]:
    async with store.sessions() as s:
        rows = await s.scalars(
            select(AuditEntry).where(AuditEntry.record_type == record_type).order_by(AuditEntry.seq)
        )
        return [(e.action, e.changes) for e in rows]


async def test_the_answer_and_its_quantities_are_created_in_the_audit_trail(store):
    """The form's response and quantities are regulated records: each created with an audit entry,
    on both databases (PostgreSQL records them in one statement, around the session's hooks)."""
    rc_id, lot_id, _phone = await _recall_with_one_consignee(store)
    assert (await _web(store, rc_id, _form(lot_id, "Dr Wang"))).recorded
    [(action, changes)] = await _trail_of(store, policy_for(Response).record_type)
    assert action == "create" and changes["name"] == [None, "Dr Wang"] and changes["channel"] == [None, "web"]
    assert changes["quantities_reported"] == [None, True] and changes["sub_consignees"] == [None, []]
    [(action, changes)] = await _trail_of(store, policy_for(ResponseQuantity).record_type)
    assert action == "create" and changes["returned"] == [None, 3] and changes["lot_id"] == [None, lot_id]
    assert not (await _web(store, rc_id, _form(lot_id, "Dr Wang"))).recorded
    assert len(await _trail_of(store, policy_for(Response).record_type)) == 1  # a repeat: no entry
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok


async def test_a_response_begun_by_sms_is_completed_by_the_form_as_an_audited_update(store):
    rc_id, lot_id, phone = await _recall_with_one_consignee(store)
    assert (await _sms(store, phone)).acknowledged[0].recorded
    assert (await _web(store, rc_id, _form(lot_id, "Dr Li"))).recorded
    trail = await _trail_of(store, policy_for(Response).record_type)
    assert [a for a, _c in trail] == ["create", "update"]
    assert trail[0][1]["channel"] == [None, "sms"] and trail[1][1]["name"] == [None, "Dr Li"]
    assert trail[1][1]["quantities_reported"] == [False, True]
    assert len(await _trail_of(store, policy_for(ResponseQuantity).record_type)) == 1
    async with store.sessions() as s:
        assert (await verify_chain(s)).ok
