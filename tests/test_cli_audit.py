"""`lotline audit verify` on a migrated SQLite file: OK and exit 0 on an intact trail, each finding and
exit 1 after tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from domain.audit import acting_as
from domain.db import make_engine, make_session_factory
from domain.models import Lot
from lotline.cli import app
from lotline.settings import get_settings
from tests import factories as f
from tests.conftest import run_in_thread


@pytest.fixture
def store_url(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh migrated SQLite file with five audit entries, configured for the CLI."""
    path = tmp_path / "audit.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    monkeypatch.setenv("LOTLINE_DATABASE_URL", url)
    get_settings.cache_clear()

    async def _seed() -> None:
        engine = make_engine(url)
        try:
            sessions = make_session_factory(engine)
            with acting_as("qa.li"):
                async with sessions() as s, s.begin():
                    lot = await f.lot(s, await f.product(s, "CLI"), "L-1", quantity=1)
                for n in range(3):
                    async with sessions() as s, s.begin():
                        (await s.get(Lot, lot.id)).quantity = n + 2
        finally:
            await engine.dispose()

    run_in_thread(_seed)
    yield url
    get_settings.cache_clear()


def _sql(url: str, *statements: str) -> None:
    async def _run() -> None:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                for sql in statements:
                    await conn.execute(text(sql))
        finally:
            await engine.dispose()

    run_in_thread(_run)


def test_an_intact_trail_prints_ok_with_its_head_and_exits_0(store_url):
    r = CliRunner().invoke(app, ["audit", "verify"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("OK: 5 entries, chain intact; head 5:")
    report = json.loads(CliRunner().invoke(app, ["audit", "verify", "--json"]).stdout)
    assert report["entries"] == 5 and report["findings"] == [] and len(report["head_hash"]) == 64


def test_a_tampered_trail_prints_each_finding_and_exits_1(store_url):
    head = json.loads(CliRunner().invoke(app, ["audit", "verify", "--json"]).stdout)
    _sql(
        store_url,
        "DROP TRIGGER audit_entries_no_update",
        "DROP TRIGGER audit_entries_no_delete",
        "UPDATE audit_entries SET changes = '{\"quantity\": [1, 1000]}' WHERE seq = 3",
        "DELETE FROM audit_entries WHERE seq = 5",
    )
    r = CliRunner().invoke(app, ["audit", "verify"])
    assert r.exit_code == 1
    assert "CHANGED seq 3: entry 3 does not match its hash" in r.stdout
    assert "1 finding(s) in 4 entries" in r.stdout  # the cut end is invisible without an anchor...
    anchored = CliRunner().invoke(app, ["audit", "verify", "--anchor", f"5:{head['head_hash']}"])
    assert anchored.exit_code == 1 and "DELETED seq 5" in anchored.stdout  # ...and found with one


def test_a_malformed_anchor_is_refused_with_exit_2(store_url):
    r = CliRunner().invoke(app, ["audit", "verify", "--anchor", "five"])
    assert r.exit_code == 2 and "SEQ:HASH" in r.output
