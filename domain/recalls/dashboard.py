"""What the recall dashboard reads: aggregates computed in the database, and lists read a page at a time.

Every function here costs a fixed number of statements whatever the recall's size (a recall may reach
tens of thousands of consignees): counts and sums are ``GROUP BY`` queries, lists are ``LIMIT``/``OFFSET``
pages with their total, and the CSV export streams its rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, and_, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from domain.models import Consignee, Lot, Product
from domain.recalls.models import (
    NoticeEvent,
    Recall,
    RecallConsignee,
    RecallExposure,
    Response,
    ResponseQuantity,
)
from domain.recalls.payloads import ConsigneeState, RecallStatus

SENT_STATES = (
    ConsigneeState.sent,
    ConsigneeState.delivered,
    ConsigneeState.opened,
    ConsigneeState.acknowledged,
)
# Which consignees a list shows: not acknowledged yet (the default), overdue, unreachable, or all.
Show = Literal["open", "overdue", "unreachable", "acknowledged", "all"]
SHOWS: tuple[Show, ...] = ("open", "overdue", "unreachable", "acknowledged", "all")
QUANTITY_COLUMNS = ("on_hand", "returned", "corrected", "destroyed", "used")


def _epoch(session: AsyncSession, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Seconds since 1970 of a stored UTC timestamp, on SQLite or PostgreSQL."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return func.extract("epoch", column)


@dataclass
class Curve:
    """Cumulative counts over time: ``sent[i]`` and ``acknowledged[i]`` consignees by the end of bucket i."""

    start: datetime
    end: datetime
    bucket_seconds: float
    total: int
    sent: list[int] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)

    def at(self, when: datetime) -> int:
        """Consignees acknowledged by ``when`` (as far as the buckets tell)."""
        if when < self.start:
            return 0
        i = min(int((when - self.start).total_seconds() // self.bucket_seconds), len(self.acknowledged) - 1)
        return self.acknowledged[i] if self.acknowledged else 0


async def _bucket_counts(
    session: AsyncSession, recall_id: int, column, start: datetime, width: float, buckets: int
) -> list[int]:
    """Cumulative count of consignees whose ``column`` falls in each bucket (earlier ones in the first)."""
    start_epoch = int(start.timestamp())
    index = func.floor((_epoch(session, column) - literal(start_epoch)) / literal(width))
    rows = (
        await session.execute(
            select(index.label("i"), func.count())
            .where(RecallConsignee.recall_id == recall_id, column.is_not(None))
            .group_by(index)
        )
    ).all()
    per = [0] * buckets
    for i, n in rows:
        per[min(max(int(i or 0), 0), buckets - 1)] += int(n)
    out, running = [], 0
    for n in per:
        running += n
        out.append(running)
    return out


async def acknowledgement_curve(
    session: AsyncSession, *, recall: Recall, now: datetime | None = None, buckets: int = 96
) -> Curve:
    """Consignees sent and acknowledged over time, from the recall's decision to the later of now (while
    it runs) or its last acknowledgement, and never ending before its notification deadline."""
    now = now or datetime.now(UTC)
    start = recall.decided_at or recall.initiated_at
    bounds = (
        await session.execute(
            select(
                func.count(),
                func.min(RecallConsignee.first_sent_at),
                func.max(RecallConsignee.acknowledged_at),
                func.max(RecallConsignee.first_sent_at),
            ).where(RecallConsignee.recall_id == recall.id)
        )
    ).one()
    total, first_sent, last_ack, last_sent = bounds
    if first_sent is not None and first_sent < start:
        start = first_sent
    ends = [t for t in (recall.notify_deadline, last_ack, last_sent) if t is not None]
    running = recall.status not in (RecallStatus.closed, RecallStatus.cancelled, RecallStatus.completed)
    if running or not ends:
        ends.append(now)
    end = max([*ends, start])
    if (end - start).total_seconds() < 60:  # a recall just decided: a minute-wide chart, not a point
        end = start + timedelta(seconds=60)
    width = (end - start).total_seconds() / buckets
    sent = await _bucket_counts(session, recall.id, RecallConsignee.first_sent_at, start, width, buckets)
    acked = await _bucket_counts(session, recall.id, RecallConsignee.acknowledged_at, start, width, buckets)
    return Curve(
        start=start, end=end, bucket_seconds=width, total=int(total or 0), sent=sent, acknowledged=acked
    )


@dataclass
class RegionRow:
    """One region's consignees and how far they are."""

    region: str | None
    consignees: int
    sent: int
    acknowledged: int
    overdue: int
    unreachable: int
    units: int


