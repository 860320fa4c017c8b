"""The recall fan-out benchmark cannot rot: its core runs end to end at 20 consignees on the embedded stack
(Temporal dev server, API under uvicorn, worker, dev SMTP server, SQLite) and every figure it prints is
there and true: each consignee reached on both channels, every acknowledgement stored once, the recall
completed, its history small."""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

from bench import recall_fanout as bench

pytestmark = pytest.mark.temporal

N = 20


async def test_the_fanout_benchmark_runs_end_to_end_and_its_figures_hold(tmp_path):
    cfg = bench.Config(consignees=N, concurrency=8, work_dir=tmp_path, timeout=120, phase_timeout=60)
    report = await bench.run_bench(cfg, log=lambda _m: None)

    fanout, acks = report["fanout"], report["acks"]
    assert fanout["error"] is None
    assert fanout["email"]["recipients"] == N and fanout["sms"]["recipients"] == N
    assert 0 < fanout["approval_to_all_notices_s"] < 60
    assert not any(key.endswith(":failed") for key in fanout["notices_by_state"])
    assert sum(fanout["notices_by_state"].values()) == 2 * N  # one e-mail and one text each
    # Every text's delivery receipt reached its notice (the e-mails stay "sent": SMTP has no receipt).
    assert fanout["notices_after_callbacks"] == {"email:sent": N, "sms:delivered": N}
    assert acks["statuses"] == {"201": N} and acks["posted"] == N
    assert acks["store_responses"] == acks["store_acknowledged"] == acks["store_quantities"] == N
    assert acks["lost"] == 0 and 0 < acks["p50_ms"] <= acks["p99_ms"]
    assert report["completion"]["workflow_status"] == "COMPLETED"
    assert 0 < report["history"]["after_fanout"] < report["history"]["after_acks"] < 5000

    verdicts = bench.verdicts(report)
    # Correctness rows pass at any speed; the speed rows carry a verdict either way.
    assert all(v["pass"] for v in verdicts if v["unit"] in ("", "events"))
    report["verdicts"] = verdicts
    out = io.StringIO()
    bench.print_report(Console(file=out, width=160), report)
    assert "approval → every first notice accepted" in out.getvalue() and "p99 latency" in out.getvalue()

    # Every child process was stopped, and the store (a SQLite file in tmp_path) dropped.
    assert set(report["children"]) == {"temporal", "api", "worker"}
    for pid in report["children"].values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list(tmp_path.glob("*.db"))
