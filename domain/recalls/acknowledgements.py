"""Inbound acknowledgements: the web form behind a signed link, and SMS replies.

Each is committed to the store before anything is told to the workflow. A response is recorded once:
a repeat changes nothing and says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import JSON, BigInteger, column, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.hooks import record_rows
from domain.errors import InvalidInput, NotFound
from domain.models import Consignee, Lot, Product
from domain.recalls.models import Recall, RecallConsignee, RecallExposure, Response, ResponseQuantity
from domain.recalls.payloads import ConsigneeState
from domain.recalls.service import CLOSED_STATES, add_event, advance_in_store, refuse_if_closed, sql_values

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

    Ten thousand consignees may answer within minutes, so this claims and records in as few round
    trips as the database allows. The claim is one conditional UPDATE of the consignee's row: for an
    open recall, for lots all shipped to this consignee, not answered before (of two concurrent
    submissions of the same link only one gets it: the other waits for the row, then finds it
    answered; a refusal is explained by a read). Then the response (``INSERT ... ON CONFLICT DO
    NOTHING``: a receipt acknowledged by SMS before left one behind, which is completed instead), its
    quantities and the timeline's event. On PostgreSQL all of that is one statement (data-modifying
    CTEs) whose created rows are handed to the audit trail; on SQLite, a few statements through the
    session's audit hooks. Both this and the SMS reply claim the consignee's row first, so neither can
    deadlock the other."""
    at = at or datetime.now(UTC)
    lot_ids = [q.lot_id for q in form.quantities]
    if len(set(lot_ids)) != len(lot_ids):  # a lot listed twice
        return await _refusal(session, recall_consignee_id, lot_ids)
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
    detail = {"name": form.name, "lots": len(form.quantities)}
    if session.get_bind().dialect.name == "postgresql":
        claimed = await _claim_and_record_in_one_statement(
            session, recall_consignee_id, form, answer, detail, at
        )
        if claimed is None:
            return await _refusal(session, recall_consignee_id, lot_ids)
        recall_id, consignee_id, recorded = claimed
        if not recorded:  # acknowledged by SMS before: complete that response with the form
            await _complete_response(session, recall_id, consignee_id, form, answer)
        return AckOutcome(recall_id, consignee_id, True, "acknowledgement recorded")

    claimed_row = (await session.execute(_claim(recall_consignee_id, lot_ids, at))).first()
    if claimed_row is None:
        # No such link, a closed recall, a lot not shipped to this consignee, or answered already.
        return await _refusal(session, recall_consignee_id, lot_ids)
    recall_id, consignee_id = claimed_row[0], claimed_row[1]
    inserted = (
        await session.execute(
            insert_ignoring_duplicates(session, Response, ["recall_id", "consignee_id"]).values(
                recall_id=recall_id, consignee_id=consignee_id, channel="web", received_at=at, **answer
            )
        )
    ).first()
    if inserted is None:
        await _complete_response(session, recall_id, consignee_id, form, answer)
    else:
        session.add_all(_quantities(inserted.id, form))
    await add_event(
        session,
        recall_id=recall_id,
        consignee_id=consignee_id,
        kind="acknowledged",
        channel="web",
        detail=detail,
    )
    await session.flush()
    return AckOutcome(recall_id, consignee_id, True, "acknowledgement recorded")


