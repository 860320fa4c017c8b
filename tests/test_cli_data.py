"""`lotline import DIR` and `lotline export DIR` on a migrated SQLite file: counts, the error table and exit
code 1 with nothing changed, warnings, and a round trip through the exported files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from domain.db import make_engine
from lotline.cli import app
from lotline.commands import data
from lotline.settings import get_settings
from tests.conftest import Store, run_in_thread
from tests.csvsets import VALID, table_counts, valid_files, with_line


def _counts(url: str) -> dict[str, int]:
    async def count() -> dict[str, int]:
        engine = make_engine(url)
        try:
            return await table_counts(Store(url=url, engine=engine, sessions=None))  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return run_in_thread(count)


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return folder


@pytest.fixture
def cli(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run `lotline` against a fresh migrated SQLite file; yields (invoke, database URL)."""
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    monkeypatch.setenv("LOTLINE_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables unwrapped, so reasons can be searched whole
    get_settings.cache_clear()
    runner = CliRunner()
    yield (lambda *args: runner.invoke(app, [str(a) for a in args])), url
    get_settings.cache_clear()


def test_import_prints_counts_and_a_second_run_changes_nothing(cli, tmp_path):
    invoke, url = cli
    folder = _write(tmp_path / "in", valid_files())
    (folder / "README.csv").write_text("not,ours\n")

    first = invoke("import", folder)

    assert first.exit_code == 0, first.output
    assert "README.csv is not a file of the import; ignored" in first.output
    assert "shipments.csv" in first.output
    counts = _counts(url)
    assert (counts["products"], counts["shipment_lines"], counts["stock_entries"]) == (3, 4, 3)

    again = invoke("import", folder)

    assert again.exit_code == 0, again.output
    assert _counts(url) == counts
    assert re.search(r"shipments\.csv\s*│\s*0\s*│\s*4\s*│", again.output)  # created 0, unchanged 4


def test_errors_print_a_table_exit_1_and_change_nothing(cli, tmp_path):
    invoke, url = cli
    before = _counts(url)
    folder = _write(
        tmp_path / "bad",
        valid_files(stock_csv=with_line("stock.csv", "WH-XX,CATH-02,C7,-3"), lots_csv=None),
    )

    result = invoke("import", folder)

    assert result.exit_code == 1
    out = result.output
    assert "nothing was imported" in out and "Traceback" not in out
    assert "unknown location 'WH-XX'" in out and "got -3" in out
    assert "unknown lot 'S1'" in out  # lots.csv is missing, so the stock and shipments rows point nowhere
    assert _counts(url) == before


def test_warnings_are_printed(cli, tmp_path):
    invoke, _ = cli
    locations = VALID["locations.csv"].replace("code,name,kind", "code,name,kind,owner").replace("\n", ",x\n")
    locations = locations.replace("owner,x", "owner", 1)
    result = invoke("import", _write(tmp_path / "w", {"locations.csv": locations.encode()}))
    assert result.exit_code == 0, result.output
    assert "Warnings" in result.output and "column owner is not part of locations.csv" in result.output


def test_a_folder_without_import_files_exits_1(cli, tmp_path):
    invoke, _ = cli
    (tmp_path / "empty").mkdir()
    result = invoke("import", tmp_path / "empty")
    assert result.exit_code == 1 and "no import files" in result.output


def test_export_then_import_changes_nothing(cli, tmp_path, monkeypatch):
    invoke, url = cli
    monkeypatch.setattr(data, "LARGE_FILE_ROWS", 1)  # every file gets a progress bar
    assert invoke("import", _write(tmp_path / "in", valid_files())).exit_code == 0
    counts = _counts(url)

    exported = invoke("export", tmp_path / "out", "--bom")

    assert exported.exit_code == 0, exported.output
    assert f"{tmp_path / 'out' / 'shipments.csv'}: 4 rows" in exported.output
    assert (tmp_path / "out" / "products.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    again = invoke("import", tmp_path / "out")
    assert again.exit_code == 0, again.output
    assert _counts(url) == counts
