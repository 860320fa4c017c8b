"""Delivery receipts are stored as they arrive and applied once the notice they name is recorded."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update

from domain.models import Shipment, ShipmentLine
from domain.recalls import service as recalls
from domain.recalls.models import DeliveryReceipt, Notice, NoticeEvent, RecallConsignee
from domain.recalls.payloads import Channel, ConsigneeState, NoticeState
from domain.recalls.receipts import apply_receipts, record_receipt
from tests import factories as f


async def _one_notice(s) -> Notice:
    from datetime import date

    p = await f.product(s)
    lot = await f.lot(s, p, "L1")
    c = await f.consignee(s, "H1")
    sh = Shipment(ref="S1", consignee_id=c.id, shipped_on=date(2026, 1, 2))
    s.add(sh)
    await s.flush()
    s.add(
        ShipmentLine(
            shipment_id=sh.id, lot_id=lot.id, quantity=3, consignee_id=c.id, shipped_on=sh.shipped_on
        )
    )
    recall = await recalls.create_recall(
        s,
        suspect_lot_ids=[lot.id],
        reason="r",
        hazard="h",
        nmpa_level=3,
        fda_class=None,
        jurisdictions=["CN"],
        depth="user",
        required_actions=["stop_use"],
        initiated_by="qa1",
    )
    await recalls.freeze_scope(s, recall_id=recall.id, version=1)
    n = Notice(
        recall_id=recall.id,
        consignee_id=c.id,
        channel=Channel.sms,
        attempt=1,
        address=c.phone,
        state=NoticeState.sending,
    )
    s.add(n)
    await s.flush()
    return n


async def test_a_receipt_that_overtakes_the_send_record_is_applied_later(store):
    async with store.sessions() as s, s.begin():
        notice = await _one_notice(s)
        await record_receipt(s, provider_id="SM1", status="sent")
        await record_receipt(s, provider_id="SM1", status="delivered")
        assert await s.scalar(select(func.count()).select_from(DeliveryReceipt)) == 2  # stored, not lost
        assert notice.state == NoticeState.sending  # the sender has not recorded SM1 yet
        notice.state, notice.provider_id = NoticeState.sent, "SM1"
        recalls.advance_state(await s.scalar(select(RecallConsignee)), ConsigneeState.sent, notice.planned_at)
        assert await apply_receipts(s, provider_ids=["SM1"]) == 2
        assert notice.state == NoticeState.delivered
        rc = await s.scalar(select(RecallConsignee))
        assert rc.state == ConsigneeState.delivered
        # A repeated callback changes nothing.
        await record_receipt(s, provider_id="SM1", status="delivered")
        assert notice.state == NoticeState.delivered
        assert (
            await s.scalar(
                select(func.count()).select_from(DeliveryReceipt).where(DeliveryReceipt.applied.is_(False))
            )
            == 0
        )


async def test_a_receipt_committed_while_the_sender_records_its_message_is_applied(store):
    """The race a fast provider runs: its callback is stored (not yet committed) while the sending round
    records the message id; whichever commits second must see the other, or the notice stays 'sent'."""
    async with store.sessions() as s, s.begin():
        notice_id = (await _one_notice(s)).id
    async with store.sessions() as provider, store.sessions() as sender:
        await provider.begin()
        await record_receipt(provider, provider_id="SM2", status="delivered")  # the notice is not recorded

        async def record_the_send() -> int:
            async with sender.begin():
                await sender.execute(
                    update(Notice)
                    .where(Notice.id == notice_id)
                    .values(state=NoticeState.sent, provider_id="SM2")
                    .execution_options(synchronize_session=False)
                )
                return await apply_receipts(sender, provider_ids=["SM2"])

        sending = asyncio.ensure_future(record_the_send())
        await asyncio.sleep(0.5)
        assert not sending.done()  # it waits for the receipt's transaction to end...
        await provider.commit()
        assert await sending == 1  # ...and then sees the receipt
    async with store.sessions() as s:
        assert (await s.get(Notice, notice_id)).state == NoticeState.delivered
        assert await s.scalar(select(func.count()).where(DeliveryReceipt.applied.is_(False))) == 0


async def test_a_receipt_arriving_while_the_sender_records_its_message_is_applied(store):
    """The same race the other way round: the sender has written the message id (not committed) when
    the receipt arrives and finds no notice; one of the two must still apply it."""
    async with store.sessions() as s, s.begin():
        notice_id = (await _one_notice(s)).id
    async with store.sessions() as sender:
        await sender.begin()
        await sender.execute(
            update(Notice)
            .where(Notice.id == notice_id)
            .values(state=NoticeState.sent, provider_id="SM3")
            .execution_options(synchronize_session=False)
        )

        async def receipt() -> None:
            async with store.sessions() as provider, provider.begin():
                await record_receipt(provider, provider_id="SM3", status="delivered")

        arriving = asyncio.ensure_future(receipt())
        await asyncio.sleep(0.5)
        await apply_receipts(sender, provider_ids=["SM3"])
        await sender.commit()
        await arriving
    async with store.sessions() as s:
        assert (await s.get(Notice, notice_id)).state == NoticeState.delivered
        assert await s.scalar(select(func.count()).where(DeliveryReceipt.applied.is_(False))) == 0


async def _receipt(store, sid: str, status: str, error_code: str | None = None) -> None:
    async with store.sessions() as s, s.begin():
        await record_receipt(s, provider_id=sid, status=status, error_code=error_code)


async def test_receipts_of_a_recorded_message_move_the_notice_and_the_consignee_once(store):
    """The usual case (on PostgreSQL one statement): "sent" is stored and moves nothing; "delivered"
    moves the notice and the consignee's ladder with one timeline event; a repeat is stored, moves
    nothing and adds no event; a failure after delivery changes nothing either."""
    async with store.sessions() as s, s.begin():
        notice = await _one_notice(s)
        notice.state, notice.provider_id = NoticeState.sent, "SM9"
        recalls.advance_state(await s.scalar(select(RecallConsignee)), ConsigneeState.sent, notice.planned_at)
        notice_id = notice.id

    async def state() -> tuple:
        async with store.sessions() as s:
            n = await s.get(Notice, notice_id)
            rc = await s.scalar(select(RecallConsignee))
            events = [(e.kind, e.channel, e.detail) for e in await s.scalars(select(NoticeEvent))]
            receipts = [(r.status, r.applied) for r in await s.scalars(select(DeliveryReceipt))]
            return n.state, n.delivered_at, rc.state, rc.delivered_at, events, receipts

    await _receipt(store, "SM9", "sent")
    n_state, _at, rc_state, rc_at, events, receipts = await state()
    assert (n_state, rc_state, rc_at, events, receipts) == (
        NoticeState.sent,
        ConsigneeState.sent,
        None,
        [],
        [("sent", True)],
    )
    await _receipt(store, "SM9", "delivered")
    await _receipt(store, "SM9", "delivered")
    await _receipt(store, "SM9", "failed", "30003")
    n_state, n_at, rc_state, rc_at, events, receipts = await state()
    assert n_state == NoticeState.delivered and rc_state == ConsigneeState.delivered
    assert n_at is not None and rc_at is not None
    assert events == [("delivered", "sms", {"sid": "SM9", "status": "delivered"})]
    assert receipts == [("sent", True), ("delivered", True), ("delivered", True), ("failed", True)]


async def test_an_undelivered_receipt_fails_the_notice_with_the_providers_code(store):
    async with store.sessions() as s, s.begin():
        notice = await _one_notice(s)
        notice.state, notice.provider_id = NoticeState.sent, "SM8"
        notice_id = notice.id
    await _receipt(store, "SM8", "undelivered", "30005")
    async with store.sessions() as s:
        n = await s.get(Notice, notice_id)
        assert (n.state, n.error) == (NoticeState.failed, "temporary: 30005 undelivered")
        assert [e.kind for e in await s.scalars(select(NoticeEvent))] == ["failed"]
        assert (await s.scalar(select(RecallConsignee))).delivered_at is None
