"""Recall records in the store: create, freeze the scope (versioned), read progress, record inbound facts.

Every function here is idempotent by a business key (the scope version, the notice key, the
consignee of a recall), because activities may run more than once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain import inventory
from domain.errors import Conflict, InvalidInput, NotFound
from domain.models import Consignee, Lot, Product, ShipmentLine
from domain.policy.recall import recall_schedule
from domain.policy.schedule import RecallPolicyInput
from domain.recalls.links import new_reply_code
from domain.recalls.models import (
    NoticeEvent,
    Recall,
    RecallConsignee,
    RecallExposure,
    RecallLot,
    RecallSuspect,
    Response,
    ResponseQuantity,
)
from domain.recalls.payloads import ConsigneeState, Progress, RecallStatus, ScopeSummary
from domain.tasks.models import Task
from domain.tasks.payloads import TaskStatus

FDA_CLASSES = ("I", "II", "III")
JURISDICTIONS = ("CN", "US", "EU")
DEPTHS = ("wholesale", "retail", "user")
CLOSED_STATES = (RecallStatus.closed, RecallStatus.cancelled, RecallStatus.rejected)


def _now() -> datetime:
    return datetime.now(UTC)


async def get_recall(session: AsyncSession, recall_id: int) -> Recall:
    """The recall, or NotFound."""
    recall = await session.get(Recall, recall_id)
    if recall is None:
        raise NotFound(f"recall {recall_id} not found", field="recall_id")
    return recall


async def create_recall(
    session: AsyncSession,
    *,
    suspect_lot_ids: list[int],
    reason: str,
    hazard: str,
    nmpa_level: int | None,
    fda_class: str | None,
    jurisdictions: list[str],
    depth: str,
    required_actions: list[str],
    initiated_by: str,
    serials: dict[int, str] | None = None,
    eu_incident: str | None = None,
    eu_aware_at: datetime | None = None,
) -> Recall:
    """Create the recall record with its suspect lots; the workflow freezes the scope."""
    if not suspect_lot_ids:
        raise InvalidInput("a recall needs at least one suspect lot", field="suspects")
    if not reason.strip():
        raise InvalidInput("the reason must be given", field="reason")
    if not hazard.strip():
        raise InvalidInput("the hazard must be described (not understated)", field="hazard")
    bad = [j for j in jurisdictions if j not in JURISDICTIONS]
    if bad or not jurisdictions:
        raise InvalidInput(f"jurisdictions must be among {', '.join(JURISDICTIONS)}", field="jurisdictions")
    if nmpa_level is not None and nmpa_level not in (1, 2, 3):
        raise InvalidInput("the NMPA level is 1, 2 or 3", field="nmpa_level")
    if "CN" in jurisdictions and nmpa_level is None:
        raise InvalidInput("a recall in China needs an NMPA level (1, 2 or 3)", field="nmpa_level")
    if fda_class is not None and fda_class not in FDA_CLASSES:
        raise InvalidInput("the FDA class is I, II or III", field="fda_class")
    if "US" in jurisdictions and fda_class is None:
        raise InvalidInput("a recall in the US needs the firm's proposed FDA class", field="fda_class")
    if depth not in DEPTHS:
        raise InvalidInput(f"depth must be one of {', '.join(DEPTHS)}", field="depth")
    # The policy must be able to schedule this recall: refuse now (422) what it would refuse at approval.
    recall_schedule(
        RecallPolicyInput(
            decision_at=_now(),
            cn_level=nmpa_level,
            fda_class=fda_class,
            jurisdictions=list(jurisdictions),
            eu_incident=eu_incident,
            eu_aware_at=eu_aware_at,
        )
    )
    year = _now().year
    count = await session.scalar(select(func.count()).select_from(Recall))
    recall = Recall(
        reference=f"RC-{year}-{(count or 0) + 1:04d}",
        status=RecallStatus.awaiting_approval,
        reason=reason.strip(),
        hazard=hazard.strip(),
        nmpa_level=nmpa_level,
        fda_class_proposed=fda_class,
        eu_incident=eu_incident,
        eu_aware_at=eu_aware_at,
        jurisdictions=list(dict.fromkeys(jurisdictions)),
        depth=depth,
        required_actions=required_actions,
        initiated_by=initiated_by,
        coordinator=initiated_by,
    )
    session.add(recall)
    await session.flush()
    recall.workflow_id = f"recall-{recall.id}"
    for lot_id in dict.fromkeys(suspect_lot_ids):
        session.add(
            RecallSuspect(recall_id=recall.id, lot_id=lot_id, version=1, serial=(serials or {}).get(lot_id))
        )
    await session.flush()
    return recall


async def add_suspects(session: AsyncSession, *, recall_id: int, lot_ids: list[int], version: int) -> None:
    """Record more suspect lots for a new scope version (idempotent)."""
    have = set(
        await session.scalars(select(RecallSuspect.lot_id).where(RecallSuspect.recall_id == recall_id))
    )
    for lot_id in dict.fromkeys(lot_ids):
        if lot_id not in have:
            session.add(RecallSuspect(recall_id=recall_id, lot_id=lot_id, version=version))
    await session.flush()


def _label(product_code: str, lot_number: str) -> str:
    return f"{product_code}/{lot_number}"


async def freeze_scope(
    session: AsyncSession, *, recall_id: int, version: int, max_depth: int = 200
) -> ScopeSummary:
    """Trace forward from the suspects and freeze what is new as scope ``version``.

    Idempotent: when the recall already has this version, it only reports it.
    """
    from domain.trace import forward_trace  # the trace query; imported here to keep this module light

    recall = await get_recall(session, recall_id)
    if recall.scope_version < version:
        suspects = list(
            await session.scalars(select(RecallSuspect.lot_id).where(RecallSuspect.recall_id == recall_id))
        )
        trace = await forward_trace(session, suspects, max_depth=max_depth, include_shipments=False)
        known = set(await session.scalars(select(RecallLot.lot_id).where(RecallLot.recall_id == recall_id)))
        on_hand: dict[tuple[str, str], int] = {}
        for s in trace.stock:
            key = (s.product_code, s.lot_number)
            on_hand[key] = on_hand.get(key, 0) + s.quantity
        new_rows = [
            {
                "recall_id": recall_id,
                "lot_id": lot.lot_id,
                "version": version,
                "depth": lot.depth,
                "path": lot.path,
                "units_on_hand": on_hand.get((lot.product_code, lot.lot_number), 0),
            }
            for lot in trace.lots
            if lot.lot_id not in known
        ]
        if new_rows:
            await session.execute(insert(RecallLot), new_rows)
        # Exposures of the new lots, aggregated in the database (one statement at any size) from the
        # lines alone: each repeats its shipment's consignee and date.
        exposures = (
            select(
                ShipmentLine.consignee_id,
                ShipmentLine.lot_id,
                func.sum(ShipmentLine.quantity),
                func.min(ShipmentLine.shipped_on),
                func.max(ShipmentLine.shipped_on),
            )
            .select_from(ShipmentLine)
            .join(
                RecallLot,
                and_(
                    RecallLot.lot_id == ShipmentLine.lot_id,
                    RecallLot.recall_id == recall_id,
                    RecallLot.version == version,
                ),
            )
            .group_by(ShipmentLine.consignee_id, ShipmentLine.lot_id)
        )
        rows = (await session.execute(exposures)).all()
        if rows:
            await session.execute(
                insert(RecallExposure),
                [
                    {
                        "recall_id": recall_id,
                        "consignee_id": c,
                        "lot_id": lot_id,
                        "version": version,
                        "quantity": int(q),
                        "first_shipped_on": first,
                        "last_shipped_on": last,
                    }
                    for c, lot_id, q, first, last in rows
                ],
            )
        existing = dict(
            (
                await session.execute(
                    select(RecallConsignee.consignee_id, RecallConsignee.id).where(
                        RecallConsignee.recall_id == recall_id
                    )
                )
            ).all()
        )
        shipped: dict[int, int] = {}
        for c, _lot, q, _f, _l in rows:
            shipped[c] = shipped.get(c, 0) + int(q)
        codes: set[str] = set(
            await session.scalars(
                select(RecallConsignee.reply_code).where(RecallConsignee.recall_id == recall_id)
            )
        )
        new_consignees = []
        for c in sorted(shipped):
            if c in existing:
                await session.execute(
                    update(RecallConsignee)
                    .where(RecallConsignee.id == existing[c])
                    .values(units_shipped=RecallConsignee.units_shipped + shipped[c])
                )
                continue
            code = new_reply_code()
            while code in codes:
                code = new_reply_code()
            codes.add(code)
            new_consignees.append(
                {
                    "recall_id": recall_id,
                    "consignee_id": c,
                    "version": version,
                    "reply_code": code,
                    "units_shipped": shipped[c],
                    "state": ConsigneeState.planned,
                }
            )
        if new_consignees:
            await session.execute(insert(RecallConsignee), new_consignees)
        recall.scope_version = version
        await session.flush()
    return await scope_summary(session, recall_id=recall_id, version=version)


async def scope_summary(session: AsyncSession, *, recall_id: int, version: int) -> ScopeSummary:
    """Totals of the scope up to ``version`` and what ``version`` added."""
    lots = await session.scalar(
        select(func.count()).where(RecallLot.recall_id == recall_id, RecallLot.version <= version)
    )
    on_hand = await session.scalar(
        select(func.coalesce(func.sum(RecallLot.units_on_hand), 0)).where(
            RecallLot.recall_id == recall_id, RecallLot.version <= version
        )
    )
    consignees = await session.scalar(
        select(func.count()).where(RecallConsignee.recall_id == recall_id, RecallConsignee.version <= version)
    )
    shipped = await session.scalar(
        select(func.coalesce(func.sum(RecallExposure.quantity), 0)).where(
            RecallExposure.recall_id == recall_id, RecallExposure.version <= version
        )
    )
    added_lots = (
        await session.execute(
            select(Product.code, Lot.lot_number)
            .join(Lot, Lot.product_id == Product.id)
            .join(RecallLot, RecallLot.lot_id == Lot.id)
            .where(RecallLot.recall_id == recall_id, RecallLot.version == version)
            .order_by(RecallLot.depth, Product.code, Lot.lot_number)
        )
    ).all()
    added_consignees = await session.scalars(
        select(Consignee.code)
        .join(RecallConsignee, RecallConsignee.consignee_id == Consignee.id)
        .where(RecallConsignee.recall_id == recall_id, RecallConsignee.version == version)
        .order_by(Consignee.code)
    )
    return ScopeSummary(
        recall_id=recall_id,
        version=version,
        lots=int(lots or 0),
        consignees=int(consignees or 0),
        units_shipped=int(shipped or 0),
        units_on_hand=int(on_hand or 0),
        added_lots=[_label(p, n) for p, n in added_lots],
        added_consignees=list(added_consignees),
    )


async def record_hash(session: AsyncSession, recall_id: int) -> str:
    """SHA-256 of the recall version being signed: its fields and its frozen scope."""
    recall = await get_recall(session, recall_id)
    lots = (
        await session.execute(
            select(RecallLot.lot_id, RecallLot.version)
            .where(RecallLot.recall_id == recall_id)
            .order_by(RecallLot.lot_id)
        )
    ).all()
    doc = {
        "id": recall.id,
        "reference": recall.reference,
        "reason": recall.reason,
        "hazard": recall.hazard,
        "nmpa_level": recall.nmpa_level,
        "fda_class": recall.fda_class_proposed,
        "jurisdictions": recall.jurisdictions,
        "depth": recall.depth,
        "required_actions": recall.required_actions,
        "scope_version": recall.scope_version,
        "scope_lots": [list(r) for r in lots],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


async def contain(session: AsyncSession, *, recall_id: int, user: str | None = None) -> int:
    """Block on-hand stock of every affected lot (ledger entries naming the recall); returns lots held."""
    recall = await get_recall(session, recall_id)
    lot_ids = list(await session.scalars(select(RecallLot.lot_id).where(RecallLot.recall_id == recall_id)))
    held = 0
    for lot_id in lot_ids:
        lot = await session.get(Lot, lot_id)
        assert lot is not None
        await inventory.place_hold(
            session,
            lot=lot,
            reason="recall",
            reference=recall.workflow_id or f"recall-{recall_id}",
            note=recall.reference,
            user=user,
        )
        held += 1
    return held


CALL_TASK = "call_consignee"


def call_task_key(recall_id: int, consignee_id: int) -> str:
    """The business key of the call task opened for a consignee who missed the recall's deadline."""
    return f"recall-{recall_id}-call-{consignee_id}"


