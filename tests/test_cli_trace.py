"""`lotline trace` on a migrated SQLite file: the JSON contract, the summary, exit code 2 on bad input."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from domain import inventory
from domain.db import make_engine, make_session_factory
from domain.enums import MovementKind
from domain.models import Shipment, ShipmentLine
from lotline.cli import app
from lotline.settings import get_settings
from tests import factories as f
from tests.conftest import run_in_thread


async def _populate(url: str) -> dict[str, str]:
    """CMP/K1 went into FG/F1 and FG/F2; stock of F1 at two warehouses; F1 and F2 shipped to H1, F2 to H2."""
    engine = make_engine(url)
    try:
        async with make_session_factory(engine)() as s, s.begin():
            cmp_, fg = await f.product(s, "CMP"), await f.product(s, "FG")
            k1, f1, f2 = await f.lot(s, cmp_, "K1"), await f.lot(s, fg, "F1"), await f.lot(s, fg, "F2")
            await f.edge(s, k1, f1)
            await f.edge(s, k1, f2)
            wh1, wh2 = await f.location(s, "WH1"), await f.location(s, "WH2")
            await inventory.post(s, kind=MovementKind.receipt, lot=f1, location=wh1, quantity=30)
            await inventory.post(s, kind=MovementKind.receipt, lot=f1, location=wh2, quantity=12)
            h1, h2 = await f.consignee(s, "H1"), await f.consignee(s, "H2")
            for ref, who, lot, qty in [("S1", h1, f1, 4), ("S2", h1, f2, 6), ("S3", h2, f2, 9)]:
                shipment = Shipment(ref=ref, consignee_id=who.id, shipped_on=date(2026, 5, 4))
                s.add(shipment)
                await s.flush()
                s.add(
                    ShipmentLine(
                        shipment_id=shipment.id,
                        lot_id=lot.id,
                        quantity=qty,
                        consignee_id=who.id,
                        shipped_on=shipment.shipped_on,
                    )
                )
            return {"CMP": cmp_.gtin, "FG": fg.gtin}
    finally:
        await engine.dispose()


@pytest.fixture
def cli(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A CLI runner pointed (by LOTLINE_DATABASE_URL) at a migrated, populated SQLite file, and the GTINs."""
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    gtins = run_in_thread(_populate, url)
    monkeypatch.setenv("LOTLINE_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["trace", *args])

    yield invoke, gtins
    get_settings.cache_clear()


def test_json_has_lots_stock_shipments_and_consignees(cli):
    invoke, _ = cli
    result = invoke("--product", "CMP", "--lot", "K1", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    body = json.loads(result.stdout)
    assert [(x["product_code"], x["lot_number"], x["depth"]) for x in body["lots"]] == [
        ("CMP", "K1", 0),
        ("FG", "F1", 1),
        ("FG", "F2", 1),
    ]
    assert sorted(
        (x["location_code"], x["product_code"], x["lot_number"], x["quantity"]) for x in body["stock"]
    ) == [
        ("WH1", "FG", "F1", 30),
        ("WH2", "FG", "F1", 12),
    ]
    assert {x["code"]: x["quantity"] for x in body["consignees"]} == {"H1": 10, "H2": 9}
    assert len(body["shipments"]) == 3


def test_backward_by_gs1_with_fnc1(cli):
    invoke, gtins = cli
    result = invoke("--gs1", f"01{gtins['FG']}10F2\x1d17281231", "--backward", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    body = json.loads(result.stdout)
    assert body["direction"] == "backward"
    assert {(x["product_code"], x["lot_number"], x["depth"]) for x in body["lots"]} == {
        ("FG", "F2", 0),
        ("CMP", "K1", 1),
    }


def test_without_json_a_summary_table_is_printed(cli):
    invoke, gtins = cli
    result = invoke("--gs1", f"(01){gtins['CMP']}(10)K1")
    assert result.exit_code == 0, result.output + result.stderr
    out = result.stdout
    assert "Forward trace from CMP/K1" in out and "3 lots" in out
    assert "On hand: 42 units at 2 locations" in out and "Shipped: 19 units to 2 consignees" in out
    assert "H1" in out and "FG" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--product", "CMP"], "--lot: "),
        (["--product", "CMP", "--lot", "NOPE"], "--lot: no lot 'NOPE'"),
        (["--gs1", "(01)06950000000018(10)K1"], "--gs1: GTIN 06950000000018 has check digit"),
        (["--serial", "NOPE"], "--serial: no unit with serial"),
        ([], "name the lot"),
    ],
)
def test_bad_input_exits_2_naming_the_option(cli, args, says):
    invoke, _ = cli
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert says in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""