def _claim(recall_consignee_id: int, lot_ids: list[int], at: datetime):
    """The conditional UPDATE that claims a consignee's answer (SQLite; PostgreSQL's is in the CTE)."""
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
    return (
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


def _quantities(response_id: int, form: AckForm) -> list[ResponseQuantity]:
    return [
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
    ]


async def _complete_response(
    session: AsyncSession, recall_id: int, consignee_id: int, form: AckForm, answer: dict
) -> None:
    """The SMS reply's receipt-only response, completed with the form (audited as an update)."""
    response_id = (
        await session.execute(
            update(Response)
            .where(Response.recall_id == recall_id, Response.consignee_id == consignee_id)
            .values(**answer)
            .returning(Response.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one()
    session.add_all(_quantities(response_id, form))
    await session.flush()


_CLOSED = sql_values(CLOSED_STATES)
_RESPONSE = Response.__table__
_ANSWER_COLUMNS = (
    "received_and_understood, actions_completed, forwarded_to_sub_accounts, no_affected_stock, "
    "quantities_reported, name, role, site, contact, sub_consignees"
)
# PostgreSQL: claim, response, quantities and the timeline's event in one statement. Its sub-statements
# share one snapshot, and each row it creates comes back for the audit trail (quantities as JSON: all
# integers). The response's columns are NULL when the claim succeeded but a response existed (SMS first).
_RECORD_ONE_STATEMENT = text(
    f"""
    WITH claim AS (
        UPDATE recall_consignees AS rc
           SET responded_at = :at,
               state = '{ConsigneeState.acknowledged.value}',
               acknowledged_at = COALESCE(rc.acknowledged_at, :at)
         WHERE rc.id = :rc_id
           AND rc.responded_at IS NULL
           AND EXISTS (SELECT 1 FROM recalls r WHERE r.id = rc.recall_id AND r.status NOT IN ({_CLOSED}))
           AND (SELECT count(*) FROM recall_exposures e
                 WHERE e.recall_id = rc.recall_id AND e.consignee_id = rc.consignee_id
                   AND e.lot_id = ANY(CAST(:lot_ids AS bigint[]))) = :n_lots
        RETURNING rc.recall_id, rc.consignee_id
    ), resp AS (
        INSERT INTO responses (recall_id, consignee_id, channel, received_at, {_ANSWER_COLUMNS})
        SELECT recall_id, consignee_id, 'web', :at, true, :actions_completed, :forwarded, :no_stock, true,
               :name, :role, :site, :contact, CAST(:sub_consignees AS json)
          FROM claim
        ON CONFLICT (recall_id, consignee_id) DO NOTHING
        RETURNING *
    ), qty AS (
        INSERT INTO response_quantities (response_id, lot_id, on_hand, returned, corrected, destroyed, used)
        SELECT resp.id, q.lot_id, q.on_hand, q.returned, q.corrected, q.destroyed, q.used
          FROM resp,
               unnest(CAST(:lot_ids AS bigint[]), CAST(:on_hand AS bigint[]), CAST(:returned AS bigint[]),
                      CAST(:corrected AS bigint[]), CAST(:destroyed AS bigint[]), CAST(:used AS bigint[]))
                   AS q(lot_id, on_hand, returned, corrected, destroyed, used)
        RETURNING *
    ), event AS (
        INSERT INTO notice_events (recall_id, consignee_id, kind, channel, at, detail)
        SELECT recall_id, consignee_id, 'acknowledged', 'web', :at, CAST(:detail AS json) FROM claim
    )
    SELECT claim.recall_id AS claimed_recall_id, claim.consignee_id AS claimed_consignee_id,
           {", ".join(f"resp.{c.name}" for c in _RESPONSE.c)},
           (SELECT json_agg(qty) FROM qty) AS quantity_rows
      FROM claim LEFT JOIN resp ON true
    """
).columns(  # in the SELECT's order: text columns are matched by position
    column("claimed_recall_id", BigInteger),
    column("claimed_consignee_id", BigInteger),
    *_RESPONSE.c,
    column("quantity_rows", JSON),
)


async def _claim_and_record_in_one_statement(
    session: AsyncSession, rc_id: int, form: AckForm, answer: dict, detail: dict, at: datetime
) -> tuple[int, int, bool] | None:
    """PostgreSQL: (recall id, consignee id, whether the response was created) or None when the
    claim failed. The statement's created rows are recorded in the audit trail here (it is SQL the
    session's hooks cannot see through)."""
    qs = form.quantities
    row = (
        (
            await session.execute(
                _RECORD_ONE_STATEMENT,
                {
                    "rc_id": rc_id,
                    "at": at,
                    "lot_ids": [q.lot_id for q in qs],
                    "n_lots": len(qs),
                    "on_hand": [q.on_hand for q in qs],
                    "returned": [q.returned for q in qs],
                    "corrected": [q.corrected for q in qs],
                    "destroyed": [q.destroyed for q in qs],
                    "used": [q.used for q in qs],
                    "actions_completed": answer["actions_completed"],
                    "forwarded": answer["forwarded_to_sub_accounts"],
                    "no_stock": answer["no_affected_stock"],
                    "name": answer["name"],
                    "role": answer["role"],
                    "site": answer["site"],
                    "contact": answer["contact"],
                    "sub_consignees": json.dumps(answer["sub_consignees"]),
                    "detail": json.dumps(detail),
                },
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    recall_id, consignee_id = row["claimed_recall_id"], row["claimed_consignee_id"]
    if row["id"] is None:
        return recall_id, consignee_id, False
    await record_rows(session, Response, [{c.name: row[c.name] for c in _RESPONSE.c}], action="create")
    await record_rows(session, ResponseQuantity, row["quantity_rows"] or [], action="create")
    return recall_id, consignee_id, True


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
