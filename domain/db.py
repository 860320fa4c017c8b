"""Engine and session factory for the store: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) by URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)


def is_sqlite(url: str) -> bool:
    """True for a SQLite URL."""
    return url.startswith("sqlite")


# PostgreSQL: connections a process may open beyond its pool in a burst (closed when returned).
MAX_OVERFLOW = 8


def make_engine(url: str, *, pool_size: int = 32, **kwargs) -> AsyncEngine:
    """An async engine; on SQLite, with foreign keys enforced and WAL so readers never block writers.
    ``pool_size``: the connections kept open on PostgreSQL (ignored on SQLite)."""
    if is_sqlite(url):
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        # Connections kept open: one beyond pool_size is closed when returned, and a new one costs a
        # connect, authentication and type introspection, so a burst (10,000 acknowledgements from 64
        # clients) must fit in the kept ones rather than churn through the overflow.
        kwargs["pool_size"] = pool_size
        kwargs.setdefault("max_overflow", MAX_OVERFLOW)
        # Last in, first out: a steady load reuses the few connections it needs, whose prepared
        # statements and plans are warm, instead of cycling through all 32 and preparing each
        # statement on every one of them (each connection's first executions are planned afresh).
        kwargs.setdefault("pool_use_lifo", True)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


_WARM = text("SELECT CAST(:ids AS bigint[])")


async def warm_pool(engine: AsyncEngine) -> int:
    """Open the pool's kept connections now (PostgreSQL), so the first burst of requests does not pay
    for connecting, authenticating and introspecting types on each; returns how many it warmed. A
    database that cannot be reached now is not an error here: connections are opened on demand."""
    if engine.dialect.name == "sqlite":
        return 0
    from domain.audit.chain import warm_sealing  # here: the audit modules import the models

    kept = engine.pool.size()
    opened = await asyncio.gather(*(engine.connect() for _ in range(kept)), return_exceptions=True)
    conns = [c for c in opened if not isinstance(c, BaseException)]
    warmed = 0
    try:
        if len(conns) < len(opened):
            raise next(c for c in opened if isinstance(c, BaseException))
        # Also asyncpg's codec for bigint[] (lists of ids), which it otherwise asks the server for the
        # first time each connection meets one, inside someone's transaction.
        await asyncio.gather(*(c.execute(_WARM, {"ids": [1]}) for c in conns))
        for c in conns:  # one at a time: each takes the audit trail's lock for a moment
            await c.run_sync(warm_sealing)
            await c.commit()
            warmed += 1
    except (OSError, SQLAlchemyError) as exc:
        log.warning("could not open and warm the database's connections at start: %s", exc)
    finally:
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    return warmed


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep objects usable after commit, with the audit trail's hooks installed."""
    from domain.audit.hooks import install as install_audit  # here: the hooks import the models

    install_audit()
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction: committed on success, rolled back on any error."""
    async with factory() as session, session.begin():
        yield session
