"""Inbound acknowledgements: the web form behind a signed link, and SMS replies.

Each is committed to the store before anything is told to the workflow. A response is recorded once:
a repeat changes nothing and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidInput, NotFound
from domain.models import Consignee, Lot, Product
from domain.recalls.models import Recall, RecallConsignee, RecallExposure, Response, ResponseQuantity
from domain.recalls.payloads import ConsigneeState
from domain.recalls.service import CLOSED_STATES, add_event, advance_in_store, refuse_if_closed

# Replies that acknowledge receipt (the consignee's own code also does).
ACK_WORDS = {"YES", "Y", "ACK", "OK", "确认", "收到", "是"}


class LotQuantities(BaseModel):
    """What a consignee accounts for, for one lot: never negative, whole units."""

    lot_id: int
    on_hand: int = Field(default=0, ge=0)
    returned: int = Field(default=0, ge=0)
    corrected: int = Field(default=0, ge=0)
    destroyed: int = Field(default=0, ge=0)
    used: int = Field(default=0, ge=0)


class AckForm(BaseModel):
    """The acknowledgement form's contents (DOMAIN.md: acknowledgement contents)."""

    received_and_understood: bool
    actions_completed: bool = False
    forwarded_to_sub_accounts: bool = False
    no_affected_stock: bool = False
    name: str = Field(min_length=1, max_length=255)
    role: str | None = None
    site: str | None = None
    contact: str | None = None
    sub_consignees: list[str] = Field(default_factory=list)
    quantities: list[LotQuantities] = Field(default_factory=list)

    @model_validator(mode="after")
    def _must_confirm(self) -> AckForm:
        if not self.received_and_understood:
            raise ValueError("received_and_understood must be confirmed to acknowledge")
        return self


@dataclass
class AckOutcome:
    """What an acknowledgement did: ``recorded`` is False for a repeat that changed nothing."""

    recall_id: int
    consignee_id: int
    recorded: bool
    message: str


@dataclass
class SmsOutcome:
    """What an SMS reply did, and the text to answer with."""

    acknowledged: list[AckOutcome] = field(default_factory=list)
    reply: str = ""
    matched: bool = False
    recall_ids: list[int] = field(default_factory=list)


async def load_link(
    session: AsyncSession, recall_consignee_id: int
) -> tuple[RecallConsignee, Recall, Consignee]:
    """The consignee-of-recall a link names, with its recall and consignee."""
    rc = await session.get(RecallConsignee, recall_consignee_id)
    if rc is None:
        raise NotFound("this acknowledgement link is not valid", field="link")
    recall = await session.get(Recall, rc.recall_id)
    consignee = await session.get(Consignee, rc.consignee_id)
    assert recall is not None and consignee is not None
    return rc, recall, consignee


async def exposures_of(session: AsyncSession, rc: RecallConsignee) -> list[dict]:
    """The lots this consignee received in this recall, with quantities (what the form asks about)."""
    rows = (
        await session.execute(
            select(
                RecallExposure.lot_id,
                Product.code,
                Product.name,
                Product.gtin,
                Lot.lot_number,
                Lot.expires_on,
                RecallExposure.quantity,
                RecallExposure.first_shipped_on,
                RecallExposure.last_shipped_on,
            )
            .join(Lot, Lot.id == RecallExposure.lot_id)
            .join(Product, Product.id == Lot.product_id)
            .where(RecallExposure.recall_id == rc.recall_id, RecallExposure.consignee_id == rc.consignee_id)
            .order_by(Product.code, Lot.lot_number)
        )
    ).all()
    return [
        {
            "lot_id": r[0],
            "product_code": r[1],
            "product_name": r[2],
            "gtin": r[3],
            "lot_number": r[4],
            "expires_on": r[5],
            "quantity": int(r[6]),
            "first_shipped_on": r[7],
            "last_shipped_on": r[8],
        }
        for r in rows
    ]


async def mark_opened(session: AsyncSession, rc: RecallConsignee, *, at: datetime | None = None) -> bool:
    """The link was opened: record it once on the timeline."""
    at = at or datetime.now(UTC)
    moved = (
        await advance_in_store(session, recall_consignee_ids=[rc.id], state=ConsigneeState.opened, at=at) > 0
    )
    if moved:
        await add_event(
            session, recall_id=rc.recall_id, consignee_id=rc.consignee_id, kind="opened", channel="web"
        )
    return moved


