"""The README stays true: its configuration table lists exactly the settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from lotline.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_configuration_table_lists_every_setting() -> None:
    text = README.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `LOTLINE_(\w+)` \|", text, flags=re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert not fields - listed, f"settings missing from the README table: {sorted(fields - listed)}"
    assert not listed - fields, f"README lists variables no setting reads: {sorted(listed - fields)}"


def test_quick_start_is_two_make_commands() -> None:
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert quick.split("\n")[1:-1] == ["make run", "make test"]
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run:.*\n\t\$\(BIN\)/lotline dev$", makefile, flags=re.MULTILINE)
    assert re.search(r"^test:", makefile, flags=re.MULTILINE)
