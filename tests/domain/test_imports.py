"""CSV import and export: all or nothing, every error located, idempotent, and a faithful round trip."""

from __future__ import annotations

import asyncio
import codecs
from datetime import date

import pytest
from sqlalchemy import func, select

from domain import inventory
from domain.audit import acting_as
from domain.audit.models import AuditEntry
from domain.audit.verify import verify_chain
from domain.enums import Language, MovementKind, RiskClass, StockStatus
from domain.errors import Conflict
from domain.exports import export_csv
from domain.imports import ImportRejected, ImportResult, import_csv
from domain.models import Consignee, Location, Lot, Product, Shipment, ShipmentLine, StockEntry
from tests.conftest import make_store
from tests.csvsets import GTIN13_WIRE, GTIN_STENT, VALID, VALID_ROWS, table_counts, valid_files, with_line


async def run_import(store, files, **kwargs) -> ImportResult:
    async with store.sessions() as s, s.begin():
        return await import_csv(s, files=files, **kwargs)


async def rejected(store, files) -> list[tuple[str, int, str | None, str]]:
    """Import files that must be refused; assert the store did not change; the issues found."""
    before = await table_counts(store)
    with pytest.raises(ImportRejected) as err:
        await run_import(store, files)
    assert await table_counts(store) == before, "a refused import changed the store"
    return [(i.file, i.line, i.column, i.reason) for i in err.value.issues]


def has(issues, file: str, line: int, column: str | None, words: str) -> bool:
    return any(
        (f, n, c) == (file, line, column) and words.lower() in reason.lower() for f, n, c, reason in issues
    )


# ------------------------------------------------------------------ a valid set


async def test_a_full_valid_set_imports_every_file(store):
    result = await run_import(store, valid_files(), user="wh1")

    assert {f: c.created for f, c in result.files.items()} == VALID_ROWS
    assert all(c.unchanged == 0 for c in result.files.values())
    assert result.warnings == []
    async with store.sessions() as s:
        wire = await s.scalar(select(Product).where(Product.code == "WIRE-03"))
        assert wire.gtin == "0" + GTIN13_WIRE and wire.risk_class == RiskClass.I and not wire.implantable
        d1 = await s.scalar(select(Consignee).where(Consignee.code == "D-001"))
        h2 = await s.scalar(select(Consignee).where(Consignee.code == "H-002"))
        assert d1.phone == "+8613800138001" and d1.language == Language.zh_CN
        assert h2.parent_id == d1.id and h2.language == Language.zh_CN  # empty language: the default
        s2 = await s.scalar(select(Lot).where(Lot.lot_number == "S2"))
        assert (s2.manufactured_on, s2.expires_on, s2.quantity) == (date(2026, 2, 10), None, 0)
        # Stock arrives as receipt entries in the ledger, one per row, and the balances follow.
        entries = (await s.scalars(select(StockEntry))).all()
        assert sorted(e.quantity for e in entries) == [40, 150, 700]
        assert {(e.kind, e.reference, e.created_by) for e in entries} == {
            (MovementKind.receipt, "csv-import", "wh1")
        }
        wh = await s.scalar(select(Location).where(Location.code == "WH-SH"))
        s1 = await s.scalar(select(Lot).where(Lot.lot_number == "S1"))
        assert (
            await inventory.balance(s, lot_id=s1.id, location_id=wh.id, status=StockStatus.unrestricted) == 40
        )
        # Shipments are history: they are recorded, and they take nothing from the ledger.
        assert await s.scalar(select(func.count()).select_from(Shipment)) == 3
        assert await s.scalar(select(func.sum(ShipmentLine.quantity))) == 52


async def test_importing_the_same_files_again_changes_nothing(store):
    await run_import(store, valid_files())
    before = await table_counts(store)

    again = await run_import(store, valid_files())

    assert {f: c.unchanged for f, c in again.files.items()} == VALID_ROWS
    assert all(c.created == 0 for c in again.files.values())
    assert await table_counts(store) == before  # no new ledger entries, lines or anything else