async def close_moot_calls(session: AsyncSession, *, recall_id: int, at: datetime | None = None) -> int:
    """Cancel the open call tasks of consignees who have acknowledged since they were opened (nobody
    should phone a hospital that has answered); returns how many. One read of the open call tasks, one
    of who among them acknowledged, one UPDATE (audited: tasks are regulated records)."""
    open_calls = {
        int(key.rsplit("-", 1)[1]): task_id  # consignee id -> task id (see call_task_key)
        for task_id, key in await session.execute(
            select(Task.id, Task.business_key).where(
                Task.record_type == "recall",
                Task.record_id == recall_id,
                Task.kind == CALL_TASK,
                Task.status == TaskStatus.open,
            )
        )
    }
    if not open_calls:
        return 0
    moot = [
        open_calls[consignee_id]
        for consignee_id in await session.scalars(
            select(RecallConsignee.consignee_id).where(
                RecallConsignee.recall_id == recall_id,
                RecallConsignee.consignee_id.in_(list(open_calls)),
                RecallConsignee.acknowledged_at.is_not(None),
            )
        )
    ]
    if not moot:
        return 0
    res = await session.execute(
        update(Task)
        .where(Task.id.in_(moot), Task.status == TaskStatus.open)
        .values(
            status=TaskStatus.cancelled,
            completed_at=at or datetime.now(UTC),
            outcome="the consignee acknowledged the recall; no call is needed",
        )
        .execution_options(synchronize_session=False)
    )
    return res.rowcount or 0


