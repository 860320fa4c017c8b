"""Audit trail cost: transactions that change a regulated record (audited, chained, serialised by the
audit lock) against the same transactions on a record that is not regulated.

Run: ``.venv/bin/python bench/audit.py [--db postgres|sqlite|both] [--writers 8] [--tx 50]``

Each of ``--writers`` concurrent tasks commits ``--tx`` transactions; each transaction changes one
row of its own (no row contention) — a lot's quantity (audited: pre-image read, advisory lock on
PostgreSQL, one entry appended) or a location's name (not audited). Prints transactions per second
and p50/p95 latency for both, and checks the chain afterwards. PostgreSQL uses a database of its own
next to ``--pg-url`` (dropped at the end); SQLite a file under ``var/bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from domain.audit import acting_as
from domain.audit.verify import verify_chain
from domain.db import make_engine, make_session_factory
from domain.enums import LocationKind, RiskClass
from domain.migrate import upgrade
from domain.models import Location, Lot, Product

PG_URL = os.environ.get("LOTLINE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _run(url: str, writers: int, per_writer: int) -> dict[str, tuple[float, float, float]]:
    engine = make_engine(url)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    async with sessions() as s, s.begin():
        product = Product(code="B", name="bench", gtin="06950000000019", risk_class=RiskClass.II)
        s.add(product)
        await s.flush()
        lots = [Lot(product_id=product.id, lot_number=f"L{i}", quantity=0) for i in range(writers)]
        places = [Location(code=f"W{i}", name="w", kind=LocationKind.warehouse) for i in range(writers)]
        s.add_all(lots + places)
    figures = {}
    for label, model, ids in (
        ("not audited", Location, [p.id for p in places]),
        ("audited", Lot, [x.id for x in lots]),
    ):
        latencies: list[float] = []

        async def writer(row_id: int, model=model, latencies=latencies) -> None:
            for n in range(per_writer):
                started = time.perf_counter()
                with acting_as("bench"):
                    async with sessions() as s, s.begin():
                        row = await s.get(model, row_id)
                        if model is Lot:
                            row.quantity = n + 1
                        else:
                            row.name = f"w{n}"
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(writer(i) for i in ids))
        elapsed = time.perf_counter() - started
        latencies.sort()
        figures[label] = (
            len(latencies) / elapsed,
            statistics.median(latencies) * 1000,
            latencies[int(len(latencies) * 0.95) - 1] * 1000,
        )
    async with sessions() as s:
        report = await verify_chain(s)
        assert report.ok, report.findings
        print(f"  chain verified: {report.entries} entries")
    await engine.dispose()
    return figures


async def _postgres(writers: int, per_writer: int) -> dict:
    name = f"lotline_bench_audit_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return await _run(PG_URL.rsplit("/", 1)[0] + f"/{name}", writers, per_writer)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _sqlite(writers: int, per_writer: int, path: Path) -> dict:
    return await _run(f"sqlite+aiosqlite:///{path}", writers, per_writer)


def main() -> None:
    """Parse arguments, run, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--tx", type=int, default=50, help="transactions per writer")
    args = parser.parse_args()
    kinds = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    for kind in kinds:
        print(f"{kind}: {args.writers} writers x {args.tx} transactions")
        if kind == "postgres":
            figures = asyncio.run(_postgres(args.writers, args.tx))
        else:
            path = Path("var/bench") / f"audit-{os.getpid()}.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                figures = asyncio.run(_sqlite(args.writers, args.tx, path))
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        for label, (tps, p50, p95) in figures.items():
            print(f"  {label:12} {tps:8.0f} tx/s   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")


if __name__ == "__main__":
    main()
