"""Genealogy trace on both databases: any depth, diamonds, shared components, cycles, scope quantities,
origin by product/lot, serial and GS1, and a property test against reachability computed in Python."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import date
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain import inventory
from domain.enums import MovementKind, StockStatus
from domain.errors import InvalidInput, NotFound
from domain.models import GenealogyEdge, Lot, Serial, Shipment, ShipmentLine
from domain.trace import backward_trace, forward_trace, resolve_origin
from tests import factories as f


def depths(trace) -> dict[str, int]:
    """PRODUCT/LOT label -> depth."""
    return {f"{x.product_code}/{x.lot_number}": x.depth for x in trace.lots}


async def chain(s: AsyncSession, n: int, code: str = "C") -> list[Lot]:
    """Lots L0 -> L1 -> ... -> L{n-1}, each made from the previous one."""
    p = await f.product(s, code)
    lots = [await f.lot(s, p, f"L{i}") for i in range(n)]
    for a, b in pairwise(lots):
        await f.edge(s, a, b)
    return lots


async def ship(
    s: AsyncSession, ref: str, consignee, on: date, *lines: tuple[Lot, int, Serial | None]
) -> None:
    """A shipment with lines (lot, quantity, serial)."""
    shipment = Shipment(ref=ref, consignee_id=consignee.id, shipped_on=on)
    s.add(shipment)
    await s.flush()
    for lot, qty, serial in lines:
        s.add(
            ShipmentLine(
                shipment_id=shipment.id,
                lot_id=lot.id,
                quantity=qty,
                serial_id=serial.id if serial else None,
                consignee_id=consignee.id,
                shipped_on=on,
            )
        )
    await s.flush()


class _Statements:
    """Statements sent on an engine, with the connection each went out on."""

    def __init__(self, engine) -> None:
        self.engine = engine.sync_engine
        self.sent: list[tuple[int, str]] = []

    def __enter__(self) -> _Statements:
        event.listen(self.engine, "before_cursor_execute", self._grab)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._grab)

    def _grab(self, conn, _cursor, statement, *_args) -> None:
        self.sent.append((id(conn.connection.dbapi_connection), statement))

    @property
    def snapshots_imported(self) -> int:
        return sum(statement.startswith("SET TRANSACTION SNAPSHOT") for _, statement in self.sent)


async def test_a_chain_twenty_levels_deep_is_traced_both_ways(store):
    async with store.sessions() as s, s.begin():
        lots = await chain(s, 21)
        fwd = await forward_trace(s, [lots[0].id])
        assert [(x.lot_number, x.depth) for x in fwd.lots] == [(f"L{i}", i) for i in range(21)]
        assert fwd.lots[-1].path == [f"C/L{i}" for i in range(21)]
        assert not fwd.truncated and not fwd.cycle and fwd.warnings == []
        assert [o.lot_number for o in fwd.origin] == ["L0"]

        back = await backward_trace(s, [lots[20].id])
        assert depths(back) == {f"C/L{i}": 20 - i for i in range(21)}
        assert back.lots[-1].path == [f"C/L{i}" for i in range(20, -1, -1)]
        assert not back.truncated and not back.cycle


async def test_the_depth_bound_cuts_a_deeper_chain_and_says_so(store):
    async with store.sessions() as s, s.begin():
        lots = await chain(s, 10)
        fwd = await forward_trace(s, [lots[0].id], max_depth=5)
        assert max(x.depth for x in fwd.lots) == 5 and len(fwd.lots) == 6
        assert fwd.truncated and "stopped at depth 5" in fwd.warnings[0]
        assert not fwd.cycle
        # Exactly deep enough is not truncated.
        exact = await forward_trace(s, [lots[0].id], max_depth=9)
        assert len(exact.lots) == 10 and not exact.truncated and exact.warnings == []


async def test_diamonds_report_each_lot_once_at_its_shortest_depth(store):
    async with store.sessions() as s, s.begin():
        p = await f.product(s, "D")
        a, b, c, d, e, _unrelated = [await f.lot(s, p, n) for n in "ABCDEX"]
        # A -> B -> D, A -> C -> D, D -> E, and a short cut A -> E; X is unrelated.
        for u, v in [(a, b), (a, c), (b, d), (c, d), (d, e), (a, e)]:
            await f.edge(s, u, v)
        fwd = await forward_trace(s, [a.id])
        assert depths(fwd) == {"D/A": 0, "D/B": 1, "D/C": 1, "D/D": 2, "D/E": 1}
        assert next(x for x in fwd.lots if x.lot_number == "D").path == ["D/A", "D/B", "D/D"]
        assert next(x for x in fwd.lots if x.lot_number == "E").path == ["D/A", "D/E"]
        back = await backward_trace(s, [e.id])
        assert depths(back) == {"D/E": 0, "D/D": 1, "D/A": 1, "D/B": 2, "D/C": 2}
        assert not fwd.cycle and not back.cycle


async def test_a_ladder_of_diamonds_is_not_walked_path_by_path(store):
    # 25 levels of two lots, each lot made from both lots of the level below: 2^25 paths to the top.
    async with store.sessions() as s, s.begin():
        p = await f.product(s, "LD")
        levels = [[await f.lot(s, p, f"{i}{side}") for side in "ab"] for i in range(26)]
        for below, above in pairwise(levels):
            for u in below:
                for v in above:
                    await f.edge(s, u, v)
        fwd = await asyncio.wait_for(forward_trace(s, [levels[0][0].id]), timeout=10)
        assert len(fwd.lots) == 1 + 2 * 25
        assert {x.lot_number: x.depth for x in fwd.lots}["25b"] == 25
        assert len(fwd.lots[-1].path) == 26 and not fwd.truncated and not fwd.cycle


async def test_a_shared_component_reaches_every_finished_lot_with_its_stock(store):
    async with store.sessions() as s, s.begin():
        comp, fg = await f.product(s, "CMP"), await f.product(s, "FG")
        k = await f.lot(s, comp, "K1")
        other = await f.lot(s, comp, "K2")
        wh = await f.location(s, "WH1")
        finished = []
        for i in range(30):
            lot = await f.lot(s, fg, f"F{i:02d}")
            await f.edge(s, k, lot, quantity=2)
            await f.edge(s, other, lot)  # a second component in every lot: not in scope
            await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=10 + i)
            finished.append(lot)
        fwd = await forward_trace(s, [k.id])
        assert len(fwd.lots) == 31
        assert {x.lot_number for x in fwd.lots if x.depth == 1} == {f"F{i:02d}" for i in range(30)}
        assert "CMP/K2" not in depths(fwd)
        assert sum(x.quantity for x in fwd.stock) == sum(10 + i for i in range(30))
        assert all(x.path == ["CMP/K1", f"FG/{x.lot_number}"] for x in fwd.lots if x.depth == 1)
        back = await backward_trace(s, [finished[7].id])
        assert depths(back) == {"FG/F07": 0, "CMP/K1": 1, "CMP/K2": 1}


async def test_a_cycle_terminates_and_is_reported(store):
    async with store.sessions() as s, s.begin():
        p = await f.product(s, "Y")
        a, b, c, d = [await f.lot(s, p, n) for n in "ABCD"]
        for u, v in [(a, b), (b, c), (c, a), (c, d)]:
            await f.edge(s, u, v)
        fwd = await forward_trace(s, [a.id])
        assert depths(fwd) == {"Y/A": 0, "Y/B": 1, "Y/C": 2, "Y/D": 3}
        assert fwd.cycle == ["Y/A", "Y/B", "Y/C", "Y/A"]
        assert not fwd.truncated  # every lot was found; the cycle is bad data, reported
        assert any("cycle" in w and "Y/A → Y/B → Y/C → Y/A" in w for w in fwd.warnings)
        back = await backward_trace(s, [d.id])
        assert depths(back) == {"Y/D": 0, "Y/C": 1, "Y/B": 2, "Y/A": 3}
        assert back.cycle[0] == back.cycle[-1] and set(back.cycle) == {"Y/A", "Y/B", "Y/C"}
        # Named in genealogy order (component first) on the way back too.
        pairs = set(pairwise(back.cycle))
        assert pairs == {("Y/A", "Y/B"), ("Y/B", "Y/C"), ("Y/C", "Y/A")}


async def test_a_lot_made_from_itself_terminates(store):
    async with store.sessions() as s, s.begin():
        p = await f.product(s, "Z")
        a, b = await f.lot(s, p, "A"), await f.lot(s, p, "B")
        await f.edge(s, a, a)
        await f.edge(s, a, b)
        fwd = await forward_trace(s, [a.id], max_depth=50)
        assert depths(fwd) == {"Z/A": 0, "Z/B": 1}
        assert fwd.cycle == ["Z/A", "Z/A"] and not fwd.truncated


async def test_scope_has_stock_shipments_and_consignees_with_quantities(store):
    async with store.sessions() as s, s.begin():
        comp, fg = await f.product(s, "CMP"), await f.product(s, "FG")
        k = await f.lot(s, comp, "K1")
        f1, f2, unrelated = await f.lot(s, fg, "F1"), await f.lot(s, fg, "F2"), await f.lot(s, fg, "U1")
        await f.edge(s, k, f1)
        await f.edge(s, k, f2)
        wh1, wh2 = await f.location(s, "WH1"), await f.location(s, "WH2")
        await inventory.post(s, kind=MovementKind.receipt, lot=k, location=wh1, quantity=4)
        await inventory.post(s, kind=MovementKind.receipt, lot=f1, location=wh1, quantity=100)
        await inventory.post(s, kind=MovementKind.block, lot=f1, location=wh1, quantity=10)
        await inventory.post(s, kind=MovementKind.receipt, lot=f2, location=wh2, quantity=50)
        await inventory.post(s, kind=MovementKind.receipt, lot=f2, location=wh1, quantity=5)
        await inventory.post(s, kind=MovementKind.shipment, lot=f2, location=wh1, quantity=5)  # now 0
        await inventory.post(s, kind=MovementKind.receipt, lot=unrelated, location=wh1, quantity=9)
        h1 = await f.consignee(s, "H1")
        h2 = await f.consignee(s, "H2", parent=h1)
        h3 = await f.consignee(s, "H3")
        sn = Serial(product_id=fg.id, lot_id=f1.id, serial="SN-7")
        s.add(sn)
        await s.flush()
        await ship(s, "SHP-1", h1, date(2026, 2, 1), (f1, 5, None), (unrelated, 9, None))
        await ship(s, "SHP-2", h1, date(2026, 3, 1), (f2, 3, None))
        await ship(s, "SHP-3", h2, date(2026, 2, 10), (f1, 1, sn), (f1, 6, None))
        await ship(s, "SHP-4", h3, date(2026, 1, 2), (unrelated, 4, None))

        fwd = await forward_trace(s, [k.id])
        stock = {(x.location_code, x.lot_number, x.status): x.quantity for x in fwd.stock}
        assert stock == {
            ("WH1", "K1", StockStatus.unrestricted): 4,
            ("WH1", "F1", StockStatus.unrestricted): 90,
            ("WH1", "F1", StockStatus.blocked): 10,
            ("WH2", "F2", StockStatus.unrestricted): 50,
        }
        assert all(x.product_code == ("CMP" if x.lot_number == "K1" else "FG") for x in fwd.stock)
        by_code = {c.code: c for c in fwd.consignees}
        assert set(by_code) == {"H1", "H2"}  # H3 received only an unrelated lot
        assert (by_code["H1"].quantity, by_code["H1"].lots) == (8, 2)
        assert (by_code["H1"].first_shipped_on, by_code["H1"].last_shipped_on) == (
            date(2026, 2, 1),
            date(2026, 3, 1),
        )
        assert (by_code["H2"].quantity, by_code["H2"].lots, by_code["H2"].parent_code) == (7, 1, "H1")
        assert by_code["H1"].email == "h1@example.org" and by_code["H1"].phone.startswith("+86")
        lines = {
            (x.shipment_ref, x.lot_number, x.serial, x.quantity, x.consignee_code) for x in fwd.shipments
        }
        assert lines == {
            ("SHP-1", "F1", None, 5, "H1"),
            ("SHP-2", "F2", None, 3, "H1"),
            ("SHP-3", "F1", "SN-7", 1, "H2"),
            ("SHP-3", "F1", None, 6, "H2"),
        }
        assert [x.shipped_on for x in fwd.shipments] == sorted(x.shipped_on for x in fwd.shipments)

        lean = await forward_trace(s, [k.id], include_shipments=False)
        assert lean.shipments == [] and not lean.shipments_included
        assert lean.consignees == fwd.consignees and lean.stock == fwd.stock and lean.lots == fwd.lots

        dumped = fwd.model_dump(mode="json")
        assert {"lots", "stock", "shipments", "consignees"} <= set(dumped)
        assert {"product_code", "lot_number", "depth"} <= set(dumped["lots"][0])
        assert {"location_code", "product_code", "lot_number", "quantity"} <= set(dumped["stock"][0])
        assert {"code", "quantity"} <= set(dumped["consignees"][0])


async def test_a_shipment_line_always_carries_its_shipments_consignee_and_date(store):
    # The trace sums consignee totals from shipment_lines alone: the copy must never drift.
    async with store.sessions() as s, s.begin():
        fg = await f.product(s, "FG")
        lot = await f.lot(s, fg, "F1")
        h1, h2 = await f.consignee(s, "H1"), await f.consignee(s, "H2")
        shipment = Shipment(ref="S1", consignee_id=h1.id, shipped_on=date(2026, 2, 1))
        s.add(shipment)
        await s.flush()
        line = ShipmentLine(shipment_id=shipment.id, lot_id=lot.id, quantity=3)  # a writer that gives no copy
        s.add(line)
        await s.flush()
        assert (line.consignee_id, line.shipped_on) == (h1.id, date(2026, 2, 1))
    with pytest.raises(IntegrityError):
        async with store.sessions() as s, s.begin():
            s.add(
                ShipmentLine(
                    shipment_id=shipment.id,
                    lot_id=lot.id,
                    quantity=1,
                    consignee_id=h2.id,
                    shipped_on=date(2026, 2, 1),
                )
            )
    async with store.sessions() as s, s.begin():
        await s.execute(update(Shipment).where(Shipment.id == shipment.id).values(consignee_id=h2.id))
        fwd = await forward_trace(s, [lot.id])
        assert [(c.code, c.quantity) for c in fwd.consignees] == [("H2", 3)]


async def test_several_origins_each_start_at_depth_zero(store):
    async with store.sessions() as s, s.begin():
        lots = await chain(s, 5)
        fwd = await forward_trace(s, [lots[0].id, lots[3].id, lots[0].id])
        assert depths(fwd) == {"C/L0": 0, "C/L1": 1, "C/L2": 2, "C/L3": 0, "C/L4": 1}
        assert [o.lot_number for o in fwd.origin] == ["L0", "L3"]
        assert next(x for x in fwd.lots if x.lot_number == "L4").path == ["C/L3", "C/L4"]


async def test_a_trace_is_a_fixed_number_of_statements_whatever_the_size(store):
    async with store.sessions() as s, s.begin():
        comp, fg = await f.product(s, "CMP"), await f.product(s, "FG")
        k = await f.lot(s, comp, "K1")
        wh = await f.location(s)
        h = await f.consignee(s, "H1")
        for i in range(25):
            lot = await f.lot(s, fg, f"F{i}")
            await f.edge(s, k, lot)
            await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=3)
            await ship(s, f"S{i}", h, date(2026, 1, 1), (lot, 1, None))
        with _Statements(store.engine) as seen:
            fwd = await forward_trace(s, [k.id])
            back = await backward_trace(s, [lot.id])
        assert len(fwd.lots) == 26 and len(fwd.shipments) == 25 and fwd.consignees[0].quantity == 25
        assert len(back.lots) == 2
        # SQLite: one statement per trace. PostgreSQL: the forward trace walks, then reads the scope of
        # what it reached (see test_a_large_scope_is_read_on_two_connections_as_the_walk_saw_it).
        assert len(seen.sent) == (2 if store.engine.dialect.name == "sqlite" else 3)


async def _fanned_store(s: AsyncSession) -> tuple[Lot, list[Lot], object]:
    """A component lot K1 in 12 finished lots with stock, serials and shipments to three consignees."""
    comp, fg = await f.product(s, "CMP"), await f.product(s, "FG")
    k = await f.lot(s, comp, "K1")
    wh, h1 = await f.location(s, "WH1"), await f.consignee(s, "H1")
    h2, h3 = await f.consignee(s, "H2", parent=h1), await f.consignee(s, "H3")
    finished = []
    for i in range(12):
        lot = await f.lot(s, fg, f"F{i:02d}")
        finished.append(lot)
        await f.edge(s, k, lot)
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=wh, quantity=10 + i)
        sn = Serial(product_id=fg.id, lot_id=lot.id, serial=f"SN-{i}")
        s.add(sn)
        await s.flush()
        await ship(s, f"S{i}", (h1, h2, h3)[i % 3], date(2026, 1, 1 + i), (lot, 2, sn), (lot, 1, None))
    return k, finished, wh


@pytest.mark.postgres
async def test_a_large_scope_is_read_on_two_connections_as_the_walk_saw_it(request, tmp_path, monkeypatch):
    from domain import trace
    from tests.conftest import make_store

    store = await make_store("postgres", request, tmp_path)
    try:
        async with store.sessions() as s, s.begin():
            k, finished, wh = await _fanned_store(s)
        async with store.sessions() as s:  # one connection: the reference
            one = await forward_trace(s, [k.id])
            one_lean = await forward_trace(s, [k.id], include_shipments=False)
        monkeypatch.setattr(trace, "PARALLEL_FROM_LOTS", 5)
        with _Statements(store.engine) as seen:
            async with store.sessions() as s:
                fanned = await forward_trace(s, [k.id])
        assert fanned.model_dump() == one.model_dump()
        async with store.sessions() as s:  # without the lines, the stock is read in the other part
            assert (
                await forward_trace(s, [k.id], include_shipments=False)
            ).model_dump() == one_lean.model_dump()
        assert len(fanned.lots) == 13 and len(fanned.consignees) == 3 and len(fanned.shipments) == 24
        assert seen.snapshots_imported == 2 and len({conn for conn, _ in seen.sent}) == 3

        # Repeatable read: the trace's transaction took its snapshot before another one committed more
        # stock and a shipment. The scope read on the other connections is still what the walk saw.
        async with store.sessions() as s:
            await s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            before = await forward_trace(s, [k.id])
            async with store.sessions() as other, other.begin():
                lot = await other.get(Lot, finished[0].id)
                await inventory.post(other, kind=MovementKind.receipt, lot=lot, location=wh, quantity=500)
                h9 = await f.consignee(other, "H9")
                await ship(other, "S-LATE", h9, date(2026, 6, 1), (lot, 7, None))
            with _Statements(store.engine) as seen:
                again = await forward_trace(s, [k.id])
            assert seen.snapshots_imported == 2
            assert again.model_dump() == before.model_dump()
        async with store.sessions() as s:  # a new transaction sees the commit
            after = await forward_trace(s, [k.id])
        assert "H9" in {c.code for c in after.consignees} and "H9" not in {c.code for c in again.consignees}

        # A transaction that has written reads its scope on its own connection: it sees its own rows.
        async with store.sessions() as s, s.begin():
            lot = await s.get(Lot, finished[1].id)
            h10 = await f.consignee(s, "H10")
            await ship(s, "S-MINE", h10, date(2026, 7, 1), (lot, 4, None))
            with _Statements(store.engine) as seen:
                mine = await forward_trace(s, [k.id])
            assert seen.snapshots_imported == 0 and len({conn for conn, _ in seen.sent}) == 1
            assert {c.code: c.quantity for c in mine.consignees}["H10"] == 4
            await s.rollback()
    finally:
        await store.engine.dispose()


@pytest.mark.postgres
async def test_a_trace_never_waits_for_the_pool_to_fan_out(request, tmp_path, monkeypatch):
    from domain import trace
    from domain.db import make_engine, make_session_factory
    from tests.conftest import make_store

    store = await make_store("postgres", request, tmp_path)
    small = make_engine(store.url, pool_size=2, max_overflow=0, pool_timeout=1)
    try:
        async with store.sessions() as s, s.begin():
            k, _, _ = await _fanned_store(s)
        async with store.sessions() as s:
            one = await forward_trace(s, [k.id])
        monkeypatch.setattr(trace, "PARALLEL_FROM_LOTS", 5)
        with _Statements(small) as seen:
            async with make_session_factory(small)() as s:  # one of its two connections: none to spare
                alone = await forward_trace(s, [k.id])
        assert seen.snapshots_imported == 0
        assert alone.model_dump() == one.model_dump()
    finally:
        await small.dispose()
        await store.engine.dispose()


async def test_bad_arguments_name_the_field(store):
    async with store.sessions() as s, s.begin():
        lots = await chain(s, 2)
        with pytest.raises(NotFound) as err:
            await forward_trace(s, [lots[0].id, 987654])
        assert err.value.field == "lot_id" and "987654" in err.value.reason
        with pytest.raises(InvalidInput) as err:
            await forward_trace(s, [])
        assert err.value.field == "lot_id"
        with pytest.raises(InvalidInput) as err:
            await backward_trace(s, [lots[0].id], max_depth=-1)
        assert err.value.field == "max_depth"


# --------------------------------------------------------------------------- origin


async def test_origin_by_product_and_lot_serial_and_gs1(store):
    async with store.sessions() as s, s.begin():
        p, q = await f.product(s, "PX"), await f.product(s, "QX")
        a = await f.lot(s, p, "A1B2")
        other = await f.lot(s, p, "ZZ9")
        same_number = await f.lot(s, q, "ZZ9")
        s.add_all(
            [
                Serial(product_id=p.id, lot_id=a.id, serial="SN-1"),
                Serial(product_id=q.id, lot_id=same_number.id, serial="SN-9"),
                Serial(product_id=p.id, lot_id=other.id, serial="SN-9"),
            ]
        )
        await s.flush()
        assert await resolve_origin(s, product_code="PX", lot_number="A1B2") == [a.id]
        assert await resolve_origin(s, product_code=" PX ", lot_number=" A1B2 ") == [a.id]
        assert await resolve_origin(s, lot_number="A1B2") == [a.id]  # unique lot number: no product needed
        assert await resolve_origin(s, serial="SN-1") == [a.id]
        assert await resolve_origin(s, serial="SN-9", product_code="QX") == [same_number.id]
        assert await resolve_origin(s, gs1=f"(01){p.gtin}(17)281231(10)A1B2") == [a.id]
        assert await resolve_origin(s, gs1=f"01{p.gtin}10A1B2\x1d17281231") == [a.id]
        assert await resolve_origin(s, gs1=f"]C101{p.gtin}21SN-1") == [a.id]
        assert await resolve_origin(s, gs1=f"01{p.gtin}10A1B2\x1d21SN-1") == [a.id]
        assert await resolve_origin(s, gs1=f"(01){p.gtin}(21)SN-9") == [other.id]


ORIGIN_ERRORS = [
    ({}, InvalidInput, "lot_number", "name the lot"),
    ({"product_code": "PX"}, InvalidInput, "lot_number", "needs a lot_number"),
    ({"product_code": "NOPE", "lot_number": "A1B2"}, NotFound, "product_code", "NOPE"),
    ({"product_code": "PX", "lot_number": "NOPE"}, NotFound, "lot_number", "NOPE"),
    ({"lot_number": "ZZ9"}, InvalidInput, "product_code", "several products"),
    ({"serial": "SN-404"}, NotFound, "serial", "SN-404"),
    ({"serial": "SN-9"}, InvalidInput, "product_code", "several products"),
    (
        {"serial": "SN-1", "lot_number": "ZZ9", "product_code": "PX"},
        InvalidInput,
        "lot_number",
        "belongs to",
    ),
    ({"gs1": "not a barcode"}, InvalidInput, "gs1", "GS1"),
    ({"gs1": "(01)06950000000018(10)A1"}, InvalidInput, "gs1", "check digit"),
    ({"gs1": "(01){gtin}"}, InvalidInput, "gs1", "no lot"),
    ({"gs1": "(01){gtin}(10)NOPE"}, NotFound, "gs1", "NOPE"),
    ({"gs1": "(01){gtin}(21)SN-404"}, NotFound, "gs1", "SN-404"),
    ({"gs1": "(01){gtin}(10)ZZ9(21)SN-1"}, InvalidInput, "gs1", "belongs to lot"),
    ({"gs1": "(01){unknown}(10)A1B2"}, NotFound, "gs1", "no product with GTIN"),
    ({"gs1": "(01){gtin}(10)A1B2", "lot_number": "A1B2"}, InvalidInput, "gs1", "not both"),
]


async def test_origin_errors_name_the_field(store):
    async with store.sessions() as s, s.begin():
        p, q = await f.product(s, "PX"), await f.product(s, "QX")
        a = await f.lot(s, p, "A1B2")
        await f.lot(s, p, "ZZ9")
        b = await f.lot(s, q, "ZZ9")
        s.add_all(
            [
                Serial(product_id=p.id, lot_id=a.id, serial="SN-1"),
                Serial(product_id=p.id, lot_id=a.id, serial="SN-9"),
                Serial(product_id=q.id, lot_id=b.id, serial="SN-9"),
            ]
        )
        await s.flush()
        # One store for every case: each is a read that must fail the same way whatever ran before.
        for kwargs, error, field, says in ORIGIN_ERRORS:
            values = {k: v.format(gtin=p.gtin, unknown=f.make_gtin(999_999)) for k, v in kwargs.items()}
            with pytest.raises(error) as err:
                await resolve_origin(s, **values)
            assert (err.value.field, says in err.value.reason) == (field, True), (kwargs, err.value.reason)


# --------------------------------------------------------------------------- property


def bfs(adjacency: dict[int, set[int]], starts: set[int]) -> dict[int, int]:
    """Shortest distance from the nearest start to every reachable node."""
    dist = dict.fromkeys(starts, 0)
    queue = deque(starts)
    while queue:
        u = queue.popleft()
        for v in adjacency.get(u, ()):
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def has_cycle(adjacency: dict[int, set[int]], nodes: set[int]) -> bool:
    """Whether the subgraph induced by ``nodes`` has a cycle: some node reaches itself."""
    sub = {u: {v for v in adjacency.get(u, ()) if v in nodes} for u in nodes}
    return any(u in bfs(sub, set(sub[u])) for u in nodes)


graphs = st.integers(min_value=1, max_value=9).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2 * n),
        st.sets(st.integers(0, n - 1), min_size=1, max_size=2),
        st.sampled_from([0, 1, 2, 3, 200]),
    )
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(graph=graphs)
async def test_traces_agree_with_reachability_computed_in_python(store, graph):
    n, pairs, origins, max_depth = graph
    async with store.sessions() as s:
        await s.begin()
        try:
            p = await f.product(s)
            lots = [Lot(product_id=p.id, lot_number=f"N{i}", quantity=1) for i in range(n)]
            s.add_all(lots)
            await s.flush()
            s.add_all(
                GenealogyEdge(component_lot_id=lots[a].id, parent_lot_id=lots[b].id, quantity=1)
                for a, b in pairs
            )
            await s.flush()
            down: dict[int, set[int]] = {}
            up: dict[int, set[int]] = {}
            for a, b in pairs:
                down.setdefault(a, set()).add(b)
                up.setdefault(b, set()).add(a)
            label = {i: f"{p.code}/N{i}" for i in range(n)}
            for adjacency, run in ((down, forward_trace), (up, backward_trace)):
                trace = await run(s, [lots[i].id for i in origins], max_depth=max_depth)
                dist = bfs(adjacency, set(origins))
                reached = {i: d for i, d in dist.items() if d <= max_depth}
                assert {x.lot_number: x.depth for x in trace.lots} == {f"N{i}": d for i, d in reached.items()}
                assert trace.truncated == any(d > max_depth for d in dist.values())
                assert bool(trace.cycle) == has_cycle(adjacency, set(reached))
                node = {v: k for k, v in label.items()}
                if trace.cycle:  # a real cycle, named in genealogy order
                    assert trace.cycle[0] == trace.cycle[-1]
                    for u, v in pairwise(trace.cycle):
                        assert node[v] in down.get(node[u], ())
                for x in trace.lots:  # each path is a real shortest path from an origin
                    steps = [node[lbl] for lbl in x.path]
                    assert len(steps) == x.depth + 1 and steps[0] in origins
                    assert steps[-1] == int(x.lot_number[1:])
                    for u, v in pairwise(steps):
                        assert v in adjacency.get(u, ())
        finally:
            await s.rollback()