async def progress(session: AsyncSession, *, recall_id: int) -> Progress:
    """Counts by receipt state, read from the store."""
    rows = dict(
        (
            await session.execute(
                select(RecallConsignee.state, func.count())
                .where(RecallConsignee.recall_id == recall_id)
                .group_by(RecallConsignee.state)
            )
        ).all()
    )
    overdue = await session.scalar(
        select(func.count()).where(
            RecallConsignee.recall_id == recall_id,
            RecallConsignee.overdue.is_(True),
            RecallConsignee.acknowledged_at.is_(None),
        )
    )
    total = sum(rows.values())
    order = [
        ConsigneeState.sent,
        ConsigneeState.delivered,
        ConsigneeState.opened,
        ConsigneeState.acknowledged,
    ]

    def at_least(state: ConsigneeState) -> int:
        return sum(rows.get(s, 0) for s in order[order.index(state) :])

    acknowledged = rows.get(ConsigneeState.acknowledged, 0)
    answered = await session.scalar(
        select(func.count()).where(
            RecallConsignee.recall_id == recall_id, RecallConsignee.responded_at.is_not(None)
        )
    )
    return Progress(
        consignees=total,
        sent=at_least(ConsigneeState.sent),
        delivered=at_least(ConsigneeState.delivered),
        opened=at_least(ConsigneeState.opened),
        acknowledged=acknowledged,
        overdue=int(overdue or 0),
        open_consignees=total - acknowledged,
        reconciled=bool(total)
        and answered == total
        and not (await reconciliation_mismatches(session, recall_id)),
    )


