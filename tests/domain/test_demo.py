"""The demo data set `make run` seeds: idempotent, deterministic, consistent, and worth a recall drill."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import date, timedelta

import phonenumbers
import pytest
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
    StockEntry,
    User,
)
from domain.users import authenticate, verify_password
from tests.conftest import Store, make_store


async def _table_counts(store) -> dict[str, int]:
    async with store.sessions() as s:
        return {
            name: await s.scalar(select(func.count()).select_from(model))
            for name, model in {
                "products": Product,
                "lots": Lot,
                "consignees": Consignee,
                "shipment_lines": ShipmentLine,
                "users": User,
            }.items()
        }


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
        edges = [
            tuple(e)
            for e in (
                await s.execute(select(GenealogyEdge.component_lot_id, GenealogyEdge.parent_lot_id))
            ).all()
        ]
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
        s.add(
            Product(
                code="OWN-1",
                name="Our own device",
                gtin=normalize_gtin("06901234567892"),
                risk_class="II",
                implantable=False,
            )
        )
    summary = await seed_demo(sqlite_store.sessions)
    assert not summary.seeded
    assert summary.counts["products"] == 1 and summary.counts["lots"] == 0 and summary.counts["users"] == 0


TODAY = date.today()


@pytest.fixture(scope="module")
async def seeded(request, tmp_path_factory) -> AsyncIterator[Store]:
    """One SQLite store with the demo data, shared by the tests that only read it."""
    store = await make_store("sqlite", request, tmp_path_factory.mktemp("demo"))
    await seed_demo(store.sessions, today=TODAY)
    yield store
    await store.engine.dispose()


async def _fingerprint(store) -> str:
    async with store.sessions() as s:
        queries = [
            select(Product.code, Product.gtin).order_by(Product.code),
            select(Lot.lot_number, Lot.manufactured_on, Lot.quantity).order_by(Lot.lot_number),
            select(
                GenealogyEdge.component_lot_id, GenealogyEdge.parent_lot_id, GenealogyEdge.quantity
            ).order_by(GenealogyEdge.component_lot_id, GenealogyEdge.parent_lot_id),
            select(Consignee.code, Consignee.name, Consignee.phone, Consignee.email).order_by(Consignee.code),
            select(Shipment.ref, Shipment.shipped_on, ShipmentLine.lot_id, ShipmentLine.quantity)
            .join(ShipmentLine)
            .order_by(ShipmentLine.id),
        ]
        rows = [(await s.execute(q)).all() for q in queries]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


async def test_the_same_day_gives_the_same_data_set(seeded, request, tmp_path):
    other = await make_store("sqlite", request, tmp_path)
    try:
        await seed_demo(other.sessions, today=TODAY)
        assert await _fingerprint(other) == await _fingerprint(seeded)
    finally:
        await other.engine.dispose()


async def test_products_have_valid_gtins_implants_and_expiry_from_shelf_life(seeded):
    async with seeded.sessions() as s:
        products = {p.id: p for p in await s.scalars(select(Product))}
        lots = list(await s.scalars(select(Lot)))
    assert all(normalize_gtin(p.gtin) == p.gtin for p in products.values())
    assert sum(p.implantable for p in products.values()) >= 3
    for lot in lots:
        shelf = products[lot.product_id].shelf_life_days
        assert lot.expires_on == (lot.manufactured_on + timedelta(shelf) if shelf else None)
        assert lot.manufactured_on < TODAY


async def test_every_unit_made_is_on_hand_shipped_or_used_in_another_lot(seeded):
    async with seeded.sessions() as s:
        lots = list(await s.scalars(select(Lot)))
        on_hand = Counter(
            dict(
                (
                    await s.execute(
                        select(StockBalance.lot_id, func.sum(StockBalance.quantity)).group_by(
                            StockBalance.lot_id
                        )
                    )
                ).all()
            )
        )
        shipped = Counter(
            dict(
                (
                    await s.execute(
                        select(ShipmentLine.lot_id, func.sum(ShipmentLine.quantity)).group_by(
                            ShipmentLine.lot_id
                        )
                    )
                ).all()
            )
        )
        used = Counter(
            dict(
                (
                    await s.execute(
                        select(GenealogyEdge.component_lot_id, func.sum(GenealogyEdge.quantity)).group_by(
                            GenealogyEdge.component_lot_id
                        )
                    )
                ).all()
            )
        )
        entries = await s.scalar(select(func.count()).select_from(StockEntry))
    for lot in lots:
        assert on_hand[lot.id] + shipped[lot.id] + used[lot.id] == lot.quantity, lot.lot_number
    assert entries > 0  # stock came in through the ledger


async def test_only_released_lots_ship_and_the_others_sit_in_quarantine(seeded):
    async with seeded.sessions() as s:
        lots = list(await s.scalars(select(Lot)))
        shipped_lots = set(await s.scalars(select(ShipmentLine.lot_id).distinct()))
        stock = (
            await s.execute(
                select(StockBalance.lot_id, Location.kind).join(Location).where(StockBalance.quantity > 0)
            )
        ).all()
        kinds = set(await s.scalars(select(Location.kind)))
    statuses = Counter(lot.qc_status for lot in lots)
    assert statuses[QcStatus.quarantined] >= 1 and statuses[QcStatus.rejected] == 1
    held = {lot.id for lot in lots if lot.qc_status != QcStatus.released}
    assert not held & shipped_lots
    assert all(kind == LocationKind.quarantine for lot_id, kind in stock if lot_id in held)
    assert kinds >= {LocationKind.warehouse, LocationKind.quarantine, LocationKind.distribution_center}


async def test_a_year_of_shipments_after_each_lot_was_made(seeded):
    async with seeded.sessions() as s:
        made = dict((await s.execute(select(Lot.id, Lot.manufactured_on))).all())
        lines = (
            await s.execute(
                select(
                    ShipmentLine.lot_id, ShipmentLine.serial_id, ShipmentLine.quantity, Shipment.shipped_on
                ).join(Shipment)
            )
        ).all()
        serials = await s.scalar(select(func.count()).select_from(Serial))
    assert len(lines) >= 2000
    for lot_id, serial_id, qty, day in lines:
        assert made[lot_id] < day < TODAY and day >= TODAY - timedelta(days=366)
        assert qty > 0 and (serial_id is None or qty == 1)  # serialised units ship one per line
    assert serials > 0 and any(serial_id for _, serial_id, *_ in lines)


async def test_consignees_across_china_reachable_by_email_or_sms(seeded):
    async with seeded.sessions() as s:
        consignees = list(await s.scalars(select(Consignee)))
    by_id = {c.id: c for c in consignees}
    kinds = Counter(c.kind for c in consignees)
    assert kinds[ConsigneeKind.distributor] >= 10 and kinds[ConsigneeKind.hospital] >= 100
    assert kinds[ConsigneeKind.sub_distributor] >= 10
    assert all(by_id[c.parent_id].kind == ConsigneeKind.distributor for c in consignees if c.parent_id)
    assert len({c.region for c in consignees}) >= 15
    languages = Counter(c.language for c in consignees)
    assert languages[Language.zh_CN] > 150 and 5 <= languages[Language.en] <= 20
    assert sum(any("\u4e00" <= ch <= "\u9fff" for ch in c.name) for c in consignees) > 150  # Chinese names
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


async def test_one_demo_user_per_role_signs_in_with_the_documented_password(seeded):
    async with seeded.sessions() as s:
        users = list(await s.scalars(select(User)))
    assert sorted(u.username for u in users) == sorted(r.value for r in Role)
    for u in users:
        assert u.roles == [u.username] and u.active
        assert verify_password(password_hash=u.password_hash, password=DEMO_PASSWORD)
    async with seeded.sessions() as s, s.begin():
        assert await authenticate(s, username="releaser", password=DEMO_PASSWORD) is not None
        assert await authenticate(s, username="releaser", password="not-the-demo-password") is None
