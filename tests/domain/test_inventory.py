"""The stock ledger: balances follow entries, never go negative, and held lots cannot move."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, text

from domain import inventory
from domain.enums import MovementKind, StockStatus
from domain.errors import InsufficientStock, InvalidInput, LotBlocked
from domain.models import Lot, Product, StockEntry
from tests import factories as f


async def test_balances_follow_the_ledger(store):
    async with store.sessions() as s, s.begin():
        p = await f.product(s)
        lot = await f.lot(s, p, "L1")
        wh, wh2 = await f.location(s, "WH1"), await f.location(s, "WH2")
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=100)
        await inventory.post(s, kind=MovementKind.shipment, lot=lot, location=wh, quantity=30)
        await inventory.post(
            s, kind=MovementKind.transfer, lot=lot, location=wh, to_location=wh2, quantity=20
        )
        await inventory.post(s, kind=MovementKind.block, lot=lot, location=wh2, quantity=5)
        assert await inventory.balance(s, lot_id=lot.id) == 70
        assert await inventory.balance(s, lot_id=lot.id, location_id=wh.id) == 50
        assert await inventory.balance(s, lot_id=lot.id, location_id=wh2.id, status=StockStatus.blocked) == 5
        assert await s.scalar(select(func.count()).select_from(StockEntry)) == 4


async def test_a_movement_beyond_the_balance_is_refused_and_changes_nothing(store):
    async with store.sessions() as s, s.begin():
        p = await f.product(s)
        lot = await f.lot(s, p, "L1")
        wh = await f.location(s)
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=10)
        with pytest.raises(InsufficientStock) as err:
            await inventory.post(s, kind=MovementKind.shipment, lot=lot, location=wh, quantity=11)
        assert "only 10" in err.value.reason and err.value.field == "quantity"
        with pytest.raises(InsufficientStock):
            await inventory.post(s, kind=MovementKind.destruction, lot=lot, location=wh, quantity=1)
        assert await inventory.balance(s, lot_id=lot.id) == 10
        assert await s.scalar(select(func.count()).select_from(StockEntry)) == 1


@pytest.mark.parametrize("qty", [0, -5, 2.5, True])
async def test_quantities_must_be_positive_whole_numbers(store, qty):
    async with store.sessions() as s, s.begin():
        p = await f.product(s)
        lot = await f.lot(s, p, "L1")
        wh = await f.location(s)
        with pytest.raises(InvalidInput):
            await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=qty)


async def test_a_held_lot_cannot_be_shipped_issued_or_transferred(store):
    async with store.sessions() as s, s.begin():
        p = await f.product(s)
        lot = await f.lot(s, p, "L1")
        wh, wh2 = await f.location(s, "WH1"), await f.location(s, "WH2")
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=40)
        await inventory.place_hold(s, lot=lot, reason="recall", reference="recall-1")
        await inventory.place_hold(s, lot=lot, reason="recall", reference="recall-1")  # idempotent
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.blocked) == 40
        assert await inventory.balance(s, lot_id=lot.id, status=StockStatus.unrestricted) == 0
        for kind in (MovementKind.shipment, MovementKind.issue, MovementKind.transfer):
            with pytest.raises(LotBlocked) as err:
                await inventory.post(s, kind=kind, lot=lot, location=wh, to_location=wh2, quantity=1)
            assert "recall-1" in err.value.reason
        assert len(await inventory.active_holds(s, lot.id)) == 1


async def test_the_ledger_is_append_only(store):
    async with store.sessions() as s, s.begin():
        p = await f.product(s)
        lot = await f.lot(s, p, "L1")
        wh = await f.location(s)
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=10)
    for stmt in (delete(StockEntry), text("UPDATE stock_entries SET quantity = 99")):
        async with store.sessions() as s:
            with pytest.raises(Exception, match="append-only"):
                async with s.begin():
                    await s.execute(stmt)


async def test_implant_records_cannot_be_deleted_but_others_can(store):
    async with store.sessions() as s, s.begin():
        implant = await f.product(s, "HIP", implantable=True)
        plain = await f.product(s, "GAUZE")
        await f.lot(s, implant, "I1")
        await f.lot(s, plain, "G1")
    async with store.sessions() as s:
        with pytest.raises(Exception, match="kept permanently"):
            async with s.begin():
                await s.execute(delete(Lot).where(Lot.lot_number == "I1"))
    async with store.sessions() as s:
        with pytest.raises(Exception, match="kept permanently"):
            async with s.begin():
                await s.execute(delete(Product).where(Product.code == "HIP"))
    async with store.sessions() as s, s.begin():
        await s.execute(delete(Lot).where(Lot.lot_number == "G1"))
        await s.execute(delete(Product).where(Product.code == "GAUZE"))
    async with store.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Product)) == 1