async def by_region(session: AsyncSession, *, recall_id: int) -> list[RegionRow]:
    """Consignees per region: sent, acknowledged, overdue and unreachable counts and units shipped."""
    rc = RecallConsignee
    rows = (
        await session.execute(
            select(
                Consignee.region,
                func.count(),
                func.sum(case((rc.state.in_(SENT_STATES), 1), else_=0)),
                func.sum(case((rc.acknowledged_at.is_not(None), 1), else_=0)),
                func.sum(case((and_(rc.overdue.is_(True), rc.acknowledged_at.is_(None)), 1), else_=0)),
                func.sum(case((rc.state == ConsigneeState.unreachable, 1), else_=0)),
                func.coalesce(func.sum(rc.units_shipped), 0),
            )
            .join(Consignee, Consignee.id == rc.consignee_id)
            .where(rc.recall_id == recall_id)
            .group_by(Consignee.region)
            .order_by(Consignee.region)
        )
    ).all()
    return [RegionRow(r, int(n), int(s), int(a), int(o), int(u), int(q)) for r, n, s, a, o, u, q in rows]


@dataclass
class ConsigneeRow:
    """A consignee of the recall as the dashboard lists it, with its latest notice event."""

    code: str
    name: str
    region: str | None
    state: str
    overdue: bool
    units_shipped: int
    first_sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    acknowledged_at: datetime | None
    last_event: str | None = None
    last_event_at: datetime | None = None
    last_channel: str | None = None


def _show_filter(show: Show) -> list[ColumnElement[bool]]:
    rc = RecallConsignee
    if show == "open":
        return [rc.acknowledged_at.is_(None)]
    if show == "overdue":
        return [rc.acknowledged_at.is_(None), rc.overdue.is_(True)]
    if show == "unreachable":
        return [rc.state == ConsigneeState.unreachable]
    if show == "acknowledged":
        return [rc.acknowledged_at.is_not(None)]
    return []


# A consignee's place in the recall, as the consignee list and the timeline export both show it.
_CONSIGNEE_STATE = (
    Consignee.code,
    Consignee.name,
    Consignee.region,
    RecallConsignee.state,
    RecallConsignee.overdue,
    RecallConsignee.units_shipped,
    RecallConsignee.first_sent_at,
    RecallConsignee.delivered_at,
    RecallConsignee.opened_at,
    RecallConsignee.acknowledged_at,
)


async def consignee_page(
    session: AsyncSession, *, recall_id: int, show: Show = "open", offset: int = 0, limit: int = 50
) -> tuple[int, list[ConsigneeRow]]:
    """One page of the recall's consignees (overdue first, then by code) and how many match in all."""
    rc = RecallConsignee
    where = [rc.recall_id == recall_id, *_show_filter(show)]
    total = await session.scalar(select(func.count()).select_from(rc).where(*where))
    rows = (
        await session.execute(
            select(rc.consignee_id, *_CONSIGNEE_STATE)
            .join(Consignee, Consignee.id == rc.consignee_id)
            .where(*where)
            .order_by(
                case((and_(rc.overdue.is_(True), rc.acknowledged_at.is_(None)), 0), else_=1), Consignee.code
            )
            .offset(offset)
            .limit(limit)
        )
    ).all()
    out = {
        cid: ConsigneeRow(
            code=code,
            name=name,
            region=region,
            state=state.value if hasattr(state, "value") else str(state),
            overdue=bool(overdue) and ack is None,
            units_shipped=int(units or 0),
            first_sent_at=sent,
            delivered_at=delivered,
            opened_at=opened,
            acknowledged_at=ack,
        )
        for cid, code, name, region, state, overdue, units, sent, delivered, opened, ack in rows
    }
    if out:  # the latest event of each consignee on this page (at most ``limit`` of them)
        latest = (
            select(NoticeEvent.consignee_id, func.max(NoticeEvent.id).label("id"))
            .where(NoticeEvent.recall_id == recall_id, NoticeEvent.consignee_id.in_(list(out)))
            .group_by(NoticeEvent.consignee_id)
            .subquery()
        )
        for cid, kind, at, channel in await session.execute(
            select(NoticeEvent.consignee_id, NoticeEvent.kind, NoticeEvent.at, NoticeEvent.channel).join(
                latest, latest.c.id == NoticeEvent.id
            )
        ):
            out[cid].last_event, out[cid].last_event_at, out[cid].last_channel = kind, at, channel
    return int(total or 0), list(out.values())