async def record_web_response(
    session: AsyncSession, *, recall_consignee_id: int, form: AckForm, at: datetime | None = None
) -> AckOutcome:
    """Record the form behind a signed link; a repeat after quantities were reported changes nothing.

    Few statements, because ten thousand consignees may answer within minutes: one conditional UPDATE
    claims the answer, for an open recall and lots shipped to this consignee (only one of two
    concurrent submissions of the same link gets it: the other waits for the row and then finds it
    answered; a refusal is explained by a read), then the response (``INSERT ... ON CONFLICT DO
    NOTHING``: a receipt acknowledged by SMS before left one behind, which is completed instead) and
    its quantities. Both
    this and the SMS reply claim the consignee's row first, so neither can deadlock the other."""
    at = at or datetime.now(UTC)
    lot_ids = [q.lot_id for q in form.quantities]
    if len(set(lot_ids)) != len(lot_ids):  # a lot listed twice
        return await _refusal(session, recall_consignee_id, lot_ids)
    shipped = (
        select(func.count())
        .select_from(RecallExposure)
        .where(
            RecallExposure.recall_id == RecallConsignee.recall_id,
            RecallExposure.consignee_id == RecallConsignee.consignee_id,
            RecallExposure.lot_id.in_(lot_ids),
        )
        .correlate_except(RecallExposure)
        .scalar_subquery()
    )
    claimed = (
        await session.execute(
            update(RecallConsignee)
            .where(
                RecallConsignee.id == recall_consignee_id,
                RecallConsignee.responded_at.is_(None),
                RecallConsignee.recall_id.in_(select(Recall.id).where(Recall.status.not_in(CLOSED_STATES))),
                shipped == len(lot_ids),  # every reported lot was shipped to this consignee
            )
            .values(
                responded_at=at,
                state=ConsigneeState.acknowledged,  # the top of the receipt ladder: never a step down
                acknowledged_at=func.coalesce(RecallConsignee.acknowledged_at, at),
            )
            .returning(RecallConsignee.recall_id, RecallConsignee.consignee_id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if claimed is None:
        # No such link, a closed recall, a lot not shipped to this consignee, or answered already.
        return await _refusal(session, recall_consignee_id, lot_ids)
    recall_id, consignee_id = claimed[0], claimed[1]
    answer = {
        "received_and_understood": True,
        "actions_completed": form.actions_completed,
        "forwarded_to_sub_accounts": form.forwarded_to_sub_accounts,
        "no_affected_stock": form.no_affected_stock,
        "quantities_reported": True,
        "name": form.name,
        "role": form.role,
        "site": form.site,
        "contact": form.contact,
        "sub_consignees": form.sub_consignees,
    }
    inserted = (
        await session.execute(
            insert_ignoring_duplicates(session, Response, ["recall_id", "consignee_id"]).values(
                recall_id=recall_id, consignee_id=consignee_id, channel="web", received_at=at, **answer
            )
        )
    ).first()
    if inserted is not None:
        response_id = inserted.id
    else:  # acknowledged by SMS before: complete that response with the form
        response_id = (
            await session.execute(
                update(Response)
                .where(Response.recall_id == recall_id, Response.consignee_id == consignee_id)
                .values(**answer)
                .returning(Response.id)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one()
    session.add_all(
        ResponseQuantity(
            response_id=response_id,
            lot_id=q.lot_id,
            on_hand=q.on_hand,
            returned=q.returned,
            corrected=q.corrected,
            destroyed=q.destroyed,
            used=q.used,
        )
        for q in form.quantities
    )
    await add_event(
        session,
        recall_id=recall_id,
        consignee_id=consignee_id,
        kind="acknowledged",
        channel="web",
        detail={"name": form.name, "lots": len(form.quantities)},
    )
    await session.flush()
    return AckOutcome(recall_id, consignee_id, True, "acknowledgement recorded")


async def _refusal(session: AsyncSession, recall_consignee_id: int, lot_ids: list[int]) -> AckOutcome:
    """Why a web response was not claimed: raises NotFound, Conflict (closed) or InvalidInput (a lot
    not shipped to this consignee, or listed twice), or returns the outcome of a repeat that changes
    nothing."""
    rows = (
        await session.execute(
            select(
                RecallConsignee.recall_id,
                RecallConsignee.consignee_id,
                RecallConsignee.responded_at,
                Recall.status,
                Recall.reference,
                RecallExposure.lot_id,
            )
            .join(Recall, Recall.id == RecallConsignee.recall_id)
            .outerjoin(
                RecallExposure,
                (RecallExposure.recall_id == RecallConsignee.recall_id)
                & (RecallExposure.consignee_id == RecallConsignee.consignee_id),
            )
            .where(RecallConsignee.id == recall_consignee_id)
        )
    ).all()
    if not rows:
        raise NotFound("this acknowledgement link is not valid", field="link")
    recall_id, consignee_id, _responded_at, status, reference = rows[0][:5]
    refuse_if_closed(status, reference)
    lots = {r.lot_id for r in rows if r.lot_id is not None}
    for i, lot_id in enumerate(lot_ids):
        if lot_id not in lots:
            raise InvalidInput(
                "this lot was not shipped to you in this recall", field=f"quantities.{i}.lot_id"
            )
        if lot_id in lot_ids[:i]:
            raise InvalidInput("this lot is listed twice", field=f"quantities.{i}.lot_id")
    return AckOutcome(
        recall_id, consignee_id, False, "this acknowledgement was already recorded; nothing was changed"
    )


def insert_ignoring_duplicates(session: AsyncSession, model: type, conflict_on: list[str]):
    """``INSERT ... ON CONFLICT (conflict_on) DO NOTHING`` for the session's database; executed, it
    returns the inserted row (the audit hook reads it back), or none when the row already existed."""
    dialect = session.get_bind().dialect.name
    ins = pg_insert(model) if dialect == "postgresql" else sqlite_insert(model)
    return ins.on_conflict_do_nothing(index_elements=conflict_on)


def _normalise(body: str) -> str:
    return re.sub(r"[\s\.\!。！]+", "", body or "").upper()


async def record_sms_reply(
    session: AsyncSession, *, from_number: str, body: str, link_for, at: datetime | None = None
) -> SmsOutcome:
    """Match an SMS reply to the sender's open notices; YES/ACK/确认 or the code acknowledges receipt.

    ``link_for(recall_consignee_id)`` builds the acknowledgement link sent back for the quantities.
    """
    at = at or datetime.now(UTC)
    word = _normalise(body)
    rows = (
        await session.execute(
            select(RecallConsignee, Recall)
            .join(Consignee, Consignee.id == RecallConsignee.consignee_id)
            .join(Recall, Recall.id == RecallConsignee.recall_id)
            # Planned notices count: a reply can overtake our own record that the text was sent.
            .where(Consignee.phone == from_number, RecallConsignee.last_attempt > 0)
            .order_by(RecallConsignee.id)
        )
    ).all()
    open_rows = [(rc, r) for rc, r in rows if r.status not in CLOSED_STATES]
    out = SmsOutcome(matched=bool(rows))
    if not rows:
        out.reply = ""
        return out
    by_code = [(rc, r) for rc, r in rows if rc.reply_code == word]
    if by_code:
        targets = by_code
    elif word in {w.upper() for w in ACK_WORDS}:
        pending = [(rc, r) for rc, r in open_rows if rc.acknowledged_at is None]
        if len(pending) > 1:
            refs = ", ".join(f"{r.reference}: {rc.reply_code}" for rc, r in pending)
            out.reply = f"Several recalls await your reply; please text the code of each ({refs})."
            return out
        targets = pending or open_rows[-1:]
    else:
        out.reply = "Reply YES to confirm receipt of the recall notice, or the code in the message."
        return out
    replies = []
    for rc, recall in targets:
        out.recall_ids.append(recall.id)
        if recall.status in CLOSED_STATES:
            replies.append(f"{recall.reference} is already {recall.status.value}.")
            out.acknowledged.append(AckOutcome(recall.id, rc.consignee_id, False, "recall closed"))
            continue
        # Claim the consignee's row first (as the web form does): of two concurrent answers, one
        # acknowledges and the other finds it done.
        claimed = (
            rc.acknowledged_at is None
            and (
                await session.execute(
                    update(RecallConsignee)
                    .where(RecallConsignee.id == rc.id, RecallConsignee.acknowledged_at.is_(None))
                    .values(state=ConsigneeState.acknowledged, acknowledged_at=at)
                    .returning(RecallConsignee.id)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            is not None
        )
        if not claimed:
            out.acknowledged.append(AckOutcome(recall.id, rc.consignee_id, False, "already acknowledged"))
            replies.append(f"{recall.reference}: already recorded. Report quantities: {link_for(rc.id)}")
            continue
        await session.execute(
            insert_ignoring_duplicates(session, Response, ["recall_id", "consignee_id"]).values(
                recall_id=rc.recall_id,
                consignee_id=rc.consignee_id,
                channel="sms",
                received_at=at,
                received_and_understood=True,
            )
        )
        await add_event(
            session,
            recall_id=rc.recall_id,
            consignee_id=rc.consignee_id,
            kind="acknowledged",
            channel="sms",
            detail={"body": body[:160]},
        )
        out.acknowledged.append(AckOutcome(recall.id, rc.consignee_id, True, "receipt acknowledged"))
        replies.append(f"{recall.reference}: receipt confirmed. Report quantities: {link_for(rc.id)}")
    await session.flush()
    out.reply = " ".join(replies)
    return out
