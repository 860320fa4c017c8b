"""The trace benchmark cannot rot: at a tiny size its generator keeps its promised shape and skew, the
data loads into a migrated store, and the optimized trace, the naive ORM walk and the generator's own
reachability agree on the heaviest lot."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from bench import trace as bench
from domain.trace import backward_trace, forward_trace

SIZE = 0.002  # 2,000 lots: seconds, not minutes


async def test_the_generator_keeps_its_shape_skew_and_determinism():
    data = bench.generate(SIZE, seed=7)
    counts = data.counts()
    assert counts["lots"] == 2000
    assert 2.8 <= counts["genealogy_edges"] / counts["lots"] <= 3.2  # ~3 edges per lot, as at full size
    assert counts["shipment_lines"] == 4000 and counts["consignees"] == 50
    assert counts["locations"] == 36 and counts["stock_balances"] > 0
    levels = {bench.LEVEL_NAMES[data.lot_level[i]] for i in range(1, data.n_lots + 1)}
    assert levels == set(bench.LEVEL_NAMES)

    picks = data.picks
    heavy, typical = picks["forward_heaviest"], picks["forward_typical"]
    assert heavy["level"] == typical["level"] == "raw component"
    # One shared component reaches far more than a typical component lot (~1000x at full size, a few
    # times at this size); most lots reach a handful.
    assert heavy["lots"] >= 3 * typical["lots"]
    assert heavy["consignees"] > typical["consignees"]
    assert data.stats["forward_reach_all_lots_sample"]["share_reaching_at_most_10"] >= 0.6
    assert picks["backward_heaviest"]["lots"] >= picks["backward_typical"]["lots"] > 1

    again = bench.generate(SIZE, seed=7)
    assert again.picks == picks and again.edge_parent == data.edge_parent and again.line_lot == data.line_lot
    assert bench.generate(SIZE, seed=8).edge_parent != data.edge_parent


async def test_optimized_and_naive_trace_find_the_same_scope_for_the_heaviest_lot(sqlite_store):
    data = bench.generate(SIZE, seed=7)
    path = Path(sqlite_store.url.split("///", 1)[1])
    await asyncio.to_thread(bench.load_sqlite, path, data, lambda _: None)
    heavy = data.picks["forward_heaviest"]
    expected_lots = Reach(data).forward(heavy["id"])

    async with sqlite_store.sessions() as s:
        fast = await forward_trace(s, [heavy["id"]], include_shipments=True)
    async with sqlite_store.sessions() as s:
        scope = await forward_trace(s, [heavy["id"]], include_shipments=False)
    async with sqlite_store.sessions() as s:
        naive = await bench.naive_forward(s, heavy["id"])

    assert {lot.lot_id for lot in fast.lots} == naive.lot_ids == expected_lots
    assert {c.code: c.quantity for c in fast.consignees} == naive.consignees
    assert {lot.lot_id for lot in scope.lots} == expected_lots and scope.shipments == []
    assert {c.code: c.quantity for c in scope.consignees} == naive.consignees
    assert len(fast.consignees) == heavy["consignees"]
    assert len(fast.stock) == naive.stock_rows == heavy["stock_rows"]
    assert len(fast.shipments) == naive.shipment_lines == heavy["shipment_lines"]
    assert naive.queries >= 4 * len(expected_lots)  # it really is one query per lot and question

    backward = data.picks["backward_heaviest"]
    async with sqlite_store.sessions() as s:
        back = await backward_trace(s, [backward["id"]])
    assert {lot.lot_id for lot in back.lots} == Reach(data).backward(backward["id"])


async def test_the_timing_and_report_code_runs(sqlite_store, tmp_path):
    data = bench.generate(SIZE, seed=7)
    await asyncio.to_thread(
        bench.load_sqlite, Path(sqlite_store.url.split("///", 1)[1]), data, lambda _: None
    )
    db = bench.BenchDb("sqlite", SIZE, sqlite_store.url, {"picks": data.picks}, reused=False)

    cases = await bench.bench_db(db, runs=2, heavy_runs=1, limits=bench.Limits(trace_s=60, case_s=60))

    assert [c["case"] for c in cases] == [name for name, _, _ in bench.CASES]
    assert all(c["correct"] and c["runs"] >= 1 and c["p95_ms"] >= c["p50_ms"] > 0 for c in cases)
    out = io.StringIO()
    report = {
        "database": "sqlite",
        "size": SIZE,
        "seed": 7,
        "environment": bench._environment("sqlite", "SQLite"),
        "dataset": {"counts": data.counts(), "load_s": 0.1, "reused": False},
        "cases": cases,
        "path": str(tmp_path / "trace.json"),
    }
    limits = bench.Limits(trace_s=60, case_s=60)
    assert await bench.cpu_of_heavy_forward(db, 1, limits) is None  # SQLite: no server to read
    report["cpu_forward_heaviest"] = {
        "runs": 3,
        "backends": 3,
        "client_p50_ms": 300.0,
        "server_p50_ms": 700.0,
        "cores": 2,
        "floor_ms": 500.0,
        "clock_tick_ms": 10.0,
    }
    bench.print_report(Console(file=out, width=200), report)
    assert "forward heaviest" in out.getvalue() and "target binds PostgreSQL" in out.getvalue()
    assert "on 2 cores no trace can take less than 500 ms" in out.getvalue()
    speed = report["environment"]["speed_probe_ms"]
    assert speed > 0 and f"speed probe {speed:.0f} ms" in out.getvalue()


@pytest.mark.postgres
async def test_a_backends_cpu_is_read_from_proc_for_a_server_on_this_machine(pg_database):
    from sqlalchemy import text

    from domain.db import make_engine

    assert not bench._is_local("postgresql+asyncpg://lotline@db.example.org:5432/lotline")
    assert bench._is_local(pg_database)
    assert bench._cpu_s([2**22 + 12345]) is None  # no such process
    engine = make_engine(pg_database)
    try:
        async with engine.connect() as conn:  # about a second of this backend's CPU
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            before = bench._cpu_s([pid])
            await conn.execute(
                text("SELECT count(*) FROM generate_series(1, 5000000) AS g(i) WHERE i % 7 = 0")
            )
            after = bench._cpu_s([pid])
    finally:
        await engine.dispose()
    assert before is not None and after is not None and after - before >= 0.1


Reach = bench.Reach


def test_sql_time_counts_statements_running_at_once_once():
    # the walk, then two parts at once, the second ending later; a gap while Python builds the lots
    spans = [(0.0, 0.1), (0.1, 0.3), (0.12, 0.35), (0.5, 0.6)]
    assert abs(bench._in_statements(spans) - 0.45) < 1e-9
    assert bench._in_statements([]) == 0.0