def _answers(recall_id: int, *columns):
    """``columns`` over the recall's responses, each joined to the exposures of its consignee and to the
    quantities it reported for those lots. Driven from the responses and joined on unique keys (a recall's
    consignee's exposures, a response's lot), so the plan stays a cheap one even before the tables have
    statistics (a burst of acknowledgements, a dashboard opened at once)."""
    return (
        select(*columns)
        .select_from(Response)
        .join(
            RecallExposure,
            and_(RecallExposure.recall_id == recall_id, RecallExposure.consignee_id == Response.consignee_id),
        )
        .outerjoin(
            ResponseQuantity,
            and_(
                ResponseQuantity.response_id == Response.id, ResponseQuantity.lot_id == RecallExposure.lot_id
            ),
        )
        .where(Response.recall_id == recall_id)
    )


def _quantity(column: str):
    return func.coalesce(getattr(ResponseQuantity, column), 0)


@dataclass
class LotReconciliation:
    """One affected lot: units shipped against units the consignees accounted for."""

    product_code: str
    lot_number: str
    consignees: int
    answered: int
    shipped: int
    shipped_answered: int  # to the consignees who answered: what their reports can account for
    on_hand: int
    returned: int
    corrected: int
    destroyed: int
    used: int
    mismatches: int

    @property
    def accounted(self) -> int:
        """On hand + returned + corrected + destroyed + used."""
        return self.on_hand + self.returned + self.corrected + self.destroyed + self.used


async def reconciliation(session: AsyncSession, *, recall_id: int) -> list[LotReconciliation]:
    """Per affected lot shipped: consignees, how many answered, units shipped and accounted for
    (on hand, returned, corrected, destroyed, used) and the consignee × lot rows that do not add up."""
    accounted = sum((_quantity(c) for c in QUANTITY_COLUMNS), literal(0))
    shipped = {
        lot_id: (int(n), int(q or 0))
        for lot_id, n, q in await session.execute(
            select(RecallExposure.lot_id, func.count(), func.sum(RecallExposure.quantity))
            .where(RecallExposure.recall_id == recall_id)
            .group_by(RecallExposure.lot_id)
        )
    }
    answered = {
        lot_id: [int(x or 0) for x in numbers]
        for lot_id, *numbers in await session.execute(
            _answers(
                recall_id,
                RecallExposure.lot_id,
                func.count(),
                func.sum(RecallExposure.quantity),
                *(func.sum(_quantity(c)) for c in QUANTITY_COLUMNS),
                func.sum(case((accounted != RecallExposure.quantity, 1), else_=0)),
            ).group_by(RecallExposure.lot_id)
        )
    }
    labels = (
        await session.execute(
            select(Lot.id, Product.code, Lot.lot_number)
            .join(Product, Product.id == Lot.product_id)
            .where(Lot.id.in_(list(shipped)))
            .order_by(Product.code, Lot.lot_number)
        )
        if shipped
        else []
    )
    out = []
    for lot_id, code, number in labels:
        n, q = shipped[lot_id]
        ans, q_ans, *quantities, mism = answered.get(lot_id, [0] * (3 + len(QUANTITY_COLUMNS)))
        out.append(LotReconciliation(code, number, n, ans, q, q_ans, *quantities, mism))
    return out


