"""The demo data set `make run` seeds: idempotent, deterministic, consistent, and worth a recall drill."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import date, timedelta

import phonenumbers
from sqlalchemy import func, select

from domain.demo import DEMO_PASSWORD, seed_demo
from domain.enums import ConsigneeKind, Language, LocationKind, QcStatus, Role
from domain.gs1 import normalize_gtin
from domain.models import (
    Consignee,
    GenealogyEdge,
    Location,
    Lot,
    Product,
    Serial,
    Shipment,
    ShipmentLine,
    StockBalance,
    User,
)
from domain.users import authenticate, verify_password
from tests.conftest import make_store


async def _table_counts(store) -> dict[str, int]:
    async with store.sessions() as s:
        return {
            name: await s.scalar(select(func.count()).select_from(model))
            for name, model in {"products": Product, "lots": Lot, "consignees": Consignee,
                                "shipment_lines": ShipmentLine, "users": User}.items()
        }  # fmt: skip


async def _suspect_lot_id(store, summary) -> int:
    async with store.sessions() as s:
        return await s.scalar(
            select(Lot.id)
            .join(Product)
            .where(Product.code == summary.suspect_product_code, Lot.lot_number == summary.suspect_lot_number)
        )


def _reach(edges: list[tuple[int, int]], start: int) -> set[int]:
    """Every lot made, at any depth, from the start lot (plain BFS over component -> parent edges)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for component, parent in edges:
        parents[component].append(parent)
    seen, frontier = {start}, [start]
    while frontier:
        frontier = [p for lot in frontier for p in parents[lot] if p not in seen]
        seen.update(frontier)
    return seen - {start}


async def test_seeding_twice_adds_nothing_the_second_time(store):
    first = await seed_demo(store.sessions)
    second = await seed_demo(store.sessions)
    assert first.seeded and not second.seeded
    assert first.counts == second.counts
    actual = await _table_counts(store)
    assert {k: first.counts[k] for k in actual} == actual
    assert actual["consignees"] == 200 and actual["users"] == len(Role)
    assert 10 <= actual["products"] <= 14 and actual["shipment_lines"] >= 2000


async def test_the_suggested_lot_reaches_forty_finished_lots_and_their_consignees(store):
    summary = await seed_demo(store.sessions)
    suspect = await _suspect_lot_id(store, summary)
    assert suspect is not None
    async with store.sessions() as s:
        edges = [tuple(e) for e in (await s.execute(select(GenealogyEdge.component_lot_id,
                                                            GenealogyEdge.parent_lot_id))).all()]  # fmt: skip
        components = {c for c, _ in edges}
        reached = _reach(edges, suspect)
        finished = reached - components
        assert len(finished) >= 40
        assert reached & components  # through an intermediate component (tubing), not only directly
        consignees = await s.scalar(
            select(func.count(func.distinct(Shipment.consignee_id)))
            .join(ShipmentLine)
            .where(ShipmentLine.lot_id.in_(finished))
        )
        assert consignees >= 100  # a recall that reaches half the customers


async def test_a_store_that_already_holds_data_is_left_alone(sqlite_store):
    async with sqlite_store.sessions() as s, s.begin():
        s.add(Product(code="OWN-1", name="Our own device", gtin=normalize_gtin("06901234567892"),
                      risk_class="II", implantable=False))  # fmt: skip
    summary = await seed_demo(sqlite_store.sessions)
    assert not summary.seeded
    assert summary.counts["products"] == 1 and summary.counts["lots"] == 0 and summary.counts["users"] == 0


async def _fingerprint(store) -> str:
    async with store.sessions() as s:
        rows = [
            (await s.execute(select(Product.code, Product.gtin).order_by(Product.code))).all(),
            (await s.execute(select(Lot.lot_number, Lot.manufactured_on, Lot.quantity).order_by(Lot.lot_number))).all(),
            (await s.execute(select(Consignee.code, Consignee.name, Consignee.phone).order_by(Consignee.code))).all(),
            (await s.execute(select(Shipment.ref, Shipment.shipped_on, ShipmentLine.quantity)
                             .join(ShipmentLine).order_by(ShipmentLine.id))).all(),
        ]  # fmt: skip
    return hashlib.sha256(repr(rows).encode()).hexdigest()


async def test_the_same_day_gives_the_same_data_set(request, tmp_path):
    prints = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        store = await make_store("sqlite", request, tmp_path / name)
        try:
            await seed_demo(store.sessions, today=date(2026, 3, 2))
            prints.append(await _fingerprint(store))
        finally:
            await store.engine.dispose()
    assert prints[0] == prints[1]


