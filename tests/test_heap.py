"""The long-running processes freeze what start-up made, once; a trace keeps that base frozen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """
import gc
from domain.trace import _gc_paused
from lotline.heap import freeze_what_start_made

with _gc_paused():  # no frozen base: the trace moves its objects along and leaves nothing frozen
    first = [[i] for i in range(1000)]
assert gc.get_freeze_count() == 0 and gc.isenabled()
assert freeze_what_start_made() is True
base = gc.get_freeze_count()
assert base > 0 and freeze_what_start_made() is False  # once per process
with _gc_paused():
    second = [[i] for i in range(1000)]
# Unfreezing would empty the permanent generation; kept, it holds the base (``second`` is not in it).
assert gc.get_freeze_count() == base and gc.isenabled(), (gc.get_freeze_count(), base)
print("ok")
"""


def test_start_up_is_frozen_once_and_a_trace_leaves_that_frozen():
    # A fresh interpreter: freezing is process-wide, and this test process must not be frozen.
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