@dataclass
class MismatchRow:
    """A consignee × lot whose answer does not account for what was shipped to it."""

    consignee_code: str
    consignee_name: str
    product_code: str
    lot_number: str
    shipped: int
    on_hand: int
    returned: int
    corrected: int
    destroyed: int
    used: int

    @property
    def accounted(self) -> int:
        """On hand + returned + corrected + destroyed + used."""
        return self.on_hand + self.returned + self.corrected + self.destroyed + self.used

    @property
    def difference(self) -> int:
        """Accounted minus shipped: negative when units are unaccounted for."""
        return self.accounted - self.shipped


async def mismatch_page(
    session: AsyncSession, *, recall_id: int, offset: int = 0, limit: int = 50
) -> tuple[int, list[MismatchRow]]:
    """Consignees who answered but whose quantities for a lot do not add up to what they were shipped."""
    quantities = [_quantity(c) for c in QUANTITY_COLUMNS]
    accounted = sum(quantities, literal(0))
    off = accounted != RecallExposure.quantity
    total = await session.scalar(_answers(recall_id, func.count()).where(off))
    rows = (
        await session.execute(
            _answers(
                recall_id,
                Consignee.code,
                Consignee.name,
                Product.code,
                Lot.lot_number,
                RecallExposure.quantity,
                *quantities,
            )
            .join(Consignee, Consignee.id == Response.consignee_id)
            .join(Lot, Lot.id == RecallExposure.lot_id)
            .join(Product, Product.id == Lot.product_id)
            .where(off)
            .order_by(Consignee.code, Product.code, Lot.lot_number)
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return int(total or 0), [MismatchRow(*(r[:4]), *(int(x) for x in r[4:])) for r in rows]


@dataclass
class RecallSummary:
    """A recall in the list: how many consignees it reaches, how many acknowledged, how many overdue."""

    consignees: int = 0
    acknowledged: int = 0
    overdue: int = 0


async def summaries(session: AsyncSession, *, recall_ids: Sequence[int]) -> dict[int, RecallSummary]:
    """Consignee counts of several recalls, in one grouped query."""
    if not recall_ids:
        return {}
    rc = RecallConsignee
    rows = await session.execute(
        select(
            rc.recall_id,
            func.count(),
            func.sum(case((rc.acknowledged_at.is_not(None), 1), else_=0)),
            func.sum(case((and_(rc.overdue.is_(True), rc.acknowledged_at.is_(None)), 1), else_=0)),
        )
        .where(rc.recall_id.in_(list(recall_ids)))
        .group_by(rc.recall_id)
    )
    return {rid: RecallSummary(int(n), int(a or 0), int(o or 0)) for rid, n, a, o in rows}


TIMELINE_COLUMNS = (
    "consignee_code",
    "consignee_name",
    "region",
    "state",
    "overdue",
    "units_shipped",
    "first_sent_at",
    "delivered_at",
    "opened_at",
    "acknowledged_at",
    "event_at",
    "event",
    "channel",
    "detail",
)


async def timeline_rows(session: AsyncSession, *, recall_id: int, batch: int = 2000) -> AsyncIterator[tuple]:
    """Every consignee's notice timeline, one row per event (a consignee without events: one row with its
    state only), by consignee code then time, streamed ``batch`` rows at a time."""
    rc = RecallConsignee
    stmt = (
        select(
            *_CONSIGNEE_STATE,
            NoticeEvent.at,
            NoticeEvent.kind,
            NoticeEvent.channel,
            NoticeEvent.detail,
        )
        .join(Consignee, Consignee.id == rc.consignee_id)
        .outerjoin(
            NoticeEvent,
            and_(NoticeEvent.recall_id == rc.recall_id, NoticeEvent.consignee_id == rc.consignee_id),
        )
        .where(rc.recall_id == recall_id)
        .order_by(Consignee.code, NoticeEvent.at, NoticeEvent.id)
        .execution_options(yield_per=batch)
    )
    result = await session.stream(stmt)
    async for partition in result.partitions(batch):
        for row in partition:
            yield tuple(row)


__all__ = [
    "SHOWS",
    "TIMELINE_COLUMNS",
    "ConsigneeRow",
    "Curve",
    "LotReconciliation",
    "MismatchRow",
    "RegionRow",
    "Show",
    "acknowledgement_curve",
    "by_region",
    "consignee_page",
    "mismatch_page",
    "reconciliation",
    "summaries",
    "timeline_rows",
]