async def test_the_demo_data_is_consistent_and_realistic(sqlite_store):
    today = date.today()
    await seed_demo(sqlite_store.sessions, today=today)
    async with sqlite_store.sessions() as s:
        products = list(await s.scalars(select(Product)))
        lots = {lot.id: lot for lot in await s.scalars(select(Lot))}
        consignees = list(await s.scalars(select(Consignee)))
        locations = {loc.id: loc for loc in await s.scalars(select(Location))}
        edges = (await s.execute(select(GenealogyEdge.component_lot_id, GenealogyEdge.quantity))).all()
        balances = (
            await s.execute(select(StockBalance.lot_id, StockBalance.location_id, StockBalance.quantity))
        ).all()
        lines = (await s.execute(select(ShipmentLine.lot_id, ShipmentLine.serial_id, ShipmentLine.quantity,
                                        Shipment.shipped_on).join(Shipment))).all()  # fmt: skip
        serial_count = await s.scalar(select(func.count()).select_from(Serial))
        users = list(await s.scalars(select(User)))

        # Products: valid GTINs, implants among them, expiry dates from shelf life.
        by_id = {p.id: p for p in products}
        assert all(normalize_gtin(p.gtin) == p.gtin for p in products)
        assert sum(p.implantable for p in products) >= 3
        for lot in lots.values():
            shelf = by_id[lot.product_id].shelf_life_days
            assert lot.expires_on == (lot.manufactured_on + timedelta(shelf) if shelf else None)
            assert lot.manufactured_on < today

        # Every unit is accounted for: made = on hand + shipped + used in other lots.
        on_hand, shipped, used = Counter(), Counter(), Counter()
        for lot_id, _loc, qty in balances:
            on_hand[lot_id] += qty
        for lot_id, _serial, qty, _day in lines:
            shipped[lot_id] += qty
        for lot_id, qty in edges:
            used[lot_id] += qty
        for lot in lots.values():
            assert on_hand[lot.id] + shipped[lot.id] + used[lot.id] == lot.quantity, lot.lot_number

        # Only released lots ship; lots not released sit in quarantine, and some do.
        held = {lot.id for lot in lots.values() if lot.qc_status != QcStatus.released}
        assert any(lot.qc_status == QcStatus.quarantined for lot in lots.values())
        assert any(lot.qc_status == QcStatus.rejected for lot in lots.values())
        assert not held & {lot_id for lot_id, *_ in lines}
        for lot_id, loc_id, qty in balances:
            if lot_id in held and qty:
                assert locations[loc_id].kind == LocationKind.quarantine
        assert {loc.kind for loc in locations.values()} >= {LocationKind.warehouse, LocationKind.quarantine,
                                                           LocationKind.distribution_center}  # fmt: skip

        # A year of shipments, each after the lot was made; serialised units ship one per line.
        for lot_id, serial_id, qty, day in lines:
            assert lots[lot_id].manufactured_on < day < today and day >= today - timedelta(days=366)
            assert qty > 0 and (serial_id is None or qty == 1)
        assert serial_count > 0 and any(serial_id for _, serial_id, *_ in lines)

        # Consignees: distributors with sub-accounts, hospitals, reachable by e-mail or SMS.
        kinds = Counter(c.kind for c in consignees)
        assert kinds[ConsigneeKind.distributor] >= 10 and kinds[ConsigneeKind.hospital] >= 100
        codes = {c.id: c for c in consignees}
        subs = [c for c in consignees if c.parent_id is not None]
        assert any(codes[c.parent_id].kind == ConsigneeKind.distributor for c in subs)
        assert kinds[ConsigneeKind.sub_distributor] >= 10
        assert len({c.region for c in consignees}) >= 15
        languages = Counter(c.language for c in consignees)
        assert languages[Language.zh_CN] > 150 and 5 <= languages[Language.en] <= 20
        assert any(any("\u4e00" <= ch <= "\u9fff" for ch in c.name) for c in consignees)  # Chinese names
        phones = [c.phone for c in consignees if c.phone]
        assert len(phones) == len(set(phones)) >= 180
        for phone in phones:
            number = phonenumbers.parse(phone)
            assert phonenumbers.is_valid_number(number), phone
            assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE, phone
            assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == phone
        for c in consignees:
            assert c.email or c.phone, c.code
            assert c.email is None or c.email.rsplit("@", 1)[1].endswith(".example.org"), c.email

        # One demo user per role, with the documented password.
        assert sorted(u.username for u in users) == sorted(r.value for r in Role)
        for u in users:
            assert u.roles == [u.username]
            assert verify_password(password_hash=u.password_hash, password=DEMO_PASSWORD)
    async with sqlite_store.sessions() as s, s.begin():
        assert await authenticate(s, username="releaser", password=DEMO_PASSWORD) is not None
