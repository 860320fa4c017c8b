"""Delivery receipts are stored as they arrive and applied once the notice they name is recorded."""

from __future__ import annotations

from sqlalchemy import func, select

from domain.models import Shipment, ShipmentLine
from domain.recalls import service as recalls
from domain.recalls.models import DeliveryReceipt, Notice, RecallConsignee
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