async def test_new_products_and_lots_enter_the_audit_trail_once_with_the_importer_and_the_file(store):
    with acting_as("qa.li"):
        await run_import(store, valid_files())
        await run_import(store, valid_files())  # unchanged rows add nothing
    async with store.sessions() as s:
        entries = list(await s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        lots = {lot.id: lot.lot_number for lot in await s.scalars(select(Lot))}
        report = await verify_chain(s)
    assert report.ok and report.entries == len(entries)
    by_type = {t: [e for e in entries if e.record_type == t] for t in ("product", "lot")}
    assert len(by_type["product"]) == VALID_ROWS["products.csv"]
    assert len(by_type["lot"]) == VALID_ROWS["lots.csv"] == len(lots)
    assert all(e.action == "create" and e.actor == "qa.li" for e in entries)
    assert {e.reason for e in by_type["product"]} == {"CSV import: products.csv"}
    assert {e.reason for e in by_type["lot"]} == {"CSV import: lots.csv"}
    # Each entry carries the stored row's values, keyed by the row's id.
    s2 = next(e for e in by_type["lot"] if e.changes["lot_number"] == [None, "S2"])
    assert lots[int(s2.record_id)] == "S2" and s2.changes["qc_status"] == [None, "quarantined"]


async def test_files_may_come_one_at_a_time_and_refer_to_stored_records(store):
    for name in VALID:  # each import refers to what the previous ones stored
        result = await run_import(store, {name: VALID[name].encode()})
        assert result.files[name].created == VALID_ROWS[name]
    assert (await table_counts(store))["shipment_lines"] == 4


async def test_small_chunks_and_progress_reports(store):
    seen: list[tuple[str, int, int]] = []
    result = await run_import(
        store,
        valid_files(),
        chunk_size=1,
        on_progress=lambda step, done, total: seen.append((step, done, total)),
    )
    assert result.files["shipments.csv"].created == 4
    shipments = [(d, t) for step, d, t in seen if step == "write shipments.csv"]
    assert shipments[0] == (0, 4) and shipments[-1] == (4, 4)
    assert [d for d, _ in shipments] == sorted(d for d, _ in shipments)
    assert {step for step, _, _ in seen} >= {"check products.csv", "write stock.csv"}
    async with store.sessions() as s:  # SHP-001's two lines landed on one shipment across chunks
        lines = await s.scalar(
            select(func.count()).select_from(ShipmentLine).join(Shipment).where(Shipment.ref == "SHP-001")
        )
        assert lines == 2


async def test_a_byte_order_mark_is_accepted(store):
    files = valid_files()
    files["products.csv"] = codecs.BOM_UTF8 + files["products.csv"]
    files["consignees.csv"] = codecs.BOM_UTF8 + files["consignees.csv"].replace(b"\n", b"\r\n")  # Excel
    result = await run_import(store, files)
    assert result.files["products.csv"].created == 3 and result.files["consignees.csv"].created == 3


async def test_extra_columns_are_ignored_with_a_warning(store):
    products = VALID["products.csv"].replace("shelf_life_days\n", "shelf_life_days,colour\n", 1)
    products = products.replace(",730\n", ",730,red\n").replace(",\n", ",,\n").replace(",365\n", ",365,\n")
    result = await run_import(store, valid_files(products_csv=products))
    assert result.files["products.csv"].created == 3
    assert [(w.file, w.line, w.column) for w in result.warnings] == [("products.csv", 1, "colour")]
    assert "ignored" in result.warnings[0].reason


async def test_an_optional_column_may_be_left_out(store):
    shipments = (
        "shipment_ref,consignee_code,product_code,lot_number,quantity,shipped_on\n"
        "S9,H-003,CATH-02,C7,5,2026-05-01\n"
    )
    result = await run_import(store, valid_files(shipments_csv=shipments))
    assert result.files["shipments.csv"].created == 1


# ------------------------------------------------------------------ export


async def test_export_round_trip_into_an_empty_store(store, request, tmp_path):
    await run_import(store, valid_files())
    async with store.sessions() as s:
        counts = await export_csv(s, directory=tmp_path / "a")
    assert counts == VALID_ROWS
    exported = {f.name: f.read_bytes() for f in (tmp_path / "a").iterdir()}
    assert (
        exported["products.csv"].decode().splitlines()[3] == f"WIRE-03,Guide wire,0{GTIN13_WIRE},I,false,365"
    )
    assert (
        "H-002,瑞金医院,hospital,h2@example.org,+8613800138002,zh-CN,上海,D-001"
        in exported["consignees.csv"].decode()
    )
    assert "STENT-01,S2,2026-02-10,," in exported["lots.csv"].decode()

    # A second, empty store (on PostgreSQL the same database, emptied).
    (tmp_path / "second").mkdir()
    await store.engine.dispose()
    second = await make_store(
        store.dialect if store.dialect == "sqlite" else "postgres", request, tmp_path / "second"
    )
    try:
        result = await run_import(second, {f: tmp_path / "a" / f for f in exported})
        assert {f: c.created for f, c in result.files.items()} == VALID_ROWS
        async with second.sessions() as s:
            await export_csv(s, directory=tmp_path / "b")
        assert {f.name: f.read_bytes() for f in (tmp_path / "b").iterdir()} == exported
    finally:
        await second.engine.dispose()


async def test_export_then_import_into_the_same_store_changes_nothing(store, tmp_path):
    out = tmp_path / "export"
    await run_import(store, valid_files())
    async with store.sessions() as s, s.begin():  # history after the import: a movement and a shipment line
        lot = await s.scalar(select(Lot).where(Lot.lot_number == "C7"))
        wh = await s.scalar(select(Location).where(Location.code == "WH-SH"))
        await inventory.post(s, kind=MovementKind.shipment, lot=lot, location=wh, quantity=50)
    async with store.sessions() as s:
        await export_csv(s, directory=out, bom=True)
    assert (out / "stock.csv").read_bytes().startswith(codecs.BOM_UTF8)
    assert "WH-SH,CATH-02,C7,100" in (out / "stock.csv").read_text("utf-8-sig")
    before = await table_counts(store)

    result = await run_import(store, {f.name: f for f in out.iterdir()})

    assert all(c.created == 0 for c in result.files.values())
    assert await table_counts(store) == before


# ------------------------------------------------------------------ bad input: refused, located, no change


BAD_INPUT = [
    # wrong types
    (
        {"lots_csv": with_line("lots.csv", "CATH-02,C8,2026-03-01,2028-03-01,ten")},
        ("lots.csv", 6, "quantity"),
        "whole number",
    ),
    (
        {"lots_csv": with_line("lots.csv", "CATH-02,C8,2026-13-01,,")},
        ("lots.csv", 6, "manufactured_on"),
        "ISO 8601",
    ),
    (
        {"lots_csv": with_line("lots.csv", "CATH-02,C8,2026-03-01,2026-02-01,5")},
        ("lots.csv", 6, "expires_on"),
        "after manufactured_on",
    ),
    (
        {"products_csv": with_line("products.csv", "X-9,X,09506000134352,IV,true,")},
        ("products.csv", 5, "risk_class"),
        "I, II, III",
    ),
    (
        {"products_csv": with_line("products.csv", "X-9,X,09506000134352,II,maybe,")},
        ("products.csv", 5, "implantable"),
        "true/false",
    ),
    (
        {"products_csv": with_line("products.csv", "X-9,X,09506000134352,II,no,1.5")},
        ("products.csv", 5, "shelf_life_days"),
        "whole number",
    ),
    (
        {"locations_csv": with_line("locations.csv", "L-9,Shelf,garage")},
        ("locations.csv", 4, "kind"),
        "warehouse",
    ),
    (
        {"consignees_csv": with_line("consignees.csv", "C-9,X,hospital,,13800138000,en,,")},
        ("consignees.csv", 5, "phone"),
        "E.164",
    ),
    (
        {"consignees_csv": with_line("consignees.csv", "C-9,X,hospital,,+86123,en,,")},
        ("consignees.csv", 5, "phone"),
        "not a valid phone",
    ),
    (
        {"consignees_csv": with_line("consignees.csv", "C-9,X,hospital,x-at-y,,fr,,")},
        ("consignees.csv", 5, "language"),
        "zh-CN",
    ),
    (
        {"consignees_csv": with_line("consignees.csv", "C-9,X,hospital,x-at-y,,en,,")},
        ("consignees.csv", 5, "email"),
        "e-mail",
    ),
    (
        {"shipments_csv": with_line("shipments.csv", "S9,H-003,CATH-02,C7,,5,05/01/2026")},
        ("shipments.csv", 6, "shipped_on"),
        "ISO 8601",
    ),
    (
        {"lots_csv": with_line("lots.csv", "CATH-02,C8-THIS-LOT-NUMBER-IS-TOO-LONG,,,")},
        ("lots.csv", 6, "lot_number"),
        "at most 20",
    ),
    (
        {"products_csv": with_line("products.csv", ",X,09506000134352,II,no,")},
        ("products.csv", 5, "code"),
        "required",
    ),
    ({"stock_csv": with_line("stock.csv", "WH-SH,CATH-02,C7")}, ("stock.csv", 5, None), "header has 4"),
    # negative and zero quantities
    (
        {"stock_csv": with_line("stock.csv", "QA-1,CATH-02,C7,-5")},
        ("stock.csv", 5, "quantity"),
        "positive",
    ),
    (
        {"genealogy_csv": with_line("genealogy.csv", "STENT-01,S2,WIRE-03,W100,0")},
        ("genealogy.csv", 4, "quantity"),
        "positive",
    ),
    (
        {"shipments_csv": with_line("shipments.csv", "S9,H-003,CATH-02,C7,,-1,2026-05-01")},
        ("shipments.csv", 6, "quantity"),
        "positive",
    ),
    # bad GTIN check digits
    (
        {"products_csv": with_line("products.csv", "X-9,X,09506000134353,II,no,")},
        ("products.csv", 5, "gtin"),
        "check digit",
    ),
    (
        {"products_csv": with_line("products.csv", "X-9,X,0950600013435A,II,no,")},
        ("products.csv", 5, "gtin"),
        "digits",
    ),
    # unknown references
    (
        {"lots_csv": with_line("lots.csv", "NOPE,L1,,,")},
        ("lots.csv", 6, "product_code"),
        "unknown product",
    ),
    (
        {"stock_csv": with_line("stock.csv", "WH-XX,CATH-02,C7,5")},
        ("stock.csv", 5, "location_code"),
        "unknown location",
    ),
    (
        {"stock_csv": with_line("stock.csv", "QA-1,CATH-02,C99,5")},
        ("stock.csv", 5, "lot_number"),
        "unknown lot",
    ),
    (
        {"genealogy_csv": with_line("genealogy.csv", "STENT-01,S2,WIRE-03,W999,1")},
        ("genealogy.csv", 4, "component_lot_number"),
        "unknown lot",
    ),
    (
        {"serials_csv": with_line("serials.csv", "STENT-01,S9,SN9")},
        ("serials.csv", 5, "lot_number"),
        "unknown lot",
    ),
    (
        {"shipments_csv": with_line("shipments.csv", "S9,NOBODY,CATH-02,C7,,5,2026-05-01")},
        ("shipments.csv", 6, "consignee_code"),
        "unknown consignee",
    ),
    (
        {"shipments_csv": with_line("shipments.csv", "S9,H-003,STENT-01,S1,SN0404,1,2026-05-01")},
        ("shipments.csv", 6, "serial"),
        "unknown serial",
    ),
    (
        {"shipments_csv": with_line("shipments.csv", "S9,H-003,STENT-01,S1,SN0101,1,2026-05-01")},
        ("shipments.csv", 6, "serial"),
        "belongs to lot 'S2'",
    ),
    (
        {"shipments_csv": with_line("shipments.csv", "S9,H-003,STENT-01,S2,SN0101,2,2026-05-01")},
        ("shipments.csv", 6, "quantity"),
        "one unit",
    ),
    (
        {"consignees_csv": with_line("consignees.csv", "C-9,X,hospital,,,,,C-404")},
        ("consignees.csv", 5, "parent_code"),
        "unknown consignee",
    ),
    (
        {"consignees_csv": with_line("consignees.csv", "C-9,X,hospital,,,,,C-9")},
        ("consignees.csv", 5, "parent_code"),
        "its own parent",
    ),
    (
        {"consignees_csv": with_line("consignees.csv", "C-8,X,hospital,,,,,C-9\nC-9,Y,hospital,,,,,C-8")},
        ("consignees.csv", 5, "parent_code"),
        "cycle",
    ),
    (
        {"genealogy_csv": with_line("genealogy.csv", "STENT-01,S2,STENT-01,S2,1")},
        ("genealogy.csv", 4, "component_lot_number"),
        "itself",
    ),
    # duplicates
    (
        {"products_csv": with_line("products.csv", "CATH-02,Other,09506000134352,II,no,")},
        ("products.csv", 5, "code"),
        "line 3",
    ),
    (
        {"products_csv": with_line("products.csv", f"X-9,X,{GTIN_STENT},II,no,")},
        ("products.csv", 5, "gtin"),
        "also on line 2",
    ),
    (
        {"lots_csv": with_line("lots.csv", "STENT-01,S1,2026-02-01,2028-02-01,50")},
        ("lots.csv", 6, "product_code"),
        "line 3",
    ),
    (
        {"stock_csv": with_line("stock.csv", "WH-SH,CATH-02,C7,1")},
        ("stock.csv", 5, "location_code"),
        "line 3",
    ),
    (
        {"shipments_csv": with_line("shipments.csv", "SHP-003,H-003,CATH-02,C7,,9,2026-04-05")},
        ("shipments.csv", 6, "shipment_ref"),
        "line 5",
    ),
    (
        {"shipments_csv": with_line("shipments.csv", "SHP-003,H-003,WIRE-03,W100,,9,2026-04-06")},
        ("shipments.csv", 6, "shipped_on"),
        "line 5",
    ),
    # missing column, empty file
    (
        {"lots_csv": "product_code,manufactured_on,expires_on,quantity\nCATH-02,,,\n"},
        ("lots.csv", 1, "lot_number"),
        "missing column",
    ),
    ({"locations_csv": ""}, ("locations.csv", 1, None), "empty"),
]


@pytest.mark.parametrize(("replace", "where", "words"), BAD_INPUT)
async def test_bad_input_is_refused_located_and_changes_nothing(sqlite_store, replace, where, words):
    issues = await rejected(sqlite_store, valid_files(**replace))
    assert has(issues, *where, words), issues


async def test_every_bad_input_case_is_refused_on_both_databases(store):
    await run_import(store, {"products.csv": VALID["products.csv"].encode()})  # some stored rows to keep
    for replace, where, words in BAD_INPUT:
        issues = await rejected(store, valid_files(**replace))
        assert has(issues, *where, words), (where, issues)


async def test_a_line_that_is_not_utf8_is_named_with_line_column_and_byte(store):
    good = VALID["consignees.csv"].encode()
    consignees = good + "C-9,Hôpital Saint-Éloi,hospital,,,en,,\n".encode("latin-1")
    issues = await rejected(store, valid_files(consignees_csv=consignees))
    offset = len(good) + len(b"C-9,H")
    assert issues == [
        (
            "consignees.csv",
            5,
            "name",
            f"not valid UTF-8: byte 0xf4 at byte offset {offset}; "
            "save the file as UTF-8 (in Excel: CSV UTF-8)",
        )
    ]


async def test_a_whole_file_in_latin1_reports_each_bad_line(store):
    locations = "code,name,kind\nWH-SH,Entrepôt,warehouse\nQA-1,Quarantaine contrôlée,quarantine\n"
    issues = await rejected(store, valid_files(locations_csv=locations.encode("latin-1")))
    assert [i[:3] for i in issues] == [("locations.csv", 2, "name"), ("locations.csv", 3, "name")]


async def test_every_error_is_reported_not_just_the_first(store):
    lots = with_line("lots.csv", "CATH-02,C8,2026-03-01,2028-03-01,-1\nNOPE,C9,,,\nCATH-02,C10,soon,,")
    stock = with_line("stock.csv", "WH-XX,CATH-02,C8,5")
    issues = await rejected(store, valid_files(lots_csv=lots, stock_csv=stock, unknown_csv="a,b\n"))
    assert {(f, n, c) for f, n, c, _ in issues} == {
        ("lots.csv", 6, "quantity"),
        ("lots.csv", 7, "product_code"),
        ("lots.csv", 8, "manufactured_on"),
        ("stock.csv", 5, "location_code"),
        ("unknown.csv", 0, None),
    }


async def test_a_row_with_a_bad_value_still_has_its_references_checked(sqlite_store):
    stock = with_line("stock.csv", "WH-XX,CATH-02,C7,-3")
    issues = await rejected(sqlite_store, valid_files(stock_csv=stock))
    assert [i[:3] for i in issues] == [("stock.csv", 5, "quantity"), ("stock.csv", 5, "location_code")]


async def test_an_unreadable_row_does_not_cascade_into_other_files(sqlite_store):
    products = with_line("products.csv", "X-9,X,09506000134352,II")  # 4 values: its code cannot be trusted
    lots = with_line("lots.csv", "X-9,X1,,,")
    issues = await rejected(sqlite_store, valid_files(products_csv=products, lots_csv=lots))
    assert [i[:3] for i in issues] == [("products.csv", 5, None)]


async def test_errors_stop_at_the_limit(sqlite_store):
    lots = VALID["lots.csv"] + "".join(f"CATH-02,X{i},,,zero\n" for i in range(50))
    before = await table_counts(sqlite_store)
    with pytest.raises(ImportRejected) as err:
        await run_import(sqlite_store, valid_files(lots_csv=lots), max_errors=10)
    assert len(err.value.issues) == 11 and "stopped after 10 errors" in err.value.issues[-1].reason
    assert await table_counts(sqlite_store) == before


# ------------------------------------------------------------------ conflicts with stored records


CONFLICTS = [
    (
        {"lots_csv": VALID["lots.csv"].replace("2028-03-01,200", "2029-03-01,200")},
        ("lots.csv", 5, "expires_on"),
        "stored with expires_on 2028-03-01",
    ),
    (
        {
            "locations_csv": VALID["locations.csv"].replace(
                "QA-1,Quarantine,quarantine", "QA-1,Quarantine,warehouse"
            )
        },
        ("locations.csv", 3, "kind"),
        "stored with kind quarantine",
    ),
    (
        {"consignees_csv": VALID["consignees.csv"].replace("+14155552671", "+14155552672")},
        ("consignees.csv", 4, "phone"),
        "never overwrites",
    ),
    (
        {"serials_csv": VALID["serials.csv"].replace("STENT-01,S2,SN0101", "STENT-01,S1,SN0101")},
        ("serials.csv", 4, "lot_number"),
        "stored in lot 'S2'",
    ),
    (
        {"genealogy_csv": VALID["genealogy.csv"].replace("W100,200", "W100,201")},
        ("genealogy.csv", 3, "quantity"),
        "stored with quantity 200",
    ),
    (
        {"stock_csv": VALID["stock.csv"].replace("QA-1,WIRE-03,W100,700", "QA-1,WIRE-03,W100,650")},
        ("stock.csv", 4, "quantity"),
        "post a movement",
    ),
    (
        {"shipments_csv": VALID["shipments.csv"].replace(",,20,", ",,25,")},
        ("shipments.csv", 5, "quantity"),
        "stored with quantity 20",
    ),
    (
        {"shipments_csv": VALID["shipments.csv"].replace("SHP-003,H-003", "SHP-003,D-001")},
        ("shipments.csv", 5, "consignee_code"),
        "stored with consignee_code 'H-003'",
    ),
]


@pytest.mark.parametrize(("replace", "where", "words"), CONFLICTS)
async def test_a_row_that_conflicts_with_stored_data_is_an_error(sqlite_store, replace, where, words):
    await run_import(sqlite_store, valid_files())
    issues = await rejected(sqlite_store, valid_files(**replace))
    assert has(issues, *where, words), issues


async def test_every_conflict_case_is_refused_on_both_databases(store):
    await run_import(store, valid_files())
    for replace, where, words in CONFLICTS:
        issues = await rejected(store, valid_files(**replace))
        assert has(issues, *where, words), (where, issues)


async def test_a_product_code_stored_with_another_gtin_is_an_error(store):
    await run_import(store, valid_files())
    products = VALID["products.csv"].replace(GTIN_STENT, "09506000134352")
    issues = await rejected(store, {"products.csv": products.encode()})
    assert has(issues, "products.csv", 2, "gtin", "never overwrites")
    # and a new code may not take a GTIN that a stored product holds
    header = VALID["products.csv"].splitlines()[0]
    issues = await rejected(store, {"products.csv": f"{header}\nNEW-1,Copy,{GTIN_STENT},II,no,\n".encode()})
    assert has(issues, "products.csv", 2, "gtin", "belongs to stored product 'STENT-01'")


async def test_stock_already_in_the_ledger_with_the_same_quantity_is_unchanged(store):
    await run_import(store, valid_files(stock_csv=None))
    async with store.sessions() as s, s.begin():  # stock put away by hand before the import
        lot = await s.scalar(select(Lot).where(Lot.lot_number == "W100"))
        qa = await s.scalar(select(Location).where(Location.code == "QA-1"))
        await inventory.post(s, kind=MovementKind.receipt, lot=lot, location=qa, quantity=700)
    result = await run_import(store, {"stock.csv": VALID["stock.csv"].encode()})
    assert (result.files["stock.csv"].created, result.files["stock.csv"].unchanged) == (2, 1)


@pytest.mark.postgres
async def test_a_concurrent_import_of_the_same_records_is_a_conflict(request, tmp_path):
    store = await make_store("postgres", request, tmp_path)
    files = {"products.csv": VALID["products.csv"].encode()}
    try:
        async with store.sessions() as first, first.begin():
            await import_csv(first, files=files)  # written, not committed yet

            async def second() -> None:
                async with store.sessions() as s, s.begin():
                    await import_csv(s, files=files)

            other = asyncio.create_task(second())
            await asyncio.sleep(0.5)  # the second import has seen no products and waits on the first's rows
        with pytest.raises(Conflict) as err:  # the first committed: the second may not write its copies
            await other
        assert "run it again" in err.value.reason
        assert (await table_counts(store))["products"] == 3
    finally:
        await store.engine.dispose()


def test_the_column_lists_live_in_one_place():
    from domain.csvfiles import CSV_COLUMNS, describe

    assert list(CSV_COLUMNS) == [
        "products.csv",
        "locations.csv",
        "consignees.csv",
        "lots.csv",
        "serials.csv",
        "genealogy.csv",
        "stock.csv",
        "shipments.csv",
    ]
    assert all(VALID[f].splitlines()[0] == ",".join(cols) for f, cols in CSV_COLUMNS.items())
    assert "shipments.csv: shipment_ref,consignee_code,product_code,lot_number,[serial]" in describe()
