"""The stock ledger: every movement is an append-only :class:`StockEntry`; balances follow from it.

Each movement kind moves a quantity out of one bucket and/or into another (``EFFECTS``). The
balance table carries a CHECK that it never goes below zero, so no caller, and no race between
callers, can take stock it does not have. Blocked lots (an active :class:`LotHold`) can be neither
shipped nor issued to production: the refusal lives here, so every caller gets it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import MovementKind, QcStatus, StockStatus
from domain.errors import InsufficientStock, InvalidInput, LotBlocked, NotFound
from domain.models import Location, Lot, LotHold, StockBalance, StockEntry

U, B = StockStatus.unrestricted, StockStatus.blocked


@dataclass(frozen=True)
class Effect:
    """Which bucket a movement takes from and which it puts into (None: outside the ledger)."""

    takes: StockStatus | None
    puts: StockStatus | None


# The one place that says what each ledger kind does to balances.
EFFECTS: dict[MovementKind, Effect] = {
    MovementKind.receipt: Effect(takes=None, puts=U),
    MovementKind.issue: Effect(takes=U, puts=None),
    MovementKind.shipment: Effect(takes=U, puts=None),
    MovementKind.return_: Effect(takes=None, puts=B),  # returned goods come back blocked
    MovementKind.destruction: Effect(takes=B, puts=None),
    MovementKind.transfer: Effect(takes=U, puts=U),  # to another location
    MovementKind.block: Effect(takes=U, puts=B),
    MovementKind.unblock: Effect(takes=B, puts=U),
}

# Movements that put product to use or out of the door; refused while the lot is on hold.
REFUSED_WHILE_HELD = {MovementKind.shipment, MovementKind.issue, MovementKind.transfer}


async def active_holds(session: AsyncSession, lot_id: int) -> list[LotHold]:
    """The lot's holds that have not been released."""
    rows = await session.scalars(
        select(LotHold).where(LotHold.lot_id == lot_id, LotHold.released_at.is_(None)).order_by(LotHold.id)
    )
    return list(rows)


async def ensure_not_held(session: AsyncSession, lot: Lot, *, action: str) -> None:
    """Raise LotBlocked if the lot has an active hold or was rejected by QC."""
    holds = await active_holds(session, lot.id)
    if holds:
        refs = ", ".join(f"{h.reason} {h.reference}" for h in holds)
        raise LotBlocked(f"lot {lot.lot_number} is blocked ({refs}); {action} is refused", field="lot_number")
    if lot.qc_status == QcStatus.rejected and action != "release":
        raise LotBlocked(f"lot {lot.lot_number} was rejected by QC; {action} is refused", field="lot_number")


async def _add(session: AsyncSession, location_id: int, lot_id: int, status: StockStatus, qty: int) -> None:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    ins = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = ins(StockBalance).values(location_id=location_id, lot_id=lot_id, status=status, quantity=qty)
    stmt = stmt.on_conflict_do_update(
        index_elements=["location_id", "lot_id", "status"],
        set_={"quantity": StockBalance.quantity + qty},
    )
    await session.execute(stmt)


async def _take(session: AsyncSession, location: Location, lot: Lot, status: StockStatus, qty: int) -> None:
    try:
        async with session.begin_nested():
            res = await session.execute(
                update(StockBalance)
                .where(
                    StockBalance.location_id == location.id,
                    StockBalance.lot_id == lot.id,
                    StockBalance.status == status,
                )
                .values(quantity=StockBalance.quantity - qty)
            )
            if res.rowcount == 0:
                raise InsufficientStock(
                    f"no {status.value} stock of lot {lot.lot_number} at {location.code}", field="quantity"
                )
    except IntegrityError as exc:
        have = await balance(session, location_id=location.id, lot_id=lot.id, status=status)
        raise InsufficientStock(
            f"only {have} {status.value} of lot {lot.lot_number} at {location.code}, {qty} requested",
            field="quantity",
        ) from exc


async def post(
    session: AsyncSession,
    *,
    kind: MovementKind,
    lot: Lot,
    location: Location,
    quantity: int,
    to_location: Location | None = None,
    serial_id: int | None = None,
    reference: str | None = None,
    reason: str | None = None,
    user: str | None = None,
) -> StockEntry:
    """Append one movement to the ledger and apply it to the balances, or refuse it and change nothing."""
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
        raise InvalidInput(f"quantity must be a positive whole number, got {quantity!r}", field="quantity")
    if kind == MovementKind.transfer and to_location is None:
        raise InvalidInput("a transfer needs a destination location", field="to_location_code")
    if kind in REFUSED_WHILE_HELD:
        await ensure_not_held(session, lot, action=kind.value)
    effect = EFFECTS[kind]
    if effect.takes is not None:
        await _take(session, location, lot, effect.takes, quantity)
    if effect.puts is not None:
        dest = to_location if kind == MovementKind.transfer else location
        assert dest is not None
        await _add(session, dest.id, lot.id, effect.puts, quantity)
    entry = StockEntry(
        kind=kind,
        lot_id=lot.id,
        serial_id=serial_id,
        location_id=location.id,
        to_location_id=to_location.id if to_location else None,
        quantity=quantity,
        reference=reference,
        reason=reason,
        created_by=user,
    )
    session.add(entry)
    await session.flush()
    return entry


async def balance(
    session: AsyncSession, *, lot_id: int, location_id: int | None = None, status: StockStatus | None = None
) -> int:
    """On-hand quantity of a lot, optionally at one location and in one bucket."""
    q = select(func.coalesce(func.sum(StockBalance.quantity), 0)).where(StockBalance.lot_id == lot_id)
    if location_id is not None:
        q = q.where(StockBalance.location_id == location_id)
    if status is not None:
        q = q.where(StockBalance.status == status)
    return int((await session.scalar(q)) or 0)


async def place_hold(
    session: AsyncSession,
    *,
    lot: Lot,
    reason: str,
    reference: str,
    note: str | None = None,
    user: str | None = None,
) -> LotHold:
    """Hold the lot and move its unrestricted stock everywhere to the blocked bucket (ledger entries)."""
    existing = await session.scalar(
        select(LotHold).where(
            LotHold.lot_id == lot.id, LotHold.reference == reference, LotHold.released_at.is_(None)
        )
    )
    if existing is not None:  # idempotent by business key: the same reference holds a lot once
        return existing
    hold = LotHold(lot_id=lot.id, reason=reason, reference=reference, note=note, placed_by=user)
    session.add(hold)
    rows = await session.execute(
        select(StockBalance.location_id, StockBalance.quantity).where(
            StockBalance.lot_id == lot.id, StockBalance.status == U, StockBalance.quantity > 0
        )
    )
    for location_id, qty in rows.all():
        location = await session.get(Location, location_id)
        if location is None:  # pragma: no cover - FK guarantees it
            raise NotFound(f"location {location_id} not found", field="location_code")
        await post(
            session,
            kind=MovementKind.block,
            lot=lot,
            location=location,
            quantity=int(qty),
            reference=reference,
            reason=reason,
            user=user,
        )
    await session.flush()
    return hold
