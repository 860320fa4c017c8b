"""Delivery receipts: stored first, then applied to the notice they name (now, or once it is recorded).

A receipt can overtake the sender's record of its message (a fast provider calls back before the
sending round has committed the message id). Both sides therefore take a lock per message id first
(:func:`lock_messages`) and then look for the other: whichever commits second sees the first's rows,
so a receipt is never left unapplied beside its recorded notice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.recalls.models import DeliveryReceipt, Notice, NoticeEvent, RecallConsignee
from domain.recalls.payloads import ConsigneeState, NoticeState
from domain.recalls.service import advance_in_store, sql_values, states_below

# Provider statuses, mapped onto the notice's receipt ladder ("sent"/"queued" add nothing we lack).
DELIVERY = {
    "delivered": NoticeState.delivered,
    "failed": NoticeState.failed,
    "undelivered": NoticeState.failed,
}
# The class of the two-key advisory locks taken per message id (the one-key space is the audit trail's).
RECEIPT_LOCK_CLASS = 0x52435054  # "RCPT"


def _lock_key(provider_id: str) -> int:
    """A stable signed 32-bit key for a message id (a collision only serialises two messages)."""
    return int.from_bytes(hashlib.blake2b(provider_id.encode(), digest_size=4).digest(), "big", signed=True)


async def lock_messages(session: AsyncSession, provider_ids: Iterable[str]) -> None:
    """Serialise, until this transaction ends, everything that records a message id or a receipt for it;
    what is read after this sees whatever the other side committed.

    PostgreSQL: transaction-scoped advisory locks, one per message id, taken in key order. SQLite:
    its single write lock, taken now by a write that matches no row."""
    keys = sorted({_lock_key(p) for p in provider_ids if p})
    if not keys:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:cls, k) FROM unnest(CAST(:keys AS integer[])) AS k"),
            {"cls": RECEIPT_LOCK_CLASS, "keys": keys},
        )
    else:
        await session.execute(text("DELETE FROM delivery_receipts WHERE 0"))


async def record_receipt(
    session: AsyncSession,
    *,
    provider_id: str,
    status: str,
    error_code: str | None = None,
    channel: str = "sms",
) -> None:
    """Store a receipt as it arrived, then apply whatever can be applied.

    Usually the notice is recorded already: one read (the notice, and any receipt of it still
    pending), the receipt stored as applied, and the notice's progress. A receipt that overtook the
    sender's record waits for the sender's transaction (:func:`lock_messages`) and looks again; if the
    notice is still not recorded, the receipt is stored pending and the sender applies it.

    On PostgreSQL the usual case is one statement (:data:`_RECORD_AND_APPLY`); the others take the
    statements below."""
    if session.get_bind().dialect.name == "postgresql" and await _record_and_apply_in_one_statement(
        session, provider_id=provider_id, status=status, error_code=error_code, channel=channel
    ):
        return
    found = await _notice_of(session, provider_id)
    if not found:
        await lock_messages(session, [provider_id])
        found = await _notice_of(session, provider_id)
    await session.execute(
        insert(DeliveryReceipt).values(
            provider_id=provider_id,
            status=status,
            error_code=error_code,
            channel=channel,
            applied=bool(found),
        )
    )
    if not found:
        return
    older = [r for r in found if r.receipt_id is not None]
    if older:
        await session.execute(
            update(DeliveryReceipt)
            .where(DeliveryReceipt.id.in_([r.receipt_id for r in older]))
            .values(applied=True)
            .execution_options(synchronize_session=False)
        )
    notice = found[0]
    await _apply_outcomes(
        session,
        [
            *(_Receipt(provider_id, r.status, r.error_code, r.channel, *notice[:4]) for r in older),
            _Receipt(provider_id, status, error_code, channel, *notice[:4]),
        ],
    )


_MOVABLE = sql_values((NoticeState.sent, NoticeState.sending))
# PostgreSQL, the usual case of :func:`record_receipt` in one statement: the notice is recorded and no
# receipt of it is pending (else nothing happens here and the caller takes the general path). The
# receipt is stored as applied; a delivery or failure moves the notice from sent (or sending) only,
# a delivery climbs the consignee's ladder (never down) and stamps it once, and a move is put on the
# timeline: what :func:`_apply_outcomes` does for one receipt.
_RECORD_AND_APPLY = text(
    f"""
    WITH n AS (
        SELECT n.id, n.recall_id, n.consignee_id, rc.id AS rc_id
          FROM notices n
          LEFT JOIN recall_consignees rc ON rc.recall_id = n.recall_id AND rc.consignee_id = n.consignee_id
         WHERE n.provider_id = :pid
           AND NOT EXISTS (SELECT 1 FROM delivery_receipts d WHERE d.provider_id = :pid AND NOT d.applied)
         ORDER BY n.id
         LIMIT 1
    ), receipt AS (
        INSERT INTO delivery_receipts (provider_id, channel, status, error_code, received_at, applied)
        SELECT :pid, :channel, :status, :error_code, :at, true FROM n
        RETURNING id
    ), moved AS (
        UPDATE notices
           SET state = CAST(:outcome AS varchar),
               delivered_at = CASE WHEN CAST(:outcome AS varchar) = '{NoticeState.delivered.value}'
                                   THEN :at ELSE delivered_at END,
               error = CASE WHEN CAST(:outcome AS varchar) = '{NoticeState.failed.value}'
                            THEN :error ELSE error END
         WHERE id = (SELECT id FROM n) AND CAST(:outcome AS varchar) IS NOT NULL AND state IN ({_MOVABLE})
        RETURNING id
    ), climbed AS (
        UPDATE recall_consignees rc
           SET state = CASE WHEN rc.state IN ({sql_values(states_below(ConsigneeState.delivered))})
                            THEN '{ConsigneeState.delivered.value}' ELSE rc.state END,
               delivered_at = COALESCE(rc.delivered_at, :at)
         WHERE rc.id = (SELECT rc_id FROM n)
           AND CAST(:outcome AS varchar) = '{NoticeState.delivered.value}'
           AND EXISTS (SELECT 1 FROM moved)
           AND (rc.state IN ({sql_values(states_below(ConsigneeState.delivered))}) OR rc.delivered_at IS NULL)
    ), event AS (
        INSERT INTO notice_events (recall_id, consignee_id, notice_id, kind, channel, at, detail)
        SELECT n.recall_id, n.consignee_id, n.id, CAST(:outcome AS varchar), :channel, :at,
               CAST(:detail AS json)
          FROM n WHERE EXISTS (SELECT 1 FROM moved)
    )
    SELECT count(*) FROM n
    """
)


async def _record_and_apply_in_one_statement(
    session: AsyncSession, *, provider_id: str, status: str, error_code: str | None, channel: str
) -> bool:
    """:data:`_RECORD_AND_APPLY`; False when it did nothing (the general path applies)."""
    outcome = DELIVERY.get(status)
    handled = await session.scalar(
        _RECORD_AND_APPLY,
        {
            "pid": provider_id,
            "channel": channel,
            "status": status,
            "error_code": error_code,
            "at": datetime.now(UTC),
            "outcome": outcome.value if outcome else None,
            "error": _failure(status, error_code),
            "detail": json.dumps({"sid": provider_id, "status": status}),
        },
    )
    return bool(handled)


def _failure(status: str, error_code: str | None) -> str:
    """A failed notice's error: "failed" is permanent, "undelivered" temporary, with the provider's code."""
    kind = "permanent" if status == "failed" else "temporary"
    return f"{kind}: {error_code or ''} {status}".strip()


class _Receipt(NamedTuple):
    provider_id: str
    status: str
    error_code: str | None
    channel: str
    notice_id: int
    recall_id: int
    consignee_id: int
    rc_id: int | None


async def _notice_of(session: AsyncSession, provider_id: str) -> list:
    """The notice of a message id (with its consignee's row) and the receipts of it still pending,
    oldest first: one row per pending receipt, or one row with no receipt; none if not recorded."""
    return list(
        (
            await session.execute(
                select(
                    Notice.id,
                    Notice.recall_id,
                    Notice.consignee_id,
                    RecallConsignee.id.label("rc_id"),
                    DeliveryReceipt.id.label("receipt_id"),
                    DeliveryReceipt.status,
                    DeliveryReceipt.error_code,
                    DeliveryReceipt.channel,
                )
                .outerjoin(
                    RecallConsignee,
                    (RecallConsignee.recall_id == Notice.recall_id)
                    & (RecallConsignee.consignee_id == Notice.consignee_id),
                )
                .outerjoin(
                    DeliveryReceipt,
                    (DeliveryReceipt.provider_id == Notice.provider_id) & DeliveryReceipt.applied.is_(False),
                )
                .where(Notice.provider_id == provider_id)
                .order_by(DeliveryReceipt.id)
            )
        ).all()
    )


async def apply_receipts(session: AsyncSession, *, provider_ids: list[str]) -> int:
    """Apply the unapplied receipts of these message ids to their notices, in arrival order; a repeat
    (the same status again) changes nothing. Receipts whose notice is not recorded yet stay pending.

    For the sending round, which has just recorded these message ids: it takes their locks first
    (see :func:`lock_messages`), then a few statements whatever the number of receipts. Returns how
    many receipts were applied."""
    if not provider_ids:
        return 0
    await lock_messages(session, provider_ids)
    rows = (
        await session.execute(
            select(
                DeliveryReceipt.id,
                DeliveryReceipt.provider_id,
                DeliveryReceipt.status,
                DeliveryReceipt.error_code,
                DeliveryReceipt.channel,
                Notice.id.label("notice_id"),
                Notice.recall_id,
                Notice.consignee_id,
                RecallConsignee.id.label("rc_id"),
            )
            .join(Notice, Notice.provider_id == DeliveryReceipt.provider_id)
            .outerjoin(
                RecallConsignee,
                (RecallConsignee.recall_id == Notice.recall_id)
                & (RecallConsignee.consignee_id == Notice.consignee_id),
            )
            .where(DeliveryReceipt.provider_id.in_(provider_ids), DeliveryReceipt.applied.is_(False))
            .order_by(DeliveryReceipt.id)
        )
    ).all()
    if not rows:
        return 0
    await session.execute(
        update(DeliveryReceipt)
        .where(DeliveryReceipt.id.in_([r.id for r in rows]))
        .values(applied=True)
        .execution_options(synchronize_session=False)
    )
    await _apply_outcomes(session, [_Receipt(*r[1:]) for r in rows])
    return len(rows)


async def _apply_outcomes(session: AsyncSession, receipts: list[_Receipt]) -> None:
    """Move each notice by the first of its receipts (in arrival order) that has an outcome, only from
    sent (or sending) and by a conditional UPDATE, so a concurrent writer's progress is kept; then
    the consignees' progress and the timeline events."""
    first: dict[int, _Receipt] = {}
    for r in receipts:
        if r.status in DELIVERY and r.notice_id not in first:
            first[r.notice_id] = r
    now = datetime.now(UTC)
    events = []
    delivered = [r for r in first.values() if DELIVERY[r.status] == NoticeState.delivered]
    if delivered:
        moved = set(
            (
                await session.execute(
                    update(Notice)
                    .where(
                        Notice.id.in_([r.notice_id for r in delivered]),
                        Notice.state.in_((NoticeState.sent, NoticeState.sending)),
                    )
                    .values(state=NoticeState.delivered, delivered_at=now)
                    .returning(Notice.id)
                )
            ).scalars()
        )
        reached = [r for r in delivered if r.notice_id in moved]
        await advance_in_store(
            session,
            recall_consignee_ids=[r.rc_id for r in reached if r.rc_id is not None],
            state=ConsigneeState.delivered,
            at=now,
            count_moved=False,
        )
        events += [(r, NoticeState.delivered) for r in reached]
    for r in first.values():
        if DELIVERY[r.status] != NoticeState.failed:
            continue
        failed = await session.execute(
            update(Notice)
            .where(Notice.id == r.notice_id, Notice.state.in_((NoticeState.sent, NoticeState.sending)))
            .values(state=NoticeState.failed, error=_failure(r.status, r.error_code))
            .returning(Notice.id)
        )
        if failed.first() is not None:
            events.append((r, NoticeState.failed))
    if events:
        await session.execute(
            insert(NoticeEvent),
            [
                {
                    "recall_id": r.recall_id,
                    "consignee_id": r.consignee_id,
                    "notice_id": r.notice_id,
                    "kind": state.value,
                    "channel": r.channel,
                    "detail": {"sid": r.provider_id, "status": r.status},
                }
                for r, state in events
            ],
        )
