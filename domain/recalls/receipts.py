"""Delivery receipts: stored first, then applied to the notice they name (now, or once it is recorded)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.recalls.models import DeliveryReceipt, Notice, RecallConsignee
from domain.recalls.payloads import ConsigneeState, NoticeState
from domain.recalls.service import add_event, advance_in_store

# Provider statuses, mapped onto the notice's receipt ladder ("sent"/"queued" add nothing we lack).
DELIVERY = {
    "delivered": NoticeState.delivered,
    "failed": NoticeState.failed,
    "undelivered": NoticeState.failed,
}


async def record_receipt(
    session: AsyncSession,
    *,
    provider_id: str,
    status: str,
    error_code: str | None = None,
    channel: str = "sms",
) -> None:
    """Store a receipt as it arrived, then apply whatever can be applied."""
    session.add(
        DeliveryReceipt(provider_id=provider_id, status=status, error_code=error_code, channel=channel)
    )
    await session.flush()
    await apply_receipts(session, provider_ids=[provider_id])


async def apply_receipts(session: AsyncSession, *, provider_ids: list[str]) -> int:
    """Apply the unapplied receipts of these message ids to their notices, in arrival order; a repeat
    (the same status again) changes nothing. Receipts whose notice is not recorded yet stay pending."""
    if not provider_ids:
        return 0
    receipts = list(
        await session.scalars(
            select(DeliveryReceipt)
            .where(DeliveryReceipt.provider_id.in_(provider_ids), DeliveryReceipt.applied.is_(False))
            .order_by(DeliveryReceipt.id)
        )
    )
    applied = 0
    for receipt in receipts:
        notice = await session.scalar(select(Notice).where(Notice.provider_id == receipt.provider_id))
        if notice is None:
            continue
        receipt.applied = True
        applied += 1
        new = DELIVERY.get(receipt.status)
        if new is None or notice.state not in (NoticeState.sent, NoticeState.sending):
            continue
        notice.state = new
        now = datetime.now(UTC)
        if new == NoticeState.delivered:
            notice.delivered_at = notice.delivered_at or now
            rc_id = await session.scalar(
                select(RecallConsignee.id).where(
                    RecallConsignee.recall_id == notice.recall_id,
                    RecallConsignee.consignee_id == notice.consignee_id,
                )
            )
            if rc_id is not None:
                await advance_in_store(
                    session, recall_consignee_ids=[rc_id], state=ConsigneeState.delivered, at=now
                )
        else:
            kind = "permanent" if receipt.status == "failed" else "temporary"
            notice.error = f"{kind}: {receipt.error_code or ''} {receipt.status}".strip()
        await add_event(
            session,
            recall_id=notice.recall_id,
            consignee_id=notice.consignee_id,
            kind=new.value,
            channel=receipt.channel,
            notice_id=notice.id,
            detail={"sid": receipt.provider_id, "status": receipt.status},
        )
    await session.flush()
    return applied