async def reconciliation_mismatches(session: AsyncSession, recall_id: int) -> list[dict]:
    """Consignee × lot rows where shipped ≠ on hand + returned + corrected + destroyed + used."""
    reported = (
        select(
            Response.consignee_id.label("consignee_id"),
            ResponseQuantity.lot_id.label("lot_id"),
            (
                ResponseQuantity.on_hand
                + ResponseQuantity.returned
                + ResponseQuantity.corrected
                + ResponseQuantity.destroyed
                + ResponseQuantity.used
            ).label("accounted"),
        )
        .join(Response, Response.id == ResponseQuantity.response_id)
        .where(Response.recall_id == recall_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(
                RecallExposure.consignee_id,
                RecallExposure.lot_id,
                RecallExposure.quantity,
                func.coalesce(reported.c.accounted, None),
            )
            .outerjoin(
                reported,
                and_(
                    reported.c.consignee_id == RecallExposure.consignee_id,
                    reported.c.lot_id == RecallExposure.lot_id,
                ),
            )
            .where(RecallExposure.recall_id == recall_id)
        )
    ).all()
    return [
        {"consignee_id": c, "lot_id": lot, "shipped": int(q), "accounted": None if a is None else int(a)}
        for c, lot, q, a in rows
        if a is None or int(a) != int(q)
    ]


