"""Shared fixtures: a migrated store on SQLite and on PostgreSQL.

PostgreSQL: each test run creates a database of its own on 127.0.0.1:5432 and drops it at the end,
so runs never collide. When it cannot be reached the PostgreSQL tests skip locally, but fail when
``LOTLINE_REQUIRE_POSTGRES=1`` (as ``.ci/run`` sets).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.db import make_engine, make_session_factory
from domain.migrate import upgrade
from domain.schema import Base

PG_ADMIN_URL = os.environ.get(
    "LOTLINE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("LOTLINE_REQUIRE_POSTGRES") == "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--screenshots DIR``: where the browser tests save their screenshots (default var/screenshots)."""
    parser.addoption(
        "--screenshots",
        default=os.environ.get("LOTLINE_SCREENSHOTS", "var/screenshots"),
        help="directory for the browser tests' screenshots of the main pages",
    )


@dataclass
class Store:
    """A migrated, empty store for one test."""

    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


async def _pg_admin(sql: str) -> None:
    engine = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def run_in_thread(coro_fn, *args):
    """Run a coroutine function to completion on a loop of its own, whatever loop is running here."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn(*args))).result()


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    run_in_thread(_migrate, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A migrated PostgreSQL database of this run's own, dropped at the end."""
    name = f"lotline_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        run_in_thread(lambda: asyncio.wait_for(_pg_admin(f'CREATE DATABASE "{name}"'), timeout=10))
    except Exception as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (LOTLINE_REQUIRE_POSTGRES=1) but unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    run_in_thread(_migrate, url)
    yield url
    run_in_thread(_pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty, migrated store of the given kind ("sqlite" or "postgres")."""
    if kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "store.db"
        shutil.copy(template, path)
        url = f"sqlite+aiosqlite:///{path}"
        engine = make_engine(url)
    else:
        url = request.getfixturevalue("pg_database")
        engine = make_engine(url)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            # The audit trail refuses TRUNCATE by trigger; replica mode (superuser) skips triggers.
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return Store(url=url, engine=engine, sessions=make_session_factory(engine))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty migrated store, once on SQLite and once on PostgreSQL."""
    s = await make_store(request.param, request, tmp_path)
    yield s
    await s.engine.dispose()


@pytest.fixture
async def sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty migrated SQLite store, for tests that need only one database."""
    s = await make_store("sqlite", request, tmp_path)
    yield s
    await s.engine.dispose()