async def add_event(
    session: AsyncSession,
    *,
    recall_id: int,
    consignee_id: int,
    kind: str,
    channel: str | None = None,
    notice_id: int | None = None,
    detail: dict | None = None,
) -> None:
    """Append one receipt fact to a consignee's notice timeline."""
    session.add(
        NoticeEvent(
            recall_id=recall_id,
            consignee_id=consignee_id,
            notice_id=notice_id,
            kind=kind,
            channel=channel,
            detail=detail or {},
        )
    )


# The receipt ladder a consignee climbs; "unreachable" stands beside it (every channel failed).
_LADDER = [
    ConsigneeState.planned,
    ConsigneeState.sent,
    ConsigneeState.delivered,
    ConsigneeState.opened,
    ConsigneeState.acknowledged,
]
_STAMP = {
    ConsigneeState.sent: "first_sent_at",
    ConsigneeState.delivered: "delivered_at",
    ConsigneeState.opened: "opened_at",
    ConsigneeState.acknowledged: "acknowledged_at",
}


def advance_state(rc: RecallConsignee, state: ConsigneeState, at: datetime) -> bool:
    """Move a consignee up the receipt ladder (never down); True when it moved.

    Unreachable is set only from planned; any later receipt lifts a consignee out of it.
    """
    if state == ConsigneeState.unreachable:
        if rc.state != ConsigneeState.planned:
            return False
    elif rc.state != ConsigneeState.unreachable and _LADDER.index(rc.state) >= _LADDER.index(state):
        return False
    rc.state = state
    stamp = _STAMP.get(state)
    if stamp and getattr(rc, stamp) is None:
        setattr(rc, stamp, at)
    return True


def sql_values(members) -> str:
    """Enum members as a SQL list of string literals (``'a', 'b'``), for hand-written statements: only
    for the store's own enums, whose values are fixed identifiers, never for anything a user typed."""
    return ", ".join(f"'{m.value}'" for m in members)


def states_below(state: ConsigneeState) -> list[ConsigneeState]:
    """The states a consignee may climb to ``state`` from (the ladder below it; unreachable too,
    which a later delivery or answer overturns)."""
    if state == ConsigneeState.unreachable:
        return [ConsigneeState.planned]
    return [*_LADDER[: _LADDER.index(state)], ConsigneeState.unreachable]


async def advance_in_store(
    session: AsyncSession,
    *,
    recall_consignee_ids: list[int],
    state: ConsigneeState,
    at: datetime,
    count_moved: bool = True,
) -> int:
    """Move consignees up the receipt ladder with conditional UPDATEs (never down), so concurrent
    writers (a sending round, a delivery receipt, an acknowledgement) cannot overwrite each other's
    progress with a stale read; returns how many moved. With ``count_moved=False`` it is one UPDATE
    (the stamp and the state together) and returns how many rows it touched, stamp or state."""
    if not recall_consignee_ids:
        return 0
    below = states_below(state)
    stamp = _STAMP.get(state)
    if stamp and not count_moved:
        column = getattr(RecallConsignee, stamp)
        climbs = RecallConsignee.state.in_(below)
        res = await session.execute(
            update(RecallConsignee)
            .where(RecallConsignee.id.in_(recall_consignee_ids), climbs | column.is_(None))
            .values(
                {
                    "state": case((climbs, state), else_=RecallConsignee.state),
                    stamp: func.coalesce(column, at),
                }
            )
            .execution_options(synchronize_session=False)
        )
        return res.rowcount or 0
    if stamp:
        column = getattr(RecallConsignee, stamp)
        await session.execute(
            update(RecallConsignee)
            .where(RecallConsignee.id.in_(recall_consignee_ids), column.is_(None))
            .values({stamp: at})
            .execution_options(synchronize_session=False)
        )
    res = await session.execute(
        update(RecallConsignee)
        .where(RecallConsignee.id.in_(recall_consignee_ids), RecallConsignee.state.in_(below))
        .values(state=state)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount or 0


def ensure_open(recall: Recall) -> None:
    """Refuse inbound acknowledgements for a closed or cancelled recall."""
    refuse_if_closed(recall.status, recall.reference)


def refuse_if_closed(status: RecallStatus, reference: str) -> None:
    """:func:`ensure_open` for a recall read as its status and reference."""
    if status in CLOSED_STATES:
        raise Conflict(f"recall {reference} is {status.value}; nothing more is recorded", field="recall")
